"""QONNX graphs of BNNs (Brevitas' ``export_qonnx``, FINN's front end) -> ``SourceNet``, torch-free.

Read with ``onnx`` and evaluated with numpy in float32.  A supported graph is a chain:

    input block   elementwise Sub / Add / Mul / Div by constants and BatchNormalization, ending
                  in a quantizer (BipolarQuant: sign; Quant / IntQuant: any bit width, e.g. an
                  input quantizer round(x / step)) -- evaluated on every raw value, so any
                  monotone block maps exactly
    layer         Conv (group 1, square) | Gemm | MatMul whose weight is a BipolarQuant or a
                  binary / ternary Quant of an initializer (or an initializer in {-1, 0, 1}),
                  then an optional bias Add, Mul by a constant, BatchNormalization, then a
                  BipolarQuant (sign) activation; MaxPool (no padding), Reshape / Flatten between
    output        the last Conv / Gemm / MatMul and what follows it (bias, BatchNormalization)

Operator semantics follow QONNX: ``BipolarQuant(x, s) = s * (x >= 0 ? 1 : -1)``;
``Quant(x, s, z, b) = s * (round(clip(x / s + z, min, max)) - z)`` with 1-bit signed as bipolar.
The weight and activation scales become the layers' ``alpha``; the graph itself, run here in
float32, is the reference inference.
"""
from __future__ import annotations

import os
from typing import Any, Callable

import numpy as np

from ..errors import UserError
from .mapping import input_spec, load_mapping, raw_input
from .source import Affine, BinaryLayer, Head, Pool, SourceNet

QUANTS = ("BipolarQuant", "Quant", "IntQuant")
ROUNDING = {"ROUND": np.round, "CEIL": np.ceil, "FLOOR": np.floor,
            "ROUND_TO_ZERO": lambda v: np.sign(v) * np.floor(np.abs(v))}


def _attrs(node) -> dict[str, Any]:
    from onnx import helper

    out = {}
    for a in node.attribute:
        v = helper.get_attribute_value(a)
        out[a.name] = v.decode() if isinstance(v, bytes) else v
    return out


def _quant(x, scale, zeropt, bitwidth, signed, narrow, mode):
    """QONNX's Quant in float32 (clamp, then round; 1-bit signed is bipolar)."""
    y = x / scale + zeropt
    bw = int(np.asarray(bitwidth).reshape(-1)[0])
    if bw == 1 and signed:
        y = np.where(y >= 0, np.float32(1), np.float32(-1))
    else:
        lo = -(2 ** (bw - 1)) + int(narrow) if signed else 0
        hi = 2 ** (bw - 1) - 1 if signed else 2 ** bw - 1 - int(narrow)
        y = ROUNDING[str(mode).upper()](np.clip(y, lo, hi))
    return ((y - zeropt) * scale).astype(np.float32)


def _conv(x, W, b, strides, pads):
    """Conv2d in float32 (group 1): x (n, C, H, W), W (O, C, kh, kw), symmetric pads."""
    p = pads[0]
    if p:
        x = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    kh, kw = W.shape[2:]
    win = np.lib.stride_tricks.sliding_window_view(x, (kh, kw), axis=(2, 3))[:, :, ::strides[0], ::strides[1]]
    out = np.einsum("nchwij,ocij->nohw", win, W, optimize=True).astype(np.float32)
    return out if b is None else out + b.reshape(1, -1, 1, 1).astype(np.float32)


def _maxpool(x, k, s):
    win = np.lib.stride_tricks.sliding_window_view(x, (k, k), axis=(2, 3))[:, :, ::s, ::s]
    return win.max(axis=(4, 5))


def _bn(x, g, b, mean, var, eps):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    r = lambda v: np.asarray(v, np.float32).reshape(shape)  # noqa: E731
    return ((x - r(mean)) / np.sqrt(r(var) + np.float32(eps)) * r(g) + r(b)).astype(np.float32)


