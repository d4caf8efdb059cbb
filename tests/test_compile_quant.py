"""Exact compilation of K-bit networks: the IR equals the integer reference on every input."""
from __future__ import annotations

import numpy as np
import pytest
from helpers import box_inputs

from bnnlogic.errors import UserError
from bnnlogic.quant import BatchNorm, Conv2d, Flatten, FloatNet, Linear, ReLU, compile_quant, quantize
from bnnlogic.quant.compile import estimate_size, ir_scores_blas, ir_size


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
    conv = FloatNet((1, 3, 3), [Conv2d(np.ones((1, 1, 2, 2)), np.zeros(1)), ReLU(), Flatten(),
                                Linear(np.ones((2, 4)), np.zeros(2))])
    with pytest.raises(UserError, match="Conv2d"):
        quantize(conv, 2, np.zeros((1, 1, 3, 3)), 0, 3)
    with pytest.raises(UserError, match="over the limit"):
        compile_quant(quantize(tiny_net(0, 3, (4,), 2), 3, np.zeros((1, 3)), 0, 9), max_coefficients=10)
