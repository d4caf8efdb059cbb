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

from .packing import (BINARY, C_IN, CONV, DENSE, H, HO, K_OFF, KH, KIND, KW, N_OUT, N_OUT_BITS, OUTPUT,
                      POOL, SCALE, STRIDE, W, W_OFF, WO, WORDS)

_U1 = np.uint64(1)


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
def _accumulate(u, words, pos, neg, w_off, n_out, binary, acc):
    """acc[i] = sum_j A_ij u_j for the packed input ``u`` (``words`` words) and one layer's masks."""
    for i in range(n_out):
        acc[i] = 0
    pcu = 0
    for w in range(words):
        uw = u[w]
        if uw == 0:
            continue
        pcu += popcount(uw)
        base = w_off + w * n_out
        if binary:
            for i in range(n_out):
                acc[i] += popcount(uw & pos[base + i])
        else:
            for i in range(n_out):
                acc[i] += popcount(uw & pos[base + i]) - popcount(uw & neg[base + i])
    if binary:
        for i in range(n_out):
            acc[i] = 2 * acc[i] - pcu


@njit(inline="always")
def _threshold_bits(acc, k, k_off, c0, nb):
    """Word of bits j < nb: [acc[c0 + j] >= k[k_off + c0 + j]]."""
    v = np.uint64(0)
    for j in range(nb):
        v |= np.uint64(acc[c0 + j] >= k[k_off + c0 + j]) << np.uint64(j)
    return v


@njit(cache=True)
def _forward(x, feat, thr, ops, pos, neg, k, a, b, col, acc, out):
    """All layers for one input row ``x`` (raw features); writes its scores into ``out``."""
    nb = feat.shape[0]
    for w in range((nb + 63) >> 6):
        m = min(64, nb - 64 * w)
        v = np.uint64(0)
        for j in range(m):
            q = 64 * w + j
            v |= np.uint64(x[feat[q]] >= thr[q]) << np.uint64(j)
        a[w] = v
    src, dst = a, b
    for layer in range(ops.shape[0]):
        op = ops[layer]
        kind, n_out, words, w_off, k_off = op[KIND], op[N_OUT], op[WORDS], op[W_OFF], op[K_OFF]
        binary = op[BINARY] != 0
        if kind == DENSE or kind == OUTPUT:
            _accumulate(src, words, pos, neg, w_off, n_out, binary, acc)
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
                        _accumulate(col, words, pos, neg, w_off, n_out, binary, acc)
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
def _run_range(X, lo, hi, feat, thr, ops, pos, neg, k, out, max_words, max_col, max_acc):
    a = np.zeros(max_words, np.uint64)
    b = np.zeros(max_words, np.uint64)
    col = np.zeros(max_col, np.uint64)
    acc = np.zeros(max_acc, np.int64)
    for r in range(lo, hi):
        _forward(X[r], feat, thr, ops, pos, neg, k, a, b, col, acc, out[r])


@njit(cache=True)
def run_serial(X, feat, thr, ops, pos, neg, k, out, max_words, max_col, max_acc):
    """Scores of every row of X into ``out`` on the calling thread (small batches)."""
    _run_range(X, 0, X.shape[0], feat, thr, ops, pos, neg, k, out, max_words, max_col, max_acc)


@njit(parallel=True, cache=True)
def run_parallel(X, feat, thr, ops, pos, neg, k, out, max_words, max_col, max_acc, n_chunks):
    """Scores of every row of X into ``out``, ``n_chunks`` contiguous chunks spread over the threads."""
    n = X.shape[0]
    for c in prange(n_chunks):
        _run_range(X, c * n // n_chunks, (c + 1) * n // n_chunks, feat, thr, ops, pos, neg, k, out,
                   max_words, max_col, max_acc)
