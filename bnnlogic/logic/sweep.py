"""Exhaustive sweep of a box's threshold cells, deduplicated at the first hidden layer.

Inside a box [lo, hi] of raw inputs, feature f with free coding thresholds t_1 < ... < t_n
(lo_f < t <= hi_f) takes one of n + 1 *cells*: exactly the first c thresholds met.  Every input
bit is fixed inside a cell, so one network evaluation per cell decides the whole box.

The cells are visited block by block (``_walk``): a few *inner* digits that move layer 1's
margins least form a block of B cells, and the walk goes over the other (*outer*) digits in
reflected mixed-radix Gray order, so consecutive outer cells differ in one input bit u_b and
the first hidden layer is updated, not recomputed,

    u_b flips by d = +-1:   acc_1 += d * A_1[F_1, b]        (F_l: the free neurons of layer l)

At each outer cell the block's B cells are compared at once against precomputed margin
deltas, only for the neurons the block can flip (``_block``), and each distinct layer-1
pattern t_1[F_1] is recorded once, in a compiled hash table behind a small cache, with a cell
that showed it.  Many cells share a pattern (fashion mlp-small at eps 5: 2^26 cells, 110K
patterns) and the rest of the network sees the cell only through it, so the layers above run
once per distinct pattern, batched and deduplicated again layer by layer (``_decide``):

    t_{l+1} = [acc_{l+1}^0 + (t_l - t_l^0) A_{l+1}[F_{l+1}, F_l]^T >= k_{l+1}]
    score   = scale * (acc_out^0 + (t_L - t_L^0) A_out[:, F_L]^T) + offset,  argmax (ties low;
              with the tie rule ``adversarial`` any maximal class counts)

with ^0 the values at the box's low corner (every free bit 0; one reference forward pass).
Neurons outside F_l are fixed over the box by interval bounds (``bounds.propagate``), so their
contribution sits in acc^0; a max-pool is the threshold neuron ``sum_window u >= 1``.  Every
sum is an exact integer (float32 products of {-1, 0, 1} matrices, partial sums below 2^24),
so the sweep is a complete decision procedure for "some input of the box is predicted in
``bad``".  The walk runs in chunks (resumable state) and the table is decided and emptied
when full, so a deadline is checked often and memory stays bounded (``MEMORY``,
``BLOCK_MEMORY``).

Where nearly every cell shows a new pattern (``DEEP_RATIO``: the whole domain of a dense
net), the table saves nothing and each pattern costs a product; from the next decision on the
walk then starts again and carries every layer incrementally, cell by cell in Gray order over
all digits (``_walk_deep``): the neurons that flip in layer l update layer l+1's sums by their
rows, and the output is checked when it changes.  Its fastest digits are those whose steps
flip the fewest rows' worth of neurons (``_deep_order``).
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from functools import cached_property

import numba
import numpy as np
import scipy.sparse

from ..ir import IR, Conv, Dense, MaxPool, free_thresholds, in_classes
from ..infer.kernels import _borrow
from .bounds import propagate
from .encoding import _gather, cell_intervals

CHUNK = 1 << 20  # cells per kernel call between deadline checks (10-40 ms at 10-40 ns per cell)
#: ... of the deep walk (0.3 us per cell: 20 ms; a chunk of CHUNK steps kept a race that the
#: attack won in milliseconds waiting 0.3 s for branch and bound's sweep to stop)
DEEP_CHUNK = 1 << 16
TABLE = 1 << 20  # distinct layer-1 patterns held (at most) before they are decided and dropped
TABLE0 = 1 << 12  # slots of the table at the start: it doubles (its new patterns decided each time) up to its cap
MEMORY = 1 << 28  # bytes: cap of the pattern table
#: bytes: cap of each block of patterns ``_decide`` multiplies (its float32 copies and products;
#: 2^28 let two branch-and-bound threads on conv-small hold 180 MB of blocks at once)
BLOCK_MEMORY = 1 << 26
SPARSE = 0.05  # layers above the first whose weight matrix has fewer non-zeros than this are multiplied sparse
GAVE_UP = -2  # ``_decide``: the deadline passed or the stop event was set
#: top bit of a table entry's index column: the pattern was already decided (not in ``bad``)
DECIDED = np.uint64(1 << 63)
#: the walk starts again through every layer (``_walk_deep``) once at least ``DEEP_CELLS``
#: cells were met and at least this share of them showed a new layer-1 pattern (each costs a
#: product through the layers above, 1-1.5 us on fashion conv-small).  Measured: conv-small
#: boxes of 2^20-2^21 cells show 25-37% new patterns, 360-525 ns per cell with the block walk,
#: 190-290 ns deep (branch and bound on image 18 at eps 3: 12.8 s at 0.5, 9.9 s at 0.2); the
#: whole domain of digits mlp:200,100 97% (1.3-1.7 us against 0.30-0.33); fashion mlp-small's
#: boxes 0.2-1.2% overall, but some of its 2^24-cell leaves more than 10% in their first 2^15
#: cells (at 0.1 two leaves of image 11 at eps 5 went deep: 4.5 -> 8.7 s)
DEEP_RATIO = 0.2
DEEP_CELLS = 1 << 15
#: cells of a block: the walk goes over the other digits, and at each of their cells records
#: the distinct layer-1 patterns of a block of inner digits at once (``_block``)
BLOCK = 1 << 13
#: slots of the direct-mapped cache in front of the pattern table (``_record``)
CACHE_BITS = 16
#: the neurons a block can flip are packed into one word when at most this many (else each
#: cell's key is built in full)
WIDE = 64
#: ... if the layers above the first hold at most this many weights (dense int8 copies, each row
#: also negated: twice this many bytes)
DEEP_WEIGHTS = 1 << 24


def _rows(layer: Dense | Conv | MaxPool, in_shape: tuple[int, ...], rows: np.ndarray
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flat fan-in indices (r, fan), weights (r, fan) and thresholds (r,) of the given flat
    neuron indices of a layer: its neurons as ``sum_p w[r,p] u[idx[r,p]] >= k[r]`` (a conv's
    padded positions, constant 0 bits, get weight 0 on input 0)."""
    if isinstance(layer, Dense):
        idx = np.broadcast_to(np.arange(layer.n_in), (len(rows), layer.n_in))
        return idx, layer.A[rows].astype(np.int32), layer.k[rows]
    G = _gather(layer, in_shape)
    if isinstance(layer, Conv):
        o, p = np.divmod(rows, G.shape[0])
        idx, w = G[p], layer.A.reshape(len(layer.A), -1)[o].astype(np.int32)
        pad = idx == int(np.prod(in_shape))
        return np.where(pad, 0, idx), np.where(pad, 0, w), layer.flat_k(in_shape)[rows]
    return G[rows], np.ones(G[rows].shape, dtype=np.int32), np.ones(len(rows), dtype=np.int64)


