"""K-bit integer quantization of a float ReLU network (Linear/Conv2d, max-pools).

The quantized network ``QuantNet`` is defined by integers only; its forward pass
(``QuantNet.scores``) is the reference the compiled IR must match on every input.

Quantizer (K = ``bits`` >= 1, Qa = 2^K - 1 activation levels, Qw = max(1, 2^(K-1) - 1)):

* **Input** (raw integers x in [lo, hi]): M = min(Qa, hi - lo) uniform levels of width
  s0 = (hi - lo) / M; ``a0 = #{m : x >= tau_m}`` with ``tau_m = lo + ceil((m - 1/2) s0)``
  (strictly increasing), so x ~ lo + s0 a0.  The shift by lo is folded into the first bias.
* **Weights**: symmetric per layer, ``W_int = clip(round(W / s_w), -Qw, Qw)`` (K = 1 and K = 2
  both give ternary weights {-1, 0, +1}).  The scale minimises the squared error of the layer's
  float pre-activations on the calibration data, ``||A (s_w W_int - W)^T||^2`` (A: the layer's
  float inputs), over ``s_w = f max|W| / Qw`` with f in a grid on (0, 1] (``weight_scale``);
  ``max|W| / Qw`` alone rounds almost every weight to 0 at K <= 3.  BatchNorm is folded first.
* **Hidden activations**: unsigned K-bit ReLU, ``a = clip(round(z / s_a), 0, Qa)`` where the
  float pre-activation is z ~ s_w s_prev S + b with the integer sum ``S = W_int a_prev``.
  The scale s_a is calibrated: ``Qa * s_a`` = the ``percentile`` of the positive float
  activations on calibration data.  The rescale is done by integer thresholds:

      a = #{v in 1..Qa : S >= T_v},   T_v = ceil((s_a (v - 1/2) - b) / (s_w s_prev))

  (nondecreasing in v, clipped to the reachable range of S, which changes nothing).
* **Convolutions** are the same per output channel: S = the integer convolution of W_int
  (O, C, kh, kw) with the activations (no padding), thresholds T (O, Qa), the first
  layer's shift by lo is ``W.sum((1, 2, 3)) lo``.  The weight scale's error is measured on
  the layer's receptive fields (im2col rows).
* **Max-pool** takes the maximum of integer activations (or input levels): the activation
  quantizer is nondecreasing, so this is the quantized float max-pool.
* **Output**: ``score_c = 2^F S_c + B_c`` with ``B_c = round(b_c 2^F / (s_w s_prev))``,
  F = ``frac_bits``; prediction = the smallest c with a maximal score.

Floats are used only to *choose* W_int, T and B; once chosen, the network is exact integers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from ..errors import UserError
from .graph import Affine, FloatNet, MaxPool2d


@dataclass(frozen=True)
class QDense:
    """``a_j = #{v : S_j >= T[j, v]}`` with ``S = W a_prev`` (a_prev flattened)."""

    W: np.ndarray  # int64 (n_out, n_in)
    T: np.ndarray  # int64 (n_out, Qa), nondecreasing per row


@dataclass(frozen=True)
class QConv:
    """``a[o] = #{v : S[o] >= T[o, v]}`` with S the integer convolution of W (no padding)."""

    W: np.ndarray  # int64 (O, C, kh, kw)
    T: np.ndarray  # int64 (O, Qa)
    stride: int


@dataclass(frozen=True)
class QPool:
    """Max over ``size`` x ``size`` windows, step ``stride``, of integer activations."""

    size: int
    stride: int


QLayer = Union[QDense, QConv, QPool]


def windows(a: np.ndarray, kh: int, kw: int, stride: int) -> np.ndarray:
    """(n, C, H, W) -> receptive fields (n, C, Ho, Wo, kh, kw) (a view)."""
    win = np.lib.stride_tricks.sliding_window_view(a, (kh, kw), axis=(2, 3))
    return win[:, :, ::stride, ::stride]


def im2col(a: np.ndarray, kh: int, kw: int, stride: int) -> np.ndarray:
    """(n, C, H, W) -> rows (n*Ho*Wo, C*kh*kw), row order (n, y, x), column order (c, i, j)."""
    win = windows(a, kh, kw, stride)
    n, C, Ho, Wo = win.shape[:4]
    return win.transpose(0, 2, 3, 1, 4, 5).reshape(n * Ho * Wo, C * kh * kw)


def conv_sum(a: np.ndarray, W: np.ndarray, stride: int) -> np.ndarray:
    """``S[n, o, y, x] = sum_{c,i,j} W[o, c, i, j] a[n, c, y*s+i, x*s+j]`` (dtype of a and W)."""
    O, _, kh, kw = W.shape
    n, _, H, Wd = a.shape
    Ho, Wo = (H - kh) // stride + 1, (Wd - kw) // stride + 1
    S = im2col(a, kh, kw, stride) @ W.reshape(O, -1).T
    return S.reshape(n, Ho, Wo, O).transpose(0, 3, 1, 2)


