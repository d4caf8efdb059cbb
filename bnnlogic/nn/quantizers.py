"""Binarizers with straight-through estimators (STE).

``sign(x)`` here is +1 for x >= 0 and -1 otherwise (the IR's tie rule: a neuron fires when
its BN output is >= 0).  The STE passes the gradient where |x| <= 1 and cancels it elsewhere
(Courbariaux/Hubara et al. 2016; Larq's ``ste_sign``).
"""
from __future__ import annotations

import torch


class _SignSTE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        return torch.where(x >= 0, 1.0, -1.0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


class _StochasticSignSTE(torch.autograd.Function):
    """+1 with probability hard_sigmoid(x) = clip((x + 1) / 2, 0, 1); STE backward."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x)
        p = ((x + 1) / 2).clamp(0, 1)
        return torch.where(torch.rand_like(x) < p, 1.0, -1.0).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        (x,) = ctx.saved_tensors
        return grad * (x.abs() <= 1).to(grad.dtype)


class _MaskedSignSTE(torch.autograd.Function):
    """sign(w) where ``keep``, 0 elsewhere; STE backward (cancelled for |w| > 1)."""

    @staticmethod
    def forward(ctx, w: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(w)
        return torch.where(keep, torch.where(w >= 0, 1.0, -1.0), 0.0).to(w.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (w,) = ctx.saved_tensors
        return grad * (w.abs() <= 1).to(grad.dtype), None


class _BinMaskSTE(torch.autograd.Function):
    """BinMask (Jia & Rinard 2020): ``sign(w) * [m >= 0]`` with a learned mask m.

    Backward: ``dL/dw = g [m >= 0]`` (straight through the sign) and
    ``dL/dm = g sign(w) + decay [m >= 0]``: the constant ``decay`` on kept entries pushes
    masks of weights that do not help the loss below 0, which prunes them."""

    @staticmethod
    def forward(ctx, w: torch.Tensor, m: torch.Tensor, decay: float) -> torch.Tensor:
        s = torch.where(w >= 0, 1.0, -1.0).to(w.dtype)
        kept = (m >= 0).to(w.dtype)
        ctx.save_for_backward(s, kept)
        ctx.decay = decay
        return s * kept

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        s, kept = ctx.saved_tensors
        return grad * kept, grad * s + ctx.decay * kept, None


def binmask(w: torch.Tensor, m: torch.Tensor, decay: float) -> torch.Tensor:
    """Ternary weights ``sign(w) [m >= 0]`` with a learned mask m (see ``_BinMaskSTE``)."""
    return _BinMaskSTE.apply(w, m, decay)


def ste_sign(x: torch.Tensor) -> torch.Tensor:
    """Deterministic sign in {-1, +1} with the gradient-cancelling STE."""
    return _SignSTE.apply(x)


def stochastic_sign(x: torch.Tensor) -> torch.Tensor:
    """Stochastic binarization (training only): +1 with probability hard_sigmoid(x)."""
    return _StochasticSignSTE.apply(x)


def top_mask(w: torch.Tensor, keep: float) -> torch.Tensor:
    """True on exactly round(keep * w.numel()) entries of largest |w| (by rank, so ties, e.g.
    latent weights clipped at |w| = 1, cannot empty or fill a layer)."""
    a = w.detach().abs().flatten()
    n = a.numel()
    k = int(round(keep * n))
    if k <= 0 or k >= n:
        return torch.full_like(w, k > 0, dtype=torch.bool)
    thr = a.kthvalue(n - k + 1).values  # the smallest kept |w| (selection, ~3x faster than topk)
    mask = a > thr
    short = k - int(mask.sum())  # ties at thr fill the rest, lowest index first
    mask[torch.nonzero(a == thr).flatten()[:short]] = True
    return mask.view_as(w)


def masked_sign(w: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Ternary weights sign(w) where ``mask``, 0 elsewhere (STE backward)."""
    return _MaskedSignSTE.apply(w, mask)
