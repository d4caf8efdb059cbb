"""Numba kernels: one fused forward pass per input, parallel over the batch.

Every input runs all layers on its own scratch words (the activations stay in L1; the packed
weights, 1-2 bits per coefficient, stay in L2).  Per layer (see ``packing`` for the layout):

    dense    acc_i = sum_w popcount(u_w & pos[w, i]) [- popcount(u_w & neg[w, i])]
             (binary rows: acc_i = 2 * sum_w popcount(u_w & pos[w, i]) - popcount(u))
             t_i = [acc_i >= k_i], packed 64 per word
    conv     per output position: gather the kh runs of kw*C bits into ``col`` (bit-packed
             im2col), then the dense step on ``col``; C_out bits written at (y*Wo + x)*C_out
    maxpool  OR of the window's C-bit runs
    output   score_c = scale * acc_c + offset_c   (int64)

All arithmetic is on integers, so the scores equal ``IR.scores`` exactly.  Popcount is LLVM's
``ctpop`` intrinsic, which becomes POPCNT (or VPOPCNTQ when the loop over neurons vectorises).
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange, types
from numba.extending import intrinsic

from .packing import (BINARY, C_IN, CONV, DENSE, HO, K_OFF, KH, KIND, KW, N_OUT, N_OUT_BITS, NEG_OFF,
                      OUTPUT, POOL, SCALE, STRIDE, W, W_OFF, WO, WORDS)

_U1 = np.uint64(1)
_MAGIC = np.uint64(0x0102040810204080)
_S56 = np.uint64(56)


@intrinsic
def popcount(typingctx, x):
    """Number of set bits of a uint64, as int64 (LLVM ctpop)."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return types.int64(types.uint64), codegen


@njit(inline="always")
def _read_bits(src, off, nb):
    """``nb`` <= 64 bits of ``src`` starting at bit ``off``, as the low bits of a uint64."""
    w = off >> 6
    sh = off & 63
    v = src[w] >> np.uint64(sh)
    if sh + nb > 64:
        v |= src[w + 1] << np.uint64(64 - sh)
    if nb < 64:
        v &= (_U1 << np.uint64(nb)) - _U1
    return v


@njit(inline="always")
def _or_bits(dst, off, v, nb):
    """OR the low ``nb`` <= 64 bits of ``v`` into ``dst`` at bit ``off``."""
    w = off >> 6
    sh = off & 63
    dst[w] |= v << np.uint64(sh)
    if sh + nb > 64:
        dst[w + 1] |= v >> np.uint64(64 - sh)


@njit(inline="always")
def _add_words(acc, u, w, nw, masks, off, n_out, sign):
    """acc[i] += sign * sum_{j < nw} popcount(u[w+j] & masks[off + (w+j)*n_out + i]), 4 words per pass."""
    end = w + nw
    while w < end:
        if end - w >= 4:
            u0, u1, u2, u3 = u[w], u[w + 1], u[w + 2], u[w + 3]
            if (u0 | u1 | u2 | u3) != 0:
                b = off + w * n_out
                m0 = masks[b: b + n_out]
                m1 = masks[b + n_out: b + 2 * n_out]
                m2 = masks[b + 2 * n_out: b + 3 * n_out]
                m3 = masks[b + 3 * n_out: b + 4 * n_out]
                if sign > 0:
                    for i in range(n_out):
                        acc[i] += (popcount(u0 & m0[i]) + popcount(u1 & m1[i])
                                   + popcount(u2 & m2[i]) + popcount(u3 & m3[i]))
                else:
                    for i in range(n_out):
                        acc[i] -= (popcount(u0 & m0[i]) + popcount(u1 & m1[i])
                                   + popcount(u2 & m2[i]) + popcount(u3 & m3[i]))
            w += 4
        else:
            uw = u[w]
            if uw != 0:
                m0 = masks[off + w * n_out: off + (w + 1) * n_out]
                if sign > 0:
                    for i in range(n_out):
                        acc[i] += popcount(uw & m0[i])
                else:
                    for i in range(n_out):
                        acc[i] -= popcount(uw & m0[i])
            w += 1


@njit(inline="always")
def _accumulate(u, words, pos, neg, w_off, neg_off, n_out, binary, acc):
    """acc[i] = sum_j A_ij u_j for the packed input ``u`` (``words`` words) and one layer's masks."""
    for i in range(n_out):
        acc[i] = 0
    _add_words(acc, u, 0, words, pos, w_off, n_out, 1)
    if binary:
        pcu = 0
        for w in range(words):
            pcu += popcount(u[w])
        for i in range(n_out):
            acc[i] = 2 * acc[i] - pcu
    else:
        _add_words(acc, u, 0, words, neg, neg_off, n_out, -1)


@njit(inline="always")
def _threshold_bits(acc, k, k_off, c0, nb):
    """Word of bits j < nb: [acc[c0 + j] >= k[k_off + c0 + j]]."""
    v = np.uint64(0)
    for j in range(nb):
        v |= np.uint64(acc[c0 + j] >= k[k_off + c0 + j]) << np.uint64(j)
    return v


