"""Distillation: initialisation from the float weights, fidelity in the metadata, CLI."""
from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from bnnlogic import load
from bnnlogic.cli import main
from bnnlogic.data import load_dataset
from bnnlogic.nn.distill import distill, same_arch, teacher_init_state
from bnnlogic.nn.floatnet import export_onnx, float_predict, save_float, train_float
from bnnlogic.quant import Conv2d, Flatten, FloatNet, Linear, MaxPool2d, ReLU


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def dnn(digits):
    return train_float(digits, "mlp:32,16", epochs=15, lr=3e-3, progress=False)


def test_same_arch_and_init_state():
    mlp = FloatNet((4,), [Flatten(), Linear(np.ones((3, 4)), np.zeros(3)), ReLU(), Linear(np.ones((2, 3)), np.zeros(2))])
    assert same_arch(mlp) == "mlp:3"
    state = teacher_init_state(mlp, 3)
    assert state["0.weight"].shape == (3, 12) and state["1.weight"].shape == (2, 3)
    cnn = FloatNet((1, 8, 8), [Conv2d(np.ones((4, 1, 3, 3)), np.zeros(4), 1), ReLU(), MaxPool2d(2, 2), Flatten(),
                               Linear(np.ones((5, 36)), np.zeros(5)), ReLU(), Linear(np.ones((2, 5)), np.zeros(2))])
    assert same_arch(cnn) == "cnn:c4k3s1,p2,d5"
    assert teacher_init_state(cnn, 2)["0.weight"].shape == (4, 2, 3, 3)
    padded = FloatNet((1, 8, 8), [Conv2d(np.ones((4, 1, 3, 3)), np.zeros(4), 1, 1), Flatten(),
                                  Linear(np.ones((2, 256)), np.zeros(2))])
    assert same_arch(padded) == "cnn:c4k3s1p1"  # the BNN pads too (with -1, its bit 0)


def test_distill_records_fidelity(digits, dnn):
    model = distill(dnn, digits, "same", epochs=3, progress=False)
    m = model.meta
    bnn_pred, dnn_pred = model.predict(digits.X_test), float_predict(dnn, digits.X_test)
    assert m["fidelity"] == pytest.approx(float((bnn_pred == dnn_pred).mean()))
    assert m["dnn_test_accuracy"] == pytest.approx(float((dnn_pred == digits.y_test).mean()))
    assert m["distill"]["init_layers"] == 3 and m["ir_agreement"] == 1.0
    assert m["fidelity"] > 0.5


def test_default_is_pure_imitation(digits, dnn):
    """alpha = 1 (the default) never reads the labels: shuffled labels train the same BNN."""
    shuffled = dataclasses.replace(digits, y_train=np.random.default_rng(0).permutation(digits.y_train))
    a, b = (distill(dnn, d, "mlp:16", epochs=1, progress=False) for d in (digits, shuffled))
    assert a.meta["distill"]["alpha"] == 1.0 and a.meta["distill"]["temperature"] == 1.0
    assert all(np.array_equal(a.torch_state[k], b.torch_state[k]) for k in a.torch_state)
    mixed = distill(dnn, shuffled, "mlp:16", epochs=1, alpha=0.5, progress=False)
    assert not all(np.array_equal(a.torch_state[k], mixed.torch_state[k]) for k in a.torch_state)


def test_more_levels_widen_the_first_layer(digits, dnn):
    """coding levels:M gives M input bits per feature; the teacher's first layer is tiled over them."""
    model = distill(dnn, digits, "same", epochs=1, coding="levels:5", progress=False)
    d = int(np.prod(digits.feature_shape))
    assert model.ir.coding.thresholds.shape == (5, d)
    assert model.ir.layers[0].A.shape == (32, 5 * d) and model.meta["distill"]["init_layers"] == 3
    assert model.meta["training"]["coding"] == "levels:5"


def test_cli_binarize_distill_and_exact(tmp_path, digits, dnn, capsys):
    save_float(dnn, digits.feature_shape, tmp_path / "dnn.pt")
    export_onnx(dnn, tmp_path / "dnn.onnx")
    assert main(["binarize", str(tmp_path / "dnn.pt"), "--data", "digits", "--arch", "mlp:16",
                 "--epochs", "1", "--out", str(tmp_path / "b.bnn"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) >= {"accuracy", "dnn_accuracy", "fidelity"}
    assert load(tmp_path / "b.bnn").meta["fidelity"] == out["fidelity"]
    assert main(["binarize", str(tmp_path / "dnn.onnx"), "--data", "digits", "--exact-bits", "2",
                 "--out", str(tmp_path / "q.bnn"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["quant_agreement"] == 1.0 and out["bits"] == 2 and out["neurons"] > 0


@pytest.mark.parametrize("argv, message", [
    (["--exact-bits", "0"], "--exact-bits must be"),
    (["--epochs", "0"], "--epochs must be"),
])
def test_cli_errors_are_one_line(tmp_path, capsys, argv, message, digits, dnn):
    save_float(dnn, digits.feature_shape, tmp_path / "dnn.pt")
    assert main(["binarize", str(tmp_path / "dnn.pt"), "--data", "digits", "--out", str(tmp_path / "x"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_cli_missing_file(tmp_path, capsys):
    assert main(["binarize", str(tmp_path / "none.onnx"), "--data", "digits", "--out", str(tmp_path / "x")]) == 2
    assert "no such network file" in capsys.readouterr().err


def test_train_starts_from_a_pretrained_float_network(digits, dnn):
    """With lr 0 the latent weights stay where init_from put them: the float weights scaled to
    max |w| = 1, the first layer tiled over the coding's levels (3 thermometer bits per pixel)."""
    from bnnlogic.nn import train

    model = train(digits, "mlp:32,16", epochs=1, lr=0.0, init_from=dnn, preset="ternary", progress=False)
    assert model.meta["init_from_layers"] == 3 and model.meta["preset"] == "ternary"
    W = [layer.W for layer in dnn.layers if isinstance(layer, Linear)]
    latent = [v for k, v in model.torch_state.items() if k.endswith(("layer.weight", "linear.weight"))]
    first = np.tile(W[0], (1, 3))
    np.testing.assert_allclose(latent[0], np.clip(first / np.abs(first).max(), -1, 1), rtol=1e-6)
    np.testing.assert_allclose(latent[2], W[2] / np.abs(W[2]).max(), rtol=1e-6)


def test_cli_train_init(tmp_path, digits, dnn, capsys):
    save_float(dnn, digits.feature_shape, tmp_path / "dnn.pt")
    assert main(["train", "--data", "digits", "--arch", "mlp:32,16", "--init", str(tmp_path / "dnn.pt"),
                 "--preset", "l1-ternary", "--epochs", "1", "--out", str(tmp_path / "m.bnn"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["init_from_layers"] == 3 and out["preset"] == "l1-ternary"
    assert load(tmp_path / "m.bnn").meta["init_from_layers"] == 3
    assert main(["train", "--data", "digits", "--arch", "mlp:7", "--init", str(tmp_path / "dnn.pt"),
                 "--out", str(tmp_path / "x.bnn")]) == 2
    err = capsys.readouterr().err
    assert "matches the BNN's shapes" in err and err.count("\n") == 1 and not (tmp_path / "x.bnn").exists()