@dataclass
class _Plan:
    """The sweep's compiled form for one box."""

    radix: np.ndarray  # (F,) cells per free feature (digit; features in index order), n_f + 1
    bitcol: np.ndarray  # (F, nmax) row of W0 (free input bit) of the digit's c-th threshold
    W0: np.ndarray  # (|F_0|, |F_1|) int32: the first hidden layer's weights from the free input bits F_0
    acc0: list[np.ndarray]  # per hidden layer: (|F_l|,) int64 sums at the low corner
    k: list[np.ndarray]  # per hidden layer: (|F_l|,) int64 thresholds
    W_out: np.ndarray  # (|F_L|, C) float32
    mats: list  # per hidden layer above the first: (|F_{l-1}|, |F_l|) float32, dense or CSC when sparser than SPARSE
    acc_out0: np.ndarray  # (C,) int64
    scale: int
    offset: np.ndarray  # (C,) int64

    @cached_property
    def on0(self) -> list[np.ndarray]:
        """Free neurons' outputs at the low corner, per hidden layer."""
        return [a >= k for a, k in zip(self.acc0, self.k)]

    @cached_property
    def contrib(self) -> list[np.ndarray]:
        """Per digit j, (r_j, |F_1|) int64: layer 1's sums at each of its cells, less those at
        cell 0 (cell c sets the free bits ``bitcol[j, :c]``)."""
        n1 = self.W0.shape[1]
        return [np.cumsum(np.vstack([np.zeros((1, n1), np.int64), self.W0[self.bitcol[j, :r - 1]]]), axis=0)
                for j, r in enumerate(self.radix.tolist())]

    def above(self, l: int, T: np.ndarray) -> np.ndarray:
        """The free neurons of hidden layer l + 1 (bool (m, |F_{l+1}|)) from those of layer l
        (T, bool (m, |F_l|); layers from 0): ``(T - t_l^0) M_{l+1} >= k_{l+1} - acc_{l+1}^0``."""
        return _product(T, self.on0[l], self.mats[l]) >= (self.k[l + 1] - self.acc0[l + 1]).astype(np.float32)


def _plan(ir: IR, lo: np.ndarray, hi: np.ndarray) -> _Plan:
    """Digits (free features, their cells' bits), free neurons per layer (interval bounds over
    the box), the weights between consecutive free sets, and the sums at the box's low corner,
    where every free input bit is 0 (digit 0 everywhere).  A network without hidden layers gets
    an identity layer t = [u_b >= 1] over the free bits, so the walk always has a layer 1."""
    c = ir.coding
    free = c.free(lo, hi)  # (M, d)
    feats = np.nonzero(free.any(axis=0))[0]
    n_per = free[:, feats].sum(axis=0)
    bits = np.nonzero(free.reshape(-1))[0]  # flat level-major bit indices: rows of W0
    col = np.full(free.size, -1, dtype=np.int64)
    col[bits] = np.arange(len(bits))
    bitcol = np.zeros((len(feats), max(int(n_per.max(initial=0)), 1)), dtype=np.int64)
    for i, f in enumerate(feats):  # thresholds increase with the level m
        ms = np.nonzero(free[:, f])[0]
        bitcol[i, : len(ms)] = col[ms * c.n_features + f]
    acts = ir.activations(lo[None])
    bnds = propagate(ir, lo, hi)
    shapes = ir.shapes()
    Ws, accs, ks = [], [], []
    prev_free = bits
    for l, layer in enumerate(ir.layers):
        blo, bhi = bnds[l + 1]
        rows = np.nonzero((blo != bhi).reshape(-1))[0]
        idx, w, k = _rows(layer, shapes[l], rows)
        u = acts[l].reshape(-1).astype(np.int64)
        accs.append(np.sum(w * u[idx], axis=1).astype(np.int64))
        ks.append(np.asarray(k, dtype=np.int64))
        Ws.append(_flip_weights(idx, w, prev_free, acts[l].size))
        prev_free = rows
    if not ir.layers:
        Ws, accs, ks = [np.eye(len(bits), dtype=np.int32)], [np.zeros(len(bits), np.int64)], [np.ones(len(bits), np.int64)]
    out = ir.output
    u = acts[-1].reshape(-1).astype(np.int64)
    return _Plan(np.asarray(n_per + 1, dtype=np.int64), bitcol, np.ascontiguousarray(Ws[0], dtype=np.int32),
                 accs, ks, np.ascontiguousarray(out.A[:, prev_free].T, dtype=np.float32),
                 [_product_matrix(W) for W in Ws[1:]],
                 out.A.astype(np.int64) @ u, int(out.scale), out.offset.astype(np.int64))


