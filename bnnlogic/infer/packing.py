"""Bit packing and the compilation of an IR into the flat arrays the kernels run.

Layout.  An activation is one bit string packed little-endian into uint64 words: bit q
lives in word ``q >> 6`` at position ``q & 63``; bits past the end of the string are 0.
Vectors keep the IR's order.  Images (C, H, W) are stored channel-last, ``q = (y*W + x)*C + c``,
so a kernel row (fixed i, j = 0..kw-1, all channels) is one contiguous run of ``kw*C`` bits
and a conv's receptive field is ``kh`` such runs (bit-packed im2col).  Weights are permuted
to the same order once, here.

Weights.  A ternary row a in {-1,0,1}^n becomes two masks, ``pos = [a = 1]`` and
``neg = [a = -1]``, and for u in {0,1}^n::

    sum_j a_j u_j = popcount(u & pos) - popcount(u & neg)
                  = 2 * popcount(u & pos) - popcount(u)          if a has no zeros (binary)

so a binary layer costs one AND+POPCOUNT per word and neuron (popcount(u) once per input),
a ternary one two.  Masks are stored word-major, ``mask[w, i]`` (neuron index fastest), so
the kernels' innermost loop runs over neurons with contiguous loads and vectorises.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import IR, Conv, Dense, MaxPool

# ops table: one row per layer (hidden layers, then the output layer)
DENSE, CONV, POOL, OUTPUT = 0, 1, 2, 3
(KIND, N_OUT, WORDS, W_OFF, NEG_OFF, K_OFF, BINARY, C_IN, H, W, KH, KW, STRIDE, HO, WO, SCALE, N_IN_BITS,
 N_OUT_BITS) = range(18)
N_COLS = 18


def n_words(n_bits: int) -> int:
    """Words of 64 bits needed for ``n_bits`` bits."""
    return (int(n_bits) + 63) // 64


def pack_bits(bits: np.ndarray) -> np.ndarray:
    """{0,1} array (n, n_bits) -> packed words (n, ceil(n_bits/64)) uint64, bit q in word q//64."""
    bits = np.asarray(bits, dtype=np.uint8).reshape(len(bits), -1)
    n, nb = bits.shape
    by = np.packbits(bits, axis=1, bitorder="little")
    out = np.zeros((n, 8 * n_words(nb)), dtype=np.uint8)
    out[:, : by.shape[1]] = by
    return out.view("<u8").astype(np.uint64)


def unpack_bits(words: np.ndarray, n_bits: int) -> np.ndarray:
    """Inverse of ``pack_bits``: (n, n_words) uint64 -> (n, n_bits) uint8 in {0, 1}."""
    by = np.ascontiguousarray(words, dtype="<u8").view(np.uint8)
    return np.unpackbits(by, axis=1, bitorder="little")[:, :n_bits]


