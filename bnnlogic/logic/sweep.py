"""Exhaustive sweep of a box's threshold cells with event-driven inference (Gray order).

Inside a box [lo, hi] of raw inputs, feature f with free coding thresholds t_1 < ... < t_n
(lo_f < t <= hi_f) takes one of n + 1 *cells*: exactly the first c thresholds met.  Every input
bit is fixed inside a cell, so one network evaluation per cell decides the whole box.  The
cells are visited in reflected mixed-radix Gray order, so consecutive cells differ in one
input bit u_b (a feature moves to an adjacent cell), and the network is updated, not rerun:

    bit b flips by d = +-1:   acc_1 += d * A_1[:, b]          (free layer-1 neurons only)
    neuron i of layer l flips by d:  acc_{l+1} += d * A_{l+1}[:, i]
    output:  score_c = scale * acc_out_c + offset_c, prediction = argmax (ties low)

where only the *free* neurons of each layer are tracked: interval bounds (``bounds.propagate``)
over the box fix every other neuron, and a fixed neuron's contribution sits in the
accumulators' starting values (a full forward pass at the box's low corner).  A max-pool is
the threshold neuron ``sum_window u >= 1``.  All sums are exact integers, so the sweep is a
complete decision procedure for "some input of the box is predicted in ``bad``"; a step costs
a few vector additions, far below a full forward pass.  The compiled kernel runs in chunks
(resumable state), so a deadline is checked between chunks.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import numba
import numpy as np

from ..ir import IR, Conv, Dense, MaxPool
from .bounds import propagate
from ..infer.kernels import _borrow
from .encode import _gather, cell_intervals

CHUNK = 1 << 16  # Gray steps per kernel call between deadline checks


def _rows(layer: Dense | Conv | MaxPool, in_shape: tuple[int, ...], rows: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat fan-in indices (r, fan), weights (r, fan) and thresholds (r,) of the given flat
    neuron indices of a layer: its neurons as ``sum_p w[r,p] u[idx[r,p]] >= k[r]``."""
    if isinstance(layer, Dense):
        idx = np.broadcast_to(np.arange(layer.n_in), (len(rows), layer.n_in))
        return idx, layer.A[rows].astype(np.int32), layer.k[rows]
    G = _gather(layer, in_shape)
    if isinstance(layer, Conv):
        o, p = np.divmod(rows, G.shape[0])
        return G[p], layer.A.reshape(len(layer.A), -1)[o].astype(np.int32), layer.k[o]
    return G[rows], np.ones(G[rows].shape, dtype=np.int32), np.ones(len(rows), dtype=np.int64)


@dataclass
class _Plan:
    """The sweep's compiled form for one box: free neurons per layer and their weights."""

    radix: np.ndarray  # (F,) cells per free feature, n_f + 1
    feats: np.ndarray  # (F,) raw feature index of each digit
    bitcol: np.ndarray  # (F, nmax) column (free input bit) of the digit's c-th threshold
    W: np.ndarray  # flat int32: per layer l (and the output), (n_{l-1}, n_l) row-major
    woff: np.ndarray  # (L + 1,) offsets into W
    acc: np.ndarray  # int32 accumulators of all free neurons, layer after layer, then classes
    on: np.ndarray  # bool outputs of the hidden free neurons (same layout, no classes)
    k: np.ndarray  # int32 thresholds of the hidden free neurons
    off: np.ndarray  # (L + 1,) offsets into acc: layer l's neurons are acc[off[l]:off[l+1]]
    scale: int
    offset: np.ndarray  # (C,) int64