def _eval(node, vals: list, at: dict) -> np.ndarray:
    """One node in float32."""
    op = node.op_type
    if op in ("Add", "Sub", "Mul", "Div"):
        a, b = (np.asarray(v, np.float32) for v in vals[:2])
        return {"Add": np.add, "Sub": np.subtract, "Mul": np.multiply, "Div": np.divide}[op](a, b).astype(np.float32)
    if op == "BipolarQuant":
        return (np.where(vals[0] >= 0, np.float32(1), np.float32(-1)) * np.float32(vals[1])).astype(np.float32)
    if op in ("Quant", "IntQuant"):
        return _quant(vals[0], vals[1], vals[2], vals[3], at.get("signed", 1), at.get("narrow", 0),
                      at.get("rounding_mode", "ROUND"))
    if op == "Conv":
        return _conv(vals[0], vals[1], vals[2] if len(vals) > 2 else None, at.get("strides", [1, 1]),
                     at.get("pads", [0, 0, 0, 0]))
    if op == "Gemm":
        A = vals[0].T if at.get("transA", 0) else vals[0]
        B = vals[1].T if at.get("transB", 0) else vals[1]
        out = np.float32(at.get("alpha", 1.0)) * (A @ B)
        if len(vals) > 2 and vals[2] is not None:
            out = out + np.float32(at.get("beta", 1.0)) * vals[2]
        return out.astype(np.float32)
    if op == "MatMul":
        return (vals[0] @ vals[1]).astype(np.float32)
    if op == "BatchNormalization":
        return _bn(vals[0], vals[1], vals[2], vals[3], vals[4], at.get("epsilon", 1e-5))
    if op == "MaxPool":
        return _maxpool(vals[0], at["kernel_shape"][0], at.get("strides", at["kernel_shape"])[0])
    if op in ("Reshape", "Flatten"):
        return vals[0].reshape(len(vals[0]), -1)
    if op == "Identity":
        return vals[0]
    raise UserError(f"QONNX node {node.name or op}: operator {op} is not supported")


class _Graph:
    """The graph's nodes, constants and the chain of nodes on the data path."""

    def __init__(self, path: str) -> None:
        import onnx
        from onnx import numpy_helper

        try:
            model = onnx.load(path)
        except Exception as exc:  # protobuf decode errors have several types
            raise UserError(f"{path}: not an ONNX file ({type(exc).__name__}: {str(exc)[:200]})") from None
        g = model.graph
        self.path = path
        self.const: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in g.initializer}
        for node in g.node:
            if node.op_type == "Constant":
                self.const[node.output[0]] = numpy_helper.to_array(_attrs(node)["value"])
        self.nodes = [n for n in g.node if n.op_type != "Constant"]
        inputs = [i.name for i in g.input if i.name not in self.const]
        if len(inputs) != 1 or len(g.output) != 1:
            raise UserError(f"{path}: a QONNX BNN has one input and one output (found {len(inputs)} and {len(g.output)})")
        self.input, self.output = inputs[0], g.output[0].name
        self.quant_of_const = {}  # weight quantizers: evaluated once, from constants
        for node in self.nodes:
            if all(i in self.const or not i for i in node.input):
                self.const[node.output[0]] = _eval(node, [self.const.get(i) for i in node.input], _attrs(node))
                self.quant_of_const[node.output[0]] = node
        self.chain = self._chain()

    def _chain(self) -> list:
        """The nodes from the input to the output, each consuming the previous one's output."""
        data = [n for n in self.nodes if n.output[0] not in self.quant_of_const]
        by_input: dict[str, list] = {}
        for n in data:
            for i in n.input:
                if i and i not in self.const:
                    by_input.setdefault(i, []).append(n)
        chain, cur = [], self.input
        while cur != self.output:
            nxt = by_input.get(cur, [])
            if len(nxt) != 1:
                raise UserError(f"{self.path}: the graph branches or stops at {cur!r}; a QONNX BNN must be a chain")
            chain.append(nxt[0])
            cur = nxt[0].output[0]
        if len(chain) != len(data):
            raise UserError(f"{self.path}: nodes off the input-output chain; a QONNX BNN must be a chain")
        return chain

    def run(self, nodes: list, x: np.ndarray) -> np.ndarray:
        """The nodes in order on x (float32), constants from the graph."""
        cur = x.astype(np.float32)
        for node in nodes:
            vals = [cur if i and i not in self.const else self.const.get(i) for i in node.input]
            cur = _eval(node, vals, _attrs(node))
        return cur


