"""Numba kernels: a fused forward pass over tiles of inputs, tiles parallel over the batch.

A tile of up to ``TILE`` inputs runs all layers on its own scratch words (the activations
stay in L1).  Dense layers read each packed weight word once per tile, not once per input;
conv and pool layers go input by input.  Per layer (see ``packing`` for the layout):

    dense    acc_ti = sum_w popcount(u_tw & pos[w, i]) [- popcount(u_tw & neg[w, i])]
             (binary rows: acc_ti = 2 * sum_w popcount(u_tw & pos[w, i]) - popcount(u_t))
             t_ti = [acc_ti >= k_i], packed 64 per word; thresholds as 64-lane vector compares
    sliced   (wide dense layers, see ``packing``) input by input: a bit-sliced counter over
             the columns of u_t's set bits, 512 neurons per chunk (``slices``)
    conv     per output position p: gather the kh runs of kw*C bits into row p of ``col``
             (bit-packed im2col; the parts of a run in the zero padding stay 0), then the
             dense step on all rows of ``col`` at once (the positions as a tile); C_out bits
             written at (y*Wo + x)*C_out, thresholds at K_OFF + p*K_STEP
    maxpool  OR of the window's C-bit runs
    output   score_tc = scale * acc_tc + offset_c   (int64)

Binary layers keep acc' = sum_w popcount(u & pos) and popcount(u) apart and compare
(acc' << 1) - popcount(u) against k (see ``_accumulate``).

All arithmetic is on integers, so the scores equal ``IR.scores`` exactly.  Popcount is LLVM's
``ctpop`` intrinsic, which becomes VPOPCNTQ where the loop over neurons vectorises.

Three rules keep the hot loops fast (measured with benchmarks/infer.py).  No reference
counting in them: a numba slice, and every array passed to an ``inline="always"`` function,
increfs and decrefs the array's reference count, an atomic the threads share; ``_borrow``
makes views that hold no reference, ``_run_range`` hands every array to the tiles as such a
view (``_unowned``), and helpers called per position or per input are plain ``njit``
functions, which LLVM inlines without the pair (conv-small 3x faster).  The innermost loops
index such a view from 0: with a computed offset into a flat array numba's negative-index
wraparound test stays in the loop, and LLVM turns the contiguous loads into gathers.  And
the per-tile dense steps stay ``inline="always"`` (as plain functions the fc net was ~10%
slower).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir as llvm_ir
from numba import njit, prange, types
from numba.core import cgutils
from numba.extending import intrinsic, overload
from numba.np.arrayobj import make_array, populate_array

from .packing import (BIAS, BINARY, C_IN, CHUNKS, COL_OFF, CONV, DENSE, F_OFF, HO, H, K_OFF, K_STEP, KH, KIND, KW,
                      N_IN_BITS, N_OUT, N_OUT_BITS, NEG_OFF, OUTPUT, PAD, PLANES, SLICED, STRIDE, SCALE, W, W_OFF,
                      WO, WORDS)
from .slices import add_columns16, c_array, carry_out, load_run, splat, store_set_bits

TILE = 16  # inputs per tile: a dense layer reads each packed weight word once per tile
NEURON_BLOCK = 128  # neurons per block: 4 mask rows (4 KB) and TILE accumulator rows (16 KB) stay in L1
_U1 = np.uint64(1)
_u = np.uint64


@intrinsic
def popcount(typingctx, x):
    """Number of set bits of a uint64, as int64 (LLVM ctpop)."""
    if not isinstance(x, types.Integer):
        return None

    def codegen(context, builder, signature, args):
        return builder.ctpop(args[0])

    return types.int64(types.uint64), codegen


@intrinsic
def _borrow(typingctx, arr, start, n):
    """Elements start .. start+n-1 of a C-contiguous array's buffer as a 1-D view holding no reference.

    A numba slice increfs the parent's shared reference count (an atomic that the threads
    contend on); this view skips it, so it must not outlive ``arr`` (here: one loop body).
    """
    if not (isinstance(arr, types.Array) and arr.layout == "C"):
        return None
    ret = types.Array(arr.dtype, 1, "C")

    def codegen(context, builder, signature, args):
        a, s, m = args
        src = make_array(signature.args[0])(context, builder, a)
        out = make_array(ret)(context, builder)
        itemsize = context.get_constant(types.intp, context.get_abi_sizeof(context.get_data_type(arr.dtype)))
        s = context.cast(builder, s, signature.args[1], types.intp)
        m = context.cast(builder, m, signature.args[2], types.intp)
        populate_array(out, data=cgutils.gep(builder, src.data, s), shape=[m], strides=[itemsize],
                       itemsize=itemsize, meminfo=None)
        return out._getvalue()

    return ret(arr, start, n), codegen


@intrinsic
def _unowned(typingctx, arr):
    """The same C-contiguous array (data, shape, strides) holding no reference, so that passing
    it to inlined functions costs no reference counting (NRT_incref/decref pairs, atomics on the
    count of an array the threads share).  Must not outlive ``arr``."""
    if not (isinstance(arr, types.Array) and arr.layout == "C"):
        return None

    def codegen(context, builder, signature, args):
        src = make_array(signature.args[0])(context, builder, args[0])
        out = make_array(signature.return_type)(context, builder)
        populate_array(out, data=src.data, shape=cgutils.unpack_tuple(builder, src.shape),
                       strides=cgutils.unpack_tuple(builder, src.strides), itemsize=src.itemsize, meminfo=None)
        return out._getvalue()

    return arr(arr), codegen


@njit(cache=True)
def _read_bits(src, t, off, nb):
    """``nb`` <= 64 bits of row ``t`` of ``src`` starting at bit ``off``, as the low bits of a uint64."""
    w = off >> 6
    sh = off & 63
    v = src[t, w] >> _u(sh)
    if sh + nb > 64:
        v |= src[t, w + 1] << _u(64 - sh)
    if nb < 64:
        v &= (_U1 << _u(nb)) - _U1
    return v


@njit(cache=True)
def _or_bits(dst, t, off, v, nb):
    """OR the low ``nb`` <= 64 bits of ``v`` into row ``t`` of ``dst`` at bit ``off``."""
    w = off >> 6
    sh = off & 63
    dst[t, w] |= v << _u(sh)
    if sh + nb > 64:
        dst[t, w + 1] |= v >> _u(64 - sh)


@njit(inline="always", cache=True)
def _add_words(acc, U, nt, nw, masks, off, n_out, sign, init):
    """acc[t, i] (+)= sign * sum_{w < nw} popcount(U[t, w] & masks[off + w*n_out + i]) for t < nt.

    With ``init`` the sums overwrite ``acc`` (no zeroing pass): the first word group of each
    block stores ``s``, the others add it (two loops, so the vector body has no extra op).  Blocked for L1: per block of
    ``NEURON_BLOCK`` neurons and group of 4 words, the 4 mask rows serve all ``nt`` inputs of
    the tile; the loop over neurons is contiguous and vectorises (VPOPCNTQ).
    """
    sa = acc.shape[1]
    for i0 in range(0, n_out, NEURON_BLOCK):
        nb = min(NEURON_BLOCK, n_out - i0)
        w = 0
        while w < nw:
            b = off + w * n_out + i0
            first = init and w == 0  # overwrite acc (no zeroing pass)
            if nw - w >= 4:
                m0 = _borrow(masks, b, nb)
                m1 = _borrow(masks, b + n_out, nb)
                m2 = _borrow(masks, b + 2 * n_out, nb)
                m3 = _borrow(masks, b + 3 * n_out, nb)
                for t in range(nt):
                    u0, u1, u2, u3 = U[t, w], U[t, w + 1], U[t, w + 2], U[t, w + 3]
                    a = _borrow(acc, t * sa + i0, nb)
                    if first:
                        for i in range(nb):
                            a[i] = sign * (popcount(u0 & m0[i]) + popcount(u1 & m1[i])
                                           + popcount(u2 & m2[i]) + popcount(u3 & m3[i]))
                    elif (u0 | u1 | u2 | u3) != 0:
                        for i in range(nb):
                            a[i] += sign * (popcount(u0 & m0[i]) + popcount(u1 & m1[i])
                                            + popcount(u2 & m2[i]) + popcount(u3 & m3[i]))
                w += 4
            else:
                m0 = _borrow(masks, b, nb)
                for t in range(nt):
                    uw = U[t, w]
                    a = _borrow(acc, t * sa + i0, nb)
                    if first:
                        for i in range(nb):
                            a[i] = sign * popcount(uw & m0[i])
                    elif uw != 0:
                        for i in range(nb):
                            a[i] += sign * popcount(uw & m0[i])
                w += 1


@njit(inline="always", cache=True)
def _accumulate(U, nt, words, pos, neg, w_off, neg_off, n_out, binary, acc, pc):
    """Pre-activations of the packed inputs ``U[t]`` (``words`` words), t < nt, in two parts.

    acc[t, i] = sum_w popcount(u_tw & pos_wi) [- popcount(u_tw & neg_wi)] and pc[t]; the
    pre-activation is ``(acc[t, i] << sh) - pc[t]`` with sh = 1, pc[t] = popcount(u_t) for a
    binary layer and sh = 0, pc[t] = 0 for a ternary one.  Returns sh.
    """
    _add_words(acc, U, nt, words, pos, w_off, n_out, 1, True)
    if binary:
        for t in range(nt):
            p = 0
            for w in range(words):
                p += popcount(U[t, w])
            pc[t] = p
        return 1
    _add_words(acc, U, nt, words, neg, neg_off, n_out, -1, False)
    for t in range(nt):
        pc[t] = 0
    return 0


@njit(cache=True)
def _bits_ge(x, t, n):
    """sum_{j < n} [x[j] >= t[j]] 2^j for n <= 64 (a compare per lane, an OR-reduction: vectorises)."""
    v = np.uint64(0)
    for j in range(n):
        v |= np.uint64(x[j] >= t[j]) << np.uint64(j)
    return v


@intrinsic
def _ge_bytes64(typingctx, x, xs, t, ts):
    """sum_{j < 64} [x[xs + j] >= t[ts + j]] 2^j for C-contiguous uint8 arrays (flat indices; all
    64 bytes of both runs in bounds): two 512-bit loads, one unsigned byte compare whose 64-lane
    mask is the word (VPCMPUB + KMOVQ with AVX-512BW, a byte-mask move otherwise)."""
    if not (c_array(x, types.uint8) and c_array(t, types.uint8)):
        return None

    def codegen(context, builder, signature, args):
        vty = llvm_ir.VectorType(llvm_ir.IntType(8), 64)
        xty, xsty, tty, tsty = signature.args
        x = load_run(context, builder, xty, args[0], xsty, args[1], vty, 1)
        t = load_run(context, builder, tty, args[2], tsty, args[3], vty, 1)
        return builder.bitcast(builder.icmp_unsigned(">=", x, t), llvm_ir.IntType(64))

    return types.uint64(x, xs, t, ts), codegen


def _ge_word(x, xs, t, ts, n, lo):
    """sum_{j < n} [x[xs + j] >= t[ts + j]] 2^j for n <= 64; ``lo`` = how many elements before
    xs and ts may also be read (both arrays flat, C-contiguous).  Compiled only (``overload``)."""
    raise NotImplementedError


@overload(_ge_word, inline="always")
def _ge_word_impl(x, xs, t, ts, n, lo):
    if x.dtype == types.uint8 and t.dtype == types.uint8 and x.layout == "C" and t.layout == "C":
        def impl(x, xs, t, ts, n, lo):  # bytes: one vector compare; a short run reads the 64 ending at it
            if n == 64:
                return _ge_bytes64(x, xs, t, ts)
            if n + lo >= 64:
                return _ge_bytes64(x, xs + n - 64, t, ts + n - 64) >> _u(64 - n)
            return _bits_ge(_borrow(x, xs, n), _borrow(t, ts, n), n)
        return impl

    def impl(x, xs, t, ts, n, lo):
        return _bits_ge(_borrow(x, xs, n), _borrow(t, ts, n), n)
    return impl


@intrinsic
def _ge_shifted64(typingctx, acc, a_start, sh, p, k, k_start):
    """sum_{j < 64} [(acc[a_start + j] << sh) - p >= k[k_start + j]] 2^j for C-contiguous int64
    arrays (flat indices, all 64 elements of both runs in bounds): the 64 lanes are loaded, shifted
    and compared as one vector, whose 64-lane mask is the word (8 VPCMPQ and mask moves with AVX-512)."""
    if not (c_array(acc, types.int64) and c_array(k, types.int64)):
        return None

    def codegen(context, builder, signature, args):
        vty = llvm_ir.VectorType(llvm_ir.IntType(64), 64)

        def lanes(v, ty):
            return splat(builder, context.cast(builder, v, ty, types.int64), vty)

        a_ty, as_ty, sh_ty, p_ty, k_ty, ks_ty = signature.args
        a = load_run(context, builder, a_ty, args[0], as_ty, args[1], vty, 8)
        pre = builder.sub(builder.shl(a, lanes(args[2], sh_ty)), lanes(args[3], p_ty))
        ge = builder.icmp_signed(">=", pre, load_run(context, builder, k_ty, args[4], ks_ty, args[5], vty, 8))
        return builder.bitcast(ge, llvm_ir.IntType(64))

    return types.uint64(acc, a_start, sh, p, k, k_start), codegen


@njit(inline="always", cache=True)
def _threshold_bits(acc, sh, p, t, k, k_off, c0, nb):
    """Word of bits j < nb: [(acc[t, c0 + j] << sh) - p >= k[k_off + c0 + j]] (see ``_accumulate``).

    One 64-lane vector compare (``_ge_shifted64``) when 64 lanes fit from c0 (in acc's row and in
    k; lanes past nb are masked off) or end at c0 + nb (then shifted down); else lane by lane.
    """
    sa = acc.shape[1]
    if sa - c0 >= 64 and k.shape[0] - (k_off + c0) >= 64:
        v = _ge_shifted64(acc, t * sa + c0, sh, p, k, k_off + c0)
        return v if nb == 64 else v & ((_U1 << _u(nb)) - _U1)
    if c0 + nb >= 64:
        return _ge_shifted64(acc, t * sa + c0 + nb - 64, sh, p, k, k_off + c0 + nb - 64) >> _u(64 - nb)
    a = _borrow(acc, t * sa + c0, nb)
    kk = _borrow(k, k_off + c0, nb)
    v = np.uint64(0)
    for j in range(nb):
        v |= np.uint64((a[j] << sh) - p >= kk[j]) << np.uint64(j)
    return v


@njit(cache=True)
def _encode(X, r, feat, thr, ident, a, t):
    """Input bits of raw features ``X[r]`` into row ``t`` of ``a``: bit q = [X[r, feat[q]] >= thr[q]].

    With ``ident`` (the layout is the IR's own, feat[q] = q mod d) level L's bits are d
    contiguous compares of X[r] against thr[L*d:(L+1)*d], 64 per word, OR-ed in at bit L*d:
    for uint8 pixels and thresholds one byte-vector compare per word (``_ge_bytes64``; a
    short last run re-reads the 64 bytes ending at it, ~3x faster than per-lane compares),
    else a compare per lane and an OR-reduction.  Otherwise (channel-last images) each
    bit gathers its feature.
    """
    nb = thr.shape[0]
    d = X.shape[1]
    for w in range((nb + 63) >> 6):
        a[t, w] = 0
    if ident:
        for q0 in range(0, nb, d):
            for f0 in range(0, d, 64):
                n = min(64, d - f0)
                _or_bits(a, t, q0 + f0, _ge_word(X, r * d + f0, thr, q0 + f0, n, f0), n)
    else:
        for w in range((nb + 63) >> 6):
            q0 = _u(64 * w)
            v = np.uint64(0)
            for j in range(min(64, nb - 64 * w)):
                ju = _u(j)
                v |= _u(X[r, feat[q0 + ju]] >= thr[q0 + ju]) << ju
            a[t, w] = v


@njit(cache=True)
def _conv_or_pool(op, kind, src, dst, t, pos, neg, k, col, acc, pc):
    """One conv or max-pool layer for input ``t``: packed ``src[t]`` -> packed ``dst[t]``.

    A conv gathers every output position's receptive field into row p of ``col`` (bit-packed
    im2col), then runs the dense step on all positions at once, as a tile of rows (each weight
    word read once for all of them; rows whose words are 0 are skipped), and writes C_out bits
    at (y*Wo + x)*C_out.
    """
    c, ht, wd, kh, kw, s, ho, wo = op[C_IN], op[H], op[W], op[KH], op[KW], op[STRIDE], op[HO], op[WO]
    n_out, words, k_off, pad = op[N_OUT], op[WORDS], op[K_OFF], op[PAD]
    for ow in range((op[N_OUT_BITS] + 63) >> 6):
        dst[t, ow] = 0
    if kind == CONV:
        run = kw * c
        for oy in range(ho):
            for ox in range(wo):
                p = oy * wo + ox
                for w in range(words):
                    col[p, w] = 0
                x0 = ox * s - pad  # the window's columns x0 .. x0+kw-1; those outside stay 0 (padding)
                j0, j1 = max(0, -x0), min(kw, wd - x0)
                for i in range(kh):
                    y = oy * s + i - pad
                    if y < 0 or y >= ht or j0 >= j1:
                        continue
                    so, do, m = (y * wd + x0 + j0) * c, i * run + j0 * c, (j1 - j0) * c
                    for r0 in range(0, m, 64):
                        n = min(64, m - r0)
                        _or_bits(col, p, do + r0, _read_bits(src, t, so + r0, n), n)
        sh = _accumulate(col, ho * wo, words, pos, neg, op[W_OFF], op[NEG_OFF], n_out, op[BINARY] != 0, acc, pc)
        for p in range(ho * wo):
            kp = k_off + p * op[K_STEP]  # per-position thresholds, or the same C_out for every p
            for c0 in range(0, n_out, 64):
                n = min(64, n_out - c0)
                _or_bits(dst, t, p * n_out + c0, _threshold_bits(acc, sh, pc[p], p, k, kp, c0, n), n)
        return
    for oy in range(ho):  # POOL
        for ox in range(wo):
            p = oy * wo + ox
            for c0 in range(0, c, 64):
                n = min(64, c - c0)
                v = np.uint64(0)
                for i in range(kh):
                    for j in range(kw):
                        v |= _read_bits(src, t, ((oy * s + i) * wd + ox * s + j) * c + c0, n)
                _or_bits(dst, t, p * c + c0, v, n)


@njit(inline="always", cache=True)
def _dense_sliced(op, src, t, dst, pos, idx, planes):
    """One sliced dense layer for input ``t``: packed ``src[t]`` -> packed ``dst[t]`` (see
    ``packing``): the set bits' column indices into ``idx`` (then ``n + j`` too for a ternary
    layer), padded with the zero column to a multiple of 16; per chunk of 512 neurons the
    counter starts at F^r, adds the columns 16 at a time and fires where it reaches B + (s >> 1)
    (binary) or B + s (ternary)."""
    n, words, binary, n_planes = op[N_IN_BITS], op[WORDS], op[BINARY] != 0, op[PLANES]
    s = 0
    for w in range(words):
        u = src[t, w]
        if u != 0:
            store_set_bits(u, 64 * w, idx, s)
            s += popcount(u)
    m = s
    if not binary:  # the [a != -1] columns of the same bits follow the [a = 1] ones
        for w in range(words):
            u = src[t, w]
            if u != 0:
                store_set_bits(u, n + 64 * w, idx, m)
                m += popcount(u)
    zero = n if binary else 2 * n
    while m & 15:
        idx[m] = zero
        m += 1
    r = s & 1 if binary else 0
    target = op[BIAS] + ((s >> 1) if binary else s)
    addend = (1 << n_planes) - target
    n_r = 2 if binary else 1
    col_words = 8 * (zero + 1)
    for ch in range(op[CHUNKS]):
        f = op[F_OFF] + 8 * n_planes * (ch * n_r + r)
        for p in range(n_planes):
            for lane in range(8):
                planes[p, lane] = pos[f + 8 * p + lane]
        base = op[COL_OFF] + ch * col_words
        for g in range(0, m, 16):
            add_columns16(pos, base, idx, g, planes, n_planes)
        carry_out(planes, n_planes, addend, dst, t * dst.shape[1] + 8 * ch)


@njit(cache=True)
def _forward(X, r0, nt, feat, thr, ident, ops, pos, neg, k, a, b, col, acc, pc, idx, planes, out):
    """All layers for the tile of inputs X[r0 : r0 + nt] (raw features); their scores into ``out``."""
    for t in range(nt):
        _encode(X, r0 + t, feat, thr, ident, a, t)
    src, dst = a, b
    for layer in range(ops.shape[0]):
        op = ops[layer]
        kind, n_out, k_off = op[KIND], op[N_OUT], op[K_OFF]
        if op[SLICED] != 0:
            for t in range(nt):
                _dense_sliced(op, src, t, dst, pos, idx, planes)
        elif kind == DENSE or kind == OUTPUT:
            sh = _accumulate(src, nt, op[WORDS], pos, neg, op[W_OFF], op[NEG_OFF], n_out, op[BINARY] != 0, acc, pc)
            if kind == OUTPUT:
                for t in range(nt):
                    for i in range(n_out):
                        out[r0 + t, i] = op[SCALE] * ((acc[t, i] << sh) - pc[t]) + k[k_off + i]
                return
            for t in range(nt):
                for ow in range((n_out + 63) >> 6):
                    dst[t, ow] = _threshold_bits(acc, sh, pc[t], t, k, k_off, 64 * ow, min(64, n_out - 64 * ow))
        else:
            for t in range(nt):
                _conv_or_pool(op, kind, src, dst, t, pos, neg, k, col, acc, pc)
        src, dst = dst, src


@njit(cache=True)
def _run_range(X, lo, hi, feat, thr, ident, ops, pos, neg, k, out, max_words, max_col, max_acc, max_idx, max_planes,
               max_pos):
    """Rows lo .. hi-1 of X, a tile at a time, on scratch of its own; every array reaches the
    tiles as an ``_unowned`` view (no reference counting below this call)."""
    rows = min(TILE, hi - lo)  # scratch for one tile (a single input needs one row: latency)
    a = np.empty((rows, max_words), np.uint64)
    b = np.empty((rows, max_words), np.uint64)
    col = np.empty((max_pos, max_col), np.uint64)  # conv: one im2col row per output position
    acc = np.empty((max(rows, max_pos), max_acc), np.int64)
    pc = np.empty(max(rows, max_pos), np.int64)
    idx = np.empty(max_idx, np.int32)
    planes = np.empty((max_planes, 8), np.uint64)
    for r in range(lo, hi, TILE):
        _forward(_unowned(X), r, min(TILE, hi - r), _unowned(feat), _unowned(thr), ident, _unowned(ops),
                 _unowned(pos), _unowned(neg), _unowned(k), _unowned(a), _unowned(b), _unowned(col), _unowned(acc),
                 _unowned(pc), _unowned(idx), _unowned(planes), _unowned(out))


@njit(cache=True, nogil=True)
def run_serial(X, feat, thr, ident, ops, pos, neg, k, out, max_words, max_col, max_acc, max_idx, max_planes,
               max_pos):
    """Scores of every row of X into ``out`` on the calling thread (small batches)."""
    _run_range(X, 0, X.shape[0], feat, thr, ident, ops, pos, neg, k, out, max_words, max_col, max_acc, max_idx,
               max_planes, max_pos)


@njit(parallel=True, cache=True, nogil=True)
def run_parallel(X, feat, thr, ident, ops, pos, neg, k, out, max_words, max_col, max_acc, max_idx, max_planes,
                 max_pos, n_chunks):
    """Scores of every row of X into ``out``, ``n_chunks`` contiguous chunks spread over the threads."""
    n = X.shape[0]
    for c in prange(n_chunks):
        _run_range(X, c * n // n_chunks, (c + 1) * n // n_chunks, feat, thr, ident, ops, pos, neg, k, out,
                   max_words, max_col, max_acc, max_idx, max_planes, max_pos)
