"""The IR as an ONNX graph that computes exactly its integer scores, and back.

``export_onnx(model, "m.onnx")`` writes the graph; ``read_onnx("m.onnx")`` reads a graph that
``export_onnx`` wrote into a ``Model`` with the same IR arrays (bit-identical);
``onnx_agreement(path, model, X)`` runs the file with onnxruntime and compares it with the
engine.  The graph (ONNX opset 17, standard operators only), on raw features ``x`` of shape
``(N, *feature_shape)``::

    coding     b = Cast<uint8>(GreaterOrEqual(Reshape(x, (N, 1, d)), tau))        tau (M, d)
               u = Reshape(b, (N, *bit_shape))                                      level-major
    dense      t = Cast<uint8>(GreaterOrEqual(Cast<int64>(MatMulInteger(Flatten(u), A^T)), k))
    conv       t = Cast<uint8>(GreaterOrEqual(Cast<int64>(ConvInteger(u, A; strides, pads)), k))
    maxpool    t = MaxPool(u)                                                       on uint8 bits
    output     scores     = Add(Mul(Cast<int64>(MatMulInteger(Flatten(u), A^T)), scale), offset)
               prediction = ArgMax(scores, axis=1, select_last_index=0)

Outputs: ``scores`` (N, n_classes) int64 and ``prediction`` (N,) int64.

Why every value is exact:

* input coding: ``x`` is float32 when every threshold and the domain bounds lie in
  [-2^24, 2^24] (float32 holds each integer there exactly, so for an integer raw feature
  ``x >= tau`` in float32 is the integer comparison), else double (exact to 2^53; beyond
  that the export is refused).  On a non-integer input the graph computes the IR on
  ``floor(x)`` (``x >= tau`` iff ``floor(x) >= tau`` for an integer tau).
* MatMulInteger / ConvInteger: uint8 bits times int8 weights in {-1, 0, 1}, accumulated in
  int32 (exact for a fan-in below 2^31; x86 kernels that add pairs of products in int16 see
  sums in [-2, 2], far from saturation).  Padding (``pads``) inserts zero bits.
* thresholds, ``scale`` and ``offset`` are int64 and the sums are cast to int64 before the
  comparisons and the affine output: the IR's own integer arithmetic.
* ArgMax returns the first maximal index: the IR's tie rule (the lowest class wins).

The domain ``[lo, hi]`` and the model's ``meta`` travel in the model's metadata
(``bnnlogic.domain``, ``bnnlogic.meta``); node names start with their part of the IR
(``coding``, ``layers.<i>``, ``output``), which is how ``read_onnx`` finds them.
"""
from __future__ import annotations

import json
import os
from collections import OrderedDict
from typing import Any

import numpy as np

from ..errors import UserError
from ..fileio import atomic_open
from ..ir import IR, Conv, Dense, InputCoding, MaxPool, Output
from ..model import Model

FORMAT = "bnnlogic-onnx"
VERSION = 1
OPSET = 17
#: largest |integer| that float32 / double represent together with all smaller ones
EXACT_F32, EXACT_F64 = 2 ** 24, 2 ** 53


