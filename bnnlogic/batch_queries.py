"""Batch explanations and counts: one query of each as a JSON record, and their batch runs.

The batch machinery (results file, resume, executors, progress) is ``bnnlogic.batch``'s; this
module says what one explain or count query is.

explain records (key ``index, eps, kind``; ``eps`` null: the whole input domain)::

    task, index, eps, kind, method, label (the data set's), prediction,
    status       "explained" | "robust" (contrastive only: no input of the region changes the
                 prediction) | "unknown" (out of time; ``reason`` says why)
    features, size, verified, calls, search_s, verify_s, time_s (the whole query),
    witness_class, witness (contrastive: the saved .npy of the replayed witness),
    picture      the saved PNG (image inputs, with a folder), else null

count records (key ``index, eps, target``; ``target``: "misclassified" (raw inputs of the box
not predicted as ``label``) or a class)::

    task, index, eps, target, label, status ("counted" | "unknown"), count, total, fraction,
    classes, method, exact, time_s (+ epsilon, delta, lower, upper for ApproxMC)
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Sequence

import numpy as np

from .batch import Query, hard_limit, row, run_queries
from .errors import UserError
from .model import Model, load


def explain_query(model: Model, index: int, x: np.ndarray, eps: int | None, kind: str, method: str,
                  timeout: float | None, png_dir: str | None) -> dict:
    """One explanation of the model's decision on x (``Explainer``: ``timeout`` seconds per
    solver call and per abductive search) as a record (see the module docstring)."""
    from .explain import Explainer, save_explanation_png
    from .pictures import image_shape

    t0 = time.perf_counter()
    ex = Explainer(model.ir, x, eps, timeout=timeout, budget=timeout, engine=model.engine)
    rec: dict = {"prediction": ex.prediction}
    try:
        e = ex.contrastive() if kind == "contrastive" else ex.minimum() if kind == "minimum" else ex.abductive(method)
    except UserError as exc:  # a solver call or the search ran out of time
        return {**rec, "status": "unknown", "reason": str(exc), "time_s": round(time.perf_counter() - t0, 6)}
    finally:
        ex.close()
    if e is None:
        rec.update(status="robust", features=None, size=None, verified=True)
    else:
        d = e.to_json()
        witness = d.pop("witness", None)
        rec.update(status="explained", **{k: d[k] for k in ("features", "size", "verified", "calls", "verify_s")},
                   search_s=d["time_s"], witness_class=d.get("witness_class"), witness=None, picture=None)
        stem = None if png_dir is None else Path(png_dir) / f"idx{index}_eps{'domain' if eps is None else eps}_{kind}"
        if stem is not None and witness is not None:
            from .fileio import atomic_open

            with atomic_open(f"{stem}_witness.npy", "wb") as fh:
                np.save(fh, np.asarray(witness).reshape(model.ir.coding.feature_shape))
            rec["witness"] = f"{stem}_witness.npy"
        if stem is not None and image_shape(model.ir.coding.feature_shape) is not None:
            save_explanation_png(f"{stem}.png", model.ir.coding, x, e.features,
                                 f"#{index} {kind}: {e.size} px, class {model.classes[e.prediction]}")
            rec["picture"] = f"{stem}.png"
    rec["time_s"] = round(time.perf_counter() - t0, 6)
    return rec


def count_query(model: Model, index: int, x: np.ndarray, eps: int, classes: list[int], method: str,
                epsilon: float, delta: float, seed: int) -> dict:
    """The raw inputs of the L-infinity box of radius ``eps`` around x that the model predicts
    in ``classes`` (``bnnlogic.count.count``), as a record."""
    from .count import count
    from .logic import region

    res = count(model.ir, region.linf(model.ir.coding, x, eps), classes, method, epsilon, delta, seed)
    return {"status": "counted", **res.to_json()}


def _data_rows(model: Model, X: np.ndarray) -> np.ndarray:
    """The checked rows (n, d) in their own integer dtype (a query takes its row by ``row``)."""
    return model.check_inputs(np.asarray(X).reshape(len(X), -1), dtype=None)


def run_explain_batch(model_path: str | os.PathLike, X: np.ndarray, y: np.ndarray, indices: Sequence[int],
                      eps_list: Sequence[int | None], out: str, kind: str = "abductive", method: str = "deletion",
                      timeout: float | None = 60, png_dir: str | None = None, jobs: int | None = None,
                      ray: bool = False, ray_address: str | None = None, progress: bool = True) -> list[dict]:
    """Explain every (index, eps) not yet in ``out`` (``eps`` None: over the whole domain);
    returns all records of ``out``.  Executors as in ``batch.run_batch``."""
    from .explain import KINDS, METHODS

    if kind not in KINDS or method not in METHODS:
        raise UserError(f"explain kind must be one of {', '.join(KINDS)} and method one of {', '.join(METHODS)}")
    model = load(model_path)
    X = _data_rows(model, X)
    queries = [Query({"task": "explain", "index": int(i), "eps": None if e is None else int(e), "kind": kind,
                      "method": method, "label": int(y[i])}, explain_query,
                     (int(i), row(X, i), None if e is None else int(e), kind, method, timeout, png_dir),
                     hard_limit(timeout), files_arg=6)
               for i in indices for e in eps_list]
    return run_queries("explain", queries, out, model, jobs, ray, ray_address, progress)


def run_count_batch(model_path: str | os.PathLike, X: np.ndarray, y: np.ndarray, indices: Sequence[int],
                    eps_list: Sequence[int], out: str, target: int | str = "misclassified", method: str = "exact",
                    epsilon: float = 0.8, delta: float = 0.2, seed: int = 1, timeout: float | None = 60,
                    jobs: int | None = None, ray: bool = False, ray_address: str | None = None,
                    progress: bool = True) -> list[dict]:
    """Count, for every (index, eps) not yet in ``out``, the raw inputs of the box of radius
    eps around X[index] that are ``target``: "misclassified" (not predicted as y[index]) or a
    class.  Counting cannot be interrupted: ``timeout`` is a hard limit (the worker is
    stopped; none with ``jobs=0``).  Returns all records of ``out``."""
    model = load(model_path)
    X = _data_rows(model, X)
    n = model.ir.n_classes
    if target != "misclassified" and not (isinstance(target, (int, np.integer)) and 0 <= target < n):
        raise UserError(f"count target must be 'misclassified' or a class in 0..{n - 1}")
    queries = []
    for i in indices:
        label = int(y[i])
        classes = [c for c in range(n) if c != label] if target == "misclassified" else [int(target)]
        for e in eps_list:
            queries.append(Query({"task": "count", "index": int(i), "eps": int(e),
                                  "target": target if target == "misclassified" else int(target), "label": label},
                                 count_query, (int(i), row(X, i), int(e), classes, method, epsilon, delta, seed), timeout))
    return run_queries("count", queries, out, model, jobs, ray, ray_address, progress)
