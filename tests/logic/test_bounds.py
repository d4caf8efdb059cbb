import numpy as np
import pytest

from bnnlogic.ir import Conv, Dense
from bnnlogic.logic.bounds import _sum_bounds


def _reference(A: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per box and neuron: min / max of sum_j A_j u_j over lo <= u <= hi, term by term."""
    A = A.astype(np.int64)[None]
    lo, hi = lo[:, None, :].astype(np.int64), hi[:, None, :].astype(np.int64)
    return np.minimum(A * lo, A * hi).sum(-1), np.maximum(A * lo, A * hi).sum(-1)


def _boxes(rng, n: int, d: int, p_free: float) -> tuple[np.ndarray, np.ndarray]:
    lo = rng.integers(0, 2, (n, d)).astype(np.uint8)
    hi = np.maximum(lo, (rng.random((n, d)) < p_free)).astype(np.uint8)
    return lo, hi


@pytest.mark.parametrize("p_zero", [0.1, 0.95])  # dense and sparse (CSR) products
@pytest.mark.parametrize("p_free", [0.0, 0.02, 0.5])
def test_dense_sum_bounds_are_exact(p_zero, p_free):
    rng = np.random.default_rng(1)
    A = rng.choice([-1, 1], (40, 300)) * (rng.random((40, 300)) >= p_zero)
    layer = Dense(A.astype(np.int8), np.zeros(40, np.int64))
    lo, hi = _boxes(rng, 5, 300, p_free)
    smin, smax = _sum_bounds(layer, lo, hi)
    rmin, rmax = _reference(A, lo, hi)
    assert (smin == rmin).all() and (smax == rmax).all()


def test_conv_sum_bounds_are_exact():
    rng = np.random.default_rng(2)
    A = (rng.choice([-1, 1], (3, 2, 3, 3)) * (rng.random((3, 2, 3, 3)) > 0.3)).astype(np.int8)
    layer = Conv(A, np.zeros(3, np.int64), 2)
    lo, hi = _boxes(rng, 4, 2 * 7 * 7, 0.3)
    smin, smax = _sum_bounds(layer, lo.reshape(4, 2, 7, 7), hi.reshape(4, 2, 7, 7))
    # unroll: each output position is a dense row over the flattened input
    rows = []
    for o in range(3):
        for i in range(3):
            for j in range(3):
                W = np.zeros((2, 7, 7), np.int64)
                W[:, 2 * i:2 * i + 3, 2 * j:2 * j + 3] = A[o]
                rows.append(W.reshape(-1))
    rmin, rmax = _reference(np.array(rows), lo, hi)
    assert (smin.reshape(4, -1) == rmin).all() and (smax.reshape(4, -1) == rmax).all()


@pytest.mark.parametrize("stride,pad", [(1, 1), (2, 2)])
def test_padded_conv_sum_bounds_are_exact(stride, pad):
    """Padded positions are constant 0 bits: each output position is a dense row over the
    real inputs its window covers."""
    rng = np.random.default_rng(3)
    A = (rng.choice([-1, 1], (3, 2, 3, 3)) * (rng.random((3, 2, 3, 3)) > 0.3)).astype(np.int8)
    layer = Conv(A, np.zeros(3, np.int64), stride, pad)
    _, Ho, Wo = layer.out_shape((2, 5, 6))
    lo, hi = _boxes(rng, 4, 2 * 5 * 6, 0.3)
    smin, smax = _sum_bounds(layer, lo.reshape(4, 2, 5, 6), hi.reshape(4, 2, 5, 6))
    rows = []
    for o, y, x in np.ndindex(3, Ho, Wo):
        W = np.zeros((2, 5 + 2 * pad, 6 + 2 * pad), np.int64)
        W[:, y * stride:y * stride + 3, x * stride:x * stride + 3] = A[o]
        rows.append(W[:, pad:pad + 5, pad:pad + 6].reshape(-1))
    rmin, rmax = _reference(np.array(rows), lo, hi)
    assert (smin.reshape(4, -1) == rmin).all() and (smax.reshape(4, -1) == rmax).all()


def test_propagate_in_chunks_equals_all_at_once(monkeypatch):
    """Many boxes go through in chunks of CHUNK_BOXES; the bounds are those of one pass."""
    from bnnlogic.logic import bounds as bounds_mod
    from tests.helpers import random_ir

    ir = random_ir(3, image=(1, 4, 4), hi=3, conv=((2, 2, 1),), hidden=(4,))
    rng = np.random.default_rng(0)
    lo = rng.integers(0, 4, (11, ir.coding.n_features))
    hi = np.minimum(3, lo + rng.integers(0, 3, lo.shape))
    whole = bounds_mod.propagate(ir, lo, hi)
    monkeypatch.setattr(bounds_mod, "CHUNK_BOXES", 3)
    chunked = bounds_mod.propagate(ir, lo, hi)
    assert len(chunked) == len(whole)
    for (a, b), (c, d) in zip(whole, chunked):
        assert a.shape == c.shape and np.array_equal(a, c) and np.array_equal(b, d)