class _Graph:
    """Nodes and initializers under construction; node ``prefix/i:Op`` outputs a tensor of its name."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []

    def const(self, name: str, value: np.ndarray) -> str:
        from onnx import numpy_helper

        self.inits.append(numpy_helper.from_array(np.asarray(value, order="C"), name))
        return name

    def node(self, prefix: str, op: str, inputs: list[str], out: str | None = None, **attrs: Any) -> str:
        from onnx import helper

        name = f"{prefix}/{len(self.nodes)}:{op}"
        self.nodes.append(helper.make_node(op, inputs, [out or name], name=name, **attrs))
        return out or name


def _input_type(c: InputCoding) -> tuple[type, int]:
    """numpy and ONNX element type of the raw input (see the module docstring)."""
    from onnx import TensorProto

    m = max(abs(c.lo), abs(c.hi), int(np.abs(c.thresholds).max()))
    if m <= EXACT_F32:
        return np.float32, TensorProto.FLOAT
    if m <= EXACT_F64:
        return np.float64, TensorProto.DOUBLE
    raise UserError(f"the input domain or thresholds reach {m}, beyond 2^53: no ONNX float input holds them exactly")


def _threshold(g: _Graph, prefix: str, s32: str, k: np.ndarray) -> str:
    """uint8 bits ``[int64(s32) >= k]``."""
    from onnx import TensorProto

    s = g.node(prefix, "Cast", [s32], to=TensorProto.INT64)
    t = g.node(prefix, "GreaterOrEqual", [s, g.const(f"{prefix}.k", k.astype(np.int64))])
    return g.node(prefix, "Cast", [t], to=TensorProto.UINT8)


def _matmul(g: _Graph, prefix: str, u: str, shape: tuple[int, ...], A: np.ndarray) -> str:
    """int32 ``Flatten(u) @ A^T`` (u uint8 bits, A int8 (n_out, n_in))."""
    if len(shape) > 1:
        u = g.node(prefix, "Flatten", [u], axis=1)
    return g.node(prefix, "MatMulInteger", [u, g.const(f"{prefix}.AT", A.T.astype(np.int8))])


def to_onnx(model: Model | IR) -> Any:
    """The ``onnx.ModelProto`` of ``model`` (see the module docstring), checked by onnx's checker."""
    import onnx
    from onnx import TensorProto, helper

    ir, meta = (model.ir, model.meta) if isinstance(model, Model) else (model, {})
    ir.validate()
    c = ir.coding
    np_type, onnx_type = _input_type(c)
    g = _Graph()
    x = g.node("coding", "Reshape", ["x", g.const("coding.shape", np.array([-1, 1, c.n_features]))])
    b = g.node("coding", "GreaterOrEqual", [x, g.const("coding.thresholds", c.thresholds.astype(np_type))])
    b = g.node("coding", "Cast", [b], to=TensorProto.UINT8)
    u = g.node("coding", "Reshape", [b, g.const("coding.bit_shape", np.array((-1,) + c.bit_shape))])
    shapes = ir.shapes()
    for i, layer in enumerate(ir.layers):
        p, shape = f"layers.{i}", shapes[i]
        if isinstance(layer, Dense):
            u = _threshold(g, p, _matmul(g, p, u, shape, layer.A), layer.k)
        elif isinstance(layer, Conv):
            pad = int(getattr(layer, "padding", 0))  # zero bits: ConvInteger pads with 0
            s = g.node(p, "ConvInteger", [u, g.const(f"{p}.A", layer.A.astype(np.int8))],
                       strides=[layer.stride] * 2, pads=[pad] * 4, kernel_shape=list(layer.A.shape[2:]))
            u = _threshold(g, p, s, layer.k.reshape(-1, 1, 1) if layer.k.ndim == 1 else layer.k)
        else:
            u = g.node(p, "MaxPool", [u], kernel_shape=[layer.size] * 2, strides=[layer.stride] * 2)
    o = ir.output
    s = g.node("output", "Cast", [_matmul(g, "output", u, shapes[-1], o.A)], to=TensorProto.INT64)
    s = g.node("output", "Mul", [s, g.const("output.scale", np.array(o.scale, dtype=np.int64))])
    s = g.node("output", "Add", [s, g.const("output.offset", o.offset.astype(np.int64))], out="scores")
    g.node("output", "ArgMax", [s], out="prediction", axis=1, keepdims=0, select_last_index=0)
    graph = helper.make_graph(
        g.nodes, "bnnlogic", [helper.make_tensor_value_info("x", onnx_type, ["N", *c.feature_shape])],
        [helper.make_tensor_value_info("scores", TensorProto.INT64, ["N", ir.n_classes]),
         helper.make_tensor_value_info("prediction", TensorProto.INT64, ["N"])], g.inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="bnnlogic",
                          doc_string="exact integer scores of a bnnlogic BNN (bnnlogic.interop.onnx_io)")
    m.ir_version = 8  # onnxruntime >= 1.14 runs it
    helper.set_model_props(m, {"bnnlogic.format": FORMAT, "bnnlogic.version": str(VERSION),
                               "bnnlogic.domain": json.dumps([c.lo, c.hi]), "bnnlogic.meta": json.dumps(meta)})
    onnx.checker.check_model(m, full_check=True)
    return m


def export_onnx(model: Model | IR, path: str | os.PathLike) -> None:
    """Write ``model`` (a ``Model`` or an ``IR``) as an ONNX file, atomically (see the module docstring)."""
    data = to_onnx(model).SerializeToString()
    with atomic_open(path, "wb") as fh:
        fh.write(data)


# ---------------------------------------------------------------------- reading back
_THRESHOLD = ["Cast", "GreaterOrEqual", "Cast"]


