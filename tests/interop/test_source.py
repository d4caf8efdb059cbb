"""``interop.source.to_ir`` against the source semantics, computed independently in float64 on
hand-made source networks (torch-free): every input block kind, sign conventions, padding,
pools, constant neurons, output scales; and the ambiguity report."""
from __future__ import annotations

import numpy as np
import pytest

from bnnlogic.errors import UserError
from bnnlogic.interop.source import Affine, BinaryLayer, Head, Pool, SourceNet, to_ir


def _ref_forward(src: SourceNet, raw: np.ndarray) -> np.ndarray:
    """The source semantics in float64: conv / linear sums with zero padding, BN, sign or step."""
    h = src.inputs(raw).astype(np.float64).reshape((len(raw),) + tuple(src.feature_shape))
    for layer in src.layers:
        if isinstance(layer, Pool):
            k, s = layer.size, layer.stride
            h = np.lib.stride_tricks.sliding_window_view(h, (k, k), axis=(2, 3))[:, :, ::s, ::s].max(axis=(4, 5))
            continue
        a = layer.affine
        if layer.conv:
            p = layer.padding
            hp = np.pad(h, ((0, 0), (0, 0), (p, p), (p, p)))
            kh, kw = layer.W.shape[2:]
            win = np.lib.stride_tricks.sliding_window_view(hp, (kh, kw), axis=(2, 3))[:, :, ::layer.stride, ::layer.stride]
            s = np.einsum("nchwij,ocij->nohw", win, layer.W.astype(np.float64))
            shape = (1, -1, 1, 1)
        else:
            s = h.reshape(len(h), -1) @ layer.W.T.astype(np.float64)
            shape = (1, -1)
        r = lambda v: np.asarray(v).reshape(shape)  # noqa: E731
        y = r(a.gamma) * (r(a.alpha) * s + r(a.bias) - r(a.mean)) / np.sqrt(r(a.var) + a.eps) + r(a.beta)
        h = np.where(y >= 0, 1.0, -1.0 if src.act == "pm1" else 0.0)
    a = src.head.affine
    s = h.reshape(len(h), -1) @ src.head.W.T.astype(np.float64)
    return a.gamma * (a.alpha * s + a.bias - a.mean) / np.sqrt(a.var + a.eps) + a.beta


def _bn(rng, n, neg=True):
    g = rng.uniform(0.2, 1.5, n) * (np.where(rng.random(n) < 0.3, -1, 1) if neg else 1)
    g[0] = 0.0  # a constant neuron
    return {"mean": rng.uniform(-3, 3, n), "var": rng.uniform(0.5, 3, n), "eps": 1e-5, "gamma": g,
            "beta": rng.uniform(-1, 1, n)}


def _tern(rng, shape, p0=0.2):
    W = rng.choice([-1, 1], size=shape)
    W[rng.random(shape) < p0] = 0
    return W


INPUTS = {  # raw 0..8 -> the first layer's input values, as a source's input block would give them
    "pm1": lambda raw: np.where(raw / 8.0 >= 0.45, 1.0, -1.0),
    "pm1-scaled": lambda raw: np.where(raw >= 3, 0.5, -0.5),
    "pm1-decreasing": lambda raw: np.where(raw <= 4, 1.0, -1.0),  # an input BN with negative gamma
    "01": lambda raw: (raw >= 5).astype(np.float64),
    "quantized": lambda raw: np.round(raw / 8.0 / 0.25) * 0.25,  # round(x / step), 5 levels
}


def _net(seed: int, inputs: str, conv: bool, act: str = "pm1", head_bn: bool = False) -> SourceNet:
    rng = np.random.default_rng(seed)
    shape = (2, 5, 5) if conv else (12,)
    layers = []
    if conv:
        layers.append(BinaryLayer(_tern(rng, (3, 2, 3, 3)), Affine.make(3, rng.uniform(0.5, 2), rng.uniform(-1, 1, 3),
                                                                          _bn(rng, 3)), 1, 1))
        layers.append(Pool(2, 1))
        layers.append(BinaryLayer(_tern(rng, (4, 3, 2, 2)), Affine.make(4, 1.0, 0.0, _bn(rng, 4)), 2, 1))
        n = 4 * 3 * 3
    else:
        layers.append(BinaryLayer(_tern(rng, (7, 12)), Affine.make(7, 1.0, rng.uniform(-1, 1, 7), _bn(rng, 7))))
        n = 7
    layers.append(BinaryLayer(_tern(rng, (6, n)), Affine.make(6, 1.0, 0.0, _bn(rng, 6))))
    bn = {"mean": rng.uniform(-2, 2, 3), "var": np.full(3, 2.0), "eps": 0.0, "gamma": np.full(3, 0.7),
          "beta": rng.uniform(-1, 1, 3)} if head_bn else None
    head = Head(_tern(rng, (3, 6)), Affine.make(3, 1.0, rng.uniform(-2, 2, 3), bn))
    src = SourceNet("test", shape, 0, 8, lambda raw: INPUTS[inputs](np.asarray(raw, np.float64)).reshape(len(raw), -1),
                    layers, head, act, reference=None)
    src.reference = lambda raw: _ref_forward(src, raw)
    return src


