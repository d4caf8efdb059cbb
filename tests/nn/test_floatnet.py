"""Float network import: .pt and ONNX round trips, supported layers, one-line errors."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

from bnnlogic.cli import main
from bnnlogic.data import load_dataset
from bnnlogic.errors import UserError
from bnnlogic.nn.floatnet import (export_onnx, float_logits, float_predict, from_torch, load_float, save_float,
                                  train_float)
from bnnlogic.quant import Conv2d, Flatten, FloatNet, Linear, ReLU


def _cnn() -> nn.Sequential:
    torch.manual_seed(0)
    seq = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(3 * 4 * 4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 4))
    for m in seq:  # non-trivial batch-norm statistics
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            m.weight.data.uniform_(-2, 2)
    return seq.eval()


@pytest.fixture
def X():
    return np.random.default_rng(0).integers(0, 16, size=(50, 1, 8, 8))


@torch.no_grad()
def test_from_torch_matches_torch(X):
    seq = _cnn()
    net = from_torch(seq, (1, 8, 8))
    ref = seq(torch.as_tensor(X, dtype=torch.float32)).numpy()
    assert np.allclose(float_logits(net, X), ref, atol=1e-5)


@torch.no_grad()
def test_pt_and_onnx_round_trip(tmp_path, X):
    net = from_torch(_cnn(), (1, 8, 8))
    save_float(net, (1, 8, 8), tmp_path / "n.pt")
    export_onnx(net, tmp_path / "n.onnx")
    ref = float_logits(net, X)
    for name in ("n.pt", "n.onnx"):
        back = load_float(tmp_path / name)
        assert back.feature_shape == (1, 8, 8)
        assert np.allclose(float_logits(back, X), ref, atol=1e-4), name


def test_input_scale_is_folded(tmp_path, X):
    net = from_torch(_cnn(), (1, 8, 8))
    save_float(net, (1, 8, 8), tmp_path / "n.pt")
    scaled = load_float(tmp_path / "n.pt", input_scale=0.5)
    assert np.allclose(float_logits(scaled, X), float_logits(net, X * 0.5), atol=1e-4)


def test_train_float_takes_raw_features():
    data = load_dataset("digits")
    net = train_float(data, "mlp:32", epochs=5, lr=1e-2, progress=False)
    assert isinstance(net.layers[0], Flatten) and isinstance(net.layers[1], Linear)
    assert (float_predict(net, data.X_test) == data.y_test).mean() > 0.5


def _onnx_with(tmp_path, op: str) -> str:
    W = helper.make_tensor("W", TensorProto.FLOAT, [2, 4], np.ones(8, dtype=np.float32))
    nodes = [helper.make_node("Flatten", ["x"], ["f"]), helper.make_node("Gemm", ["f", "W"], ["g"], transB=1),
             helper.make_node(op, ["g"], ["y"])]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2, 2])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])], [W])
    path = str(tmp_path / f"{op}.onnx")
    onnx.save(helper.make_model(graph), path)
    return path


def test_onnx_unsupported_op_is_named(tmp_path):
    with pytest.raises(UserError, match="unsupported ONNX op 'Sigmoid'"):
        load_float(_onnx_with(tmp_path, "Sigmoid"))
    net = load_float(_onnx_with(tmp_path, "Relu"))  # the same graph with a supported op
    assert [type(x) for x in net.layers] == [Flatten, Linear, ReLU]


def test_errors(tmp_path):
    with pytest.raises(UserError, match="no such network file"):
        load_float(tmp_path / "missing.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(UserError, match="cannot read as a torch file"):
        load_float(tmp_path / "junk.pt")
    torch.save({"weights": torch.zeros(2)}, tmp_path / "other.pt")
    with pytest.raises(UserError, match="not a bnnlogic float network"):
        load_float(tmp_path / "other.pt")
    with pytest.raises(UserError, match="unsupported layer Tanh"):
        from_torch(nn.Sequential(nn.Flatten(), nn.Linear(4, 2), nn.Tanh()), (4,))
    (tmp_path / "n.h5").write_bytes(b"")
    with pytest.raises(UserError, match="unknown network format"):
        load_float(tmp_path / "n.h5")
    net = FloatNet((1, 4, 4), [Conv2d(np.ones((1, 1, 2, 2)), np.zeros(1)), ReLU(), Flatten(),
                               Linear(np.ones((2, 9)), np.zeros(2))])
    save_float(net, (1, 4, 4), tmp_path / "c.pt")
    with pytest.raises(UserError, match="features of shape"):
        load_float(tmp_path / "c.pt", (1, 8, 8))


# ---------------------------------------------------------------------- ONNX files as users export them
def _export(module: nn.Module, shape: tuple[int, ...], path) -> str:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), torch.zeros((1,) + shape), str(path), dynamo=False, input_names=["x"],
                          dynamic_axes={"x": {0: "n"}})
    return str(path)


class _ViewNet(nn.Module):
    """A CNN that flattens with ``x.view(x.size(0), -1)`` (exported as Shape/Gather/Concat/Reshape)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.conv, self.fc = nn.Conv2d(1, 3, 3), nn.Linear(3 * 3 * 3, 5)

    def forward(self, x):
        x = nn.functional.max_pool2d(torch.relu(self.conv(x)), 2)
        return self.fc(x.view(x.size(0), -1))