def _plan(ir: IR, lo: np.ndarray, hi: np.ndarray) -> _Plan:
    """Digits (free features, their cells' bits), free neurons per layer (interval bounds over
    the box), the weights between consecutive free sets, and the accumulators at the box's
    low corner, where every free input bit is 0 (digit 0 everywhere)."""
    c = ir.coding
    thr = c.thresholds  # (M, d)
    free_bit = ((thr > lo[None]) & (thr <= hi[None])).reshape(-1)
    feats = np.nonzero(free_bit.reshape(thr.shape).any(axis=0))[0]
    n_per = free_bit.reshape(thr.shape)[:, feats].sum(axis=0)
    bits = np.nonzero(free_bit)[0]  # flat level-major bit indices, the layer-1 columns
    col = np.full(free_bit.size, -1, dtype=np.int64)
    col[bits] = np.arange(len(bits))
    bitcol = np.zeros((len(feats), max(int(n_per.max(initial=0)), 1)), dtype=np.int64)
    for i, f in enumerate(feats):  # thresholds increase with the level m
        ms = np.nonzero(free_bit.reshape(thr.shape)[:, f])[0]
        bitcol[i, : len(ms)] = col[ms * c.n_features + f]
    acts = ir.activations(lo[None])  # the box's low corner: every free bit 0
    bnds = propagate(ir, lo, hi)
    shapes = ir.shapes()
    Ws, accs, ks = [], [], []
    prev_free = bits
    for l, layer in enumerate(ir.layers):
        blo, bhi = bnds[l + 1]
        rows = np.nonzero((blo != bhi).reshape(-1))[0]
        idx, w, k = _rows(layer, shapes[l], rows)
        u = acts[l].reshape(-1).astype(np.int64)
        accs.append(np.sum(w * u[idx], axis=1))
        ks.append(np.asarray(k, dtype=np.int64))
        Ws.append(_flip_weights(idx, w, prev_free, acts[l].size))
        prev_free = rows
    out = ir.output
    A = out.A.astype(np.int32)
    u = acts[-1].reshape(-1).astype(np.int64)
    accs.append(A.astype(np.int64) @ u)
    Ws.append(np.ascontiguousarray(A[:, prev_free].T))
    sizes = [len(a) for a in accs]
    k = np.concatenate(ks + [np.zeros(0, np.int64)]).astype(np.int32)
    acc = np.concatenate(accs).astype(np.int32)  # |acc| <= fan-in
    return _Plan(np.asarray(n_per + 1, dtype=np.int64), feats, bitcol,
                 np.concatenate([w.reshape(-1) for w in Ws]).astype(np.int32),
                 np.concatenate([[0], np.cumsum([w.size for w in Ws])]).astype(np.int64),
                 acc, acc[: len(k)] >= k, k,
                 np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
                 int(out.scale), out.offset.astype(np.int64))


def _flip_weights(idx: np.ndarray, w: np.ndarray, prev_free: np.ndarray, n_prev: int) -> np.ndarray:
    """(len(prev_free), r) int32: weight of each free input of the previous layer into each row."""
    pos = np.full(n_prev, -1, dtype=np.int64)
    pos[prev_free] = np.arange(len(prev_free))
    W = np.zeros((len(prev_free), len(idx)), dtype=np.int32)
    j = pos[idx]  # (r, fan)
    r, p = np.nonzero(j >= 0)
    np.add.at(W, (j[r, p], r), w[r, p])
    return W


