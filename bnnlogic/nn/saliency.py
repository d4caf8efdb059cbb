"""Gradient saliency of the trained network, per raw feature.

The input coding is a step function, so the gradient is taken with respect to the input bits
(through the straight-through sign estimators, BatchNorm with its running statistics) and
summed over each feature's bits: ``s_f = sum_m |d logit_y / d b[m, f]|``.  A heuristic only;
``bnnlogic.explain`` checks whether its top features actually suffice.
"""
from __future__ import annotations

import numpy as np
import torch

from .layers import SignBlock
from .network import BNN, NetConfig


def saliency(model, x: np.ndarray) -> np.ndarray:
    """|gradient| of the predicted class's logit, per raw feature (d,), for a saved ``Model``
    that carries its torch state."""
    if not model.torch_state or "net" not in model.meta:
        from ..errors import UserError

        raise UserError("this model file has no trained network state; gradient saliency needs one")
    net = BNN.from_state(NetConfig.from_json(model.meta["net"]), model.torch_state)
    for block in net.blocks:
        if isinstance(block, SignBlock):
            block.training = True  # the STE path; its BatchNorm stays in evaluation mode
    X = torch.as_tensor(np.asarray(x).reshape(1, -1), dtype=torch.float32)
    bits = net.coding(X.reshape((1,) + tuple(net.cfg.feature_shape))).detach().requires_grad_(True)
    h = bits
    for block in net.blocks:
        if isinstance(block, SignBlock) and not block.conv:
            h = h.flatten(1)
        h = block(h)
    logits = net.output(h.flatten(1))
    logits[0, int(logits.argmax())].backward()
    g = bits.grad.detach().abs().numpy().reshape(len(net.cfg.thresholds), -1)  # (M, d), level-major
    return g.sum(axis=0)