def read_onnx(path: str | os.PathLike) -> Model:
    """The ``Model`` of an ONNX file written by ``export_onnx``: IR arrays bit-identical to the
    exported ones, ``meta`` restored.  Anything else (another producer's graph, an edited or
    corrupt file) is a ``UserError``; onnxruntime then runs the file on random raw inputs of the
    domain and must give the model's scores."""
    import onnx

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such ONNX file")
    try:
        m = onnx.load(path)
    except Exception as exc:
        raise UserError(f"{path}: cannot read as ONNX ({type(exc).__name__}: {str(exc)[:120]})") from None
    props = {p.key: p.value for p in m.metadata_props}
    if props.get("bnnlogic.format") != FORMAT:
        raise UserError(f"{path}: not an ONNX file written by `bnnlogic export` (a float network is read by "
                        "`bnnlogic binarize`)")
    if props.get("bnnlogic.version") != str(VERSION):
        raise UserError(f"{path}: bnnlogic ONNX version {props.get('bnnlogic.version')} is not supported (this "
                        f"bnnlogic reads version {VERSION}); export the model again")
    try:
        model = _read_graph(m.graph, props)
    except UserError as exc:
        raise UserError(f"{path}: {exc}") from None
    except Exception as exc:  # a missing initializer, a wrong attribute, bad JSON, ...
        raise UserError(f"{path}: corrupt bnnlogic ONNX graph ({type(exc).__name__}: {str(exc)[:120]}); "
                        "export the model again") from None
    rng = np.random.default_rng(0)
    c = model.ir.coding
    X = rng.integers(c.lo, c.hi, size=(64, c.n_features), endpoint=True)
    agree = onnx_agreement(path, model, X)
    if agree["scores_equal"] != len(X):
        raise UserError(f"{path}: the graph computes other scores than the model read from it "
                        f"({agree['scores_equal']} of {len(X)} random inputs agree): it was edited after export")
    return model


def is_exported(path: str) -> bool:
    """Whether ``path`` is an ONNX file of ``export_onnx`` (its metadata says so); cheap."""
    if not path.lower().endswith(".onnx"):
        return False
    try:
        import onnx

        m = onnx.load(path, load_external_data=False)
    except Exception:  # any unreadable file is simply not this kind
        return False
    return any(p.key == "bnnlogic.format" and p.value == FORMAT for p in m.metadata_props)


def read_exported(path: str, mapping: Any = None, feature_shape: Any = None, domain: Any = None) -> Model:
    """``read_onnx`` as an import reader (``bnnlogic.interop.READERS``): the file carries its own
    structure, so a mapping is refused, and a feature shape or domain (e.g. a data set's) must
    match the file's."""
    if mapping is not None:
        raise UserError(f"{path}: a bnnlogic ONNX export carries its own structure; drop --mapping")
    model = read_onnx(path)
    c = model.ir.coding
    if feature_shape is not None and tuple(feature_shape) != tuple(c.feature_shape) \
            or domain is not None and tuple(domain) != (c.lo, c.hi):
        raise UserError(f"{path}: the export takes raw features of shape {c.feature_shape} in [{c.lo}, {c.hi}], "
                        f"not {tuple(feature_shape or c.feature_shape)} in {tuple(domain or (c.lo, c.hi))}")
    return model