def _weight(g: _Graph, name: str, node) -> tuple[np.ndarray, np.ndarray]:
    """Ternary integer weights and the per-output scale (n_out,) of a layer's weight input."""
    if name not in g.const:
        raise UserError(f"QONNX node {node.name or node.op_type}: its weight is not a constant")
    Wq = np.asarray(g.const[name], np.float64)
    q = g.quant_of_const.get(name)
    scale = np.asarray(g.const[q.input[1]], np.float64) if q is not None and q.op_type in QUANTS else np.ones(1)
    if q is not None and q.op_type in ("Quant", "IntQuant") and np.any(np.asarray(g.const[q.input[2]]) != 0):
        raise UserError(f"QONNX node {q.name or q.op_type}: weight quantizers with a zero point are not supported")
    if node.op_type == "MatMul" or (node.op_type == "Gemm" and not _attrs(node).get("transB", 0)):
        Wq, scale = Wq.T, scale.T
    n_out = Wq.shape[0]
    s = np.broadcast_to(scale.reshape(-1), (n_out,)) if scale.size in (1, n_out) else None
    if s is None or np.any(s <= 0):
        raise UserError(f"QONNX node {node.name or node.op_type}: weight scales must be positive, per tensor or per output")
    levels = Wq / s.reshape((-1,) + (1,) * (Wq.ndim - 1))
    W = np.rint(levels)
    if not np.allclose(levels, W, atol=1e-6) or not np.isin(W, (-1, 0, 1)).all():
        raise UserError(f"QONNX node {node.name or node.op_type}: weights are not binary or ternary "
                        "(quantize them with BipolarQuant or a 2-bit narrow Quant)")
    return W.astype(np.int64), s.astype(np.float64)