def max_pool(a: np.ndarray, size: int, stride: int) -> np.ndarray:
    return windows(a, size, size, stride).max(axis=(4, 5))


@dataclass
class QuantNet:
    """An integer ReLU network with K-bit weights and activations (see the module docstring)."""

    bits: int
    feature_shape: tuple[int, ...]
    lo: int
    hi: int
    in_thresholds: np.ndarray  # int64 (M,), strictly increasing, shared by all features
    layers: list[QLayer]  # hidden layers in order; a QDense after an image flattens it (C, H, W order)
    out_W: np.ndarray  # int64 (n_classes, n_last)
    out_B: np.ndarray  # int64 (n_classes,)
    frac_bits: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def levels(self) -> int:
        return 2 ** self.bits - 1

    @property
    def hidden(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """(W, T) of the dense and conv layers, in order."""
        return [(layer.W, layer.T) for layer in self.layers if not isinstance(layer, QPool)]

    def shapes(self) -> list[tuple[int, ...]]:
        """Shape of the input levels and of each hidden layer's activations (one example)."""
        shapes = [tuple(self.feature_shape)]
        for layer in self.layers:
            s = shapes[-1]
            if isinstance(layer, QDense):
                shapes.append((layer.W.shape[0],))
            else:
                kh, kw = layer.W.shape[2:] if isinstance(layer, QConv) else (layer.size, layer.size)
                c = layer.W.shape[0] if isinstance(layer, QConv) else s[0]
                shapes.append((c, (s[1] - kh) // layer.stride + 1, (s[2] - kw) // layer.stride + 1))
        return shapes

    def input_levels(self, X: np.ndarray) -> np.ndarray:
        """Raw features (n, ...) -> input activations a0 (n, d) in 0..M."""
        X = np.asarray(X).reshape(len(X), -1).astype(np.int64)
        return np.searchsorted(self.in_thresholds, X, side="right").astype(np.int64)

    def activations(self, X: np.ndarray) -> list[np.ndarray]:
        """[a0, a1, ...]: integer activations of the input (n, *feature_shape) and of each hidden
        layer (n, *shape)."""
        acts = [self.input_levels(X).reshape((len(X),) + tuple(self.feature_shape))]
        for layer in self.layers:
            a = acts[-1]
            if isinstance(layer, QPool):
                acts.append(max_pool(a, layer.size, layer.stride))
                continue
            if isinstance(layer, QConv):
                S = conv_sum(a, layer.W, layer.stride)[..., None]
                T = layer.T[None, :, None, None, :]
            else:
                S, T = (a.reshape(len(a), -1) @ layer.W.T)[..., None], layer.T[None]
            acts.append((S >= T).sum(axis=-1).astype(np.int64))
        return acts

    def scores(self, X: np.ndarray, batch: int = 2048) -> np.ndarray:
        """Exact integer scores (n, n_classes)."""
        out = []
        for i in range(0, len(X), batch):
            a = self.activations(X[i:i + batch])[-1]
            out.append(((a.reshape(len(a), -1) @ self.out_W.T) << self.frac_bits) + self.out_B)
        return np.concatenate(out) if out else np.zeros((0, len(self.out_B)), dtype=np.int64)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted classes, ties to the lowest class."""
        return np.argmax(self.scores(X), axis=1)


def _inputs(op: Affine, h: np.ndarray) -> np.ndarray:
    """The rows a layer's weights multiply: receptive fields (conv) or flattened inputs."""
    if op.conv:
        return im2col(h, op.W.shape[2], op.W.shape[3], op.stride)
    return h.reshape(len(h), -1)


def _float_stats(ops: list, X: np.ndarray, batch: int = 500,
                 max_keep: int = 20_000_000) -> tuple[list, list]:
    """Float forward pass over the calibration data, per op: the Gram matrix of the layer's
    input rows (``_inputs``) and the positive ReLU outputs (float32; at most ``max_keep``
    values per layer, taken at an even step)."""
    n_aff = sum(isinstance(op, Affine) for op in ops)
    grams: list = [None] * len(ops)
    pos: list = [[] for _ in ops]
    step: list = [1] * len(ops)
    for start in range(0, len(X), batch):
        h = X[start:start + batch].astype(np.float64)
        k = 0
        for j, op in enumerate(ops):
            if isinstance(op, MaxPool2d):
                h = max_pool(h, op.kernel, op.stride)
                continue
            P = _inputs(op, h)
            grams[j] = P.T @ P if grams[j] is None else grams[j] + P.T @ P
            k += 1
            if k == n_aff:
                break
            O = op.W.shape[0]
            z = np.maximum(P @ op.W.reshape(O, -1).T + op.b, 0.0)
            if op.conv:
                n, Ho, Wo = len(h), (h.shape[2] - op.W.shape[2]) // op.stride + 1, (h.shape[3] - op.W.shape[3]) // op.stride + 1
                z = z.reshape(n, Ho, Wo, O).transpose(0, 3, 1, 2)
            if start == 0:  # one step for all batches, so that about max_keep values are kept
                total = z.size * -(-len(X) // batch)
                step[j] = max(1, -(-total // max_keep))
            kept = z.ravel()[::step[j]]
            pos[j].append(kept[kept > 0].astype(np.float32))
            h = z
    return grams, [np.concatenate(p) if p else None for p in pos]


def weight_scale(W: np.ndarray, qw: int, A: np.ndarray | None = None, grid: int = 64,
                 G: np.ndarray | None = None) -> float:
    """The per-layer scale s minimising the error of ``W_q(s) = s clip(round(W / s), -qw, qw)``
    over ``s = f max|W| / qw``, f in {1/grid, ..., 1} (1.0 for an all-zero W).

    The error is ``||A (W_q - W)^T||^2`` on the layer's float calibration inputs A (n, n_in),
    computed as ``sum((D G) * D)`` with the Gram matrix G = A^T A (or G given); without
    either, ``||W_q - W||^2``.
    """
    W = np.asarray(W, dtype=np.float64)
    top = float(np.abs(W).max(initial=0.0))
    if top == 0.0:
        return 1.0
    if G is None and A is not None:
        G = A.T.astype(np.float64) @ A.astype(np.float64)
    scales = top * np.arange(1, grid + 1) / (grid * qw)
    err = []
    for s in scales:
        D = np.clip(np.round(W / s), -qw, qw) * s - W
        err.append(float(((D @ G) * D).sum() if G is not None else (D * D).sum()))
    return float(scales[int(np.argmin(err))])


def reachable_sum(W: np.ndarray, a_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of ``S = W a`` over a in [0, a_max]^n: (S_min, S_max) per row (W rows flattened)."""
    W = W.reshape(len(W), -1)
    return np.minimum(W, 0).sum(1) * a_max, np.maximum(W, 0).sum(1) * a_max


def quantize(net: FloatNet, bits: int, X_calib: np.ndarray, lo: int, hi: int,
             percentile: float = 99.9, frac_bits: int = 8) -> QuantNet:
    """Quantize ``net`` (see ``FloatNet.quant_chain`` for the layers it accepts) to ``bits``-bit
    integers.  ``X_calib``: raw training features used to calibrate the scales.
    """
    if not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 8:
        raise UserError(f"--exact-bits must be an integer from 1 to 8, got {bits!r}")
    if hi <= lo:
        raise UserError(f"feature domain [{lo}, {hi}] has a single value; nothing to quantize")
    ops = net.quant_chain()
    fs = tuple(int(s) for s in net.feature_shape)
    qa, qw = 2 ** bits - 1, max(1, 2 ** (bits - 1) - 1)
    M = min(qa, hi - lo)
    s0 = (hi - lo) / M
    tau = lo + np.ceil((np.arange(1, M + 1) - 0.5) * s0).astype(np.int64)
    X = np.asarray(X_calib).reshape((len(X_calib),) + fs)
    grams, float_pos = _float_stats(ops, X)
    layers: list[QLayer] = []
    s_prev, a_max, scales, first = s0, M, [], True
    last = max(j for j, op in enumerate(ops) if isinstance(op, Affine))
    for j, op in enumerate(ops):
        if isinstance(op, MaxPool2d):
            layers.append(QPool(int(op.kernel), int(op.stride)))
            continue
        W, b = op.W, op.b
        O = W.shape[0]
        if first:
            b = b + W.reshape(O, -1).sum(1) * lo  # x = lo + s0 a0
            first = False
        s_w = weight_scale(W.reshape(O, -1), qw, G=grams[j])
        W_int = np.clip(np.round(W / s_w), -qw, qw).astype(np.int64)
        if j == last:
            B = np.round(b * 2.0 ** frac_bits / (s_w * s_prev)).astype(np.int64)
            scales.append({"s_w": s_w})
            break
        pos = float_pos[j]
        s_a = (float(np.percentile(pos, percentile)) / qa if pos is not None and pos.size else 0.0) or 1.0
        smin, smax = reachable_sum(W_int, a_max)
        T = (s_a * (np.arange(1, qa + 1) - 0.5)[None] - b[:, None]) / (s_w * s_prev)
        T = np.ceil(np.clip(T, smin[:, None], smax[:, None] + 1)).astype(np.int64)
        layers.append(QConv(W_int, T, int(op.stride)) if op.conv else QDense(W_int, T))
        scales.append({"s_w": s_w, "s_a": s_a})
        s_prev, a_max = s_a, qa
    return QuantNet(bits, fs, int(lo), int(hi), tau, layers, W_int, B, frac_bits,
                    {"weight_levels": qw, "activation_levels": qa, "input_levels": M, "input_step": s0,
                     "percentile": percentile, "scales": scales})
