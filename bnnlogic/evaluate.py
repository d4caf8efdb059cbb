"""Accuracy of a model on a data set, and its agreement with the trained torch network."""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from .data import load_dataset
from .errors import UserError
from .model import Model


def torch_predict(model: Model, X: np.ndarray) -> np.ndarray:
    """Predictions of the trained torch network stored in the model file (imports torch)."""
    if not model.torch_state or "net" not in model.meta:
        raise UserError("this model file holds no trained torch network to compare with")
    from .nn.network import BNN, NetConfig

    net = BNN.from_state(NetConfig.from_json(model.meta["net"]), model.torch_state)
    return net.predict(X)


def evaluate(model: Model, data: str | None = None, split: str = "test", data_dir: str | None = None,
             agreement: bool = True) -> dict[str, Any]:
    """Evaluate on ``data`` (default: the model's own data set).

    Returns ``accuracy``, ``n``, ``ir_agreement`` (fraction of inputs where the IR's prediction
    equals the trained network's; None without a torch network), ``seconds`` (IR inference on
    the split, warm) and ``compile_seconds`` (numba compiling the engine's kernels, or loading
    them from its on-disk cache, once per process; not part of ``seconds``).
    """
    name = data or model.meta.get("dataset")
    if not name:
        raise UserError("the model does not name its data set; pass --data NAME")
    ds = load_dataset(name, data_dir)
    X, y = ds.split_arrays(split)
    Xf = model.check_inputs(X)
    compile_s = model.engine.warm_up(Xf.dtype)  # both kernels (serial and parallel), outside the timed region
    t0 = time.perf_counter()
    pred = model.engine.predict(Xf)
    seconds = time.perf_counter() - t0
    out: dict[str, Any] = {"data": name, "split": split, "data_split": ds.split, "n": int(len(y)),
                           "accuracy": float((pred == y).mean()), "seconds": seconds,
                           "compile_seconds": compile_s,
                           "ir_agreement": None}
    if agreement and model.torch_state:
        out["ir_agreement"] = float((torch_predict(model, X) == pred).mean())
    return out