def _product_matrix(W: np.ndarray):
    """W as float32 for ``T @ W``: a CSC matrix when at most ``SPARSE`` of it is non-zero (a
    conv or pool layer's free neurons see few of the previous layer's), else dense."""
    if W.size and np.count_nonzero(W) <= SPARSE * W.size:
        return scipy.sparse.csc_matrix(W, dtype=np.float32)
    return W.astype(np.float32)


def _flip_weights(idx: np.ndarray, w: np.ndarray, prev_free: np.ndarray, n_prev: int) -> np.ndarray:
    """(len(prev_free), r) int32: weight of each free input of the previous layer into each row."""
    pos = np.full(n_prev, -1, dtype=np.int64)
    pos[prev_free] = np.arange(len(prev_free))
    W = np.zeros((len(prev_free), len(idx)), dtype=np.int32)
    j = pos[idx]  # (r, fan)
    r, p = np.nonzero(j >= 0)
    np.add.at(W, (j[r, p], r), w[r, p])
    return W


@dataclass
class _Blocks:
    """The walk's split of the digits: ``inner`` digits (a block of B cells, enumerated at
    every cell of the Gray walk over the ``outer`` digits) and the block's margin deltas."""

    inner: np.ndarray  # digits of the block, the first fastest in a block's cell index c
    outer: np.ndarray  # the walk's digits, in plan order
    DT: np.ndarray  # (|F_1|, B) int32: layer-1 margin change of block cell c from the block's low corner
    imin: np.ndarray  # (|F_1|,) int32: min over c of DT[:, c]
    imax: np.ndarray  # (|F_1|,) int32: max over c

    @property
    def size(self) -> int:
        return self.DT.shape[1]

    def digits(self, cell: int, radix: np.ndarray) -> np.ndarray:
        """The digits (plan order) of the cell ``o * B + c`` of the block walk."""
        o, c = divmod(cell, self.size)
        d = np.zeros(len(radix), dtype=np.int64)
        d[self.outer] = _gray_digits(o, radix[self.outer])
        d[self.inner] = np.unravel_index(c, radix[self.inner][::-1])[::-1] if len(self.inner) else ()
        return d


def _blocks(p: _Plan, limit: int) -> _Blocks:
    """Inner digits: those moving layer 1's margins least (sum over free neurons of the range of
    their contribution) while their cells multiply to at most ``limit``.  Inside a block few
    neurons change, so ``_block`` compares only those, and its distinct patterns are few."""
    n1, contrib = p.W0.shape[1], p.contrib
    width = np.array([(c.max(axis=0) - c.min(axis=0)).sum() for c in contrib])
    inner, B = [], 1
    for j in np.argsort(width, kind="stable"):
        if B * p.radix[j] <= limit:
            inner.append(int(j))
            B *= int(p.radix[j])
    inner = np.array(inner, dtype=np.int64)
    D = np.zeros((1, n1), np.int64)
    for j in inner:  # later digits slower: c = c_0 + r_0 (c_1 + r_1 (...))
        D = (contrib[j][:, None, :] + D[None]).reshape(len(contrib[j]) * len(D), n1)
    DT = np.ascontiguousarray(D.T, dtype=np.int32)
    return _Blocks(inner, np.setdiff1d(np.arange(len(p.radix)), inner), DT, DT.min(axis=1), DT.max(axis=1))


@numba.njit(cache=True, inline="always")
def _hash(key):
    h = np.uint64(0x9E3779B97F4A7C15)
    for w in key:
        h = (h ^ w) * np.uint64(0xBF58476D1CE4E5B9)
        h ^= h >> np.uint64(31)
    return h


@numba.njit(cache=True, inline="always")
def _holds(table, h, key):
    """Row h of ``table`` starts with the words of ``key``."""
    for q in range(len(key)):
        if table[h, q] != key[q]:
            return False
    return True


@numba.njit(cache=True, nogil=True)
def _insert(table, key, value):
    """Put ``key`` (uint64 words) into the open-addressing table (cap, words + 1) if absent,
    with ``value`` (non-zero: a Gray index + 1, maybe with ``DECIDED`` set) in its last column
    (0 marks an empty slot).  True if it was new."""
    words, mask = len(key), np.uint64(len(table) - 1)
    h = _hash(key) & mask
    while table[h, words] != 0:
        if _holds(table, h, key):
            return False
        h = (h + np.uint64(1)) & mask
    for q in range(words):
        table[h, q] = key[q]
    table[h, words] = value
    return True


@numba.njit(cache=True, inline="always")
def _record(table, cache, key, value):
    """``_insert``, behind ``cache`` (slots, words + 1): a direct-mapped cache of keys already
    put into the table (or put there and decided since), which the table's slot needs not be
    looked up for.  The cache stays small enough for a core's own cache, where the table does
    not; the patterns of neighbouring blocks repeat.  True if the key was new to the table."""
    words = len(key)
    h = _hash(key) & np.uint64(len(cache) - 1)
    if cache[h, words] and _holds(cache, h, key):
        return False
    for q in range(words):
        cache[h, q] = key[q]
    cache[h, words] = 1
    return _insert(table, key, value)


@numba.njit(cache=True, nogil=True)
def _rehash(old, new):
    """Move every key of ``old`` into the (larger, empty) table ``new``."""
    words = old.shape[1] - 1
    for h in range(len(old)):
        if old[h, words] != 0:
            _insert(new, old[h, :words], old[h, words])


