"""Distillation of a float network (teacher, "DNN") into a BNN (student).

Loss on a batch with teacher logits z_t, student logits z_s and labels y (Hinton et al. 2015)::

    L = alpha * T^2 * KL( softmax(z_t / T) || softmax(z_s / T) ) + (1 - alpha) * CE(z_s, y)

The defaults are pure imitation at the teacher's own temperature (alpha = 1, T = 1: the labels are
not used), which gave the highest fidelity on Fashion-MNIST (README, "From float networks to
BNNs"); more thermometer levels per input (``coding``) and a teacher of the student's shape (every
layer initialised from it) raise it further; training on teacher-labelled shifted, mixed or noisy
inputs lowered it.

The student starts from the teacher's weights where shapes match (``init_from_float``); the
first layer reads M thermometer bits per feature, so a teacher weight of shape (n, d) is
tiled to (n, M*d) (the bits of all levels of feature f add up to its coded value).

**Fidelity** = the fraction of test inputs on which the BNN (its exact IR) and the float
network predict the same class.  It is stored in the model's metadata with the teacher's
accuracy.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..data import Dataset
from ..errors import UserError
from ..model import Model
from ..quant.graph import Conv2d, FloatNet, Linear, MaxPool2d
from .floatnet import float_predict, to_torch
from .training import build, fit, init_from_float, set_seed, teacher_init_state, to_model


def same_arch(dnn: FloatNet) -> str:
    """The BNN architecture spec with the float network's hidden layer shapes."""
    toks, conv = [], False
    params = [layer for layer in dnn.layers if isinstance(layer, (Linear, Conv2d, MaxPool2d))]
    for layer in params[:-1]:
        if isinstance(layer, Conv2d):
            conv = True
            toks.append(f"c{layer.W.shape[0]}k{layer.W.shape[2]}s{layer.stride}" + (f"p{layer.padding}" if layer.padding else ""))
        elif isinstance(layer, MaxPool2d):
            if layer.kernel != layer.stride:
                raise UserError("--arch same: only MaxPool2d with stride = kernel maps to the BNN; give --arch")
            toks.append(f"p{layer.kernel}")
        else:
            toks.append(f"d{layer.W.shape[0]}" if conv else str(layer.W.shape[0]))
    if not toks or not isinstance(params[-1], Linear):
        raise UserError("--arch same needs a network with hidden layers ending in a Linear layer; give --arch")
    return ("cnn:" if conv else "mlp:") + ",".join(toks)


def distill(dnn: FloatNet, data: Dataset, arch: str = "same", epochs: int = 10, seed: int = 0,
            coding: str = "levels:3", temperature: float = 1.0, alpha: float = 1.0, lr: float = 1e-2,
            batch_size: int = 128, init: bool = True, progress: bool = True,
            extra_meta: dict[str, Any] | None = None) -> Model:
    """Train a BNN to imitate ``dnn`` on ``data``; returns its exact ``Model`` (fidelity in meta)."""
    if temperature <= 0 or not 0 <= alpha <= 1:
        raise UserError(f"distillation needs temperature > 0 and 0 <= alpha <= 1 (got {temperature}, {alpha})")
    arch = same_arch(dnn) if arch == "same" else arch
    teacher = to_torch(dnn)
    set_seed(seed)
    net = build(data, arch, coding)
    n_init = init_from_float(net, teacher_init_state(dnn, len(net.cfg.thresholds))) if init else 0
    T = float(temperature)

    def loss_fn(student, xb, yb, logits):
        with torch.no_grad():
            soft = F.softmax(teacher(xb) / T, dim=1)
        kl = F.kl_div(F.log_softmax(logits / T, dim=1), soft, reduction="batchmean")
        return alpha * T * T * kl + (1 - alpha) * F.cross_entropy(logits, yb)

    history = fit(net, data.X_train, data.y_train, epochs, seed, batch_size, lr, loss_fn=loss_fn,
                  progress=progress, desc="distill")
    dnn_pred = float_predict(teacher, data.X_test)
    model = to_model(net, data, {"training": {
        "epochs": epochs, "seed": seed, "batch_size": batch_size, "lr": lr, "coding": coding, "history": history,
        "seconds_per_epoch": float(np.mean([h["seconds"] for h in history])) if history else 0.0}})
    bnn_pred = model.predict(data.X_test)
    model.meta.update({
        "fidelity": float((bnn_pred == dnn_pred).mean()),
        "dnn_test_accuracy": float((dnn_pred == data.y_test).mean()),
        "distill": {"teacher": dnn.describe(), "temperature": T, "alpha": alpha, "init_layers": n_init},
        **(extra_meta or {}),
    })
    return model
