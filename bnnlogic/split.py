"""One hard verification query as several tasks, so that it can use every worker.

The query's box R is partitioned into sub-boxes by branch and bound's own split rule
(``logic.bab.split_box``); each part is verified on its own (``verify_part``: the full
``verify_region`` portfolio on the part, with the query's time limit) on any executor
(``bnnlogic.executors``), and the verdicts combine as

    counterexample  the first part that returns one, replayed here against the whole region R
                    (the other parts are cancelled)
    robust          every part robust (the parts cover R)
    unknown         otherwise, once every part has answered (``stats`` says how many did what)

``verify_split`` answers one query this way; ``SplitQuery`` is the same as one query of a
batch (``bnnlogic.batch.run_batch(..., split=n)``).  The verdict's ``time_s`` is wall time on
this machine, from the first part's start to the verdict; ``stats["part_time_s"]`` sums the
parts' own times.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .batch import Query, hard_limit
from .executors import Call, Executor, Outcome
from .logic import Region, region
from .logic.bab import split_box
from .model import Model
from .verification import VerifyResult, save_counterexample, verify_region


def verify_part(model: Model, lo: np.ndarray, hi: np.ndarray, center: np.ndarray, allowed: list[int],
                label: int, backend: str, timeout: float | None, cores: int | None = None) -> VerifyResult:
    """``verify_region`` on the box [lo, hi] (one part of a split query)."""
    return verify_region(model, Region(lo, hi, center, None, "box", None), allowed, label, backend, timeout,
                         cores=cores)


class _Parts:
    """The verdict of a query from its parts' outcomes, as they come."""

    def __init__(self, model: Model, R: Region, allowed: list[int], label: int, backend: str, n: int) -> None:
        self.model, self.R, self.allowed, self.label, self.backend, self.n = model, R, allowed, label, backend, n
        self.counts = {"robust": 0, "counterexample": 0, "unknown": 0}
        self.part_time = 0.0
        self.t0: float | None = None
        self.reasons: list[str] = []

    def add(self, o: Outcome) -> VerifyResult | None:
        self.t0 = o.started if self.t0 is None else min(self.t0, o.started)
        r: VerifyResult | None = o.value
        status = "unknown" if r is None else r.status
        self.counts[status] += 1
        self.part_time += o.seconds if r is None else r.time_s
        if o.failure is not None:
            self.reasons.append(o.failure)
        if status == "counterexample":
            x = np.asarray(r.counterexample)
            pred = int(self.model.predict(x[None])[0])
            if pred in self.allowed or not self.R.contains(x[None])[0]:
                raise RuntimeError(f"a part's counterexample failed replay on the whole region (prediction {pred}); "
                                   "this is a bug")
            return self._result("counterexample", adv_label=pred, counterexample=x, found_by=r.found_by)
        done = sum(self.counts.values())
        if done < self.n:
            return None
        return self._result("robust" if self.counts["robust"] == self.n else "unknown")

    def _result(self, status: str, **cex: Any) -> VerifyResult:
        stats = {"parts": self.n, **{f"parts_{k}": v for k, v in self.counts.items()},
                 "part_time_s": round(self.part_time, 6)}
        if self.reasons:
            stats["part_failures"] = self.reasons
        return VerifyResult(status, self.R.eps, self.label, self.allowed, time.perf_counter() - self.t0,
                            f"split:{self.backend}", "split", stats=stats, **cex)


def _part_calls(key: Any, model: Model, R: Region, allowed: list[int], label: int, parts: int, backend: str,
                timeout: float | None, cores: int | None) -> list[Call]:
    return [Call((key, j), verify_part, (P.lo, P.hi, P.center, allowed, label, backend, timeout, cores),
                 hard_limit(timeout)) for j, P in enumerate(split_box(model.ir, R, parts))]


def verify_split(model: Model, R: Region, allowed: Sequence[int], label: int, parts: int, executor: Executor,
                 backend: str = "auto", timeout: float | None = None) -> VerifyResult:
    """Is every input of the box R predicted in ``allowed``?  R split into up to ``parts``
    sub-boxes, run on ``executor`` (made for ``model``), combined as the module docstring
    says; ``timeout`` is each part's limit."""
    allowed = sorted(set(int(c) for c in allowed))
    calls = _part_calls(object(), model, R, allowed, int(label), parts, backend, timeout,  # ids of this query only
                        executor.cores)
    verdict = _Parts(model, R, allowed, int(label), backend, len(calls))
    for o in executor.run(calls):
        res = verdict.add(o)
        if res is not None:
            executor.cancel(c.id for c in calls)
            return res
    raise RuntimeError("split verification: an executor ended without every part's outcome; this is a bug")


class SplitQuery(Query):
    """A verify query of a batch as split parts (``run_batch(..., split=n)``); its record has
    the keys of ``batch.run_query``'s, with ``stats`` from ``_Parts`` and backend ``split:<backend>``."""

    def __init__(self, base: dict, model: Model, x: np.ndarray, eps: int, parts: int, backend: str,
                 timeout: float | None, cex_dir: str | None, cores: int | None = None) -> None:
        from .batch import key_of

        self.base, self.key, self.model, self.x, self.cex_dir = base, key_of(base), model, x, cex_dir
        R = region.linf(model.ir.coding, x, eps)
        label = base["label"]
        self.calls = _part_calls(self.key, model, R, [label], label, parts, backend, timeout, cores)
        self.verdict = _Parts(model, R, [label], label, backend, len(self.calls))

    def take(self, o: Outcome) -> dict | None:
        r = self.verdict.add(o)
        if r is None:
            return None
        b = self.base
        rec = {**b, "status": r.status, "time_s": round(r.time_s, 6), "backend": r.backend, "encoding": r.encoding,
               "stats": r.stats}
        if r.status == "counterexample":
            rec.update(adv_label=r.adv_label, found_by=r.found_by, counterexample=None if not self.cex_dir else
                       save_counterexample(self.model, self.x, r.counterexample,
                                           Path(self.cex_dir) / f"idx{b['index']}_eps{b['eps']}",
                                           f"#{b['index']} eps {b['eps']}: {b['label']} -> {r.adv_label}"))
        return rec
