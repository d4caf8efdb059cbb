"""The IR as ONNX: exact scores under onnxruntime, bit-identical read-back, one-line errors."""
import json

import numpy as np
import onnx
import pytest

from bnnlogic import Model
from bnnlogic.cli import main
from bnnlogic.errors import UserError
from bnnlogic.interop.onnx_io import export_onnx, onnx_agreement, onnx_scores, read_onnx, to_onnx
from bnnlogic.ir import IR, Dense, InputCoding, MaxPool, Output
from tests.helpers import box_inputs, random_ir

NETS = {
    "dense": dict(),
    "thermometer": dict(levels=3, hi=9, n_features=3),
    "conv+pool": dict(image=(1, 5, 5), conv=((3, 3, 1),), pool=2, hidden=(4,), hi=2),
    "two convs, stride 2": dict(image=(2, 5, 5), conv=((3, 3, 2), (2, 2, 1)), levels=2, hi=3, hidden=()),
}


def _same_ir(a: IR, b: IR) -> None:
    """Equal arrays with equal dtypes and shapes, equal scalars."""
    def arrays(ir):
        out = [ir.coding.thresholds, ir.output.A, ir.output.offset]
        for layer in ir.layers:
            out += [layer.A, layer.k] if not isinstance(layer, MaxPool) else []
        return out

    assert (a.coding.feature_shape, a.coding.lo, a.coding.hi, a.output.scale) == \
           (b.coding.feature_shape, b.coding.lo, b.coding.hi, b.output.scale)
    assert [type(x) for x in a.layers] == [type(x) for x in b.layers]
    assert [(getattr(x, "stride", 0), getattr(x, "size", 0)) for x in a.layers] == \
           [(getattr(x, "stride", 0), getattr(x, "size", 0)) for x in b.layers]
    for x, y in zip(arrays(a), arrays(b)):
        assert x.dtype == y.dtype and x.shape == y.shape and np.array_equal(x, y)


@pytest.mark.parametrize("name", NETS)
def test_onnxruntime_agrees_on_the_domain(tmp_path, name):
    """onnxruntime's scores and prediction equal the engine's on every raw input of the domain (or
    20000 random ones), ties included; the file reads back into the same IR."""
    ir = random_ir(seed=3, **NETS[name])
    c = ir.coding
    if (c.hi - c.lo + 1) ** c.n_features <= 20000:  # every input of the domain, else a random sample
        X = box_inputs(np.full(c.n_features, c.lo), np.full(c.n_features, c.hi))
    else:
        X = np.random.default_rng(0).integers(c.lo, c.hi, size=(20000, c.n_features), endpoint=True)
    o = ir.output  # a copy of the class that leads most often: they tie wherever it leads
    lead = int(np.bincount(ir.predict(X)).argmax())
    A, offset = o.A.copy(), o.offset.copy()
    A[(lead + 1) % 3], offset[(lead + 1) % 3] = A[lead], offset[lead]
    ir = IR(ir.coding, ir.layers, Output(A, o.scale, offset))
    model = Model(ir, {"classes": ["a", "b", "c"], "dataset": "toy"})
    export_onnx(model, tmp_path / "m.onnx")
    scores, pred = onnx_scores(tmp_path / "m.onnx", X)
    assert scores.dtype == np.int64 and np.array_equal(scores, model.scores(X))
    assert np.array_equal(pred, model.predict(X))
    top = np.sort(scores, axis=1)
    assert (top[:, -1] == top[:, -2]).any(), "no tie among the scores: the tie rule is untested"
    back = read_onnx(tmp_path / "m.onnx")
    _same_ir(ir, back.ir)
    assert back.meta == model.meta


def test_real_valued_inputs_are_read_as_their_floor(tmp_path):
    ir = random_ir(seed=4, levels=2, hi=6)
    export_onnx(ir, tmp_path / "m.onnx")
    X = np.random.default_rng(0).uniform(0, 6, size=(500, ir.coding.n_features))
    assert np.array_equal(onnx_scores(tmp_path / "m.onnx", X)[0], ir.scores(np.floor(X).astype(np.int64)))


