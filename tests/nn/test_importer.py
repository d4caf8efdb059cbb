"""``bnnlogic.import_model`` on PyTorch and Brevitas BNNs trained here: the import predicts
exactly what the source's own float32 inference predicts, on digits' whole test split."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import bnnlogic
from bnnlogic.data import load_dataset
from bnnlogic.errors import UserError
from tests.sources import TORCH_MAPPING, BrevitasBNN, TorchBNN, train_source

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


@pytest.fixture(scope="module")
def torch_bnn(digits):
    return train_source(TorchBNN(), digits, epochs=3)


def _logits(net, X):
    with torch.no_grad():
        return net(torch.as_tensor(X, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16).numpy()


def test_state_dict_torchscript_and_module_import_exactly(torch_bnn, digits, tmp_path):
    """The padded-conv BNN as a state dict (+ mapping), as TorchScript and as a module: agreement
    1.0 on the test split; +-1 activations with zero padding get per-position thresholds."""
    torch.save(torch_bnn.state_dict(), tmp_path / "sd.pt")
    torch.jit.script(torch_bnn).save(tmp_path / "ts.pt")
    X = digits.X_test.reshape(len(digits.X_test), -1)
    want = np.argmax(_logits(torch_bnn, X), axis=1)
    for source, mapping, kind in ((tmp_path / "sd.pt", TORCH_MAPPING, "torch"), (tmp_path / "ts.pt", None, "torchscript"),
                                  (torch_bnn, None, "module")):
        res = bnnlogic.import_model(source, mapping, data="digits")
        assert (res.report["kind"], res.agreement, res.report["agreement_n"]) == (kind, 1.0, len(X))
        np.testing.assert_array_equal(res.model.predict(X), want)
        conv1, conv2 = res.model.ir.layers[:2]
        assert (conv1.padding, conv2.padding, conv2.stride) == (1, 1, 2) and conv1.k.shape == (8, 8, 8)
        res.model.save(tmp_path / f"{kind}.bnn")
        np.testing.assert_array_equal(bnnlogic.load(tmp_path / f"{kind}.bnn").predict(X), want)


def _random_source(seed: int, binarize, weights: str, conv_first: bool, out_bn: str | None = None):
    """An untrained source with random BatchNorms (negative gammas, the input's too) and a
    chosen input block and weight storage; returns (state dict, mapping)."""
    g = torch.Generator().manual_seed(seed)
    shape = (2, 6, 6)
    state, layers = {}, []

    def bn(name, n):
        gamma = torch.rand(n, generator=g) * 2 - 0.7
        state.update({f"{name}.weight": gamma, f"{name}.bias": torch.randn(n, generator=g) * 0.5,
                      f"{name}.running_mean": torch.randn(n, generator=g), f"{name}.running_var": torch.rand(n, generator=g) + 0.3})

    def weight(name, shape_):
        w = torch.randn(shape_, generator=g)
        if weights == "pm1":
            w = torch.where(w >= 0, 1.0, -1.0)
        elif weights == "ternary":
            w = torch.where(w.abs() < 0.4, 0.0, torch.sign(w))
        state[f"{name}.weight"] = w

    bn("bn_in", 2)
    if conv_first:
        weight("c1", (5, 2, 3, 3))
        state["c1.bias"] = torch.randn(5, generator=g)
        bn("b1", 5)
        layers += [{"conv": "c1", "stride": 2, "padding": 1, "bn": "b1"}, {"maxpool": 3, "stride": 1}]
        n = 5
    else:
        weight("c1", (7, 72))
        bn("b1", 7)
        layers.append({"linear": "c1", "bn": "b1"})
        n = 7
    weight("d2", (6, n))
    bn("b2", 6)
    layers.append({"linear": "d2", "bn": "b2"})
    weight("out", (4, 6))
    state["out.bias"] = torch.randn(4, generator=g)
    if out_bn:
        bn("bo", 4)
        if out_bn == "scalar":  # one multiplier for all classes (e.g. a TensorNorm)
            state["bo.weight"][:] = 0.8
            state["bo.running_var"][:] = 1.5
    mapping = {"input": {"shape": list(shape), "domain": [0, 20], "binarize": binarize, "bn": "bn_in"},
               "layers": layers, "output": {"linear": "out", "bn": "bo" if out_bn else None}}
    return state, mapping


BLOCKS = ["bn-sign", "sign", {"threshold": 0.45}, {"threshold": 0.3, "values": "01"}, {"quantize": 0.125}]


@pytest.mark.parametrize("binarize", BLOCKS, ids=lambda b: str(b))
@pytest.mark.parametrize("weights", ["latent", "pm1", "ternary"])
@pytest.mark.parametrize("conv_first", [False, True])
def test_input_blocks_weight_forms_and_negative_gamma(binarize, weights, conv_first, tmp_path):
    state, mapping = _random_source(3, binarize, weights, conv_first, out_bn="scalar" if weights == "pm1" else None)
    torch.save(state, tmp_path / "s.pt")
    res = bnnlogic.import_model(tmp_path / "s.pt", mapping, n_random=3000)
    assert res.agreement == 1.0, res.report["disagreements"]
    if binarize == "bn-sign":  # the input BN's negative gamma: z = +-1 decreasing in the raw value
        assert res.model.ir.coding.n_levels == 1
    if binarize == {"quantize": 0.125}:  # round(raw / 20 / 0.125): 9 levels, 8 thresholds
        assert res.model.ir.coding.n_levels == 8


@pytest.mark.parametrize("conv_first", [False, True])
def test_per_class_output_batchnorm(conv_first, tmp_path):
    """A BatchNorm per class after the output Linear (BinaryNet's head) imports exactly too."""
    state, mapping = _random_source(1, "bn-sign", "latent", conv_first, out_bn="per-class")
    torch.save(state, tmp_path / "s.pt")
    res = bnnlogic.import_model(tmp_path / "s.pt", mapping, n_random=4000)
    assert res.agreement == 1.0 and res.model.ir.output.scale == 1


def test_a_mapping_naming_a_missing_tensor_is_a_user_error(tmp_path):
    state, mapping = _random_source(1, "bn-sign", "latent", False)
    torch.save(state, tmp_path / "s.pt")
    with pytest.raises(UserError, match="d3.weight not found"):
        bnnlogic.import_model(tmp_path / "s.pt", {**mapping, "layers": mapping["layers"] + [{"linear": "d3"}]})


@pytest.fixture(scope="module")
def brevitas_bnn(digits):
    pytest.importorskip("brevitas")
    small = load_dataset("digits")
    small.X_train, small.y_train = small.X_train[:600], small.y_train[:600]
    return train_source(BrevitasBNN(), small, epochs=2)


def test_brevitas_module_and_its_qonnx_export_import_exactly(brevitas_bnn, digits, tmp_path):
    """Binary and ternary weight quantizers, sign activations, padded convs: the module (read
    through its QONNX export) and the exported file agree with their own float32 inference on
    the whole test split; the file is read without torch."""
    from brevitas.export import export_qonnx

    X = digits.X_test.reshape(len(digits.X_test), -1)
    res = bnnlogic.import_model(brevitas_bnn, data="digits")
    assert (res.report["kind"], res.agreement) == ("brevitas", 1.0)
    W = [layer.A for layer in res.model.ir.layers if hasattr(layer, "A")]
    assert (W[1] == 0).any() and not (W[0] == 0).any()  # ternary conv2, binary conv1
    np.testing.assert_array_equal(res.model.predict(X), np.argmax(brevitas_bnn(torch.as_tensor(
        X, dtype=torch.float32).reshape(-1, 1, 8, 8) / 16).detach().numpy(), axis=1))
    export_qonnx(brevitas_bnn, torch.zeros(1, 1, 8, 8), export_path=str(tmp_path / "b.onnx"))
    res2 = bnnlogic.import_model(tmp_path / "b.onnx", data="digits")
    assert (res2.report["kind"], res2.agreement) == ("qonnx", 1.0)
    np.testing.assert_array_equal(res2.model.predict(X), res.model.predict(X))
    code = ("import sys\n"
            "class NoTorch:\n"  # any import of torch fails
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] == 'torch':\n"
            "            raise ImportError('torch is blocked')\n"
            "sys.meta_path.insert(0, NoTorch())\n"
            "import bnnlogic\n"
            f"r = bnnlogic.import_model({str(tmp_path / 'b.onnx')!r}, data='digits')\n"
            "assert r.agreement == 1.0 and 'torch' not in sys.modules\n")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT, env={**__import__("os").environ,
                                                                            "PYTHONPATH": str(ROOT)})
