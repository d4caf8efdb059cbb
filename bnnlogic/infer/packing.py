"""Bit packing and the compilation of an IR into the flat arrays the kernels run.

Layout.  An activation is one bit string packed little-endian into uint64 words: bit q
lives in word ``q >> 6`` at position ``q & 63``; bits past the end of the string are 0.
Vectors keep the IR's order.  Images (C, H, W) are stored channel-last, ``q = (y*W + x)*C + c``,
so a kernel row (fixed i, j = 0..kw-1, all channels) is one contiguous run of ``kw*C`` bits
and a conv's receptive field is ``kh`` such runs (bit-packed im2col).  Weights are permuted
to the same order once, here.

Padding.  A conv's zero padding is never stored: the im2col gather leaves the bits of padded
positions 0 (the IR's padded bits are 0).  Per-position thresholds are stored position-major,
(Ho*Wo, C_out), and position p reads its C_out of them at ``K_OFF + p * K_STEP`` (K_STEP = 0
for per-filter thresholds).

Weights.  A ternary row a in {-1,0,1}^n becomes two masks, ``pos = [a = 1]`` and
``neg = [a = -1]``, and for u in {0,1}^n::

    sum_j a_j u_j = popcount(u & pos) - popcount(u & neg)
                  = 2 * popcount(u & pos) - popcount(u)          if a has no zeros (binary)

so a binary layer costs one AND+POPCOUNT per word and neuron (popcount(u) once per input),
a ternary one two.  Masks are stored word-major, ``mask[w, i]`` (neuron index fastest), so
the kernels' innermost loop runs over neurons with contiguous loads and vectorises.

Sliced dense layers.  A wide dense layer with many neurons per input bit runs column-wise
instead (``slices``): per 512 neurons (a chunk) it sums one 512-bit column per set input
bit into a bit-sliced counter, so its cost follows the input's set bits, not n_out * words.
With s = popcount(u) and k clamped to [-n, n + 1] (the same firing on every u):

    binary   sum_j a_j u_j >= k  <=>  c + F^r >= B + (s >> 1),  c = #{j: u_j = 1, a_j = 1},
             F^r = B - ceil((k + r) / 2), r = s & 1          (columns [a = 1])
    ternary  sum_j a_j u_j >= k  <=>  c + F   >= B + s,      c = #{u_j = 1, a_j = 1} + #{u_j = 1, a_j != -1},
             F = B - k                                        (columns [a = 1], then [a != -1])

with B = 2^b >= n + 2 so that F >= 0, and P planes holding every F + c.  ``sliced_tables``
builds the columns (plus one zero column, the padding of a group of 16) and F's planes.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..ir import IR, Conv, Dense, MaxPool

# ops table: one row per layer (hidden layers, then the output layer)
DENSE, CONV, POOL, OUTPUT = 0, 1, 2, 3
(KIND, N_OUT, WORDS, W_OFF, NEG_OFF, K_OFF, BINARY, C_IN, H, W, KH, KW, STRIDE, HO, WO, SCALE, N_IN_BITS,
 N_OUT_BITS, SLICED, COL_OFF, F_OFF, PLANES, CHUNKS, BIAS, PAD, K_STEP) = range(26)
N_COLS = 26
CHUNK = 512  # neurons per sliced chunk: one 512-bit plane


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
    max_idx: int
    max_planes: int
    max_pos: int  # output positions of the largest conv layer (its im2col rows)

    @property
    def weight_bytes(self) -> int:
        """Bytes of the layers' parameters as the engine holds them: mask words and int64 thresholds."""
        return int(self.pos.nbytes + self.neg.nbytes + self.k.nbytes)


def _byte_thresholds(thr: np.ndarray) -> np.ndarray:
    """Thresholds for uint8 features x: [x >= t] = [x >= clip(t, 0, 256)].  As uint8 (byte
    compares, 64 per 512-bit vector) unless some t > 255 (a bit that never fires), then int16."""
    t = np.clip(thr, 0, 256)
    return t.astype(np.uint8 if t.max(initial=0) <= 255 else np.int16)


