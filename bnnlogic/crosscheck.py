"""Cross-checking a verdict with a backend of a different kind (``verify --cross-check``).

A verdict is re-decided from scratch by a procedure that shares as little as possible with
the one that gave it:

    verdict from                          re-decided by
    bounds, bab (sweep), exact, attack    the exhaustive sweep (branch and bound) on boxes of at
                                          most 2^SWEEP_CELLS cells when the verdict was not
                                          already its own, else the CNF solver CNF_BACKEND
    cnf:*, native:*                       CP-SAT
    cpsat                                 Exact

"robust" against "counterexample" is a disagreement: a ``Disagreement`` error is raised
after both answers (with any counterexample) are written to ``save_dir``.  "unknown" on
either side leaves the verdict unconfirmed, not wrong.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

from .fileio import write_json
from .logic.region import Region
from .logic.sweep import n_cells
from .model import Model

CNF_BACKEND = "cnf:glucose4:totalizer"
SWEEP_CELLS = 22


class Disagreement(RuntimeError):
    """Two backends of different kinds gave opposite verdicts (a bug in one of them)."""

    def __init__(self, message: str, check: "CrossCheck") -> None:
        super().__init__(message)
        self.check = check


@dataclass
class CrossCheck:
    backend: str  # the second backend
    status: str  # its verdict
    agree: bool | None  # None: one side is unknown
    time_s: float

    def to_dict(self) -> dict:
        return asdict(self)


def cross_backend(verdict_backend: str, R: Region, thresholds) -> str:
    """The backend that re-decides a verdict of ``verdict_backend`` (see the module docstring)."""
    kind = verdict_backend.split(":")[0]
    if kind in ("cnf", "native"):
        return "cpsat"
    if kind == "cpsat":
        return "exact"
    if kind != "bab" and R.l0 is None and n_cells(thresholds, R.lo, R.hi)[0] <= SWEEP_CELLS:
        return "sweep"
    return CNF_BACKEND


def cross_check(model: Model, R: Region, allowed: Sequence[int], result, timeout: float | None = None,
                save_dir: str | Path | None = None, tag: str = "query") -> CrossCheck:
    """Re-decide ``result`` (a ``VerifyResult`` for R and ``allowed``) with another kind of
    backend; raises ``Disagreement`` (both answers saved under ``save_dir``) on a contradiction."""
    from .logic.bab import bab
    from .verification import verify_region

    t0 = time.perf_counter()
    other = cross_backend(result.backend if result.found_by != "attack" else "attack", R, model.ir.coding.thresholds)
    if other == "sweep":
        bad = [c for c in range(model.ir.n_classes) if c not in set(allowed)]
        status, _, _ = bab(model.engine, model.ir, R, bad, timeout=timeout) if bad else ("unsat", None, 0)
        second = {"unsat": "robust", "sat": "counterexample"}.get(status, "unknown")
    else:
        second = verify_region(model, R, allowed, result.label, other, timeout, use_attack=False).status
    agree = None if "unknown" in (result.status, second) else result.status == second
    cc = CrossCheck(other, second, agree, time.perf_counter() - t0)
    if cc.agree is False:
        where = Path(save_dir or ".") / f"disagreement_{tag}.json"
        write_json(where, {"first": result.to_dict(), "second": cc.to_dict(),
                           "region": {"lo": R.lo.tolist(), "hi": R.hi.tolist(), "l0": R.l0,
                                      "center": None if R.center is None else R.center.tolist()},
                           "allowed": sorted(int(c) for c in allowed)})
        raise Disagreement(f"{result.backend} says {result.status} but {other} says {second}; "
                           f"both answers saved to {where}. This is a bug: please report it", cc)
    return cc
