"""Training loop: Adam, cosine learning rate, latent weights clipped to [-1, 1] after each step.

``train`` returns a ``bnnlogic.Model`` (the IR plus the trained parameters and metadata),
after checking that the IR predicts exactly what the trained network predicts.
"""
from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..data import Dataset
from ..errors import UserError
from ..model import Model
from ..quant.graph import Conv2d, FloatNet, Linear
from ..spec import parse_coding, tied_levels
from .layers import SparsityRamp
from .network import BNN, NetConfig
from .presets import get_preset

Regularizer = Callable[[BNN, torch.Tensor], torch.Tensor]


def set_seed(seed: int) -> None:
    """Seed torch and numpy."""
    torch.manual_seed(seed)
    np.random.seed(seed)


def fit(net: torch.nn.Module, X: np.ndarray, y: np.ndarray, epochs: int, seed: int = 0,
        batch_size: int = 128, lr: float = 1e-2, loss_fn: Callable | None = None,
        regularizers: list[Regularizer] = (), progress: bool = True, desc: str = "train",
        on_step: Callable[[float], None] | None = None, weight_decay: float = 0.0) -> list[dict]:
    """Train ``net`` in place; returns per-epoch history (loss, train accuracy, seconds).

    ``loss_fn(net, xb, yb, logits)`` defaults to cross-entropy on labels; each regularizer
    ``r(net, xb)`` adds a term.  Latent binary weights are clipped after every step.
    ``on_step(t)`` is called with the progress t in [0, 1] before training and after each step.
    ``weight_decay``: Adam's L2 penalty on every parameter (the EEV work's recipe uses 1e-5).
    """
    set_seed(seed)
    gen = torch.Generator().manual_seed(seed)
    Xt = torch.as_tensor(X, dtype=torch.float32)
    yt = torch.as_tensor(y, dtype=torch.long)
    opt = torch.optim.Adam(net.parameters(), lr=lr, weight_decay=weight_decay)
    steps = epochs * ((len(X) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, max(steps, 1))
    history, done = [], 0
    if on_step:
        on_step(0.0)
    bar = tqdm(range(epochs), desc=desc, disable=not progress, leave=False)
    for epoch in bar:
        net.train()
        t0, total, correct, seen = time.perf_counter(), 0.0, 0, 0
        for idx in torch.randperm(len(X), generator=gen).split(batch_size):
            xb, yb = Xt[idx], yt[idx]
            logits = net(xb)
            loss = loss_fn(net, xb, yb, logits) if loss_fn else F.cross_entropy(logits, yb)
            for reg in regularizers:
                loss = loss + reg(net, xb)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            if hasattr(net, "clip_"):
                net.clip_()
            done += 1
            if on_step:
                on_step(done / max(steps, 1))
            total += loss.item() * len(idx)
            correct += int((logits.argmax(1) == yb).sum())
            seen += len(idx)
        history.append({"epoch": epoch + 1, "loss": total / seen, "train_accuracy": correct / seen,
                        "seconds": time.perf_counter() - t0})
        bar.set_postfix(loss=f"{total / seen:.3f}", acc=f"{correct / seen:.3f}")
    net.eval()
    return history


def build(data: Dataset, arch: str, coding: str = "levels:3", quant: dict | None = None,
          scale: bool = False, stochastic: bool = False) -> BNN:
    """A fresh BNN for ``data`` (architecture and coding by spec string)."""
    cfg = NetConfig(arch=arch, feature_shape=data.feature_shape, lo=data.lo, hi=data.hi,
                    thresholds=parse_coding(coding, data.lo, data.hi), n_classes=len(data.classes),
                    quant=quant or {"mode": "binary"}, scale=scale, stochastic=stochastic,
                    tied_levels=tied_levels(coding))
    return BNN(cfg)


def to_model(net: BNN, data: Dataset, extra_meta: dict[str, Any] | None = None) -> Model:
    """Export ``net`` to the IR and record metadata and test metrics (accuracy, ir_agreement)."""
    ir = net.to_ir()
    model = Model(ir, {}, net.state_arrays())
    X, y = data.X_test, data.y_test
    torch_pred = net.predict(X)
    ir_pred = model.predict(X)
    model.meta = {
        "dataset": data.name, "split": data.split, "classes": data.classes,
        "arch": net.cfg.arch, "net": net.cfg.to_json(),
        "test_accuracy": float((ir_pred == y).mean()), "test_n": int(len(y)),
        "ir_agreement": float((torch_pred == ir_pred).mean()),
        **(extra_meta or {}),
    }
    return model


def train(data: Dataset, arch: str, epochs: int = 10, seed: int = 0, coding: str = "levels:3",
          quant: dict | None = None, scale: bool = False, stochastic: bool = False,
          batch_size: int = 128, lr: float = 1e-2, init_from: FloatNet | dict[str, Any] | None = None,
          progress: bool = True, preset: str | None = None, stable_eps: float | None = None,
          weight_decay: float = 0.0) -> Model:
    """Train a BNN on ``data`` and return its exact ``Model``.

    ``init_from``: a pretrained full-precision network (``FloatNet``, e.g. from
    ``floatnet.load_float``; its first layer is tiled over the input coding's levels) or a float
    state dict; the BNN's latent weights start from its weights where shapes match (see
    ``init_from_float``), the recipe of the SAT-friendly BNN work; recorded as
    ``meta["init_from_layers"]``.
    ``preset``: a verification-friendly preset (``bnnlogic.nn.presets``) that sets the weight
    quantization and regularizers; recorded as ``meta["preset"]`` and ``meta["preset_settings"]``.
    ``stable_eps``: StableSign's eps in raw units (stablesign presets); default: 2% of the
    data's range ``hi - lo``, at least 1 (``presets.default_stable_eps``).
    """
    p = get_preset(preset or "plain", stable_eps).for_range(data.lo, data.hi)
    if preset is not None and quant is not None:
        raise UserError("a preset sets the weight quantization; do not combine it with an explicit one")
    set_seed(seed)  # the initial latent weights are drawn here
    net = build(data, arch, coding, quant or p.quant, scale, stochastic)
    n_init = 0
    if init_from is not None:
        state = teacher_init_state(init_from, len(net.cfg.thresholds)) if isinstance(init_from, FloatNet) else init_from
        n_init = init_from_float(net, state)
        if n_init == 0:
            raise UserError("no layer of the float network matches the BNN's shapes: give --arch the float "
                            "network's hidden sizes (its first layer is tiled over the input coding's levels)")
    ramp = SparsityRamp(net.binary_layers(), p.ramp) if p.ramp else None
    history = fit(net, data.X_train, data.y_train, epochs, seed, batch_size, lr,
                  regularizers=p.regularizers(), progress=progress, on_step=ramp, weight_decay=weight_decay)
    return to_model(net, data, {"init_from_layers": n_init, "preset": p.name if quant is None else "custom",
                                "preset_settings": p.settings() if quant is None else {"quant": quant},
                                "training": {
        "epochs": epochs, "seed": seed, "batch_size": batch_size, "lr": lr, "coding": coding,
        "weight_decay": weight_decay,
        "history": history, "seconds_per_epoch": float(np.mean([h["seconds"] for h in history])) if history else 0.0,
    }})


def teacher_init_state(dnn: FloatNet, levels: int) -> dict[str, np.ndarray]:
    """The float network's Linear/Conv weights in order, the first tiled over the ``levels`` input
    levels (a BNN's first layer reads each raw feature as ``levels`` thermometer bits)."""
    weights = [layer.W for layer in dnn.layers if isinstance(layer, (Linear, Conv2d))]
    if weights:
        weights[0] = np.tile(weights[0], (1, levels) + (1,) * (weights[0].ndim - 2))
    return {f"{i}.weight": w.astype(np.float32) for i, w in enumerate(weights)}


@torch.no_grad()
def init_from_float(net: BNN, state: dict[str, Any]) -> int:
    """Copy a float network's weights into the BNN's latent weights where shapes match.

    Weight tensors are matched in order (first float weight of each layer to each binary
    layer); each is scaled to max|w| = 1 (sign is what matters) and clipped.  BatchNorm
    parameters of matching shape are copied too.  Returns how many layers were initialised.
    """
    weights = [torch.as_tensor(v) for k, v in state.items() if k.endswith("weight") and torch.as_tensor(v).dim() >= 2]
    done = 0
    for layer, w in zip(net.binary_layers(), weights):
        if tuple(w.shape) == tuple(layer.weight.shape):
            layer.weight.copy_((w / w.abs().max().clamp_min(1e-12)).clamp(-1, 1))
            done += 1
    return done