@numba.njit(cache=True, inline="always")
def _step(digit, direc, radix, bitcol):
    """Move the Gray walk to its next cell: the lowest digit that can move in its direction
    moves (the others below it turn around).  Returns the free input bit that flips, with
    its sign (+1: 0 -> 1) as the lowest bit (``2 * bit + 1`` or ``2 * bit``); -1 after the
    last cell."""
    j = 0
    nv = 0
    while j < len(digit):
        nv = digit[j] + direc[j]
        if 0 <= nv < radix[j]:
            break
        direc[j] = -direc[j]
        j += 1
    if j == len(digit):
        return -1
    up = direc[j] > 0
    b = bitcol[j, digit[j]] if up else bitcol[j, nv]
    digit[j] = nv
    return 2 * b + up


@numba.njit(cache=True, inline="always")
def _add_row(margin, row, sign, q, w):
    """``margin[q:q+w] += sign * row[q:q+w]`` (w <= 64), branch-free; the neurons whose margin
    changed sign (flipped) as a 64-bit mask, neuron q + i at bit i."""
    mq, rq = _borrow(margin, q, w), _borrow(row, q, w)
    delta = np.uint64(0)
    for i in range(w):
        old = mq[i]
        new = old + sign * rq[i]
        mq[i] = new
        delta |= np.uint64((old ^ new) < 0) << np.uint64(i)
    return delta


@numba.njit(cache=True, nogil=True)
def _block(o, margin, DT, imin, imax, table, cache, sub, seen, stamps, U, base, key, wide):
    """Record the distinct layer-1 patterns of the inner block of the outer cell ``o`` into the
    table (``_record``); returns how many were new to it.

    ``margin``: layer 1's margins (acc_1 - k_1) at the outer cell with every inner digit at 0;
    ``DT`` (|F_1|, B) the inner cells' margin deltas (cell c: inner digits in mixed radix, the
    first fastest), ``imin``/``imax`` (|F_1|,) their per-neuron minimum and maximum.  Neuron i
    is on over the whole block when ``margin_i + imin_i >= 0``, off when ``margin_i + imax_i <
    0``; only the other neurons U are compared per cell, ``[DT[u, c] >= -margin_u]``, packed as
    a sub-key of |U| bits (when |U| <= ``wide``; else each cell's key is built in full), and
    each distinct sub-key (an open-addressing set ``seen`` of at least 2B slots, ``stamps``
    marking this block's) becomes one full key.  A pattern's value is its cell ``o * B + c`` + 1."""
    n, B = len(margin), DT.shape[1]
    for q in range(len(base)):
        base[q] = 0
    nu = 0
    for i in range(n):
        if margin[i] + imin[i] >= 0:
            base[i >> 6] |= np.uint64(1) << np.uint64(i & 63)
        elif margin[i] + imax[i] >= 0:
            U[nu] = i
            nu += 1
    rep = np.uint64(o * B + 1)
    if nu == 0:
        return _record(table, cache, base, rep)
    added = 0
    if nu > wide:  # too many to pack: each cell's key in full
        for c in range(B):
            key[:] = base
            for t in range(nu):
                u = U[t]
                if DT[u, c] >= -margin[u]:
                    key[u >> 6] |= np.uint64(1) << np.uint64(u & 63)
            added += _record(table, cache, key, rep + np.uint64(c))
        return added
    for c in range(B):
        sub[c] = 0
    for t in range(nu):
        col, thr, bit = _borrow(DT, U[t] * B, B), -margin[U[t]], np.uint64(1) << np.uint64(t)
        for c in range(B):
            sub[c] |= bit if col[c] >= thr else np.uint64(0)
    # each distinct sub-key once: an open-addressing set of len(seen) slots, a slot taken in this
    # block when its stamp is o + 1 (no clearing between blocks)
    mask, stamp = np.uint64(len(seen) - 1), o + 1
    for c in range(B):
        s = sub[c]
        h = ((s + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15)) >> np.uint64(32) & mask
        new = True
        while stamps[h] == stamp:
            if seen[h] == s:
                new = False
                break
            h = (h + np.uint64(1)) & mask
        if not new:
            continue
        seen[h], stamps[h] = s, stamp
        key[:] = base
        for t in range(nu):  # branch-free: the bits are random, a branch mispredicts (2x slower)
            key[U[t] >> 6] |= ((s >> np.uint64(t)) & np.uint64(1)) << np.uint64(U[t] & 63)
        added += _record(table, cache, key, rep + np.uint64(c))
    return added


@numba.njit(cache=True, nogil=True)
def _walk(steps, state, digit, direc, radix, bitcol, W, margin, DT, imin, imax, table, cache, sub, seen, stamps, U,
          base, key, wide):
    """Advance the Gray walk over the outer digits by up to ``steps`` outer cells, recording
    the distinct layer-1 patterns of each one's inner block (``_block``).

    ``W``: (|F_0|, |F_1|) C-contiguous; ``margin = acc_1 - k_1`` at the current outer cell (a
    neuron is on iff its margin is >= 0); ``state = [Gray index of the current outer cell,
    patterns in the table, whether its block is recorded]``; ``table``: see ``_insert``.
    Returns 0: step budget spent, 1: the table has no room for another block (decide its new
    patterns, then grow it or empty it; then call again), 2: every cell visited."""
    n, B = len(margin), DT.shape[1]
    for s in range(steps):
        if state[2] == 0:
            if 2 * (state[1] + B) > len(table):
                return 1
            state[1] += _block(state[0], margin, DT, imin, imax, table, cache, sub, seen, stamps, U, base, key, wide)
            state[2] = 1
        b = _step(digit, direc, radix, bitcol)
        if b < 0:
            return 2
        sign = np.int32(1) if b & 1 else np.int32(-1)
        row = _borrow(W, (b >> 1) * n, n)
        for i in range(n):
            margin[i] += sign * row[i]
        state[0] += 1
        state[2] = 0
    return 0