@njit(inline="always")
def _encode(x, feat, thr, ident, bb, a):
    """Input bits of raw features ``x`` into ``a``: bit q = [x[feat[q]] >= thr[q]].

    With ``ident`` (the layout is the IR's own, feat[q] = q mod d) the reads are contiguous.
    The bits go to bytes ``bb`` first (a vectorised compare), then 8 bytes b_0..b_7 in {0,1}
    become 8 bits by one multiply: the top byte of (sum_t b_t 2^(8t)) * 0x0102040810204080 is
    sum_t b_t 2^t (the partial products land on distinct bits, so nothing carries into it).
    ``bb`` is 64*len(a) bytes whose tail past ``len(thr)`` stays 0.
    """
    nb = thr.shape[0]
    d = x.shape[0]
    if ident:
        for q0 in range(0, nb, d):
            for f in range(d):
                bb[q0 + f] = x[f] >= thr[q0 + f]
    else:
        for q in range(nb):
            bb[q] = x[feat[q]] >= thr[q]
    g = bb.view(np.uint64)
    for w in range((nb + 63) >> 6):
        v = np.uint64(0)
        for t in range(8):
            v |= ((g[8 * w + t] * _MAGIC) >> _S56) << np.uint64(8 * t)
        a[w] = v


@njit(cache=True)
def _forward(x, feat, thr, ident, ops, pos, neg, k, a, b, bb, col, acc, out):
    """All layers for one input row ``x`` (raw features); writes its scores into ``out``."""
    _encode(x, feat, thr, ident, bb, a)
    src, dst = a, b
    for layer in range(ops.shape[0]):
        op = ops[layer]
        kind, n_out, words, w_off, k_off = op[KIND], op[N_OUT], op[WORDS], op[W_OFF], op[K_OFF]
        binary = op[BINARY] != 0
        if kind == DENSE or kind == OUTPUT:
            _accumulate(src, words, pos, neg, w_off, op[NEG_OFF], n_out, binary, acc)
            if kind == OUTPUT:
                for i in range(n_out):
                    out[i] = op[SCALE] * acc[i] + k[k_off + i]
                return
            for ow in range((n_out + 63) >> 6):
                dst[ow] = _threshold_bits(acc, k, k_off, 64 * ow, min(64, n_out - 64 * ow))
        else:
            c, wd, kh, kw, s, ho, wo = op[C_IN], op[W], op[KH], op[KW], op[STRIDE], op[HO], op[WO]
            for ow in range((op[N_OUT_BITS] + 63) >> 6):
                dst[ow] = 0
            for oy in range(ho):
                for ox in range(wo):
                    p = oy * wo + ox
                    if kind == CONV:
                        for w in range(words):
                            col[w] = 0
                        run = kw * c
                        for i in range(kh):
                            so = ((oy * s + i) * wd + ox * s) * c
                            for r0 in range(0, run, 64):
                                n = min(64, run - r0)
                                _or_bits(col, i * run + r0, _read_bits(src, so + r0, n), n)
                        _accumulate(col, words, pos, neg, w_off, op[NEG_OFF], n_out, binary, acc)
                        for c0 in range(0, n_out, 64):
                            n = min(64, n_out - c0)
                            _or_bits(dst, p * n_out + c0, _threshold_bits(acc, k, k_off, c0, n), n)
                    else:  # POOL
                        for c0 in range(0, c, 64):
                            n = min(64, c - c0)
                            v = np.uint64(0)
                            for i in range(kh):
                                for j in range(kw):
                                    v |= _read_bits(src, ((oy * s + i) * wd + ox * s + j) * c + c0, n)
                            _or_bits(dst, p * c + c0, v, n)
        src, dst = dst, src


@njit(cache=True)
def _run_range(X, lo, hi, feat, thr, ident, ops, pos, neg, k, out, max_words, max_col, max_acc):
    a = np.zeros(max_words, np.uint64)
    b = np.zeros(max_words, np.uint64)
    bb = np.zeros(64 * ((thr.shape[0] + 63) >> 6), np.uint8)
    col = np.zeros(max_col, np.uint64)
    acc = np.zeros(max_acc, np.int64)
    for r in range(lo, hi):
        _forward(X[r], feat, thr, ident, ops, pos, neg, k, a, b, bb, col, acc, out[r])


@njit(cache=True)
def run_serial(X, feat, thr, ident, ops, pos, neg, k, out, max_words, max_col, max_acc):
    """Scores of every row of X into ``out`` on the calling thread (small batches)."""
    _run_range(X, 0, X.shape[0], feat, thr, ident, ops, pos, neg, k, out, max_words, max_col, max_acc)


@njit(parallel=True, cache=True)
def run_parallel(X, feat, thr, ident, ops, pos, neg, k, out, max_words, max_col, max_acc, n_chunks):
    """Scores of every row of X into ``out``, ``n_chunks`` contiguous chunks spread over the threads."""
    n = X.shape[0]
    for c in prange(n_chunks):
        _run_range(X, c * n // n_chunks, (c + 1) * n // n_chunks, feat, thr, ident, ops, pos, neg, k, out,
                   max_words, max_col, max_acc)
