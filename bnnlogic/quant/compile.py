"""Exact compilation of a K-bit ``QuantNet`` into a bnnlogic IR (weights in {-1, 0, +1}).

Construction (every step is an identity on integers, so the IR predicts exactly what the
quantized network predicts, on every input of the domain):

* **Input**: the IR's input coding *is* the input quantizer: thermometer bits
  ``u[m, f] = [x_f >= tau_m]``, so ``a0_f = sum_m u[m, f]``.
* **Thermometer activations**: a hidden activation ``a_i = #{v : S_i >= T_iv}`` is carried by
  its Qa bits ``t_iv = [S_i >= T_iv]`` (threshold neurons), and ``a_i = sum_v t_iv``.
* **Integer weights by repetition**: the next layer needs ``W_ji a_i = sum_v W_ji t_iv``, i.e.
  a coefficient |W_ji| <= Qw on a bit, while the IR allows only {-1, 0, +1}.  So each bit is
  emitted R_i = max_j |W_ji| times (identical neurons) and neuron j takes sign(W_ji) on
  |W_ji| of the copies:  ``S_j = sum_i sum_v sum_{r < |W_ji|} sign(W_ji) t_iv^(r)``.
  Input bits are duplicated by a copy layer (``[u >= 1]``): a 1x1 convolution for image
  features (R = max |W_1| copies per bit), a dense layer for vector features (R_f per feature).
* **Output**: ``score_c = 2^F sum_j A_cj u_j + B_c`` is the IR's ``Output(A, scale=2^F, offset=B)``
  over the repeated last-layer bits, with the same argmax and tie rule.

Size: a hidden layer of n neurons becomes sum_i Qa R_i <= n Qa Qw threshold neurons.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UserError
from ..ir import IR, Conv, Dense, InputCoding, Output
from .quantize import QuantNet

MAX_COEFFICIENTS = 400_000_000  # dense matrix entries; a bigger IR does not fit in memory here


def _expand(W: np.ndarray, idx: np.ndarray, n_cols: int) -> np.ndarray:
    """Ternary rows: row i puts sign(W[i, q]) on copies r < |W[i, q]| of every level of q.

    ``idx`` (n_q, L, R): column of (quantity q, level l, copy r), or -1 where q has fewer copies.
    """
    n_out, n_q = W.shape
    R = idx.shape[2]
    assert int(np.abs(W).max(initial=0)) <= R
    vals = (np.sign(W)[:, :, None] * (np.arange(R)[None, None, :] < np.abs(W)[:, :, None])).astype(np.int8)
    valid = idx >= 0
    A = np.zeros((n_out, n_cols), dtype=np.int8)
    A[:, idx[valid]] = np.broadcast_to(vals[:, :, None, :], (n_out,) + idx.shape)[:, valid]
    return A


def _ragged_index(copies: np.ndarray, levels: int, start: int = 0) -> tuple[np.ndarray, int]:
    """Consecutive columns for (q, level, copy < copies[q]); returns (idx (n_q, L, Rmax), count)."""
    R = max(int(copies.max(initial=0)), 1)
    use = np.broadcast_to(np.arange(R)[None, None, :] < copies[:, None, None], (len(copies), levels, R))
    idx = np.full(use.shape, -1, dtype=np.int64)
    idx[use] = start + np.arange(int(use.sum()))
    return idx, int(use.sum())


def _copies(W_next: np.ndarray) -> np.ndarray:
    """How many copies each input of ``W_next`` needs: max_j |W_next[j, i]| (at least one bit overall)."""
    c = np.abs(W_next).max(axis=0)
    if not c.any():
        c[0] = 1
    return c


def estimate_size(q: QuantNet) -> dict[str, int]:
    """Neurons and dense matrix entries of ``compile_quant(q)`` without building it."""
    d = int(np.prod(q.feature_shape))
    M = len(q.in_thresholds)
    Ws = [W for W, _ in q.hidden] + [q.out_W]
    neurons = entries = 0
    if int(np.abs(Ws[0]).max(initial=0)) > 1:
        if len(q.feature_shape) == 3:
            R = int(np.abs(Ws[0]).max())
            cols = M * d * R
            entries += M * R * M * q.feature_shape[0]
        else:
            cols = M * int(_copies(Ws[0]).sum())
            entries += cols * M * d
        neurons += cols
    else:
        cols = M * d
    for li, (W, T) in enumerate(q.hidden):
        rows = T.shape[1] * int(_copies(Ws[li + 1]).sum())
        entries += rows * cols
        neurons += rows
        cols = rows
    entries += q.out_W.shape[0] * cols
    return {"neurons": neurons, "entries": entries}


def compile_quant(q: QuantNet, max_coefficients: int = MAX_COEFFICIENTS) -> IR:
    """The IR of threshold neurons whose integer scores equal ``q.scores`` on every input."""
    size = estimate_size(q)
    if size["entries"] > max_coefficients:
        raise UserError(f"exact compilation at {q.bits} bits needs {size['entries']:,} weight entries "
                        f"({size['neurons']:,} neurons), over the limit {max_coefficients:,}; "
                        "use fewer bits or a smaller network")
    fs = tuple(q.feature_shape)
    d, M = int(np.prod(fs)), len(q.in_thresholds)
    coding = InputCoding(fs, q.lo, q.hi, np.repeat(q.in_thresholds[:, None], d, axis=1).astype(np.int64))
    Ws = [W for W, _ in q.hidden] + [q.out_W]
    layers: list[Any] = []
    R0 = int(np.abs(Ws[0]).max(initial=0))
    if R0 <= 1:  # bits u[m, f] at column m*d + f
        idx = (np.arange(M)[None, :] * d + np.arange(d)[:, None])[:, :, None]
        n_cols = M * d
    elif len(fs) == 3:  # 1x1 conv: channel (m*C + c)*R0 + r copies channel m*C + c
        C, H, Wd = fs
        A = (np.arange(M * C * R0)[:, None] // R0 == np.arange(M * C)[None, :]).astype(np.int8)
        layers.append(Conv(A[:, :, None, None], np.ones(M * C * R0, dtype=np.int64), 1))
        f = np.arange(d)
        c, pix = f // (H * Wd), f % (H * Wd)
        idx = ((np.arange(M)[None, :, None] * C + c[:, None, None]) * R0 + np.arange(R0)[None, None, :]) * (H * Wd) \
            + pix[:, None, None]
        n_cols = M * d * R0
    else:  # dense copy layer: copies of bit (m, f) in consecutive rows
        idx, n_cols = _ragged_index(_copies(Ws[0]), M)
        src = np.broadcast_to((np.arange(M)[None, :] * d + np.arange(d)[:, None])[:, :, None], idx.shape)[idx >= 0]
        A = np.zeros((n_cols, M * d), dtype=np.int8)
        A[idx[idx >= 0], src] = 1
        layers.append(Dense(A, np.ones(n_cols, dtype=np.int64)))
    for li, (W, T) in enumerate(q.hidden):
        A_neuron = _expand(W, idx, n_cols)  # (n, n_cols)
        copies = _copies(Ws[li + 1])
        levels = T.shape[1]
        idx, n_rows = _ragged_index(copies, levels)
        # rows in column order of idx (neuron, level, copy): copy r of bit t_iv = [S_i >= T_iv]
        neuron = np.broadcast_to(np.arange(len(copies))[:, None, None], idx.shape)[idx >= 0]
        level = np.broadcast_to(np.arange(levels)[None, :, None], idx.shape)[idx >= 0]
        layers.append(Dense(A_neuron[neuron], T[neuron, level].astype(np.int64)))
        n_cols = n_rows
    out = Output(_expand(q.out_W, idx, n_cols), 1 << q.frac_bits, q.out_B.astype(np.int64))
    ir = IR(coding, tuple(layers), out)
    ir.validate()
    return ir


def ir_size(ir: IR) -> dict[str, int]:
    """Threshold neurons (conv positions included), dense weight entries and nonzero weights."""
    neurons = entries = nonzeros = 0
    shapes = ir.shapes()
    for layer, shape_out in zip(ir.layers, shapes[1:]):
        if isinstance(layer, (Dense, Conv)):
            n = int(np.prod(shape_out))
            per = int(np.prod(layer.A.shape[1:]))
            neurons += n
            entries += n * per
            nz = np.count_nonzero(layer.A.reshape(layer.A.shape[0], -1), axis=1)
            nonzeros += int(nz.sum()) * (n // layer.A.shape[0])
    entries += ir.output.A.size
    nonzeros += int(np.count_nonzero(ir.output.A))
    return {"neurons": neurons, "entries": entries, "nonzeros": nonzeros, "layers": len(ir.layers)}


def ir_scores_blas(ir: IR, X: np.ndarray, batch: int = 1024) -> np.ndarray:
    """``ir.scores(X)``, computed with float32 matrix products for dense layers.

    Exact: entries are 0/1 times -1/0/+1, so every partial sum is an integer of magnitude at
    most n_in < 2^24, which float32 represents exactly (whatever the summation order).
    """
    mats = [(layer.A.astype(np.float32).T, layer.k) if isinstance(layer, Dense) else None for layer in ir.layers]
    for layer in ir.layers:
        if isinstance(layer, Dense):
            assert layer.n_in < 2 ** 24
    assert ir.output.A.shape[1] < 2 ** 24
    out_A = ir.output.A.astype(np.float32).T
    res = []
    for i in range(0, len(X), batch):
        u = ir.coding.encode(X[i:i + batch])
        for layer, mat in zip(ir.layers, mats):
            if mat is None:
                u = layer.apply(u)
            else:
                s = u.reshape(len(u), -1).astype(np.float32) @ mat[0]
                u = (s.astype(np.int64) >= mat[1]).astype(np.uint8)
        s = (u.reshape(len(u), -1).astype(np.float32) @ out_A).astype(np.int64)
        res.append(ir.output.scale * s + ir.output.offset)
    return np.concatenate(res) if res else np.zeros((0, ir.n_classes), dtype=np.int64)