def _read_graph(g: Any, props: dict[str, str]) -> Model:
    """The IR from the node groups (by name prefix) and the initializers of ``g``."""
    from onnx import helper, numpy_helper

    inits = {t.name: numpy_helper.to_array(t) for t in g.initializer}
    groups: OrderedDict[str, list[Any]] = OrderedDict()
    prev = "x"
    for node in g.node:
        if not node.input or node.input[0] != prev:
            raise UserError(f"node {node.name!r} does not continue the chain of the exported graph")
        prev = node.output[0]
        groups.setdefault(node.name.split("/")[0], []).append(node)

    def ops(prefix: str) -> list[str]:
        return [n.op_type for n in groups.get(prefix, [])]

    def attrs(node: Any) -> dict[str, Any]:
        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    def integers(name: str, dtype: Any) -> np.ndarray:
        a = inits[name]
        if not np.array_equal(a, np.round(a)):
            raise UserError(f"initializer {name} holds non-integer values")
        return a.astype(dtype)

    if ops("coding") != ["Reshape", "GreaterOrEqual", "Cast", "Reshape"]:
        raise UserError(f"the input coding is {ops('coding')}, not the exported Reshape, GreaterOrEqual, Cast, Reshape")
    dims = [d.dim_value for d in g.input[0].type.tensor_type.shape.dim][1:]
    lo, hi = (int(v) for v in json.loads(props["bnnlogic.domain"]))
    coding = InputCoding(tuple(int(d) for d in dims), lo, hi, integers("coding.thresholds", np.int64))
    layers: list[Any] = []
    i = 0
    while f"layers.{i}" in groups:
        p, nodes = f"layers.{i}", groups[f"layers.{i}"]
        kinds = [op for op in ops(p) if op != "Flatten"]
        if kinds == ["MatMulInteger"] + _THRESHOLD:
            layers.append(Dense(inits[f"{p}.AT"].T.astype(np.int8), integers(f"{p}.k", np.int64)))
        elif kinds == ["ConvInteger"] + _THRESHOLD:
            a = attrs(nodes[0])
            strides, pads = a.get("strides", [1, 1]), a.get("pads", [0] * 4)
            if len(set(strides)) != 1 or any(pads):
                raise UserError(f"{p}: a conv with strides {strides} and pads {pads}; this IR's conv has one "
                                "stride and no padding")
            k = integers(f"{p}.k", np.int64)
            layers.append(Conv(inits[f"{p}.A"].astype(np.int8), k.reshape(-1) if k.shape[1:] == (1, 1) else k,
                               int(strides[0])))
        elif kinds == ["MaxPool"]:
            a = attrs(nodes[0])
            size, strides = a["kernel_shape"], a.get("strides", [1, 1])
            if len(set(size)) != 1 or len(set(strides)) != 1:
                raise UserError(f"{p}: a max-pool with kernel {size} and strides {strides}; the IR's are square")
            layers.append(MaxPool(int(size[0]), int(strides[0])))
        else:
            raise UserError(f"{p} is {ops(p)}, not an exported dense, conv or max-pool layer")
        i += 1
    if [op for op in ops("output") if op != "Flatten"] != ["MatMulInteger", "Cast", "Mul", "Add", "ArgMax"]:
        raise UserError(f"the output is {ops('output')}, not the exported MatMulInteger, Cast, Mul, Add, ArgMax")
    if set(groups) != {"coding", "output"} | {f"layers.{j}" for j in range(i)}:
        raise UserError(f"unexpected nodes {sorted(set(groups) - {'coding', 'output'})}")
    output = Output(inits["output.AT"].T.astype(np.int8), int(integers("output.scale", np.int64)),
                    integers("output.offset", np.int64))
    try:
        return Model(IR(coding, tuple(layers), output), json.loads(props.get("bnnlogic.meta", "{}")))
    except UserError as exc:
        raise UserError(f"invalid model ({exc})") from None


# ---------------------------------------------------------------------- checking with onnxruntime
def onnx_scores(path: str | os.PathLike, X: np.ndarray, batch: int = 4096) -> tuple[np.ndarray, np.ndarray]:
    """onnxruntime's ``scores`` (n, C) int64 and ``prediction`` (n,) of an exported file on raw
    features X (n, d), fed as the graph's input type."""
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(os.fspath(path), providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise UserError(f"{path}: onnxruntime cannot load the graph ({str(exc).splitlines()[0][:160]})") from None
    inp = sess.get_inputs()[0]
    dtype = {"tensor(float)": np.float32, "tensor(double)": np.float64}[inp.type]
    shape = [int(d) for d in inp.shape[1:]]
    X = np.asarray(X).reshape(len(X), *shape)
    out = [sess.run(["scores", "prediction"], {inp.name: X[i:i + batch].astype(dtype)})
           for i in range(0, len(X), batch)]
    if not out:
        return np.zeros((0, 0), np.int64), np.zeros(0, np.int64)
    return np.concatenate([o[0] for o in out]), np.concatenate([o[1] for o in out])


def onnx_agreement(path: str | os.PathLike, model: Model, X: np.ndarray) -> dict[str, int]:
    """Run the exported file with onnxruntime on raw features X and compare with the engine:
    ``{"n", "scores_equal", "predictions_equal"}`` (rows whose whole score vector, and whose
    predicted class, equal ``model.scores`` / ``model.predict``)."""
    X = model.check_inputs(X)
    scores, pred = onnx_scores(path, X)
    return {"n": int(len(X)), "scores_equal": int(np.all(scores == model.scores(X), axis=1).sum()),
            "predictions_equal": int((pred == model.predict(X)).sum())}
