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
  features (R_c copies of every bit of channel c), a dense layer for vector features (R_f per
  feature).
* **Convolutions** are the same with channels for neurons: an integer conv W (O, C, kh, kw) on
  activations becomes an IR ``Conv`` over the bit channels (c, v, r), kernel A[(o, v', r'),
  (c, v, r), i, j] = sign(W[o, c, i, j]) [r < |W[o, c, i, j]|], threshold T[o, v'];
  R_c = max |W[:, c]| copies of every bit channel of c, emitted by repeating output channels.
  Channels stay whole images, so a dense layer after a flatten gets R_c = the maximum over all
  of channel c's positions.  The IR's convolution has no padding, hence neither may the
  float network's (``FloatNet.quant_chain`` refuses it).
* **Max-pool**: ``[max_w a_w >= T] = OR_w [a_w >= T]`` (thermometer bits), so the K-bit
  max-pool is the IR's binary max-pool on every bit channel (copies of a bit pool to copies of
  the pooled bit; the copies a pool's output needs are emitted before it).
* **Output**: ``score_c = 2^F sum_j A_cj u_j + B_c`` is the IR's ``Output(A, scale=2^F, offset=B)``
  over the repeated last-layer bits, with the same argmax and tie rule.

Size: a hidden layer of n neurons (channels) becomes sum_i Qa R_i <= n Qa Qw threshold neurons
(channels).  ``MAX_COEFFICIENTS`` bounds the weight entries the IR stores (a conv kernel once,
not once per position); ``entries`` in ``ir_size`` / ``estimate_size`` counts connections
(per neuron and position), the work of one forward pass.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import UserError
from ..ir import IR, Conv, Dense, InputCoding, MaxPool, Output
from .quantization import QConv, QDense, QPool, QuantNet, im2col

MAX_COEFFICIENTS = 400_000_000  # stored weight entries; a bigger IR does not fit in memory here


def _expand(W: np.ndarray, idx: np.ndarray, n_cols: int, block: int = 1 << 24) -> np.ndarray:
    """Ternary rows: row o puts sign(W[o, q]) on copies r < |W[o, q]| of every level of q.

    ``W`` (n_out, n_q, *kernel); ``idx`` (n_q, L, R): column of (quantity q, level l, copy r),
    or -1 where q has fewer copies.  Returns int8 (n_out, n_cols, *kernel).
    """
    n_out, kernel = W.shape[0], W.shape[2:]
    assert int(np.abs(W).max(initial=0)) <= idx.shape[2]
    q, _, r = np.nonzero(idx >= 0)
    cols = idx[idx >= 0]  # same (q, l, r) order as np.nonzero
    sign, mag = np.sign(W).astype(np.int8), np.abs(W).astype(np.int16)
    r = r.reshape((1, -1) + (1,) * len(kernel))
    A = np.zeros((n_out, n_cols) + kernel, dtype=np.int8)
    step = max(1, block // max(1, len(q) * int(np.prod(kernel, dtype=np.int64))))
    for o in range(0, n_out, step):
        A[o:o + step, cols] = sign[o:o + step, q] * (r < mag[o:o + step, q])
    return A


def _ragged_index(copies: np.ndarray, levels: int, start: int = 0) -> tuple[np.ndarray, int]:
    """Consecutive columns for (q, level, copy < copies[q]); returns (idx (n_q, L, Rmax), count)."""
    R = max(int(copies.max(initial=0)), 1)
    use = np.broadcast_to(np.arange(R)[None, None, :] < copies[:, None, None], (len(copies), levels, R))
    idx = np.full(use.shape, -1, dtype=np.int64)
    idx[use] = start + np.arange(int(use.sum()))
    return idx, int(use.sum())


def _needs(q: QuantNet) -> list[np.ndarray]:
    """need[i][c]: copies of each bit of channel (image) or feature (vector) c of tensor i that
    its consumer reads (tensor 0: input levels, tensor i: output of ``q.layers[i - 1]``)."""
    shapes = q.shapes()
    need: list[Any] = [None] * len(shapes)
    for i in range(len(shapes) - 1, -1, -1):
        cons = q.layers[i] if i < len(q.layers) else None
        if isinstance(cons, QPool):
            n = need[i + 1].copy()
        elif isinstance(cons, QConv):
            n = np.abs(cons.W).max(axis=(0, 2, 3))
        else:  # dense or output layer: per feature, per channel after an image
            n = np.abs(cons.W if cons is not None else q.out_W).max(axis=0)
            if len(shapes[i]) == 3:
                n = n.reshape(shapes[i][0], -1).max(axis=1)
        if i > 0 and not n.any():
            n[0] = 1  # at least one bit, so the IR has no empty layer
        need[i] = n.astype(np.int64)
    return need


def _flatten(idx: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Channel layout of an image (C, H, W) -> column layout of its flattening (C*H*W order)."""
    hw = int(np.prod(shape[1:]))
    out = idx[:, None] * hw + np.arange(hw)[None, :, None, None]
    return np.where(idx[:, None] >= 0, out, -1).reshape((-1,) + idx.shape[1:])


def _walk(q: QuantNet, build: bool) -> tuple[list[Any], dict[str, int]]:
    """The IR's hidden layers (if ``build``) and its size: neurons (conv positions included),
    entries (connections: per neuron, its kernel or row), stored (weight entries held)."""
    fs = tuple(q.feature_shape)
    M, d = len(q.in_thresholds), int(np.prod(fs))
    need = _needs(q)
    shapes = q.shapes()
    image = len(fs) == 3
    nq = fs[0] if image else d  # quantities that have an idx row: channels or features
    idx = (np.arange(M)[None, :] * nq + np.arange(nq)[:, None])[:, :, None]  # input bits, level-major
    n_ir, copied = M * nq, False
    layers: list[Any] = []
    size = {"neurons": 0, "entries": 0, "stored": 0}

    def add(rows: int, n_in: int, kernel: int = 1, positions: int = 1, neurons: bool = True) -> None:
        size["neurons"] += rows * positions * neurons
        size["entries"] += rows * positions * n_in * kernel
        size["stored"] += rows * n_in * kernel

    for i, layer in enumerate(q.layers):
        shape = shapes[i]
        if isinstance(layer, QPool):
            if build:
                layers.append(MaxPool(layer.size, layer.stride))
            continue
        if not copied and need[i].max() > 1:  # copy the input bits: copy (c, l, r) of bit (c, l)
            new, rows = _ragged_index(need[i], M)
            src = np.broadcast_to(idx[:, :, :1], new.shape)[new >= 0]
            hw = int(np.prod(shape[1:])) if image else 1
            add(rows, n_ir, 1, hw)
            if build:
                A = np.zeros((rows, n_ir), dtype=np.int8)
                A[new[new >= 0], src] = 1
                ones = np.ones(rows, dtype=np.int64)
                layers.append(Conv(A[:, :, None, None], ones, 1) if image else Dense(A, ones))
            idx, n_ir = new, rows
        copied = True
        if isinstance(layer, QDense) and len(shape) == 3:
            idx, n_ir = _flatten(idx, shape), n_ir * int(np.prod(shape[1:]))
        new, rows = _ragged_index(need[i + 1], q.levels)
        kernel = int(np.prod(layer.W.shape[2:]))
        add(rows, n_ir, kernel, int(np.prod(shapes[i + 1][1:])) if isinstance(layer, QConv) else 1)
        if build:
            A = _expand(layer.W, idx, n_ir)  # one row (or kernel) per output neuron (channel)
            unit = np.broadcast_to(np.arange(len(new))[:, None, None], new.shape)[new >= 0]
            level = np.broadcast_to(np.arange(q.levels)[None, :, None], new.shape)[new >= 0]
            k = layer.T[unit, level].astype(np.int64)
            layers.append(Conv(A[unit], k, layer.stride) if isinstance(layer, QConv) else Dense(A[unit], k))
        idx, n_ir = new, rows
    shape = shapes[-1]
    if len(shape) == 3:
        idx, n_ir = _flatten(idx, shape), n_ir * int(np.prod(shape[1:]))
    add(q.out_W.shape[0], n_ir, neurons=False)  # output scores are not threshold neurons
    if build:
        layers.append(Output(_expand(q.out_W, idx, n_ir), 1 << q.frac_bits, q.out_B.astype(np.int64)))
    return layers, size


def estimate_size(q: QuantNet) -> dict[str, int]:
    """Neurons, entries (connections) and stored weight entries of ``compile_quant(q)``, without
    building it."""
    return _walk(q, False)[1]


def compile_quant(q: QuantNet, max_coefficients: int = MAX_COEFFICIENTS) -> IR:
    """The IR of threshold neurons whose integer scores equal ``q.scores`` on every input."""
    size = estimate_size(q)
    if size["stored"] > max_coefficients:
        raise UserError(f"exact compilation at {q.bits} bits needs {size['stored']:,} weight entries "
                        f"({size['neurons']:,} neurons), over the limit {max_coefficients:,}; "
                        "use fewer bits or a smaller network")
    fs = tuple(q.feature_shape)
    d = int(np.prod(fs))
    coding = InputCoding(fs, q.lo, q.hi, np.repeat(q.in_thresholds[:, None], d, axis=1).astype(np.int64))
    layers, _ = _walk(q, True)
    ir = IR(coding, tuple(layers[:-1]), layers[-1])
    ir.validate()
    return ir


def ir_size(ir: IR) -> dict[str, int]:
    """Threshold neurons (conv positions included), weight entries per neuron and position
    (``entries``, zeros included), nonzero weights counted the same way, and the weight entries
    stored (``stored``: a conv kernel once)."""
    neurons = entries = nonzeros = stored = 0
    shapes = ir.shapes()
    for layer, shape_out in zip(ir.layers, shapes[1:]):
        if isinstance(layer, (Dense, Conv)):
            n = int(np.prod(shape_out))
            per = int(np.prod(layer.A.shape[1:]))
            neurons += n
            entries += n * per
            stored += layer.A.size
            nz = np.count_nonzero(layer.A.reshape(layer.A.shape[0], -1), axis=1)
            nonzeros += int(nz.sum()) * (n // layer.A.shape[0])
    entries += ir.output.A.size
    stored += ir.output.A.size
    nonzeros += int(np.count_nonzero(ir.output.A))
    return {"neurons": neurons, "entries": entries, "nonzeros": nonzeros, "stored": stored,
            "layers": len(ir.layers)}


def ir_scores_blas(ir: IR, X: np.ndarray, batch: int = 1024, max_bytes: int = 1 << 28) -> np.ndarray:
    """``ir.scores(X)``, computed with float32 matrix products for dense and conv layers (conv by
    im2col; the batch shrinks so that no receptive-field matrix exceeds ``max_bytes``).

    Exact: entries are 0/1 times -1/0/+1, so every partial sum is an integer of magnitude at
    most n_in < 2^24 (the kernel size for a conv), which float32 represents exactly (whatever
    the summation order).
    """
    shapes = ir.shapes()
    mats, per_example = [], 1
    for layer, shape_in, shape_out in zip(ir.layers, shapes, shapes[1:]):
        if isinstance(layer, (Dense, Conv)):
            assert int(np.prod(layer.A.shape[1:])) < 2 ** 24
            mats.append((layer.A.reshape(len(layer.A), -1).astype(np.float32).T, layer.k))
            if isinstance(layer, Conv):
                per_example = max(per_example, 4 * int(np.prod(shape_out[1:])) * int(np.prod(layer.A.shape[1:])))
        else:
            mats.append(None)
    assert ir.output.A.shape[1] < 2 ** 24
    batch = max(1, min(batch, max_bytes // per_example))
    out_A = ir.output.A.astype(np.float32).T
    res = []
    for i in range(0, len(X), batch):
        u = ir.coding.encode(X[i:i + batch])
        for layer, mat in zip(ir.layers, mats):
            if mat is None:
                u = layer.apply(u)
            elif isinstance(layer, Conv):
                n, (_, H, W), (_, _, kh, kw) = len(u), u.shape[1:], layer.A.shape
                Ho, Wo = (H - kh) // layer.stride + 1, (W - kw) // layer.stride + 1
                s = im2col(u, kh, kw, layer.stride).astype(np.float32) @ mat[0]  # (n*Ho*Wo, O)
                t = (s.astype(np.int64) >= mat[1]).astype(np.uint8)
                u = np.ascontiguousarray(t.reshape(n, Ho, Wo, -1).transpose(0, 3, 1, 2))
            else:
                s = u.reshape(len(u), -1).astype(np.float32) @ mat[0]
                u = (s.astype(np.int64) >= mat[1]).astype(np.uint8)
        s = (u.reshape(len(u), -1).astype(np.float32) @ out_A).astype(np.int64)
        res.append(ir.output.scale * s + ir.output.offset)
    return np.concatenate(res) if res else np.zeros((0, ir.n_classes), dtype=np.int64)