def sliced_tables(A: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Columns and counter starts of a sliced dense layer (see the module docstring).

    A (n_out, n) in {-1,0,1}, k (n_out,) -> (cols, F, P, B): cols (chunks, n_cols + 1, 8) uint64
    with bit i of cols[c, j] = column j at neuron 512c + i (n_cols = n binary, 2n ternary; the
    last column is zero), F (chunks, n_r, P, 8) uint64 the planes of F^r (n_r = 2 binary, 1
    ternary; 0 at lanes past n_out, which therefore never fire), P planes, B the bias.
    """
    n_out, n = A.shape
    binary = bool(np.all(A != 0))
    chunks = -(-n_out // CHUNK)
    lanes = np.zeros((chunks * CHUNK, n), np.int8)
    lanes[:n_out] = A
    col_bits = [lanes == 1] if binary else [lanes == 1, lanes != -1]
    col_bits = np.concatenate(col_bits + [np.zeros((len(lanes), 1), bool)], axis=1)  # (lanes, n_cols + 1)
    cols = pack_bits(col_bits.reshape(chunks, CHUNK, -1).transpose(0, 2, 1).reshape(-1, CHUNK))
    B = 1 << int(n + 2 - 1).bit_length()
    k = np.clip(np.asarray(k, np.int64), -n, n + 1)
    starts = [B - (-(-(k + r) // 2)) for r in (0, 1)] if binary else [B - k]
    P = int(B + (n if binary else 2 * n) + n).bit_length()
    F = np.zeros((len(starts), chunks * CHUNK), np.int64)
    F[:, :n_out] = starts
    planes = (F[:, None, :] >> np.arange(P)[None, :, None]) & 1  # (n_r, P, lanes)
    planes = pack_bits(planes.reshape(len(starts), P, chunks, CHUNK).transpose(2, 0, 1, 3).reshape(-1, CHUNK))
    return cols.reshape(chunks, -1, 8), planes.reshape(chunks, len(starts), P, 8), P, B


def slicing_pays(n_out: int, n: int, binary: bool) -> bool:
    """Whether a dense layer runs sliced, by a cost estimate per input at input density 1/2:
    AND+POPCOUNT costs n_out * words (x2 ternary) word operations, sliced costs about 10 word
    operations' time per column per 512-neuron chunk (n/2 set bits, x2 ternary, plus half a
    group of padding).  Calibrated on the fc net of benchmarks/infer.py: its first layer
    (784 -> 500) slices, 500 -> 300 does not."""
    per_bit = 1 if binary else 2
    return -(-n_out // CHUNK) * (per_bit * n / 2 + 8) * 10 < n_out * n_words(n) * per_bit


def compile_ir(ir: IR, sliced: bool | None = None) -> Program:
    """Translate an IR into a ``Program`` (weights permuted to the engine's bit layout).

    ``sliced``: hidden dense layers run bit-sliced (True), by AND+POPCOUNT (False), or as
    ``slicing_pays`` estimates (None).
    """
    c = ir.coding
    perm = layout(c.bit_shape)
    level, feat = np.divmod(perm, c.n_features)
    thr = c.thresholds[level, feat].astype(np.int64)
    shapes = ir.shapes()
    rows, pos, neg, ks = [], [], [], []
    w_off = neg_off = k_off = 0
    max_words, max_col, max_acc, max_idx, max_planes, max_pos = n_words(c.n_bits), 1, 1, 16, 1, 1
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
                row[[KIND, C_IN, H, W, KH, KW, STRIDE, HO, WO, PAD]] = (CONV, ch, h, w, kh, kw, layer.stride, ho, wo,
                                                                        layer.padding)
                row[N_OUT_BITS] = co * ho * wo
                max_col = max(max_col, n_words(rows_a.shape[1]))
                max_pos = max(max_pos, ho * wo)
            else:
                rows_a = layer.A[:, layout(shape)]
                row[KIND] = OUTPUT if i == len(ir.layers) else DENSE
                row[N_OUT_BITS] = len(rows_a)
            binary = bool(np.all(rows_a != 0))
            row[[N_OUT, WORDS, K_OFF, BINARY]] = (len(rows_a), n_words(rows_a.shape[1]), k_off, binary)
            if row[KIND] == OUTPUT:
                row[SCALE] = layer.scale
                ks.append(layer.offset.astype(np.int64))
            elif isinstance(layer, Conv) and layer.k.ndim == 3:  # per position: (Ho*Wo, C_out), position-major
                ks.append(layer.k.reshape(co, -1).T.astype(np.int64).ravel())
                row[K_STEP] = co
            else:
                ks.append(layer.k.astype(np.int64))
            if row[KIND] == DENSE and (slicing_pays(*rows_a.shape, binary) if sliced is None else sliced):
                cols, F, P, B = sliced_tables(rows_a, layer.k)
                row[[SLICED, COL_OFF, F_OFF, PLANES, CHUNKS, BIAS]] = (1, w_off, w_off + cols.size, P, len(cols), B)
                pos.extend([cols.ravel(), F.ravel()])
                w_off += cols.size + F.size
                max_idx = max(max_idx, cols.shape[1] + 16)
                max_planes = max(max_planes, P)
                max_words = max(max_words, 8 * len(cols))
            else:
                p, m = weight_masks(rows_a)
                row[[W_OFF, NEG_OFF]] = (w_off, neg_off)
                pos.append(p.ravel())
                w_off += p.size
                if not binary:
                    neg.append(m.ravel())
                    neg_off += m.size
            k_off += len(ks[-1])
            max_acc = max(max_acc, len(rows_a))
        max_words = max(max_words, n_words(row[N_OUT_BITS]))
        rows.append(row)
    ident = bool(np.array_equal(perm, np.arange(len(perm))))
    return Program(np.ascontiguousarray(feat, dtype=np.int64), np.ascontiguousarray(thr), ident,
                   _byte_thresholds(thr), np.stack(rows),
                   np.concatenate(pos), np.concatenate(neg or [np.zeros(0, np.uint64)]), np.concatenate(ks),
                   max_words + 1, max_col + 1, max_acc, max_idx, max_planes, max_pos)
