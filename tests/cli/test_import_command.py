"""CLI import: the JSON contract, the written model, and one clear line for every malformed source."""
from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper

import bnnlogic
from bnnlogic.cli import main
from tests.sources import TORCH_MAPPING, TorchBNN


def _qonnx(path, *, weight_bits=1, branch=False, extra=None, w_scale=1.0):
    """A tiny QONNX chain: BipolarQuant input, a MatMul with quantized weights, BN, BipolarQuant,
    the output MatMul; options break it in one way."""
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(np.array(v, np.float32), n) for n, v in [
        ("one", 1.0), ("W1", rng.normal(size=(4, 3))), ("W2", rng.normal(size=(3, 2))), ("ws", w_scale), ("z", 0.0),
        ("bits", weight_bits), ("g", np.ones(3)), ("b", np.zeros(3)), ("m", rng.normal(size=3)), ("v", np.ones(3))]]
    q = "qonnx.custom_op.general"
    nodes = [helper.make_node("BipolarQuant", ["x", "one"], ["h0"], domain=q),
             helper.make_node("Quant", ["W1", "ws", "z", "bits"], ["W1q"], domain=q, signed=1, narrow=1),
             helper.make_node("MatMul", ["h0", "W1q"], ["s1"]),
             helper.make_node("BatchNormalization", ["s1", "g", "b", "m", "v"], ["y1"], epsilon=1e-5),
             helper.make_node("BipolarQuant", ["y1", "one"], ["h1"], domain=q),
             helper.make_node("BipolarQuant", ["W2", "one"], ["W2q"], domain=q),
             helper.make_node("MatMul", ["h1", "W2q"], ["out"])]
    if branch:
        nodes.append(helper.make_node("Relu", ["h0"], ["dangling"]))
    if extra:
        nodes.insert(5, helper.make_node(extra, ["h1"], ["h1x"]))
        nodes[-1] = helper.make_node("MatMul", ["h1x", "W2q"], ["out"])
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 2])], inits)
    onnx.save(helper.make_model(graph), path)


def test_import_writes_the_model_and_reports(tmp_path, capsys):
    net = TorchBNN().eval()
    torch.jit.script(net).save(tmp_path / "n.pt")
    capsys.readouterr()
    assert main(["import", str(tmp_path / "n.pt"), "--out", str(tmp_path / "n.bnn"), "--data", "digits", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"agreement", "agreement_n", "ambiguous_neurons", "kind", "layers", "seconds", "out"} <= set(out)
    assert (out["kind"], out["agreement"], out["agreement_data"]) == ("torchscript", 1.0, "digits:test")
    m = bnnlogic.load(tmp_path / "n.bnn")
    assert m.meta["import"]["agreement"] == 1.0 and m.meta["dataset"] == "digits"
    _qonnx(tmp_path / "q.onnx")
    assert main(["import", str(tmp_path / "q.onnx"), "--out", str(tmp_path / "q.bnn"), "--input-shape", "4",
                 "--domain", "0,3", "--divide", "1"]) == 0
    text = capsys.readouterr().out
    assert "imported qonnx (dense -> 2 classes)" in text and "agreement with the source 1.0000 on random:2000" in text


def _sources(tmp_path):
    """(argv, expected message) for malformed sources."""
    net = TorchBNN()
    torch.save(net.state_dict(), tmp_path / "sd.pt")
    (tmp_path / "junk.pt").write_bytes(b"\x80\x04 not a torch file")
    torch.save({"epochs": 3}, tmp_path / "notensors.pt")
    torch.save(torch.nn.Identity(), tmp_path / "pickled.pt")  # a whole pickled module: refused
    (tmp_path / "bad.json").write_text("{nope")
    (tmp_path / "typo.json").write_text(json.dumps({**TORCH_MAPPING, "output": {"linear": "outt"}}))
    (tmp_path / "q8.onnx").write_bytes(b"")
    _qonnx(tmp_path / "q8.onnx", weight_bits=8, w_scale=0.01)
    _qonnx(tmp_path / "branch.onnx", branch=True)
    _qonnx(tmp_path / "relu.onnx", extra="Relu")
    (tmp_path / "trunc.onnx").write_bytes((tmp_path / "q8.onnx").read_bytes()[:40])
    (tmp_path / "x.txt").write_text("hello")
    shape = ["--input-shape", "1,8,8", "--domain", "0,16"]
    q = ["--input-shape", "4", "--domain", "0,3"]
    return [
        ([str(tmp_path / "missing.pt")] + shape, "no such file"),
        ([str(tmp_path / "junk.pt")] + shape, "not a PyTorch state dict or TorchScript"),
        ([str(tmp_path / "notensors.pt")] + shape, "holds no tensors"),
        ([str(tmp_path / "pickled.pt")] + shape, "not a PyTorch state dict or TorchScript"),
        ([str(tmp_path / "sd.pt")] + shape, "give a mapping"),
        ([str(tmp_path / "sd.pt"), "--mapping", str(tmp_path / "bad.json")] + shape, "not JSON"),
        ([str(tmp_path / "sd.pt"), "--mapping", str(tmp_path / "typo.json")] + shape, "tensor outt.weight not found"),
        ([str(tmp_path / "sd.pt")], "input shape is unknown"),
        ([str(tmp_path / "sd.pt"), "--input-shape", "a,b"], "comma-separated integers"),
        ([str(tmp_path / "q8.onnx")] + q, "not binary or ternary"),
        ([str(tmp_path / "branch.onnx")] + q, "chain"),
        ([str(tmp_path / "relu.onnx")] + q, "Relu"),
        ([str(tmp_path / "trunc.onnx"), "--kind", "qonnx"] + q, "not an ONNX file"),
        ([str(tmp_path / "x.txt")] + q, "not a source this importer knows"),
    ]


def test_every_malformed_source_is_one_line(tmp_path, capsys):
    for argv, msg in _sources(tmp_path):
        capsys.readouterr()
        rc = main(["import"] + argv + ["--out", str(tmp_path / "o.bnn")])
        err = capsys.readouterr().err
        assert rc == 2 and msg in err and err.count("\n") == 1, (argv, err)
        assert not (tmp_path / "o.bnn").exists()