def layout(shape: tuple[int, ...]) -> np.ndarray:
    """perm with perm[q] = the IR's flat index of the engine's bit q (channel-last for images)."""
    size = int(np.prod(shape))
    if len(shape) != 3:
        return np.arange(size)
    c = shape[0]
    return np.arange(size).reshape(c, size // c).T.ravel()


def weight_masks(A: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Ternary rows (n_out, n_in) -> word-major masks pos, neg of shape (n_words, n_out) uint64."""
    A = A.reshape(len(A), -1)
    return pack_bits(A == 1).T.copy(), pack_bits(A == -1).T.copy()


@dataclass(frozen=True)
class Program:
    """An IR as flat arrays: input bit sources, an ops table, concatenated masks and thresholds."""

    feat: np.ndarray  # int64 (n_input_bits,): raw feature feeding engine input bit q
    thr: np.ndarray  # int64 (n_input_bits,): its threshold, bit q = [x[feat[q]] >= thr[q]]
    ident: bool  # feat[q] = q mod d (the IR's own bit order): the kernels read x contiguously
    thr_u8: np.ndarray  # thr clipped to 0..256 (same bits for uint8 features); uint8 if <= 255, else int16
    ops: np.ndarray  # int64 (n_layers + 1, N_COLS)
    pos: np.ndarray  # uint64, all layers' pos masks concatenated
    neg: np.ndarray  # uint64, the ternary layers' neg masks concatenated (binary layers need none)
    k: np.ndarray  # int64, thresholds (hidden layers) and offsets (output) concatenated
    max_words: int  # scratch sizes
    max_col: int
    max_acc: int

    @property
    def weight_bytes(self) -> int:
        """Bytes of the layers' parameters as the engine holds them: mask words and int64 thresholds."""
        return int(self.pos.nbytes + self.neg.nbytes + self.k.nbytes)


def _byte_thresholds(thr: np.ndarray) -> np.ndarray:
    """Thresholds for uint8 features x: [x >= t] = [x >= clip(t, 0, 256)].  As uint8 (byte
    compares, 64 per 512-bit vector) unless some t > 255 (a bit that never fires), then int16."""
    t = np.clip(thr, 0, 256)
    return t.astype(np.uint8 if t.max(initial=0) <= 255 else np.int16)


def compile_ir(ir: IR) -> Program:
    """Translate an IR into a ``Program`` (weights permuted to the engine's bit layout)."""
    c = ir.coding
    perm = layout(c.bit_shape)
    level, feat = np.divmod(perm, c.n_features)
    thr = c.thresholds[level, feat].astype(np.int64)
    shapes = ir.shapes()
    rows, pos, neg, ks = [], [], [], []
    w_off = neg_off = k_off = 0
    max_words, max_col, max_acc = n_words(c.n_bits), 1, 1
    for i, layer in enumerate(list(ir.layers) + [ir.output]):
        shape = shapes[i]
        n_in = int(np.prod(shape))
        row = np.zeros(N_COLS, dtype=np.int64)
        row[N_IN_BITS] = n_in
        if isinstance(layer, MaxPool):
            ch, h, w = shape
            _, ho, wo = layer.out_shape(shape)
            row[[KIND, N_OUT, C_IN, H, W, KH, KW, STRIDE, HO, WO]] = (POOL, ch, ch, h, w, layer.size,
                                                                     layer.size, layer.stride, ho, wo)
            row[N_OUT_BITS] = ch * ho * wo
        else:
            if isinstance(layer, Conv):
                ch, h, w = shape
                co, _, kh, kw = layer.A.shape
                _, ho, wo = layer.out_shape(shape)
                rows_a = layer.A.transpose(0, 2, 3, 1).reshape(co, -1)  # im2col order (i, j, c)
                row[[KIND, C_IN, H, W, KH, KW, STRIDE, HO, WO]] = (CONV, ch, h, w, kh, kw, layer.stride, ho, wo)
                row[N_OUT_BITS] = co * ho * wo
                max_col = max(max_col, n_words(rows_a.shape[1]))
            else:
                rows_a = layer.A[:, layout(shape)]
                row[KIND] = OUTPUT if i == len(ir.layers) else DENSE
                row[N_OUT_BITS] = len(rows_a)
            p, m = weight_masks(rows_a)
            binary = bool(np.all(rows_a != 0))
            row[[N_OUT, WORDS, W_OFF, NEG_OFF, K_OFF, BINARY]] = (len(rows_a), p.shape[0], w_off, neg_off,
                                                                 k_off, binary)
            pos.append(p.ravel())
            w_off += p.size
            if not binary:
                neg.append(m.ravel())
                neg_off += m.size
            if row[KIND] == OUTPUT:
                row[SCALE] = layer.scale
                ks.append(layer.offset.astype(np.int64))
            else:
                ks.append(layer.k.astype(np.int64))
            k_off += len(rows_a)
            max_acc = max(max_acc, len(rows_a))
        max_words = max(max_words, n_words(row[N_OUT_BITS]))
        rows.append(row)
    ident = bool(np.array_equal(perm, np.arange(len(perm))))
    return Program(np.ascontiguousarray(feat, dtype=np.int64), np.ascontiguousarray(thr), ident,
                   _byte_thresholds(thr), np.stack(rows),
                   np.concatenate(pos), np.concatenate(neg or [np.zeros(0, np.uint64)]), np.concatenate(ks),
                   max_words + 1, max_col + 1, max_acc)