@torch.no_grad()
def test_onnx_mlp_on_vectors_takes_image_features(tmp_path, X):
    """An MLP exported from an (n, 64) input reads (1, 8, 8) digits flattened (it crashed in torch)."""
    torch.manual_seed(0)
    mlp = nn.Sequential(nn.Linear(64, 16), nn.ReLU(), nn.Linear(16, 4))
    path = _export(mlp, (64,), tmp_path / "mlp.onnx")
    assert load_float(path).feature_shape == (64,)
    net = load_float(path, (1, 8, 8))
    assert net.feature_shape == (1, 8, 8) and isinstance(net.layers[0], Flatten)
    ref = mlp(torch.as_tensor(X.reshape(len(X), 64), dtype=torch.float32)).numpy()
    assert np.allclose(float_logits(net, X), ref, atol=1e-4)


@torch.no_grad()
def test_onnx_view_flatten_is_read(tmp_path, X):
    path = _export(_ViewNet(), (1, 8, 8), tmp_path / "view.onnx")
    net = load_float(path, (1, 8, 8))
    assert [type(x).__name__ for x in net.layers] == ["Conv2d", "ReLU", "MaxPool2d", "Flatten", "Linear"]
    ref = _ViewNet()(torch.as_tensor(X, dtype=torch.float32)).numpy()
    assert np.allclose(float_logits(net, X), ref, atol=1e-4)


def test_cli_binarize_mlp_exported_on_vectors(tmp_path, capsys):
    torch.manual_seed(0)
    path = _export(nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 10)), (64,), tmp_path / "m.onnx")
    assert main(["binarize", path, "--data", "digits", "--epochs", "1", "--out", str(tmp_path / "m.bnn"),
                 "--json"]) == 0
    assert 0 <= json.loads(capsys.readouterr().out)["fidelity"] <= 1


def _graph(nodes, inits, x_shape=(1, 4), x_type=TensorProto.FLOAT, extra_inputs=()) -> onnx.ModelProto:
    inputs = [helper.make_tensor_value_info("x", x_type, list(x_shape))]
    inputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, [4, 2]) for n in extra_inputs]
    graph = helper.make_graph(nodes, "g", inputs, [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
                              [helper.make_tensor(n, TensorProto.FLOAT, list(v.shape), v.reshape(-1))
                               for n, v in inits.items()])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


_W = {"W": np.arange(8, dtype=np.float32).reshape(4, 2) / 8}


def _malformed() -> dict[str, tuple[bytes, str]]:
    """name -> (file content, expected message fragment)"""
    good = _graph([helper.make_node("MatMul", ["x", "W"], ["y"])], _W).SerializeToString()
    cases = {
        "random bytes": (bytes(range(256)) * 4, "cannot read as ONNX"),
        "empty file": (b"", "one input and one output"),
        "truncated": (good[: len(good) // 2], "cannot read as ONNX"),
        "two inputs": (_graph([helper.make_node("MatMul", ["x", "V"], ["y"])], {}, extra_inputs=["V"]),
                       "one input and one output"),
        "weights computed in the graph": (_graph([helper.make_node("Relu", ["x"], ["r"]),
                                                  helper.make_node("MatMul", ["r", "r"], ["y"])], {}),
                                          "must be a constant"),
        "unsupported op": (_graph([helper.make_node("MatMul", ["x", "W"], ["m"]),
                                   helper.make_node("Tanh", ["m"], ["y"])], _W), "unsupported ONNX op 'Tanh'"),
        "reshape to 3-d": (_graph([helper.make_node("Reshape", ["x", "s"], ["y"])],
                                  {"s": np.array([1, 2, 2], np.float32)}), "only a flattening"),
        "no chain": (_graph([helper.make_node("MatMul", ["x", "W"], ["m"]),
                             helper.make_node("Relu", ["x"], ["y"])], _W), "single chain"),
        "dangling output": (_graph([helper.make_node("MatMul", ["x", "W"], ["m"])], _W), "end of the layer chain"),
        "batched MatMul": (_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], _W, (1, 2, 4)), "rank > 2"),
        "integer input": (_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], _W, x_type=TensorProto.INT64),
                          "onnxruntime"),
        "grouped conv": (_graph([helper.make_node("Conv", ["x", "K"], ["y"], group=2)],
                                {"K": np.ones((2, 1, 1, 1), np.float32)}, (1, 2, 3, 3)), "only group=1"),
    }
    return {k: (v if isinstance(v, bytes) else v.SerializeToString(), m) for k, (v, m) in cases.items()}


def test_malformed_onnx_files_are_one_line_errors(tmp_path, capsys):
    for name, (content, message) in _malformed().items():
        path = tmp_path / (name.replace(" ", "_") + ".onnx")
        path.write_bytes(content)
        with pytest.raises(UserError, match=message):
            load_float(path)
        assert main(["binarize", str(path), "--data", "digits", "--epochs", "1", "--out", str(tmp_path / "o")]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, name
        assert not (tmp_path / "o").exists()


def test_onnxruntime_catches_a_misread_graph(tmp_path):
    """The reader's network must compute what onnxruntime computes on the file itself."""
    from bnnlogic.nn.floatnet import _check_onnxruntime

    path = tmp_path / "m.onnx"
    path.write_bytes(_graph([helper.make_node("MatMul", ["x", "W"], ["y"])], _W, (None, 4)).SerializeToString())
    net = load_float(path)
    _check_onnxruntime(str(path), net)
    wrong = FloatNet((4,), [Linear(net.layers[0].W * 1.01, net.layers[0].b)])
    with pytest.raises(UserError, match="onnxruntime computes other outputs"):
        _check_onnxruntime(str(path), wrong)