@pytest.mark.parametrize("inputs", sorted(INPUTS))
@pytest.mark.parametrize("conv", [False, True])
@pytest.mark.parametrize("seed", range(3))
def test_fold_equals_the_source_semantics(inputs, conv, seed):
    src = _net(seed, inputs, conv, act="01" if seed == 2 else "pm1", head_bn=seed == 1)
    ir, _ = to_ir(src)
    raw = np.random.default_rng(seed).integers(0, 9, size=(3000, src.n_features))
    raw[:9] = np.arange(9)[:, None]  # every raw value, everywhere
    np.testing.assert_array_equal(ir.predict(raw), np.argmax(src.reference(raw), axis=1))
    if conv and inputs.startswith("pm1"):  # +-1 values, zero padding: the border sums differ
        assert ir.layers[0].k.ndim == 3


def test_levels_and_sign_of_the_input_coding():
    ir, _ = to_ir(_net(0, "quantized", False))
    assert ir.coding.n_levels == 4 and ir.coding.thresholds[:, 0].tolist() == [2, 3, 6, 7]  # round(raw/2), half to even
    ir, _ = to_ir(_net(0, "pm1-decreasing", False))
    assert ir.coding.thresholds[0, 0] == 5  # z = +1 - 2 [x >= 5]


def test_exact_ties_are_kept_and_named_ambiguous():
    """Integer means, beta 0, var 1: BN outputs exactly 0 happen; the IR fires there (y >= 0)
    like the source, and names every such neuron; equal output biases tie exactly."""
    rng = np.random.default_rng(5)
    bn = {"mean": rng.integers(-3, 4, 8).astype(float), "var": np.ones(8), "eps": 0.0, "gamma": np.ones(8),
          "beta": np.zeros(8)}
    layers = [BinaryLayer(_tern(rng, (8, 10), 0.0), Affine.make(8, 1.0, 0.0, bn))]
    Wh = _tern(rng, (3, 8), 0.0)
    Wh[1] = Wh[0]
    Wh[1, :2] *= -1  # classes 0 and 1 tie where W[0, :2] . h[:2] = 0
    head = Head(Wh, Affine.make(3, 1.0, np.array([0.5, 0.5, -0.5])))
    src = SourceNet("ties", (10,), 0, 1, lambda raw: np.where(np.asarray(raw) >= 1, 1.0, -1.0), layers, head, "pm1", None)
    src.reference = lambda raw: _ref_forward(src, raw)
    ir, amb = to_ir(src)
    raw = np.array(np.meshgrid(*[[0, 1]] * 10)).reshape(10, -1).T
    ref = src.reference(raw)
    np.testing.assert_array_equal(ir.predict(raw), np.argmax(ref, axis=1))
    assert (np.sort(ref, axis=1)[:, -1] == np.sort(ref, axis=1)[:, -2]).any()  # output ties occur
    flagged = {a["neuron"] for a in amb if a["layer"] == 0}
    assert flagged == {i for i in range(8) if (bn["mean"][i] + 10) % 2 == 0}  # s = mean reachable (parity of 10 terms)
    assert any(a["layer"] == "output" and a["classes"] == [0, 1] for a in amb)


@pytest.mark.parametrize("seed", range(4))
def test_per_class_output_batchnorm_through_exact_ranks(seed):
    """Per-class output multipliers (one negative) fold into a rank layer; the argmax, ties
    included (classes 0 and 2 are one class twice: their logits are always equal), is the source's."""
    src = _net(seed, "pm1", seed % 2 == 1, head_bn=True)
    a = src.head.affine
    a.gamma[:] = [0.7, -1.3, 0.7]
    a.var[:] = [2.0, 0.4, 2.0]
    a.mean[:] = [0.5, -1.0, 0.5]
    a.beta[:] = [0.25, 0.0, 0.25]
    a.bias[:] = 0.0
    src.head.W[2] = src.head.W[0]
    ir, amb = to_ir(src)
    assert ir.layers[-1].kind == "dense" and ir.output.scale == 1
    raw = np.random.default_rng(seed).integers(0, 9, size=(4000, src.n_features))
    ref = src.reference(raw)
    np.testing.assert_array_equal(ir.predict(raw), np.argmax(ref, axis=1))
    assert (ref[:, 0] == ref[:, 2]).all() and any(x["layer"] == "output" and x["classes"] == [0, 2] for x in amb)


def test_unrepresentable_sources_are_user_errors():
    src = _net(0, "pm1", False)
    src.inputs = lambda raw: np.sin(np.asarray(raw, float))  # not a quantizer
    with pytest.raises(UserError, match="integer multiples|monotone"):
        to_ir(src)
    src = _net(0, "pm1", False)
    src.layers[1] = BinaryLayer(src.layers[1].W[:, :5], src.layers[1].affine)
    with pytest.raises(UserError, match="Linear layer with 5 inputs"):
        to_ir(src)
