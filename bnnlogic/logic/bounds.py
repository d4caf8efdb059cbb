"""Interval bound propagation on the IR: which neurons are fixed over a box of raw inputs.

Every activation is a bit, so its bounds are a pair ``lo <= u <= hi`` in {0, 1}; ``lo == hi``
means the bit is fixed over the whole box.  For raw bounds ``[l_f, h_f]``:

    input bit [x_f >= tau]       lo = [l_f >= tau],   hi = [h_f >= tau]
    neuron [sum_j a_j u_j >= k]  S_min = sum_{a>0} a lo_j + sum_{a<0} a hi_j,  S_max symmetric;
                                 lo = [S_min >= k],   hi = [S_max >= k]
    maxpool (OR)                 lo = OR lo_j,        hi = OR hi_j

A conv's padded bits are the constant 0 (lo = hi = 0), so its windows pad both bounds with 0.

This is sound (every input of the box lies within the bounds), so a neuron with lo == hi can
be replaced by its constant before encoding.  Batched: boxes (n, d) -> bounds (n, *shape).
"""
from __future__ import annotations

import numba
import numpy as np

from ..ir import IR, Conv, Dense, MaxPool

Bounds = list[tuple[np.ndarray, np.ndarray]]


#: a dense layer is summed over its non-zeros (``_sparse_bounds``) when at most this fraction
#: of its weights is non-zero (friendly nets keep 5-50%) or the work, boxes x non-zeros, is at
#: most SMALL_WORK; else by float32 products (BLAS, fast on many boxes of a dense layer)
SPARSE_DENSITY = 0.25
SMALL_WORK = 1 << 15
CHUNK_BOXES = 128  # boxes propagated at once (``propagate``)

_PREPARED: dict[tuple[str, int], tuple] = {}


def _prepared(layer: Dense | Conv, form: str) -> tuple:
    """The layer's weights in ``form``, built once per layer:

    ``"sparse"`` (dense layers): ``(row_ptr, cols, row_signs, col_ptr, rows, col_signs)``, the
    non-zeros by neuron and by input, signs int8 +-1, unsigned indices (numba then skips the
    negative-index test);
    ``"dense"``: ``(A, pos, neg)`` as float32, a dense layer's transposed (fan-in, neurons)."""
    hit = _PREPARED.get((form, id(layer)))
    if hit is None or hit[0] is not layer:
        A = layer.A
        if form == "sparse":
            r, c = np.nonzero(A)  # by neuron
            cT, rT = np.nonzero(A.T)  # by input
            prep = (np.searchsorted(r, np.arange(A.shape[0] + 1)), c.astype(np.uint32), A[r, c].astype(np.int8),
                    np.searchsorted(cT, np.arange(A.shape[1] + 1)), rT.astype(np.uint32), A[rT, cT].astype(np.int8))
        else:
            A = np.ascontiguousarray(A.T if isinstance(layer, Dense) else A, dtype=np.float32)
            prep = (A, np.maximum(A, 0), np.minimum(A, 0))
        hit = (layer, prep)
        _PREPARED[(form, id(layer))] = hit
    return hit[1]


@numba.njit(cache=True, nogil=True)
def _sparse_bounds(row_ptr, cols, row_signs, col_ptr, rows, col_signs, lo, hi, smin, smax):  # pragma: no cover
    """Per box b: ``smin = smax = A lo`` over each neuron's non-zeros, then for every input j
    free in the box (hi > lo) its +1 weights raise smax and its -1 weights lower smin."""
    for b in range(lo.shape[0]):
        lb, hb, s0, s1 = lo[b], hi[b], smin[b], smax[b]
        for i in range(len(row_ptr) - 1):
            s = 0
            for p in range(row_ptr[i], row_ptr[i + 1]):
                s += row_signs[p] * lb[cols[p]]
            s0[i] = s
            s1[i] = s
        for j in range(len(lb)):
            if hb[j] != lb[j]:
                for p in range(col_ptr[j], col_ptr[j + 1]):
                    if col_signs[p] > 0:
                        s1[rows[p]] += 1
                    else:
                        s0[rows[p]] -= 1


def _sum_bounds(layer: Dense | Conv, lo: np.ndarray, hi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Min and max of each neuron's weighted sum over the bit box [lo, hi] (exact integers):
    ``S_min = A lo + neg (hi - lo)``, ``S_max = A lo + pos (hi - lo)``, where for a dense
    layer only the columns of bits free in some box (hi > lo) enter the second products;
    a sparse or small dense layer sums its non-zeros directly (``_sparse_bounds``)."""
    if isinstance(layer, Dense):
        nnz = layer.nonzero
        if nnz <= SPARSE_DENSITY * layer.A.size or nnz * len(lo) <= SMALL_WORK:
            lo2, hi2 = lo.reshape(len(lo), -1), hi.reshape(len(hi), -1)
            smin = np.empty((len(lo2), len(layer.A)), np.int64)
            smax = np.empty_like(smin)
            _sparse_bounds(*_prepared(layer, "sparse"), lo2, hi2, smin, smax)
            return smin, smax
    # float32 products are exact here: every partial sum is an integer below 2^24
    A, pos, neg = _prepared(layer, "dense")
    if isinstance(layer, Dense):
        lo2, hi2 = lo.reshape(len(lo), -1), hi.reshape(len(hi), -1)
        free = np.nonzero((lo2 != hi2).any(axis=0))[0]
        base = lo2.astype(np.float32) @ A
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

    Returns ``[(lo_0, hi_0), (lo_1, hi_1), ...]`` with arrays (n, *shape) uint8.  Boxes go
    through in chunks of ``CHUNK_BOXES`` (a conv layer's float32 receptive fields take about
    200 KB per box on conv-small: 600 boxes of branch and bound took 126 MB at once).
    """
    lo = np.asarray(lo, dtype=np.int64).reshape(-1, ir.coding.n_features)
    hi = np.asarray(hi, dtype=np.int64).reshape(-1, ir.coding.n_features)
    if len(lo) > CHUNK_BOXES:
        parts = [_propagate(ir, lo[s:s + CHUNK_BOXES], hi[s:s + CHUNK_BOXES]) for s in range(0, len(lo), CHUNK_BOXES)]
        return [(np.concatenate([p[l][0] for p in parts]), np.concatenate([p[l][1] for p in parts]))
                for l in range(len(parts[0]))]
    return _propagate(ir, lo, hi)


def _propagate(ir: IR, lo: np.ndarray, hi: np.ndarray) -> Bounds:
    """``propagate`` on one chunk of boxes (n, d) int64."""
    out = [(ir.coding.encode(lo), ir.coding.encode(hi))]
    for layer in ir.layers:
        blo, bhi = out[-1]
        if isinstance(layer, MaxPool):
            out.append((layer.apply(blo), layer.apply(bhi)))
            continue
        smin, smax = _sum_bounds(layer, blo, bhi)
        k = layer.k if isinstance(layer, Dense) else layer.k_grid[None]
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
