"""Interval bound propagation on the IR: which neurons are fixed over a box of raw inputs.

Every activation is a bit, so its bounds are a pair ``lo <= u <= hi`` in {0, 1}; ``lo == hi``
means the bit is fixed over the whole box.  For raw bounds ``[l_f, h_f]``:

    input bit [x_f >= tau]       lo = [l_f >= tau],   hi = [h_f >= tau]
    neuron [sum_j a_j u_j >= k]  S_min = sum_{a>0} a lo_j + sum_{a<0} a hi_j,  S_max symmetric;
                                 lo = [S_min >= k],   hi = [S_max >= k]
    maxpool (OR)                 lo = OR lo_j,        hi = OR hi_j

This is sound (every input of the box lies within the bounds), so a neuron with lo == hi can
be replaced by its constant before encoding.  Batched: boxes (n, d) -> bounds (n, *shape).
"""
from __future__ import annotations

import numpy as np
import scipy.sparse

from ..ir import IR, Conv, Dense, MaxPool

Bounds = list[tuple[np.ndarray, np.ndarray]]


#: a dense layer with at most this fraction of non-zero weights is multiplied as a sparse
#: matrix (verification-friendly nets keep 5-50%)
SPARSE_DENSITY = 0.25

_SPLITS: dict[int, tuple] = {}


def _split(layer: Dense | Conv) -> tuple:
    """``(A, pos, neg)``: the layer's weights and their positive and negative parts as float32,
    computed once per layer.  A dense layer's are transposed, (fan-in, neurons) contiguous, and
    its A is a CSR matrix (neurons, fan-in) when at most SPARSE_DENSITY of it is non-zero."""
    hit = _SPLITS.get(id(layer))
    if hit is None or hit[0] is not layer:
        A = layer.A.T if isinstance(layer, Dense) else layer.A
        A = np.ascontiguousarray(A, dtype=np.float32)
        pos, neg = np.maximum(A, 0), np.minimum(A, 0)
        if isinstance(layer, Dense) and np.count_nonzero(A) <= SPARSE_DENSITY * A.size:
            A = scipy.sparse.csr_matrix(A.T)
        hit = (layer, A, pos, neg)
        _SPLITS[id(layer)] = hit
    return hit[1], hit[2], hit[3]


def _sum_bounds(layer: Dense | Conv, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Min and max of each neuron's weighted sum over the bit box [lo, hi] (exact integers):
    ``S_min = A lo + neg (hi - lo)``, ``S_max = A lo + pos (hi - lo)``, where for a dense
    layer only the columns of bits free in some box (hi > lo) enter the second products."""
    # float32 products are exact here: every partial sum is an integer below 2^24
    A, pos, neg = _split(layer)
    if isinstance(layer, Dense):
        lo2, hi2 = lo.reshape(len(lo), -1), hi.reshape(len(hi), -1)
        free = np.nonzero((lo2 != hi2).any(axis=0))[0]
        base = (A @ lo2.T.astype(np.float32)).T if scipy.sparse.issparse(A) else lo2.astype(np.float32) @ A
        gap = (hi2[:, free] - lo2[:, free]).astype(np.float32)
        smin, smax = base + gap @ neg[free], base + gap @ pos[free]
    else:
        wl, wh = layer.windows(lo).astype(np.float32), layer.windows(hi).astype(np.float32)
        conv = lambda u, w: np.einsum("nchwij,ocij->nohw", u, w, optimize=True)  # noqa: E731
        base, gap = conv(wl, A), wh - wl
        smin, smax = base + conv(gap, neg), base + conv(gap, pos)
    return np.rint(smin).astype(np.int64), np.rint(smax).astype(np.int64)


def propagate(ir: IR, lo: np.ndarray, hi: np.ndarray) -> Bounds:
    """Bit bounds after the coding and after each hidden layer for raw boxes (n, d) or (d,).

    Returns ``[(lo_0, hi_0), (lo_1, hi_1), ...]`` with arrays (n, *shape) uint8.
    """
    lo = np.asarray(lo, dtype=np.int64).reshape(-1, ir.coding.n_features)
    hi = np.asarray(hi, dtype=np.int64).reshape(-1, ir.coding.n_features)
    out = [(ir.coding.encode(lo), ir.coding.encode(hi))]
    for layer in ir.layers:
        blo, bhi = out[-1]
        if isinstance(layer, MaxPool):
            out.append((layer.apply(blo), layer.apply(bhi)))
            continue
        smin, smax = _sum_bounds(layer, blo, bhi)
        k = layer.k if isinstance(layer, Dense) else layer.k[None, :, None, None]
        out.append(((smin >= k).astype(np.uint8), (smax >= k).astype(np.uint8)))
    return out


def fixed_counts(ir: IR, bounds: Bounds) -> tuple[int, int]:
    """(threshold neurons, of them fixed by ``bounds``) over hidden dense and conv layers (not
    pools), summed over the boxes of a batch."""
    fixed = total = 0
    for layer, (blo, bhi) in zip(ir.layers, bounds[1:]):
        if isinstance(layer, MaxPool):
            continue
        fixed += int(np.count_nonzero(blo == bhi))
        total += blo.size
    return total, fixed


def stable_fraction(ir: IR, lo: np.ndarray, hi: np.ndarray) -> float:
    """Fraction of hidden threshold neurons (dense and conv; not pools) fixed over each box,
    averaged over the boxes."""
    total, fixed = fixed_counts(ir, propagate(ir, lo, hi))
    return fixed / total if total else 1.0