def read_qonnx(path: str | os.PathLike, mapping: dict | None = None, feature_shape=None, domain=None) -> SourceNet:
    """A QONNX file as a ``SourceNet`` (see the module docstring); ``mapping``: its input section
    (shape, domain, divide / scale) and ``activation`` are read."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such file")
    mapping = load_mapping(mapping)
    spec, shape, lo, hi = input_spec(mapping, feature_shape, domain)
    g = _Graph(path)
    chain = g.chain
    first = next((i for i, n in enumerate(chain) if n.op_type in QUANTS), None)
    if first is None or any(n.op_type not in INPUT_OPS for n in chain[:first]):
        raise UserError(f"{path}: no input quantizer (BipolarQuant / Quant) after elementwise input operations; "
                        "a BNN's first layer reads quantized inputs")
    to_x = raw_input(spec, shape, hi)
    in_nodes = chain[:first + 1]
    inputs = lambda raw: g.run(in_nodes, to_x(raw)).reshape(len(raw), -1)  # noqa: E731
    act_scale = _act_scale(g, chain[first])
    layers: list = []
    i = first + 1
    head = None
    while i < len(chain):
        node = chain[i]
        if node.op_type in ("Reshape", "Flatten", "Identity"):
            i += 1
            continue
        if node.op_type == "MaxPool":
            at = _attrs(node)
            k, s = at["kernel_shape"], at.get("strides", at["kernel_shape"])
            if any(at.get("pads", [0])) or at.get("ceil_mode", 0) or len(set(k)) != 1 or len(set(s)) != 1:
                raise UserError(f"{path}: MaxPool {node.name}: only square pools without padding or ceil_mode")
            layers.append(Pool(int(k[0]), int(s[0])))
            i += 1
            continue
        if node.op_type not in ("Conv", "Gemm", "MatMul"):
            raise UserError(f"{path}: node {node.name or node.op_type}: expected Conv, Gemm, MatMul, MaxPool or "
                            f"Reshape, got {node.op_type}")
        W, w_scale = _weight(g, node.input[1], node)
        alpha, bias, bn, stride, pad = w_scale * act_scale, np.zeros(len(W)), None, 1, 0
        if node.op_type == "Conv":
            at = _attrs(node)
            st, pads = at.get("strides", [1, 1]), at.get("pads", [0, 0, 0, 0])
            if at.get("group", 1) != 1 or len(set(st)) != 1 or len(set(pads)) != 1 or any(d != 1 for d in at.get("dilations", [1])):
                raise UserError(f"{path}: Conv {node.name}: only group 1, square strides, symmetric pads, no dilation")
            stride, pad = int(st[0]), int(pads[0])
        if node.op_type == "Gemm":  # alpha * A B + beta * C
            alpha = alpha * float(_attrs(node).get("alpha", 1.0))
        if len(node.input) > 2 and node.input[2]:
            beta_c = float(_attrs(node).get("beta", 1.0)) if node.op_type == "Gemm" else 1.0
            bias = bias + beta_c * _per_channel(g, node.input[2], len(W), node)
        i += 1
        while i < len(chain) and chain[i].op_type in ("Add", "Mul", "BatchNormalization") and bn is None:
            n = chain[i]
            if n.op_type == "BatchNormalization":
                gm, bt, mean, var = (_per_channel(g, n.input[j], len(W), n) for j in (1, 2, 3, 4))
                bn = {"gamma": gm, "beta": bt, "mean": mean, "var": var, "eps": float(_attrs(n).get("epsilon", 1e-5))}
            else:
                c = _per_channel(g, next(x for x in n.input if x in g.const), len(W), n)
                if n.op_type == "Add":  # the value so far is alpha * s + bias
                    bias = bias + c
                else:
                    alpha, bias = alpha * c, bias * c
            i += 1
        aff = Affine.make(len(W), alpha, bias, bn)
        if i < len(chain) and chain[i].op_type in QUANTS:
            if chain[i].op_type != "BipolarQuant" and not _is_bipolar(g, chain[i]):
                raise UserError(f"{path}: node {chain[i].name}: hidden activations must be BipolarQuant (sign)")
            layers.append(BinaryLayer(W, aff, stride, pad))
            act_scale = _act_scale(g, chain[i])
            i += 1
        elif i == len(chain):
            head = Head(W.reshape(len(W), -1), aff)
        else:
            raise UserError(f"{path}: node {chain[i].name or chain[i].op_type} after a layer: expected a sign "
                            "activation (BipolarQuant) or the graph's output")
    if head is None:
        raise UserError(f"{path}: the graph does not end in a Gemm / MatMul output layer")
    reference = lambda raw: g.run(chain, to_x(raw)).reshape(len(raw), -1)  # noqa: E731
    return SourceNet("qonnx", shape, lo, hi, inputs, layers, head, "pm1", reference)


INPUT_OPS = ("Sub", "Add", "Mul", "Div", "BatchNormalization", "Identity") + QUANTS


def _is_bipolar(g: _Graph, node) -> bool:
    """A 1-bit signed Quant (bipolar, as QONNX runs it)."""
    return node.op_type in ("Quant", "IntQuant") and int(np.asarray(g.const.get(node.input[3], 0)).reshape(-1)[0]) == 1 \
        and int(_attrs(node).get("signed", 1)) == 1


def _act_scale(g: _Graph, node) -> float:
    """The positive scalar scale of a sign activation (the next layer's input values are +-scale)."""
    s = np.asarray(g.const.get(node.input[1], np.nan), np.float64).reshape(-1)
    if s.size != 1 or not s[0] > 0:
        raise UserError(f"QONNX node {node.name or node.op_type}: activation scales must be one positive number")
    return float(s[0])


def _per_channel(g: _Graph, name: str, n: int, node) -> np.ndarray:
    """A constant broadcast per output channel (n,)."""
    if name not in g.const:
        raise UserError(f"QONNX node {node.name or node.op_type}: input {name!r} is not a constant")
    v = np.asarray(g.const[name], np.float64).reshape(-1)
    if v.size not in (1, n):
        raise UserError(f"QONNX node {node.name or node.op_type}: a constant of {v.size} values for {n} channels")
    return np.broadcast_to(v, (n,)).copy()
