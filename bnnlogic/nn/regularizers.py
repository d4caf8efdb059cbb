"""Regularizers for verification-friendly training (the SAT-friendly BNN recipe).

Each regularizer is a callable ``r(net, xb) -> scalar tensor`` that ``fit`` adds to the loss.

* ``L1(lam)``: ``lam * sum_l sum_j |w_lj|`` over the latent weights of every binary layer;
  with a fixed ternary zero band it pushes weights into the band (exact zeros in the IR).
* ``StableSign(lam, eps)``: ``-lam * mean_{n,i} tanh(1 + UB_ni * LB_ni)`` where [LB, UB]
  bounds hidden neuron i's BN output over the eps-box of input n (``interval_bounds``).
  A neuron is *stable* on the box when LB >= 0 (always fires) or UB < 0 (never fires).

Interval bounds (IBP through the binarized net, differentiable through the STE weights):

    raw box      [max(x - eps, lo), min(x + eps, hi)]
    input bit    b = [x >= tau] in {-1,+1}:  lower = b(x_lo), upper = b(x_hi)  (free iff x_lo < tau <= x_hi)
    linear       c = (l+u)/2, r = (u-l)/2:   s in [W c - |W| r,  W c + |W| r]
    BN           y = g (alpha s - mu)/sqrt(var + e) + beta   (affine; endpoints swap where g < 0)
    sign, pool   monotone: applied to both endpoints
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .layers import SignBlock
from .quantizers import ste_sign


class L1:
    """``lam * sum |w|`` over the latent weights of all binary layers (output layer included)."""

    def __init__(self, lam: float) -> None:
        self.lam = lam

    def __call__(self, net, xb: torch.Tensor) -> torch.Tensor:
        return self.lam * sum(layer.weight.abs().sum() for layer in net.binary_layers())


def _bn_affine(block: SignBlock, s_nominal: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """BN as ``y = a * s + b`` per channel (alpha folded in): batch statistics of the nominal
    pre-activations in training mode, running statistics in evaluation mode."""
    bn, alpha = block.bn, block._view(block.layer.alpha().to(s_nominal.dtype))
    dims = (0, 2, 3) if block.conv else (0,)
    if block.training:
        z = alpha * s_nominal
        mean, var = z.mean(dims), z.var(dims, unbiased=False)
    else:
        mean, var = bn.running_mean.to(s_nominal.dtype), bn.running_var.to(s_nominal.dtype)
    g = bn.weight.to(s_nominal.dtype) / torch.sqrt(var + bn.eps)
    a = block._view(g) * alpha
    return a, block._view(bn.bias.to(s_nominal.dtype) - g * mean)


def interval_bounds(net, x: torch.Tensor, eps: float) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """[LB, UB] of every hidden SignBlock's BN output over the raw eps-box around each input.

    Uses the network's mode: training (float32, batch statistics, STE gradients) or
    evaluation (float64, running statistics).  Returns one (LB, UB) pair per SignBlock.
    """
    dtype = torch.float32 if net.training else torch.float64
    cfg = net.cfg
    x = x.to(dtype)
    coding = net.coding
    lo_b = coding(torch.clamp(x - eps, cfg.lo, cfg.hi)).to(dtype)
    hi_b = coding(torch.clamp(x + eps, cfg.lo, cfg.hi)).to(dtype)
    nom = coding(x).to(dtype)
    bounds = []
    for block in net.blocks:
        if isinstance(block, nn.MaxPool2d):
            lo_b, hi_b, nom = block(lo_b), block(hi_b), block(nom)
            continue
        if not block.conv:
            lo_b, hi_b, nom = lo_b.flatten(1), hi_b.flatten(1), nom.flatten(1)
        layer = block.layer
        W = layer.quantized_weight().to(dtype)
        if block.conv:  # padded with the constant -1 (lo = hi = nom = -1)
            lo_b, hi_b, nom = layer.pad(lo_b), layer.pad(hi_b), layer.pad(nom)
        op = (lambda v, w: F.conv2d(v, w, stride=layer.stride)) if block.conv else F.linear
        c, r = (hi_b + lo_b) / 2, (hi_b - lo_b) / 2
        s_c, s_r, s_nom = op(c, W), op(r, W.abs()), op(nom, W)
        a, b = _bn_affine(block, s_nom)
        y_c, y_r = a * s_c + b, a.abs() * s_r
        lb, ub = y_c - y_r, y_c + y_r
        bounds.append((lb, ub))
        sign = ste_sign if net.training else (lambda v: torch.where(v >= 0, 1.0, -1.0).to(dtype))
        lo_b, hi_b, nom = sign(lb), sign(ub), sign(a * s_nom + b)
    return bounds


def stable_fraction(net, x: torch.Tensor, eps: float) -> float:
    """Fraction of (input, hidden neuron) pairs that are stable over the eps-box (eval mode)."""
    was = net.training
    net.eval()
    with torch.no_grad():
        bounds = interval_bounds(net, torch.as_tensor(x), eps)
    net.train(was)
    stable = sum(int(((lb >= 0) | (ub < 0)).sum()) for lb, ub in bounds)
    total = sum(lb.numel() for lb, _ in bounds)
    return stable / max(total, 1)


class StableSign:
    """``-lam * mean tanh(1 + UB * LB)`` over all hidden neurons and inputs of the batch."""

    def __init__(self, lam: float, eps: float) -> None:
        self.lam = lam
        self.eps = eps

    def __call__(self, net, xb: torch.Tensor) -> torch.Tensor:
        terms = [torch.tanh(1 + ub * lb).flatten(1) for lb, ub in interval_bounds(net, xb, self.eps)]
        return -self.lam * torch.cat(terms, 1).mean()