@numba.njit(cache=True, nogil=True)
def _sweep_kernel(steps, digit, direc, radix, bitcol, W, woff, acc, on, k, off, scale, offset, bad):
    """Advance the Gray walk by up to ``steps`` cells.  Returns 1 if the current cell is bad,
    2 if every cell was visited without a bad one, 0 if the step budget ran out."""
    L = len(off) - 2  # hidden layers; acc[off[L]:off[L+1]] are the class accumulators
    n_max = 1
    for l in range(L):
        n_max = max(n_max, off[l + 1] - off[l])
    fl = np.zeros(8 * ((n_max + 7) // 8), dtype=np.uint8)
    flw = fl.view(np.uint64)
    chg = np.empty(n_max, dtype=np.int64)
    up = np.empty(n_max, dtype=np.bool_)
    C = off[L + 1] - off[L]
    for s in range(steps + 1):
        best = 0  # the current cell: is its prediction bad?
        bs = scale * np.int64(acc[off[L]]) + offset[0]
        for c in range(1, C):
            v = scale * np.int64(acc[off[L] + c]) + offset[c]
            if v > bs:
                bs, best = v, c
        if bad[best]:
            return 1
        if s == steps:
            return 0
        j = 0  # next cell: the lowest digit that can move in its direction moves
        nv = 0
        while j < len(digit):
            nv = digit[j] + direc[j]
            if 0 <= nv < radix[j]:
                break
            direc[j] = -direc[j]
            j += 1
        if j == len(digit):
            return 2
        if direc[j] > 0:
            chg[0], up[0] = bitcol[j, digit[j]], True
        else:
            chg[0], up[0] = bitcol[j, nv], False
        digit[j] = nv
        n = 1
        for l in range(L + 1):  # the flips of layer l-1 (the input bit for l = 0) update layer l
            width = off[l + 1] - off[l]
            a = _borrow(acc, off[l], width)
            for t in range(n):
                w = _borrow(W, woff[l] + chg[t] * width, width)
                if up[t]:
                    for i in range(width):
                        a[i] += w[i]
                else:
                    for i in range(width):
                        a[i] -= w[i]
            if l == L:
                break
            kk, o = _borrow(k, off[l], width), _borrow(on, off[l], width)
            for i in range(width):  # vectorised: which neurons flipped
                fl[i] = (a[i] >= kk[i]) != o[i]
            n = 0
            for q in range((width + 7) // 8):  # then scan 8 flags per 64-bit word
                if flw[q] != 0:
                    for i in range(8 * q, min(8 * q + 8, width)):
                        if fl[i]:
                            o[i] = not o[i]
                            chg[n], up[n] = i, o[i]
                            n += 1
            if n == 0:
                break
    return 0


def n_cells(thresholds: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """log2 of the number of threshold cells of boxes (n, d) (or one box (d,))."""
    within = (thresholds[:, None, :] > np.atleast_2d(lo)[None]) & (thresholds[:, None, :] <= np.atleast_2d(hi)[None])
    return np.log2(within.sum(axis=0) + 1).sum(axis=1)


def sweep(ir: IR, lo: np.ndarray, hi: np.ndarray, bad: np.ndarray, probe: np.ndarray | None = None,
          deadline: float | None = None, stop: threading.Event | None = None
          ) -> tuple[str, np.ndarray | None, int]:
    """Decide whether some raw input of the box [lo, hi] (d,) is predicted in ``bad`` (bool (C,)).

    Returns ``("sat", witness, cells)``, ``("unsat", None, cells)`` or, once ``time.perf_counter()``
    passes ``deadline`` or ``stop`` is set, ``("unknown", None, cells visited)``.  The witness is the bad cell's
    input nearest ``probe`` (default: lo); the caller replays it."""
    lo, hi = np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64)
    p = _plan(ir, lo, hi)
    digit, direc = np.zeros(len(p.radix), dtype=np.int64), np.ones(len(p.radix), dtype=np.int64)
    bad = np.asarray(bad, dtype=np.bool_)
    visited = 0
    while True:
        if (deadline is not None and time.perf_counter() > deadline) or (stop is not None and stop.is_set()):
            return "unknown", None, visited
        r = _sweep_kernel(CHUNK, digit, direc, p.radix, p.bitcol, p.W, p.woff, p.acc, p.on, p.k,
                          p.off, p.scale, p.offset, bad)
        if r == 1:
            return "sat", _cell_input(ir, lo, hi, p, digit, lo if probe is None else probe), visited + 1
        visited += CHUNK
        if r == 2:
            return "unsat", None, int(np.prod(p.radix.astype(float)))


def _cell_input(ir: IR, lo: np.ndarray, hi: np.ndarray, p: _Plan, digit: np.ndarray, probe: np.ndarray
                ) -> np.ndarray:
    """The raw input of the cell ``digit`` nearest ``probe``: inside [lo, hi], and for each free
    feature inside the interval where exactly its first ``digit`` free thresholds are met."""
    x = np.clip(np.asarray(probe, dtype=np.int64).reshape(-1), lo, hi)
    thr = ir.coding.thresholds
    for f, c in zip(p.feats, digit):
        ts = thr[:, f][(thr[:, f] > lo[f]) & (thr[:, f] <= hi[f])]
        low, high = cell_intervals(lo[f], hi[f], ts)
        x[f] = min(max(x[f], low[c]), high[c])
    return x
