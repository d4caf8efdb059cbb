"""Training the two BNNs of a bounding cascade (``bnnlogic.cascade``).

Both are 2-class BNNs (0 = no, 1 = yes) on the raw inputs, trained on the *DNN's* yes/no
on the training split (so they imitate the network they stand in front of) with an
asymmetric weighted cross-entropy:

    lower:  L = CE(z, t; weights w_no = W, w_yes = 1)   a false yes costs W times a false no
    upper:  L = CE(z, t; weights w_no = 1, w_yes = W)   a false no costs W times a false yes

then calibrated exactly by an integer shift of the yes-offset (``cascade.calibrate``): the
lower BNN says yes on no DNN-no calibration input, the upper BNN says no on no DNN-yes
calibration input, each with ``guard`` margin units to spare.  With ``holdout`` h > 0 (default
0.5) the BNNs train on a random 1 - h of the training split and are calibrated on the held-out
h only (``cascade.split``), which gives the split-conformal bound of ``cascade.guarantee`` on
new inputs; h = 0 trains and calibrates on the whole split (exact there, no bound elsewhere).

``shared=True`` trains one BNN (W = 1) and calibrates two copies of it
(``cascade.calibrate_shared``): lower and upper are the same integer margin m with
thresholds a >= b, so "lower yes => upper yes" holds on every input by construction (the
miter still proves it).
"""
from __future__ import annotations

import os
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..cascade import NO, YES, Cascade, calibrate, calibrate_shared, guarantee, split
from ..data import Dataset
from ..ensemble import ensemble as score_ensemble
from ..errors import UserError
from ..model import Model
from ..quant.graph import FloatNet
from .floatnet import float_predict
from .training import build, fit, set_seed, to_model



def binary_dataset(data: Dataset, positive: int, train_target: np.ndarray, rows: np.ndarray | None = None) -> Dataset:
    """``data`` as the task "positive vs rest": train targets given (on the training ``rows``,
    default all), test targets = labels."""
    name = data.classes[positive]
    rows = np.arange(len(train_target)) if rows is None else rows
    return Dataset(f"{data.name}:{name}-vs-rest", data.X_train[rows], train_target[rows].astype(np.int64), data.X_test,
                   (data.y_test == positive).astype(np.int64), data.lo, data.hi, ["rest", name], data.split)


def train_side(task: Dataset, side: str, arch: str, epochs: int, weight: float, seed: int = 0,
               coding: str = "levels:3", lr: float = 1e-2, batch_size: int = 128, progress: bool = True) -> Model:
    """Train the lower or upper BNN of ``task`` (2 classes) with the asymmetric loss."""
    if side not in ("lower", "upper"):
        raise ValueError(f"side must be 'lower' or 'upper', got {side!r}")
    w = torch.tensor([weight, 1.0] if side == "lower" else [1.0, weight])
    set_seed(seed)
    net = build(task, arch, coding)
    history = fit(net, task.X_train, task.y_train, epochs, seed, batch_size, lr,
                  loss_fn=lambda _n, _x, yb, logits: F.cross_entropy(logits, yb, weight=w),
                  progress=progress, desc=f"train {side}")
    return to_model(net, task, {"cascade_side": side, "training": {
        "epochs": epochs, "seed": seed, "batch_size": batch_size, "lr": lr, "coding": coding, "weight": weight,
        "history": history}})


def build_cascade(dnn: FloatNet, data: Dataset, positive: int, arch: str = "mlp:100", epochs: int = 10,
                  weight: float = 4.0, seed: int = 0, coding: str = "levels:3", lr: float = 1e-2,
                  dnn_path: str | os.PathLike | None = None, input_scale: float = 1.0,
                  shared: bool = False, guard: int = 0, holdout: float = 0.5, ensemble: int = 1,
                  progress: bool = True) -> Cascade:
    """Train and calibrate a lower/upper BNN pair for ``positive`` vs the rest in front of ``dnn``:
    trained on 1 - ``holdout`` of the training split, calibrated on the held-out rest (or, for
    holdout = 0, on the whole split) with ``guard`` margin units to spare on each side.  With
    ``ensemble`` K > 1 each BNN is the score sum of K BNNs trained with seeds seed..seed+K-1
    (``bnnlogic.ensemble``; dense architectures only)."""
    if not 0 <= positive < len(data.classes):
        raise UserError(f"positive class {positive} is not one of 0..{len(data.classes) - 1}")
    if weight < 1:
        raise UserError(f"the asymmetric loss weight must be at least 1, got {weight}")
    if ensemble < 1:
        raise UserError(f"an ensemble needs at least one member, got {ensemble}")
    if not (isinstance(guard, int) and guard >= 0):
        raise UserError(f"the guard must be a non-negative integer, got {guard!r}")
    target = (float_predict(dnn, data.X_train) == positive).astype(np.int64)
    if target.min() == target.max():
        raise UserError(f"the DNN answers {'yes' if target[0] else 'no'} for class {positive} on every "
                        "training input; nothing to learn")
    rows, hold = split(len(target), holdout, seed)
    if holdout == 0:
        hold = rows
    elif not (np.any(target[hold] == YES) and np.any(target[hold] == NO)):
        raise UserError(f"the {len(hold)} held-out calibration inputs do not hold both a DNN-yes and a DNN-no "
                        "input; raise --holdout or use more data")
    task = binary_dataset(data, positive, target, rows)
    X_cal, t_cal = data.X_train[hold], target[hold]

    def train(side: str, w: float) -> Model:
        members = [train_side(task, side, arch, epochs, w, seed + i, coding, lr, progress=progress)
                   for i in range(ensemble)]
        if ensemble == 1:
            return members[0]
        try:
            return score_ensemble(members)
        except ValueError as exc:
            raise UserError(f"--ensemble {ensemble} with --arch {arch}: {exc}") from None

    sides: dict[str, Any] = {}
    if shared:
        one = train("lower", 1.0)
        lower, upper, a, b = calibrate_shared(one, X_cal, t_cal, (guard, guard))
        shifted = {"lower": (lower, -a), "upper": (upper, -b)}
    for side in ("lower", "upper"):
        if shared:
            model, delta = shifted[side]
        else:
            model = train(side, weight)
            model, delta = calibrate(model, X_cal, t_cal, side, guard)
        model.meta["cascade_side"] = side
        model.meta["calibration"] = {"offset_shift": delta, "guard": guard,
                                     "on": f"{len(hold)} training-split inputs "
                                           f"({'held out from training' if holdout else 'all of them'}), DNN yes/no",
                                     "rule": "never yes on a DNN-no input" if side == "lower"
                                     else "never no on a DNN-yes input"}
        sides[side] = model
    meta = {"dataset": data.name, "split": data.split, "positive_name": data.classes[positive],
            "arch": arch, "coding": coding, "epochs": epochs, "weight": 1.0 if shared else weight, "seed": seed,
            "shared": shared, "guard": guard, "holdout": holdout, "ensemble": ensemble, "trained_on": int(len(rows)),
            "input_scale": input_scale, "dnn_describe": dnn.describe(),
            "train_dnn_yes_fraction": float(target.mean())}
    if holdout:
        meta["guarantee"] = guarantee(t_cal)
    c = Cascade(sides["lower"], sides["upper"], positive, None if dnn_path is None else os.fspath(dnn_path), meta)
    c._dnn = dnn
    return c
