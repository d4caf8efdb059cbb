"""Binary layers: latent real weights in [-1, 1], binarized (or ternarized) in the forward pass.

Training mode runs in float32 with STE gradients.  Evaluation mode is the *trained network*
whose predictions the IR must match: the integer pre-activations are computed in float64
(exact for sums of +-1 terms), then BN and the sign decision ``y >= 0``.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from .quantizers import binmask, masked_sign, ste_sign, stochastic_sign, top_mask

OUTPUT_FRAC_BITS = 16  # the output bias is a fixed-point number with this many fractional bits
# latent weights start uniform in [-LATENT_INIT, LATENT_INIT]: small, so Adam steps flip signs early
# (measured: conv-small on Fashion-MNIST, 3 epochs, 0.841 vs 0.807 with uniform(-1, 1))
LATENT_INIT = 0.05


@dataclass(frozen=True)
class WeightQuant:
    """How latent weights become {-1,+1} (``binary``) or {-1,0,+1} (``ternary``, ``binmask``).

    Ternary zero band: a fixed ``delta`` (|w| <= delta is 0), or by rank per layer: the largest
    ``keep`` fraction of |w| is kept (``percentile`` p is keep = 1 - p/100).  Ranking, not a
    quantile threshold: latent weights clipped at |w| = 1 tie, and a threshold at 1 would zero
    the whole layer.  ``binmask``: the EEV work's learned mask, a second latent tensor m per
    layer, weight ``sign(w) [m >= 0]``, pruned by a constant push ``decay`` on kept masks.
    """

    mode: str = "binary"
    delta: float | None = None
    percentile: float | None = None
    keep: float | None = None
    decay: float = 1e-5

    def kept(self) -> float | None:
        """The fraction of weights kept by rank, or None for a fixed band."""
        if self.keep is not None:
            return self.keep
        return None if self.percentile is None else 1.0 - self.percentile / 100.0

    def mask(self, w: torch.Tensor) -> torch.Tensor:
        """Ternary: where sign(w) is kept (|w| > delta, or the ``kept()`` largest |w| by rank)."""
        keep = self.kept()
        return w.detach().abs() > (self.delta or 0.0) if keep is None else top_mask(w, keep)

    def __call__(self, w: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Quantized w (STE backward); ``mask``: ``self.mask(w)`` if the caller has it (ternary)."""
        if self.mode == "binary":
            return ste_sign(w)
        return masked_sign(w, self.mask(w) if mask is None else mask)


def layer_quants(spec: dict, n_hidden: int) -> list[WeightQuant]:
    """One ``WeightQuant`` per binary layer (``n_hidden`` hidden layers, then the output) from a
    network's quant spec.  ``spec["keep"]`` may be a list: hidden layer i keeps ``keep[i]`` (the
    last entry for deeper layers) and the output layer ``spec["keep_output"]`` (default 1: all)."""
    keep = spec.get("keep")
    if not isinstance(keep, (list, tuple)):
        return [WeightQuant(**spec)] * (n_hidden + 1)
    base = {k: v for k, v in spec.items() if k != "keep_output"}
    fractions = [keep[min(i, len(keep) - 1)] for i in range(n_hidden)] + [spec.get("keep_output", 1.0)]
    return [WeightQuant(**{**base, "keep": float(f)}) for f in fractions]


class SparsityRamp:
    """Gradual pruning (Zhu & Gupta 2017): over the first ``fraction`` of training, each layer's
    kept fraction falls from 1 to its target ``keep`` along a cubic,
    ``keep_t = 1 - (1 - keep) * (1 - (1 - t / (fraction * T))^3)``; after that it is ``keep``.
    Call it with the training progress t / T in [0, 1] (``train.fit``'s ``on_step``)."""

    def __init__(self, layers: list, fraction: float) -> None:
        self.layers, self.fraction = layers, fraction
        self.targets = [layer.quant for layer in layers]

    def __call__(self, progress: float) -> None:
        f = 1.0 if self.fraction <= 0 else min(1.0, progress / self.fraction)
        for layer, q in zip(self.layers, self.targets):
            keep = q.kept()
            if keep is not None:
                layer.quant = replace(q, keep=1.0 - (1.0 - keep) * (1.0 - (1.0 - f) ** 3))


class _BinaryWeights(nn.Module):
    """Shared parts of binary dense and conv layers: quantized weights and XNOR-Net scale."""

    weight: nn.Parameter

    def __init__(self, quant: WeightQuant, scale: bool) -> None:
        super().__init__()
        self.quant = quant
        self.scale = scale

    def _init_mask(self) -> None:
        """binmask: the mask latent, |N(0, 0.01)| (every weight kept at the start), as in EEV."""
        if self.quant.mode == "binmask":
            self.mask = nn.Parameter(torch.empty_like(self.weight).normal_(std=0.01).abs_())

    def quantized_weight(self) -> torch.Tensor:
        w = self.weight
        if self.quant.mode == "binary":
            return self.quant(w)
        if self.quant.mode == "binmask":
            return binmask(w, self.mask, self.quant.decay)
        # the ternary mask changes only when the weights or the quantizer do: a training step
        # ranks a large layer once, not once per pass
        key = (id(w), w.data_ptr(), w._version, self.quant)
        if getattr(self, "_mask_key", None) != key:
            self._mask, self._mask_key = self.quant.mask(w), key
        return self.quant(w, self._mask)

    def alpha(self) -> torch.Tensor:
        """Per-output-channel scale mean|W| (XNOR-Net), or ones."""
        if not self.scale:
            return torch.ones(self.weight.shape[0])
        return self.weight.detach().abs().mean(dim=tuple(range(1, self.weight.dim())))

    def clip_(self) -> None:
        with torch.no_grad():
            self.weight.clamp_(-1, 1)
            if self.quant.mode == "binmask":
                self.mask.clamp_(-1, 1)