#: de Bruijn sequence B(2, 6) and the bit index of each of its 6-bit windows (``_lowest_bit``)
_DEBRUIJN = np.uint64(0x03F79D71B4CB0A89)
_DEBRUIJN_INDEX = np.zeros(64, dtype=np.int64)
_DEBRUIJN_INDEX[[(((1 << i) * 0x03F79D71B4CB0A89) & (2**64 - 1)) >> 58 for i in range(64)]] = np.arange(64)


@numba.njit(cache=True, inline="always")
def _lowest_bit(w):
    """Index of the lowest set bit of the non-zero uint64 ``w`` (its isolated bit times a de
    Bruijn sequence puts a distinct 6-bit window on top)."""
    return _DEBRUIJN_INDEX[((w & (~w + np.uint64(1))) * _DEBRUIJN) >> np.uint64(58)]


@numba.njit(cache=True, inline="always")
def _bad_scores(acc, scale, offset, bad, adversarial):
    """``ir.in_classes`` of one row of scores ``scale * acc + offset``."""
    top, arg, top_bad, top_good = 0, -1, 0, 0
    any_bad, any_good = False, False
    for c in range(len(acc)):
        v = scale * acc[c] + offset[c]
        if arg < 0 or v > top:
            top, arg = v, c
        if bad[c]:
            top_bad = v if not any_bad or v > top_bad else top_bad
            any_bad = True
        else:
            top_good = v if not any_good or v > top_good else top_good
            any_good = True
    if adversarial and any_bad and any_good:
        return top_bad >= top_good
    return bad[arg]


@numba.njit(cache=True, nogil=True)
def _walk_deep(steps, state, digit, direc, radix, bitcol, W, margin, size, U, uoff, um, moff, on, Wout, acc,
               scale, offset, bad, adversarial, fa, fb):
    """The Gray walk carried through every layer: each step updates layer 1's margins by the
    flipped input bit's row, then each layer above by the rows of the neurons that flipped
    below it (``d = +-1``: ``margin_{l+1} += d * M_{l+1}[i, :]``), and the output sums by
    ``d * W_out[i, :]``; a cell is decided when its output sums change.  For boxes where
    nearly every cell shows a new layer-1 pattern (the whole domain of a dense net), where
    ``_walk``'s table saves nothing and deciding its patterns costs a product per cell.

    ``size``: free neurons per hidden layer (layer 1 first); ``U`` (flat int8) the signed weight
    matrices of the layers above the first, matrix l at ``uoff[l]``, C order (2 |F_l|, |F_{l+1}|)
    with row 2i = -M[i] and row 2i + 1 = +M[i], so that neuron i turning to ``on`` adds row
    2i + on (no branch on the sign: 12% faster, 287 -> 251 ns per cell on digits mlp:200,100);
    ``um`` (int16) their margins and ``on`` (bool) their outputs, layer l at ``moff[l]``;
    ``Wout`` (2 |F_L|, C) int32 signed the same way; ``acc`` (C,) int64 output sums of the
    current cell; ``fa``, ``fb`` scratch (max |F_l|,).  ``state[0]``: the current cell's Gray
    index.  Returns 0: step budget spent, 2: every cell visited, 3: the current cell is
    predicted in ``bad``."""
    if _bad_scores(acc, scale, offset, bad, adversarial):
        return 3
    n1, nup = len(margin), len(uoff) - 1
    for s in range(steps):
        b = _step(digit, direc, radix, bitcol)
        if b < 0:
            return 2
        state[0] += 1
        sign = np.int32(1) if b & 1 else np.int32(-1)
        row = _borrow(W, (b >> 1) * n1, n1)
        nf = 0
        for q in range(0, n1, 64):
            delta = _add_row(margin, row, sign, q, min(n1 - q, 64))
            while delta:
                i = q + _lowest_bit(delta)
                delta &= delta - np.uint64(1)
                fa[nf] = 2 * i + (margin[i] >= 0)
                nf += 1
        for l in range(nup):
            if nf == 0:
                break
            n = size[l + 1]
            m = _borrow(um, moff[l], n)
            for f in range(nf):  # fa[f] = 2 i + on: the signed row of neuron i
                r = _borrow(U, uoff[l] + fa[f] * n, n)
                for j in range(n):
                    m[j] += r[j]
            t = _borrow(on, moff[l], n)
            nf = 0
            for q in range(0, n, 64):
                w = min(n - q, 64)
                mq, tq = _borrow(m, q, w), _borrow(t, q, w)
                delta = np.uint64(0)
                for j in range(w):
                    delta |= np.uint64((mq[j] >= 0) != tq[j]) << np.uint64(j)
                while delta:
                    j = q + _lowest_bit(delta)
                    delta &= delta - np.uint64(1)
                    t[j] = not t[j]
                    fb[nf] = 2 * j + t[j]
                    nf += 1
            fa, fb = fb, fa
        if nf == 0:
            continue
        for f in range(nf):
            for c in range(len(acc)):
                acc[c] += Wout[fa[f], c]
        if _bad_scores(acc, scale, offset, bad, adversarial):
            return 3
    return 0


def _unique_rows(V: np.ndarray) -> np.ndarray:
    """Index of the first occurrence of each distinct row of a bool matrix (m, n), in row order
    (rows packed to uint64 words, then one pass through a hash set: ``_first_rows``)."""
    if V.shape[1] == 0:
        return np.zeros(min(len(V), 1), dtype=np.int64)
    P = np.packbits(V, axis=1, bitorder="little")
    P = np.pad(P, ((0, 0), (0, -P.shape[1] % 8)))
    return _first_rows(np.ascontiguousarray(P).view(np.uint64))


