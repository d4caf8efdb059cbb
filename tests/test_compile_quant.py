"""Exact compilation of K-bit networks: the IR equals the integer reference on every input."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import box_inputs

from bnnlogic.errors import UserError
from bnnlogic.quant import BatchNorm, Conv2d, Flatten, FloatNet, Linear, MaxPool2d, ReLU, compile_quant, quantize
from bnnlogic.quant.compile import estimate_size, ir_scores_blas, ir_size
from bnnlogic.quant.quantization import conv_sum, max_pool


def tiny_net(seed: int, d: int, hidden: tuple[int, ...], n_classes: int, bn: bool = False,
             feature_shape: tuple[int, ...] | None = None) -> FloatNet:
    rng = np.random.default_rng(seed)
    layers, n = [Flatten()], d
    for h in hidden:
        layers.append(Linear(rng.normal(size=(h, n)), rng.normal(size=h)))
        if bn:
            layers.append(BatchNorm(rng.normal(size=h), rng.normal(size=h), rng.normal(size=h),
                                    rng.uniform(0.1, 2, size=h)))
        layers.append(ReLU())
        n = h
    layers.append(Linear(rng.normal(size=(n_classes, n)), rng.normal(size=n_classes)))
    return FloatNet(feature_shape or (d,), layers)


@pytest.mark.parametrize("bits", [1, 2, 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exhaustive_agreement_vector(bits, seed):
    lo, hi, d = 0, 4, 3
    net = tiny_net(seed, d, (4, 3), 3, bn=seed == 1)
    X = box_inputs(np.full(d, lo), np.full(d, hi))
    q = quantize(net, bits, X, lo, hi)
    ir = compile_quant(q)
    assert np.array_equal(ir.scores(X), q.scores(X))  # same integer scores, not only argmax
    assert np.array_equal(ir.predict(X), q.predict(X))
    assert np.array_equal(ir_scores_blas(ir, X, batch=7), q.scores(X))
    assert set(np.unique(ir.activations(X)[1])) <= {0, 1}


@pytest.mark.parametrize("bits", [1, 2, 3])
def test_exhaustive_agreement_image_copy_conv(bits):
    lo, hi = 0, 3
    fs = (1, 2, 2)
    net = tiny_net(7, 4, (5,), 4, feature_shape=fs)
    X = box_inputs(np.full(4, lo), np.full(4, hi)).reshape(-1, *fs)
    q = quantize(net, bits, X, lo, hi)
    ir = compile_quant(q)
    assert np.array_equal(ir.scores(X), q.scores(X))
    if bits == 3:
        assert ir.layers[0].kind == "conv"  # input bits copied by a 1x1 convolution


def test_quantnet_follows_its_definition():
    """Hand-checked 1-neuron net: thresholds, rounding, ties to the lowest class."""
    net = FloatNet((1,), [Linear(np.array([[1.0]]), np.array([0.0])), ReLU(),
                          Linear(np.array([[1.0], [-1.0]]), np.array([0.0, 0.0]))])
    X = np.arange(0, 4)[:, None]
    q = quantize(net, 2, X, 0, 3)
    assert list(q.in_thresholds) == [1, 2, 3]
    assert np.array_equal(q.input_levels(X)[:, 0], [0, 1, 2, 3])
    assert np.array_equal(q.activations(X)[1][:, 0], [0, 1, 2, 3])
    assert np.array_equal(q.predict(X), [0, 0, 0, 0])  # x = 0: tie -> class 0
    assert np.array_equal(compile_quant(q).predict(X), [0, 0, 0, 0])


def test_thresholds_increase_and_inputs_in_domain():
    q = quantize(tiny_net(3, 2, (3,), 2), 3, np.array([[0, 255], [255, 0], [7, 9]]), 0, 255)
    assert np.all(np.diff(q.in_thresholds) > 0) and q.in_thresholds[0] > 0 and q.in_thresholds[-1] <= 255
    assert all(np.all(np.diff(T, axis=1) >= 0) for _, T in q.hidden)


def test_size_estimate_matches_ir():
    net = tiny_net(4, 3, (4, 3), 3)
    X = box_inputs(np.zeros(3), np.full(3, 4))
    for bits in (1, 2, 3):
        q = quantize(net, bits, X, 0, 4)
        est, got = estimate_size(q), ir_size(compile_quant(q))
        assert est["neurons"] == got["neurons"] and est["entries"] == got["entries"]


def test_errors():
    net = tiny_net(0, 2, (2,), 2)
    X = np.zeros((1, 2), dtype=np.int64)
    for bad in (0, 9, 2.5):
        with pytest.raises(UserError, match="exact-bits"):
            quantize(net, bad, X, 0, 3)
    padded = FloatNet((1, 3, 3), [Conv2d(np.ones((1, 1, 2, 2)), np.zeros(1), 1, 1), ReLU(), Flatten(),
                                  Linear(np.ones((2, 16)), np.zeros(2))])
    with pytest.raises(UserError, match="padding"):
        quantize(padded, 2, np.zeros((1, 1, 3, 3)), 0, 3)
    conv = [Conv2d(np.ones((1, 1, 2, 2)), np.zeros(1)), MaxPool2d(2, 1),
            BatchNorm(np.ones(1), np.zeros(1), np.zeros(1), np.ones(1)), ReLU(), Linear(np.ones((2, 1)), np.zeros(2))]
    with pytest.raises(UserError, match="BatchNorm"):  # batch norm after a pool does not fold
        quantize(FloatNet((1, 3, 3), conv), 2, np.zeros((1, 1, 3, 3)), 0, 3)
    with pytest.raises(UserError, match="Linear layer"):  # conv logits
        quantize(FloatNet((1, 3, 3), conv[:1]), 2, np.zeros((1, 1, 3, 3)), 0, 3)
    with pytest.raises(UserError, match="ReLU between"):
        quantize(FloatNet((1, 3, 3), conv[:1] + conv[-1:]), 2, np.zeros((1, 1, 3, 3)), 0, 3)
    with pytest.raises(UserError, match="over the limit"):
        compile_quant(quantize(tiny_net(0, 3, (4,), 2), 3, np.zeros((1, 3)), 0, 9), max_coefficients=10)


# ---------------------------------------------------------------- convolutional networks
def conv_net(seed: int, fs: tuple[int, int, int], spec: list, n_classes: int, bn: bool = False) -> FloatNet:
    """Random float CNN: spec items ('conv', out, k, stride), ('pool', size, stride), ('relu',),
    ('flatten',); a Linear to n_classes is appended."""
    rng = np.random.default_rng(seed)
    layers, shape = [], fs
    for item in spec:
        if item[0] == "conv":
            _, o, k, s = item
            layers.append(Conv2d(rng.normal(size=(o, shape[0], k, k)), rng.normal(size=o), s))
            if bn:
                layers.append(BatchNorm(rng.normal(size=o), rng.normal(size=o), rng.normal(size=o),
                                        rng.uniform(0.1, 2, size=o)))
            shape = (o, (shape[1] - k) // s + 1, (shape[2] - k) // s + 1)
        elif item[0] == "pool":
            layers.append(MaxPool2d(item[1], item[2]))
            shape = (shape[0], (shape[1] - item[1]) // item[2] + 1, (shape[2] - item[1]) // item[2] + 1)
        else:
            layers.append(ReLU() if item[0] == "relu" else Flatten())
    n = int(np.prod(shape))
    layers.append(Linear(rng.normal(size=(n_classes, n)), np.zeros(n_classes)))
    net = FloatNet(fs, layers)
    z = float_forward(net, rng.integers(0, 3, size=(500, *fs)))  # centre the logits: no class wins everywhere
    layers[-1] = Linear(layers[-1].W, -z.mean(0))
    return net


def float_forward(net: FloatNet, X: np.ndarray) -> np.ndarray:
    h = X.astype(np.float64)
    for layer in net.layers:
        if isinstance(layer, Conv2d):
            h = conv_sum(h, layer.W, layer.stride) + layer.b[None, :, None, None]
        elif isinstance(layer, MaxPool2d):
            h = max_pool(h, layer.kernel, layer.stride)
        elif isinstance(layer, BatchNorm):
            a, c = layer.scale_shift()
            h = h * a.reshape((-1,) + (1,) * (h.ndim - 2)) + c.reshape((-1,) + (1,) * (h.ndim - 2))
        elif isinstance(layer, ReLU):
            h = np.maximum(h, 0)
        elif isinstance(layer, Linear):
            h = h.reshape(len(h), -1) @ layer.W.T + layer.b
    return h


def check_exact(net: FloatNet, X: np.ndarray, bits: int, lo: int, hi: int):
    q = quantize(net, bits, X, lo, hi)
    ir = compile_quant(q)
    ref = q.scores(X)
    got = ir_scores_blas(ir, X, batch=1000)  # the IR's scores on every input (im2col, exact)
    assert np.array_equal(got, ref)  # same integer scores, so the same predictions
    assert np.array_equal(np.argmax(got, axis=1), q.predict(X))
    some = np.linspace(0, len(X) - 1, min(len(X), 600)).astype(int)  # the IR's reference semantics (slow)
    assert np.array_equal(ir.scores(X[some]), ref[some])
    est, got = estimate_size(q), ir_size(ir)
    assert all(est[k] == got[k] for k in ("neurons", "entries", "stored"))
    return q, ir


CONV_CASES = {
    # 1x3x3 in 0..2 (19,683 inputs): conv 2ch 2x2 s1 [BN] ReLU, max-pool 2, linear
    "conv-pool": ((1, 3, 3), 2, [("conv", 2, 2, 1), ("relu",), ("pool", 2, 1), ("flatten",)]),
    # pool between conv and ReLU (moved after it), then a linear on the image without Flatten
    "pool-before-relu": ((1, 3, 3), 2, [("conv", 3, 2, 1), ("pool", 2, 1), ("relu",)]),
    # max-pool on the raw input, then conv
    "input-pool": ((1, 3, 3), 2, [("pool", 2, 1), ("conv", 3, 2, 1), ("relu",), ("flatten",)]),
    # 1x4x4 in 0..1 (65,536 inputs): stride-2 conv, then a conv on the hidden bit channels
    "stride2-conv-conv": ((1, 4, 4), 1, [("conv", 3, 2, 2), ("relu",), ("conv", 2, 2, 1), ("relu",), ("flatten",)]),
    # 2 input channels 2x3 in 0..2 (531,441 is too many): 2x2x2 in 0..2, 6,561 inputs
    "two-channels": ((2, 2, 2), 2, [("conv", 3, 2, 1), ("relu",), ("flatten",)]),
}


@pytest.mark.parametrize("bits", [1, 2, 3])
@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_exhaustive_agreement_conv(case, bits):
    fs, hi, spec = CONV_CASES[case]
    classes = 0
    for seed in (0, 1):
        net = conv_net(seed, fs, spec, 3, bn=seed == 1)
        X = box_inputs(np.zeros(int(np.prod(fs))), np.full(int(np.prod(fs)), hi)).reshape(-1, *fs)
        q, ir = check_exact(net, X, bits, 0, hi)
        classes = max(classes, len(np.unique(q.predict(X))))
        if bits == 3:
            assert any(layer.kind == "conv" for layer in ir.layers)
            assert max(int(np.abs(W).max()) for W, _ in q.hidden) > 1  # weights need repeated bits
        if "pool" in case:
            assert any(layer.kind == "maxpool" for layer in ir.layers)
    assert bits < 3 or classes > 1  # not a constant network


@pytest.mark.parametrize("bits", [1, 2, 3])
def test_sampled_agreement_conv_5x5(bits):
    """1x5x5 in 0..3 (4^25 inputs: sampled, with the two constant images), conv 2ch 2x2,
    ReLU, max-pool 2 (stride 2), linear."""
    fs, hi = (1, 5, 5), 3
    net = conv_net(3, fs, [("conv", 2, 2, 1), ("relu",), ("pool", 2, 2), ("flatten",)], 4)
    rng = np.random.default_rng(0)
    X = np.concatenate([rng.integers(0, hi + 1, size=(4000, *fs)), np.zeros((1, *fs), int), np.full((1, *fs), hi)])
    check_exact(net, X, bits, 0, hi)


def test_conv_quantnet_matches_float_at_8_bits():
    """The integer reference is the float network's quantization: at 8 bits it predicts like it."""
    fs = (1, 5, 5)
    net = conv_net(5, fs, [("conv", 3, 2, 1), ("relu",), ("pool", 2, 2), ("conv", 4, 2, 1), ("relu",)], 3)
    X = np.random.default_rng(1).integers(0, 4, size=(2000, *fs))
    q = quantize(net, 8, X, 0, 3, percentile=100)
    assert (q.predict(X) == float_forward(net, X).argmax(1)).mean() > 0.97