class BinaryLinear(_BinaryWeights):
    def __init__(self, n_in: int, n_out: int, quant: WeightQuant = WeightQuant(), scale: bool = False) -> None:
        super().__init__(quant, scale)
        self.weight = nn.Parameter(torch.empty(n_out, n_in).uniform_(-LATENT_INIT, LATENT_INIT))
        self._init_mask()

    def integer_sum(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.quantized_weight().to(x.dtype))


class LevelTiedLinear(BinaryLinear):
    """A first dense layer whose weight is shared by the ``levels`` bits of each feature:
    ``s_i = sum_f w_if sum_m x_{m,f}`` over +-1 input bits laid out level-major (M*d,).  With a
    thermometer, ``sum_m x_{m,f} = 2 q_f - M`` for the quantized value q_f, so the layer is the
    EEV work's ``w . q`` up to the bias BN absorbs.  Its IR is the weight tiled over the levels."""

    def __init__(self, n_features: int, levels: int, n_out: int, quant: WeightQuant = WeightQuant(),
                 scale: bool = False) -> None:
        super().__init__(n_features, n_out, quant, scale)
        self.levels = levels

    def integer_sum(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x.view(len(x), self.levels, -1).sum(1), self.quantized_weight().to(x.dtype))

    def tiled_weight(self) -> torch.Tensor:
        """The quantized weight over all M*d input bits, (n_out, M*d) level-major."""
        return self.quantized_weight().repeat(1, self.levels)


class BinaryConv2d(_BinaryWeights):
    """Binary convolution over +-1 activations padded with -1 (the IR's bit 0) by ``padding``."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int = 1,
                 quant: WeightQuant = WeightQuant(), scale: bool = False, padding: int = 0) -> None:
        super().__init__(quant, scale)
        self.stride = stride
        self.padding = padding
        self.weight = nn.Parameter(torch.empty(c_out, c_in, kernel, kernel).uniform_(-LATENT_INIT, LATENT_INIT))
        self._init_mask()

    def pad(self, x: torch.Tensor) -> torch.Tensor:
        """x padded with -1 on each side of its last two axes."""
        p = self.padding
        return F.pad(x, (p, p, p, p), value=-1.0) if p else x

    def integer_sum(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(self.pad(x), self.quantized_weight().to(x.dtype), stride=self.stride)


class SignBlock(nn.Module):
    """binary layer -> BatchNorm -> sign:  t = sign(BN(alpha * s)),  s = sum_j w_j x_j."""

    def __init__(self, layer: BinaryLinear | BinaryConv2d, stochastic: bool = False) -> None:
        super().__init__()
        self.layer = layer
        self.conv = isinstance(layer, BinaryConv2d)
        n = layer.weight.shape[0]
        self.bn = nn.BatchNorm2d(n) if self.conv else nn.BatchNorm1d(n)
        self.stochastic = stochastic

    def _view(self, v: torch.Tensor) -> torch.Tensor:
        return v.view(1, -1, 1, 1) if self.conv else v.view(1, -1)

    def preactivation(self, x: torch.Tensor) -> torch.Tensor:
        """BN output y (training semantics, float32); the block outputs sign(y)."""
        return self.bn(self.layer.integer_sum(x) * self._view(self.layer.alpha()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            y = self.preactivation(x)
            return stochastic_sign(y) if self.stochastic else ste_sign(y)
        # exact evaluation: integer sums in float64, then BN, fire iff y >= 0
        s = self.layer.integer_sum(x.double())
        bn = self.bn
        y = (self._view(self.layer.alpha().double()) * s - self._view(bn.running_mean.double())) \
            / torch.sqrt(self._view(bn.running_var.double()) + bn.eps) \
            * self._view(bn.weight.double()) + self._view(bn.bias.double())
        return torch.where(y >= 0, 1.0, -1.0).to(x.dtype)


class OutputLayer(nn.Module):
    """Binary output layer: ``logit_c = sum_j w_cj x_j + b_c``.

    During training the logits are multiplied by a learned temperature exp(log_temp) (argmax
    does not change).  In evaluation b_c is the fixed-point value round(b_c * 2^16) / 2^16 and
    the sum is float64, so every logit is exact.
    """

    def __init__(self, n_in: int, n_classes: int, quant: WeightQuant = WeightQuant()) -> None:
        super().__init__()
        self.linear = BinaryLinear(n_in, n_classes, quant)
        self.bias = nn.Parameter(torch.zeros(n_classes))
        self.log_temp = nn.Parameter(torch.tensor(-2.0))

    def fixed_bias(self) -> torch.Tensor:
        """The bias as integers B_c (the logit bias is B_c / 2^OUTPUT_FRAC_BITS)."""
        return torch.round(self.bias.detach().double() * (1 << OUTPUT_FRAC_BITS)).long()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.training:
            return (self.linear.integer_sum(x) + self.bias) * self.log_temp.exp()
        s = self.linear.integer_sum(x.double())
        return s + self.fixed_bias().double() / (1 << OUTPUT_FRAC_BITS)


class Coding(nn.Module):
    """Raw features -> +-1 input bits, ``+1 iff x_f >= tau[m, f]``; laid out as the IR's bits."""

    def __init__(self, feature_shape: tuple[int, ...], thresholds: torch.Tensor) -> None:
        super().__init__()
        self.feature_shape = tuple(feature_shape)
        self.register_buffer("thresholds", thresholds.float())  # (M, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        bits = x.reshape(n, 1, -1).float() >= self.thresholds[None]
        fs = self.feature_shape
        return torch.where(bits, 1.0, -1.0).reshape((n, -1) + fs[1:])