def test_large_domains_use_a_double_input(tmp_path):
    """Thresholds beyond 2^24 are not exact in float32: the input becomes double."""
    coding = InputCoding((2,), -2 ** 30, 2 ** 30, np.array([[2 ** 24 + 1, -(2 ** 25) - 1]], dtype=np.int64))
    ir = IR(coding, (Dense(np.array([[1, -1], [1, 1]], np.int8), np.array([1, 1])),),
            Output(np.array([[1, 0], [0, 1]], np.int8), 3, np.array([0, 2])))
    export_onnx(ir, tmp_path / "m.onnx")
    assert onnx.load(tmp_path / "m.onnx").graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE
    X = np.array([[2 ** 24, 0], [2 ** 24 + 1, -(2 ** 25) - 1], [2 ** 24 + 2, -(2 ** 25) - 2]])
    assert np.array_equal(onnx_scores(tmp_path / "m.onnx", X)[0], ir.scores(X))
    _same_ir(ir, read_onnx(tmp_path / "m.onnx").ir)


def test_trained_model_on_the_test_split(tmp_path, capsys):
    from bnnlogic.data import load_dataset
    from bnnlogic.nn import train

    data = load_dataset("digits")
    model = train(data, "mlp:16", epochs=1, progress=False)
    model.save(tmp_path / "m.bnn")
    assert main(["export", str(tmp_path / "m.bnn"), "--out", str(tmp_path / "m.onnx"), "--data", "digits",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == len(data.X_test) == out["scores_equal"] == out["predictions_equal"]
    back = read_onnx(tmp_path / "m.onnx")
    _same_ir(model.ir, back.ir)
    assert back.meta["classes"] == model.meta["classes"]
    assert onnx_agreement(tmp_path / "m.onnx", back, data.X_test)["scores_equal"] == len(data.X_test)


def _edited(tmp_path, edit) -> bytes:
    m = to_onnx(random_ir(seed=5, image=(1, 4, 4), conv=((2, 2, 1),), pool=2, hidden=(3,)))
    edit(m)
    return m.SerializeToString()


def _set_prop(m, key, value):
    for p in m.metadata_props:
        if p.key == key:
            p.value = value


def _op(m, old, new):
    next(n for n in m.graph.node if n.op_type == old).op_type = new


def _float_net() -> bytes:
    from onnx import TensorProto, helper

    g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
                          [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2])],
                          [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2])])
    return helper.make_model(g).SerializeToString()


def test_malformed_files_are_one_line_errors(tmp_path, capsys):
    good = to_onnx(random_ir(seed=5)).SerializeToString()
    cases = {
        "truncated": (good[: len(good) // 2], "cannot read as ONNX"),
        "foreign": (_float_net(), "not an ONNX file written by `bnnlogic export`"),
        "version": (_edited(tmp_path, lambda m: _set_prop(m, "bnnlogic.version", "9")), "version 9 is not supported"),
        "bad domain": (_edited(tmp_path, lambda m: _set_prop(m, "bnnlogic.domain", "[0")), "corrupt bnnlogic ONNX"),
        "edited op": (_edited(tmp_path, lambda m: _op(m, "GreaterOrEqual", "Greater")), "not the exported"),
        "edited pool": (_edited(tmp_path, lambda m: _op(m, "MaxPool", "AveragePool")), "not an exported dense"),
        "missing weights": (_edited(tmp_path, lambda m: m.graph.initializer.pop()), "corrupt bnnlogic ONNX"),
        "rewired": (_edited(tmp_path, lambda m: m.graph.node[5].input.__setitem__(0, "x")), "does not continue"),
    }
    for name, (content, message) in cases.items():
        path = tmp_path / f"{name.replace(' ', '_')}.onnx"
        path.write_bytes(content)
        with pytest.raises(UserError, match=message):
            read_onnx(path)
    with pytest.raises(UserError, match="no such ONNX file"):
        read_onnx(tmp_path / "none.onnx")
    assert main(["export", str(tmp_path / "none.bnn"), "--out", str(tmp_path / "x.onnx")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and not (tmp_path / "x.onnx").exists()