@numba.njit(cache=True, nogil=True)
def _first_rows(P):
    """Rows r of P (m, words) uint64 that differ from every row before them, in order."""
    m = len(P)
    size = 1
    while size < 2 * m:
        size *= 2
    mask = np.uint64(size - 1)
    slot = np.full(size, -1, np.int64)
    out = np.empty(m, np.int64)
    k = 0
    for r in range(m):
        row = P[r]
        h = _hash(row) & mask
        while slot[h] >= 0 and not _holds(P, slot[h], row):
            h = (h + np.uint64(1)) & mask
        if slot[h] < 0:
            slot[h] = r
            out[k] = r
            k += 1
    return out[:k]


def _expired(deadline: float | None, stop: threading.Event | None) -> bool:
    """``time.perf_counter()`` is past ``deadline``, or ``stop`` is set."""
    return (deadline is not None and time.perf_counter() > deadline) or (stop is not None and stop.is_set())


def _decide(p: _Plan, P: np.ndarray, n: int, rep: np.ndarray, bad: np.ndarray,
            deadline: float | None = None, stop: threading.Event | None = None, ties: str = "low") -> int:
    """Gray index of a cell predicted in ``bad`` among the distinct layer-1 patterns ``P``
    (m, words) uint64, neuron i of F_1 at bit i % 64 of word i // 64, n = |F_1| (``rep``: the
    Gray index of a cell showing each), -1 if none, or ``GAVE_UP``.  Runs in blocks of rows
    whose float32 and int64 matrices fit in ``BLOCK_MEMORY`` bytes (a conv layer can have
    thousands of free neurons), checking ``deadline`` and ``stop`` between blocks."""
    widest = max(1, n, p.W_out.shape[1], *(M.shape[1] for M in p.mats))
    step = max(1, BLOCK_MEMORY // (16 * widest))
    for s in range(0, len(P), step):
        if _expired(deadline, stop):
            return GAVE_UP
        by = np.ascontiguousarray(P[s: s + step], dtype="<u8").view(np.uint8)
        T = np.unpackbits(by, axis=1, count=n, bitorder="little").view(bool)
        hit = _decide_block(p, T, rep[s: s + step], bad, ties)
        if hit >= 0:
            return hit
    return -1


@numba.njit(cache=True, nogil=True)
def _sparse_product(T, t0, indptr, indices, data, out):
    """out[r, j] = sum_{q in column j} data[q] * (T[r, indices[q]] - t0[indices[q]]) (CSC columns)."""
    for r in range(T.shape[0]):
        for j in range(out.shape[1]):
            s = np.float32(0)
            for q in range(indptr[j], indptr[j + 1]):
                i = indices[q]
                s += data[q] * (np.float32(T[r, i]) - np.float32(t0[i]))
            out[r, j] = s


def _product(T: np.ndarray, t0: np.ndarray, M) -> np.ndarray:
    """(T - t0) @ M in float32 (exact: integer partial sums below 2^24) for bool T (m, n), the
    low corner's bits t0 (n,) and M (n, r): BLAS when dense, a compiled loop over the
    non-zeros of each column when ``M`` is sparse (CSC)."""
    if scipy.sparse.issparse(M):
        out = np.empty((len(T), M.shape[1]), dtype=np.float32)
        _sparse_product(np.ascontiguousarray(T), np.asarray(t0), M.indptr, M.indices, M.data, out)
        return out
    return (T.astype(np.float32) - t0) @ M


def _decide_block(p: _Plan, T: np.ndarray, rep: np.ndarray, bad: np.ndarray, ties: str = "low") -> int:
    """``_decide`` on one block of patterns T (m, |F_1|) bool."""
    for l in range(len(p.mats)):
        V = p.above(l, T)
        keep = _unique_rows(V)
        T, rep = V[keep], rep[keep]
    S = p.acc_out0 + np.rint((T.astype(np.float32) - p.on0[-1]) @ p.W_out).astype(np.int64)
    hit = np.nonzero(in_classes(p.scale * S + p.offset, bad, ties))[0]
    return int(rep[hit[0]]) if len(hit) else -1


def _deep_state(p: _Plan, margin: np.ndarray) -> tuple | None:
    """``_walk_deep``'s arrays for the cell whose layer-1 margins are ``margin``: the free
    neurons' margins and outputs of every layer above (one forward pass from the low corner's
    sums), the output sums, the weights of the layers above as int8.  None when a layer above
    the first is sparse (a conv or pool layer: the block walk serves those), the layers above
    hold more than ``DEEP_WEIGHTS`` weights, or a margin might not fit int16."""
    if any(scipy.sparse.issparse(M) for M in p.mats) or sum(M.size for M in p.mats) > DEEP_WEIGHTS:
        return None
    # int8 weights, int16 margins: a free neuron's margin takes both signs and moves by at most
    # sum_i |w_i| over its free inputs, so |margin| stays below that sum
    if any(M.size and (np.abs(M).max() > 127 or np.abs(M).sum(axis=0).max() >= 1 << 15) for M in p.mats):
        return None
    on0 = p.on0
    t = margin >= 0
    ums, ons = [], []
    for l, M in enumerate(p.mats, start=1):
        m = p.acc0[l] - p.k[l] + (t.astype(np.int64) - on0[l - 1]) @ M.astype(np.int64)
        t = m >= 0
        ums.append(m)
        ons.append(t)
    acc = p.acc_out0 + (t.astype(np.int64) - on0[-1]) @ p.W_out.astype(np.int64)
    size = np.array([len(k) for k in p.k], dtype=np.int64)
    U = np.concatenate([_signed_rows(M.astype(np.int8)).ravel() for M in p.mats] + [np.zeros(0, np.int8)])
    uoff = np.cumsum([0] + [2 * M.size for M in p.mats]).astype(np.int64)
    moff = np.cumsum([0] + [len(m) for m in ums]).astype(np.int64)
    um = np.concatenate(ums + [np.zeros(0, np.int64)]).astype(np.int16)  # fits: checked above
    on = np.concatenate(ons + [np.zeros(0, bool)])
    return size, U, uoff, um, moff, on, _signed_rows(p.W_out.astype(np.int32)), acc.astype(np.int64)


def _deep_order(p: _Plan, moves: int = 1024, seed: int = 0) -> np.ndarray:
    """The digits (plan order) in the deep walk's order, the cheapest step first.  A reflected
    Gray walk moves its first digit every step and digit j every r_0 ... r_{j-1} steps, so the
    walk's work is dominated by the steps of its first digits.  A step of digit j costs the
    rows of the neurons it flips, ``sum_l flips_l(j) |F_{l+1}|`` (|F_{L+1}|: the classes);
    ``flips_l(j)``, free neurons of layer l that a move of digit j by one cell flips, is
    averaged over 8-64 random cells, ``moves`` moves in all (``seed``: the order is
    deterministic; 1-4 ms on dense layers of 200 and 100 neurons).  Measured on leaves of
    2^20 cells of fashion conv-small image 11 at eps 5: 250-310 ns per cell in plan order,
    170-200 in this one."""
    F = len(p.radix)
    if F < 2:
        return np.arange(F)
    rng = np.random.default_rng(seed)
    samples = max(8, min(64, moves // F))
    D = rng.integers(0, p.radix, size=(samples, F))
    up = D + np.where(D < p.radix - 1, 1, -1)  # each digit one cell over (every radix is at least 2)
    cum = p.contrib
    m = p.acc0[0] - p.k[0] + sum(cum[j][D[:, j]] for j in range(F))  # (samples, |F_1|)
    moved = np.concatenate([m + cum[j][up[:, j]] - cum[j][D[:, j]] for j in range(F)])  # (F samples, |F_1|)
    T, T1 = m >= 0, moved >= 0
    work = np.zeros(F)
    for l, width in enumerate([len(k) for k in p.k[1:]] + [len(p.acc_out0)]):
        work += (T1.reshape(F, samples, -1) != T[None]).sum(axis=2).mean(axis=1) * width
        if l < len(p.mats):
            T, T1 = p.above(l, T), p.above(l, T1)
    return np.argsort(work, kind="stable")


def _signed_rows(M: np.ndarray) -> np.ndarray:
    """(2n, m) C-contiguous: row 2i = -M[i], row 2i + 1 = M[i] (``_walk_deep``)."""
    return np.ascontiguousarray(np.stack([-M, M], axis=1).reshape(2 * M.shape[0], M.shape[1]))


def _gray_digits(i: int, radix: np.ndarray) -> np.ndarray:
    """The digits of the ``i``-th cell of the walk: with b_j the mixed-radix digits of i (digit
    0 fastest) and P_j = r_0 ... r_j, digit j is b_j if floor(i / P_j) is even, else r_j - 1 - b_j
    (digit j reverses each time a higher digit moves)."""
    g = np.zeros(len(radix), dtype=np.int64)
    P = 1
    for j, r in enumerate(radix.tolist()):
        b = (i // P) % r
        P *= r
        g[j] = b if (i // P) % 2 == 0 else r - 1 - b
    return g


def n_cells(thresholds: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """log2 of the number of threshold cells of boxes (n, d) (or one box (d,))."""
    within = (thresholds[:, None, :] > np.atleast_2d(lo)[None]) & (thresholds[:, None, :] <= np.atleast_2d(hi)[None])
    return np.log2(within.sum(axis=0) + 1).sum(axis=1)


def _cell_values(thresholds: np.ndarray, lo: np.ndarray, hi: np.ndarray, probe: np.ndarray
                 ) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """The free features of the box [lo, hi] (the digits, in ``_plan``'s order), per free
    feature the raw value nearest ``probe`` in each of its cells (cell c: exactly the first c
    free thresholds met), and ``probe`` clipped into the box."""
    base = np.clip(np.asarray(probe, dtype=np.int64).reshape(-1), lo, hi)
    free = free_thresholds(thresholds, lo, hi)
    feats = np.nonzero(free.any(axis=0))[0]
    values = [np.clip(base[f], *cell_intervals(lo[f], hi[f], thresholds[:, f][free[:, f]])) for f in feats]
    return feats, values, base


def cell_inputs(thresholds: np.ndarray, lo: np.ndarray, hi: np.ndarray, probe: np.ndarray,
                batch: int = 1 << 14):
    """Every threshold cell of the box [lo, hi] (d,) as a raw input, in batches (n, d): per free
    feature, the cell's value nearest ``probe`` (cells in mixed-radix order, feature 0 fastest);
    uint8 when the box lies in 0..255.  For checking the sweep by plain concrete inference,
    one input per cell."""
    lo, hi = np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64)
    feats, values, base = _cell_values(thresholds, lo, hi, probe)
    if lo.min(initial=0) >= 0 and hi.max(initial=0) <= 255:  # uint8 rows: 8x less to write
        base = base.astype(np.uint8)
    radix = np.array([len(v) for v in values], dtype=np.int64)
    total = int(np.prod(radix))
    for start in range(0, total, batch):
        idx = np.arange(start, min(total, start + batch))
        X = np.repeat(base[None], len(idx), axis=0)
        for f, v, P in zip(feats, values, np.cumprod(np.concatenate([[1], radix[:-1]]))):
            X[:, f] = v[(idx // P) % len(v)]
        yield X


def _block_sweep(p: _Plan, margin0: np.ndarray, bad: np.ndarray, deadline: float | None,
                 stop: threading.Event | None, ties: str) -> tuple[str, object, int]:
    """``sweep``'s block walk over the plan's cells: ``("sat", digits (plan order), cells)``,
    ``("unsat" | "unknown", None, cells)``, or ``("deep", _deep_state, cells)`` once nearly
    every cell showed a new layer-1 pattern (the deep walk should start over)."""
    n, words = len(margin0), max(1, (len(margin0) + 63) // 64)
    cap = min(2 * TABLE, 1 << max(1, int(MEMORY // (8 * (words + 1))).bit_length() - 1))  # a power of 2
    blk = _blocks(p, max(1, min(BLOCK, cap // 2)))  # a block fits in a table that is at most half full
    B, radix, bitcol = blk.size, p.radix[blk.outer], p.bitcol[blk.outer]
    slots = 1 << (B - 1).bit_length()  # a power of 2, at least B
    table = np.zeros((max(min(TABLE0, cap), 2 * slots), words + 1), np.uint64)  # a power of 2
    state = np.zeros(3, dtype=np.int64)
    digit, direc = np.zeros(len(radix), dtype=np.int64), np.ones(len(radix), dtype=np.int64)
    margin = margin0.copy()
    scratch = (np.zeros((1 << CACHE_BITS, words + 1), np.uint64),  # cache
               np.zeros(B, np.uint64),  # sub
               np.zeros(2 * slots, np.uint64), np.zeros(2 * slots, np.int64),  # seen, stamps
               np.zeros(n, np.int64), np.zeros(words, np.uint64), np.zeros(words, np.uint64))  # U, base, key
    steps = max(1, CHUNK // B)
    seen = 0  # distinct layer-1 patterns decided so far

    def visited() -> int:
        return int(state[0] + state[2]) * B

    while True:
        if _expired(deadline, stop):
            return "unknown", None, visited()
        r = _walk(steps, state, digit, direc, radix, bitcol, p.W0, margin, blk.DT, blk.imin, blk.imax, table,
                  *scratch, WIDE)
        if r == 0:
            continue
        # decide the patterns met since the last decision (every time the table fills up, so a
        # witness is found early; each pattern once: decided ones keep the DECIDED bit)
        flags = table[:, words]
        fresh = (flags != 0) & (flags & DECIDED == 0)
        hit = _decide(p, table[fresh, :words], n, flags[fresh].astype(np.int64) - 1, bad, deadline, stop, ties)
        if hit == GAVE_UP:
            return "unknown", None, visited()
        if hit >= 0:
            return "sat", blk.digits(hit, p.radix), visited()
        if r == 2:
            return "unsat", None, visited()
        seen += int(fresh.sum())
        # nearly every cell is a new pattern: the deep walk, from the first cell again
        if visited() >= DEEP_CELLS and seen >= DEEP_RATIO * visited() and (deep := _deep_state(p, margin0)) is not None:
            return "deep", deep, visited()
        table[fresh, words] |= DECIDED
        if len(table) < cap:
            bigger = np.zeros((2 * len(table), words + 1), np.uint64)
            _rehash(table, bigger)
            table = bigger
        else:
            table[:] = 0
            state[1] = 0


def sweep(ir: IR, lo: np.ndarray, hi: np.ndarray, bad: np.ndarray, probe: np.ndarray | None = None,
          deadline: float | None = None, stop: threading.Event | None = None, ties: str = "low",
          stats: dict | None = None, deep_first: bool = False) -> tuple[str, np.ndarray | None, int]:
    """Decide whether some raw input of the box [lo, hi] (d,) is predicted in ``bad`` (bool (C,)),
    a tie read by the rule ``ties`` (``ir.in_classes``).

    Returns ``("sat", witness, cells)``, ``("unsat", None, cells)`` or, once
    ``time.perf_counter()`` passes ``deadline`` or ``stop`` is set, ``("unknown", None, cells
    visited)``.  The witness is the bad cell's input nearest ``probe`` (default: lo); the
    caller replays it.  ``stats``, if given, gets ``deep``: whether the walk went on through
    every layer (nearly every cell showed a new layer-1 pattern).  ``deep_first``: start with
    that walk (where the network allows it), for a caller whose earlier boxes of the same
    search went deep: the block walk's first ``DEEP_CELLS`` cells would be spent again."""
    lo, hi = np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64)
    p = _plan(ir, lo, hi)
    bad = np.asarray(bad, dtype=np.bool_)
    margin0 = (p.acc0[0] - p.k[0]).astype(np.int32)
    deep = _deep_state(p, margin0) if deep_first else None

    def witness(digits: np.ndarray, cells: int) -> tuple[str, np.ndarray, int]:
        feats, values, x = _cell_values(ir.coding.thresholds, lo, hi, lo if probe is None else probe)
        for f, v, c in zip(feats, values, digits):
            x[f] = v[c]
        return "sat", x, cells

    if deep is None:
        status, found, cells = _block_sweep(p, margin0, bad, deadline, stop, ties)
        if status == "sat":
            return witness(found, cells)
        if status != "deep":
            return status, None, cells
        deep = found
    if stats is not None:
        stats["deep"] = True
    widest = max(len(k) for k in p.k)
    fa, fb = np.empty(widest, np.int64), np.empty(widest, np.int64)
    state = np.zeros(1, dtype=np.int64)
    order = _deep_order(p)
    radix, bitcol = p.radix[order], np.ascontiguousarray(p.bitcol[order])
    digit, direc, margin = np.zeros(len(radix), dtype=np.int64), np.ones(len(radix), dtype=np.int64), margin0
    while True:
        if _expired(deadline, stop):
            return "unknown", None, int(state[0]) + 1
        r = _walk_deep(DEEP_CHUNK, state, digit, direc, radix, bitcol, p.W0, margin, *deep, p.scale, p.offset,
                       bad, ties == "adversarial", fa, fb)
        if r == 3:
            digits = np.empty_like(order)
            digits[order] = _gray_digits(int(state[0]), radix)
            return witness(digits, int(state[0]) + 1)
        if r == 2:
            return "unsat", None, int(state[0]) + 1
