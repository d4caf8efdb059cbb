"""K-bit integer quantization of a fully connected float ReLU network.

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
* **Output**: ``score_c = 2^F S_c + B_c`` with ``B_c = round(b_c 2^F / (s_w s_prev))``,
  F = ``frac_bits``; prediction = the smallest c with a maximal score.

Floats are used only to *choose* W_int, T and B; once chosen, the network is exact integers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import UserError
from .graph import FloatNet


@dataclass
class QuantNet:
    """An integer ReLU network with K-bit weights and activations (see the module docstring)."""

    bits: int
    feature_shape: tuple[int, ...]
    lo: int
    hi: int
    in_thresholds: np.ndarray  # int64 (M,), strictly increasing, shared by all features
    hidden: list[tuple[np.ndarray, np.ndarray]]  # (W int64 (n_out, n_in), T int64 (n_out, Qa))
    out_W: np.ndarray  # int64 (n_classes, n_last)
    out_B: np.ndarray  # int64 (n_classes,)
    frac_bits: int
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def levels(self) -> int:
        return 2 ** self.bits - 1

    def input_levels(self, X: np.ndarray) -> np.ndarray:
        """Raw features (n, ...) -> input activations a0 (n, d) in 0..M."""
        X = np.asarray(X).reshape(len(X), -1).astype(np.int64)
        return np.searchsorted(self.in_thresholds, X, side="right").astype(np.int64)

    def activations(self, X: np.ndarray) -> list[np.ndarray]:
        """[a0, a1, ...]: integer activations of the input and of each hidden layer."""
        acts = [self.input_levels(X)]
        for W, T in self.hidden:
            S = acts[-1] @ W.T
            acts.append((S[:, :, None] >= T[None]).sum(axis=2).astype(np.int64))
        return acts

    def scores(self, X: np.ndarray) -> np.ndarray:
        """Exact integer scores (n, n_classes)."""
        S = self.activations(X)[-1] @ self.out_W.T
        return (S << self.frac_bits) + self.out_B

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted classes, ties to the lowest class."""
        return np.argmax(self.scores(X), axis=1)


def _float_forward(chain: list[tuple[np.ndarray, np.ndarray]], X: np.ndarray) -> list[np.ndarray]:
    """Float ReLU activations of each hidden layer (for calibration)."""
    h, out = X.astype(np.float64), []
    for W, b in chain[:-1]:
        h = np.maximum(h @ W.T + b, 0.0)
        out.append(h)
    return out


def weight_scale(W: np.ndarray, qw: int, A: np.ndarray | None = None, grid: int = 64) -> float:
    """The per-layer scale s minimising the error of ``W_q(s) = s clip(round(W / s), -qw, qw)``
    over ``s = f max|W| / qw``, f in {1/grid, ..., 1} (1.0 for an all-zero W).

    The error is ``||A (W_q - W)^T||^2`` on the layer's float calibration inputs A (n, n_in),
    computed as ``sum((D G) * D)`` with the Gram matrix G = A^T A; without A, ``||W_q - W||^2``.
    """
    W = np.asarray(W, dtype=np.float64)
    top = float(np.abs(W).max(initial=0.0))
    if top == 0.0:
        return 1.0
    G = None if A is None else A.T.astype(np.float64) @ A.astype(np.float64)
    scales = top * np.arange(1, grid + 1) / (grid * qw)
    err = []
    for s in scales:
        D = np.clip(np.round(W / s), -qw, qw) * s - W
        err.append(float(((D @ G) * D).sum() if G is not None else (D * D).sum()))
    return float(scales[int(np.argmin(err))])


def reachable_sum(W: np.ndarray, a_max: int) -> tuple[np.ndarray, np.ndarray]:
    """Bounds of ``S = W a`` over a in [0, a_max]^n: (S_min, S_max) per row."""
    return np.minimum(W, 0).sum(1) * a_max, np.maximum(W, 0).sum(1) * a_max


def quantize(net: FloatNet, bits: int, X_calib: np.ndarray, lo: int, hi: int,
             percentile: float = 99.9, frac_bits: int = 8) -> QuantNet:
    """Quantize ``net`` (fully connected, see ``FloatNet.affine_chain``) to ``bits``-bit integers.

    ``X_calib``: raw training features used to calibrate the activation scales.
    """
    if not isinstance(bits, (int, np.integer)) or not 1 <= bits <= 8:
        raise UserError(f"--exact-bits must be an integer from 1 to 8, got {bits!r}")
    if hi <= lo:
        raise UserError(f"feature domain [{lo}, {hi}] has a single value; nothing to quantize")
    chain = net.affine_chain()
    d = int(np.prod(net.feature_shape))
    if chain[0][0].shape[1] != d:
        raise UserError(f"the network's first layer takes {chain[0][0].shape[1]} inputs, the data has {d} features")
    qa, qw = 2 ** bits - 1, max(1, 2 ** (bits - 1) - 1)
    M = min(qa, hi - lo)
    s0 = (hi - lo) / M
    tau = lo + np.ceil((np.arange(1, M + 1) - 0.5) * s0).astype(np.int64)
    X = np.asarray(X_calib).reshape(len(X_calib), d)
    float_acts = _float_forward(chain, X)
    hidden, s_prev, a_max, scales = [], s0, M, []
    for li, (W, b) in enumerate(chain):
        if li == 0:
            b = b + W.sum(1) * lo  # x = lo + s0 a0
        s_w = weight_scale(W, qw, X if li == 0 else float_acts[li - 1])
        W_int = np.clip(np.round(W / s_w), -qw, qw).astype(np.int64)
        if li == len(chain) - 1:
            B = np.round(b * 2.0 ** frac_bits / (s_w * s_prev)).astype(np.int64)
            scales.append({"s_w": s_w})
            break
        pos = float_acts[li][float_acts[li] > 0]
        s_a = (float(np.percentile(pos, percentile)) / qa if pos.size else 0.0) or 1.0
        smin, smax = reachable_sum(W_int, a_max)
        T = (s_a * (np.arange(1, qa + 1) - 0.5)[None] - b[:, None]) / (s_w * s_prev)
        T = np.ceil(np.clip(T, smin[:, None], smax[:, None] + 1)).astype(np.int64)
        hidden.append((W_int, T))
        scales.append({"s_w": s_w, "s_a": s_a})
        s_prev, a_max = s_a, qa
    return QuantNet(bits, tuple(net.feature_shape), int(lo), int(hi), tau, hidden, W_int, B, frac_bits,
                    {"weight_levels": qw, "activation_levels": qa, "input_levels": M, "input_step": s0,
                     "percentile": percentile, "scales": scales})
