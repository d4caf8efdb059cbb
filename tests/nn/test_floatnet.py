"""Float network import: .pt and ONNX round trips, supported layers, one-line errors."""
from __future__ import annotations

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper
from torch import nn

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
