"""Robustness and property verification of a BNN: attack first, prove second.

``verify(model, x, eps=5)`` asks whether every raw input of the region around x is
predicted in the allowed classes (by default: the label).  The answer is

    robust          a sound procedure proved it: a solver's UNSAT of "some input of the
                    region is predicted outside the allowed classes", or (backend auto) interval
                    bounds that already exclude every other class (backend "bounds"), or
                    branch and bound over input thresholds that closed every case (logic.bab,
                    boxes); the attack never proves anything
    counterexample  a raw input of the region predicted outside them, found by the attack or
                    decoded from a solver model, and replayed through the inference engine
    unknown         the time limit ran out

Properties (``Property``): a region (L-infinity eps, L0 budget, mask, or explicit box) and a
post-condition ``pred in allowed``; a targeted property "never class t" is allowed = all but
t.  ``equivalent(a, b)`` is the miter of two models over a region.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .attack import attack
from .errors import UserError
from .logic import DEFAULT, Answer, Query, Region, region
from .logic.bounds import Bounds, fixed_counts, propagate
from .logic.encode import size_stats
from .logic.sweep import n_cells
from .model import Model

#: ``backend="auto"`` (see ``verify_region``): this solver (fastest measured by
#: benchmarks/verify.py) for FIRST_SLICE s, attack, branch and bound, this solver again.
AUTO = DEFAULT
FIRST_SLICE = 0.5
BAB_SHARE = 0.8
#: boxes with at most 2^SWEEP_FIRST threshold cells go to branch and bound first: its sweep
#: (``logic.sweep``, ~50 ns per cell) decides them in well under a second
SWEEP_FIRST = 22


@dataclass
class VerifyResult:
    status: str  # "robust" | "counterexample" | "unknown"
    eps: int | None
    label: int
    allowed: list[int]
    time_s: float
    backend: str
    encoding: str
    adv_label: int | None = None
    counterexample: np.ndarray | None = field(default=None, repr=False)
    found_by: str | None = None  # "attack" | "solver" for counterexamples
    stats: dict[str, Any] = field(default_factory=dict)
    certificate: dict[str, Any] | None = None  # ``certify.Certificate.to_dict()`` (verify(certify=...))
    cross_check: dict[str, Any] | None = None  # ``crosscheck.CrossCheck.to_dict()`` (verify(cross_check=True))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["counterexample"] = None if self.counterexample is None else self.counterexample.tolist()
        return d


def _backend(name: str) -> tuple[str, str]:
    b = AUTO if name == "auto" else name
    parts = b.split(":")
    return b, (parts[2] if parts[0] == "cnf" and len(parts) == 3 else parts[0])


def save_counterexample(model: Model, x: np.ndarray, adv: np.ndarray, stem: str | Path, caption: str) -> str:
    """Write ``stem.npy`` (raw features in the model's feature shape) and, for grey images,
    ``stem.png`` (original | adversarial | difference); returns the .npy path."""
    from .fileio import atomic_open
    from .pictures import is_image, save_counterexample_png

    c = model.ir.coding
    with atomic_open(f"{stem}.npy", "wb") as fh:
        np.save(fh, np.asarray(adv).reshape(c.feature_shape))
    if is_image(c.feature_shape):
        save_counterexample_png(f"{stem}.png", x, adv, c.feature_shape, c.lo, c.hi, caption)
    return f"{stem}.npy"


def make_region(model: Model, x: np.ndarray, eps: int | None = None, norm: str = "linf",
                mask: np.ndarray | None = None) -> Region:
    """The region of a query: ``linf`` (|x'-x| <= eps, raw units) or ``l0`` (<= eps features)."""
    c = model.ir.coding
    if norm == "linf":
        return region.linf(c, x, 0 if eps is None else eps, mask)
    if norm == "l0":
        return region.l0(c, x, 0 if eps is None else eps, mask)
    raise UserError(f"unknown norm {norm!r}; use linf or l0")


def verify_region(model: Model, R: Region, allowed: Sequence[int], label: int, backend: str = "auto",
                  timeout: float | None = None, use_attack: bool = True, use_bounds: bool = True,
                  seed: int = 0) -> VerifyResult:
    """Is every input of R predicted in ``allowed``?  (see the module docstring)

    ``backend="auto"`` runs a portfolio, cheapest first: if the region's interval bounds
    already exclude every bad class it is robust (no search); a box with at most 2^SWEEP_FIRST
    threshold cells goes to branch and bound over input thresholds (``logic.bab``), which
    sweeps them; otherwise the bounds-first encoding solved by ``AUTO`` for ``FIRST_SLICE``
    seconds (verification-friendly nets end here, in milliseconds), the attack, branch and
    bound (``BAB_SHARE`` of the time left), then the same solver again for the rest.  A named
    backend runs the attack (unless ``use_attack`` is False) and then that solver alone.
    """
    t0 = time.perf_counter()
    name, enc = _backend(backend)
    allowed = sorted(set(int(c) for c in allowed))
    bad = [c for c in range(model.ir.n_classes) if c not in allowed]
    res = VerifyResult("unknown", R.eps, int(label), allowed, 0.0, name, enc)

    def left() -> float | None:
        return None if timeout is None else timeout - (time.perf_counter() - t0)

    def solve(q: Query, limit: float | None) -> bool:
        """One solver call; True if it decided."""
        ans = q.solve(timeout=limit) if limit is None or limit > 0 else Answer("unknown")
        res.stats = q.stats
        if ans.status == "unsat":
            res.status = "robust"
        elif ans.status == "sat":
            _set_counterexample(model, R, bad, res, ans.witness, "solver")
        return ans.status != "unknown"

    # auto: R's bit bounds, computed once (the bounds check, the encoding and bab share them)
    bounds = propagate(model.ir, R.lo, R.hi) if use_bounds and bad and backend == "auto" else None
    if not bad:
        res.status = "robust"
    elif backend != "auto":
        if use_attack and (x := attack(model.engine, model.ir, R, bad, seed=seed)) is not None:
            _set_counterexample(model, R, bad, res, x, "attack")
        else:
            q = Query(model.ir, R, [[(0, bad)]], name, use_bounds, [model.engine])
            solve(q, left())
            q.close()
    elif bounds is not None and _bounds_exclude(model, R, bounds, bad):  # bounds alone: no encoding, no search
        res.status, res.backend, res.encoding = "robust", "bounds", "bounds"
        res.stats = size_stats(*fixed_counts(model.ir, bounds))
    else:
        q = Query(model.ir, R, [[(0, bad)]], name, use_bounds, [model.engine], [bounds])
        res.stats = q.stats
        first = FIRST_SLICE if left() is None else min(FIRST_SLICE, left())
        if q.encoding.goal_false:  # the encoding's constant folding excludes every bad class
            res.status, res.backend, res.encoding = "robust", "bounds", "bounds"
        elif R.l0 is None and n_cells(model.ir.coding.thresholds, R.lo, R.hi)[0] <= SWEEP_FIRST:
            if not _bab(model, R, bad, left(), res, share=1.0, bounds=bounds):  # <= 2^SWEEP_FIRST cells
                solve(q, left())
        elif not solve(q, first):
            if use_attack and (x := attack(model.engine, model.ir, R, bad, seed=seed)) is not None:
                _set_counterexample(model, R, bad, res, x, "attack")
            elif not _bab(model, R, bad, left(), res, bounds=bounds):
                solve(q, left())
        q.close()
    res.time_s = time.perf_counter() - t0
    return res


def _bounds_exclude(model: Model, R: Region, bounds: Bounds, bad: list[int]) -> bool:
    """True if R's interval ``bounds`` prove that no class in ``bad`` is ever predicted: the
    class of R's center (its low corner without one) is good and no bad class can be preferred
    to it anywhere in R (``logic.bab.safe_nodes`` on the last hidden layer's bit bounds)."""
    from .logic.bab import safe_nodes

    probe = np.clip(R.center if R.center is not None else R.lo, R.lo, R.hi)[None]
    ref = model.engine.predict(probe)
    mask = np.zeros(model.ir.n_classes, dtype=bool)
    mask[bad] = True
    return not mask[ref[0]] and bool(safe_nodes(model.ir, *bounds[-1], ref, mask)[0])


def _bab(model: Model, R: Region, bad: list[int], left: float | None, res: VerifyResult,
         share: float = BAB_SHARE, bounds: Bounds | None = None) -> bool:
    """Branch and bound over input thresholds (``logic.bab``, boxes only) for ``share`` of
    the time left (10 s without a limit), reusing R's bit ``bounds`` if given; True if it decided."""
    if R.l0 is not None:
        return False
    from .logic.bab import bab

    status, x, nodes = bab(model.engine, model.ir, R, bad, timeout=share * left if left is not None else 10.0,
                           bounds=bounds)
    res.stats["bab_nodes"] = nodes
    if status == "sat":
        _set_counterexample(model, R, bad, res, x, "bab")
    elif status == "unsat":
        res.status, res.backend, res.encoding = "robust", "bab", "bab"
    return status != "unknown"


def _set_counterexample(model: Model, R: Region, bad: list[int], res: VerifyResult, x: np.ndarray,
                        source: str) -> None:
    """Replay x through the engine; a failed replay is a bug, never a result."""
    pred = int(model.predict(x[None])[0])
    if pred not in bad or not R.contains(x[None])[0]:
        raise RuntimeError(f"{source} counterexample failed replay (prediction {pred}); this is a bug")
    res.status, res.adv_label, res.counterexample, res.found_by = "counterexample", pred, x, source


def verify(model: Model, x: Any, eps: int = 1, label: int | None = None, norm: str = "linf",
           target: int | None = None, allowed: Sequence[int] | None = None, mask: Any = None,
           backend: str = "auto", timeout: float | None = None, use_attack: bool = True,
           certify: str | Path | None = None, cross_check: bool = False,
           cert_timeout: float | None = None) -> VerifyResult:
    """Verify one property around raw input x (see the module docstring).

    label        the class that must be kept (default: the model's prediction on x)
    target       prove "never class ``target``" instead of "always ``label``"
    allowed      prove "prediction in ``allowed``" (overrides label/target)
    certify      a robust verdict gets a certificate written to this path (``bnnlogic.certify``;
                 the model must have been loaded from a file; ``cert_timeout`` seconds to make it)
    cross_check  re-decide with a backend of another kind (``bnnlogic.crosscheck``)
    """
    x = model.check_inputs(x)[0]
    if label is None:
        label = int(model.predict(x[None])[0])
    n = model.ir.n_classes
    for c in [label, target] + list(allowed or []):
        if c is not None and not 0 <= int(c) < n:
            raise UserError(f"class {c} out of range: the model has classes 0..{n - 1}")
    if allowed is None:
        allowed = [c for c in range(n) if c != target] if target is not None else [label]
    R = make_region(model, x, eps, norm, None if mask is None else np.asarray(mask))
    r = verify_region(model, R, allowed, label, backend, timeout, use_attack)
    if certify is None and not cross_check:
        return r
    from .certify import check_verdict

    return check_verdict(model, R, r, certify, cross_check, timeout, cert_timeout)



# ---------------------------------------------------------------------- robustness radius
@dataclass
class RadiusResult:
    radius_robust: int | None  # largest eps proven robust (None: x itself is not predicted as label)
    radius_counterexample: int | None  # smallest eps with a replayed counterexample (None: none <= max_eps)
    complete: bool  # the two are adjacent (or robust up to max_eps)
    time_s: float
    label: int
    max_eps: int
    solver_calls: int
    counterexample: np.ndarray | None = field(default=None, repr=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["counterexample"] = None if self.counterexample is None else self.counterexample.tolist()
        return d


def robustness_radius(model: Model, x: Any, label: int | None = None, max_eps: int | None = None,
                      backend: str = "auto", timeout: float | None = None) -> RadiusResult:
    """The L-infinity robustness radius of x in raw units, by incremental solving.

    The attack, run on a doubling ladder of eps, gives an upper end U (a replayed
    counterexample at distance U).  The region for eps = U - 1 (or ``max_eps``) is encoded
    once; each smaller eps is that encoding plus assumptions fixing the thresholds outside its
    box; a binary search on eps with one solver call per step closes the interval.
    """
    t0 = time.perf_counter()
    x = model.check_inputs(x)[0]
    c = model.ir.coding
    max_eps = c.hi - c.lo if max_eps is None else int(max_eps)
    label = int(model.predict(x[None])[0]) if label is None else int(label)
    bad = [k for k in range(model.ir.n_classes) if k != label]
    best_cex, U = None, None
    if int(model.predict(x[None])[0]) != label:
        return RadiusResult(None, 0, True, time.perf_counter() - t0, label, max_eps, 0, x)
    for e in sorted({min(2 ** i, max_eps) for i in range(max_eps.bit_length() + 1)} - {0}):
        if (adv := attack(model.engine, model.ir, region.linf(c, x, e), bad)) is not None:
            best_cex, U = adv, int(np.abs(adv - x).max())
            break
    top = max_eps if U is None else U - 1
    lo_r, hi_c, calls = -1, U, 0
    q = Query(model.ir, region.linf(c, x, top), [[(0, bad)]], _backend(backend)[0], engines=[model.engine])
    inp = q.encoding.inputs
    span = [top]  # candidates to test, binary search over [lo_r + 1, hi_c - 1]
    while True:
        left = None if timeout is None else timeout - (time.perf_counter() - t0)
        if left is not None and left <= 0:
            break
        hi_end = (hi_c - 1) if hi_c is not None else top
        if lo_r >= hi_end:
            break
        mid = span.pop() if span else (lo_r + 1 + hi_end) // 2
        box = region.linf(c, x, mid)
        assume = [l for ls in inp.box_literals(box.lo, box.hi).values() for l in ls]
        ans = q.solve(assume, timeout=left)
        calls += 1
        if ans.status == "unsat":
            lo_r = mid
        elif ans.status == "sat":
            best_cex, hi_c = ans.witness, int(np.abs(ans.witness - x).max())
        else:
            break
    q.close()
    complete = (hi_c is not None and lo_r == hi_c - 1) or (hi_c is None and lo_r == max_eps)
    return RadiusResult(lo_r if lo_r >= 0 else None, hi_c, complete, time.perf_counter() - t0,
                        label, max_eps, calls, best_cex)


# ---------------------------------------------------------------------- property files
def load_property(path: str | Path, model: Model, x: np.ndarray | None) -> tuple[Region, list[int]]:
    """A property file (JSON)::

        {"pre":  {"norm": "linf", "eps": 5, "mask": [feature indices] | null}
               | {"norm": "l0", "eps": 3, "mask": ...}
               | {"norm": "box", "lo": int | [d ints], "hi": int | [d ints]},
         "post": {"in": [classes]} | {"not_in": [classes]}}

    means ``pre(x') and BNN(x') = y  implies  post(y)``; linf/l0 are around the given input.
    """
    try:
        spec = json.loads(Path(path).read_text())
        pre, post = spec["pre"], spec["post"]
    except FileNotFoundError:
        raise UserError(f"property file {path} not found") from None
    except (ValueError, KeyError, TypeError) as e:
        raise UserError(f"property file {path}: expected JSON with 'pre' and 'post' ({e})") from None
    n, c = model.ir.n_classes, model.ir.coding
    try:
        norm = pre.get("norm", "linf")
        mask = None
        if pre.get("mask") is not None:
            mask = np.zeros(c.n_features, dtype=bool)
            mask[np.asarray(pre["mask"], dtype=np.int64)] = True
        if norm == "box":
            R = region.box(c, pre.get("lo"), pre.get("hi"))
        else:
            if x is None:
                raise UserError(f"property norm {norm!r} is around an input: give --input")
            R = make_region(model, x, int(pre.get("eps", 0)), norm, mask)
    except (ValueError, TypeError, IndexError, OverflowError, AttributeError) as e:
        raise UserError(f"property file {path}: bad 'pre' ({e}); see bnnlogic.verification.load_property") from None
    if "in" in post:
        allowed = [int(k) for k in post["in"]]
    elif "not_in" in post:
        allowed = [k for k in range(n) if k not in set(int(j) for j in post["not_in"])]
    else:
        raise UserError(f"property file {path}: post must be {{'in': [...]}} or {{'not_in': [...]}}")
    if any(not 0 <= k < n for k in allowed):
        raise UserError(f"property file {path}: classes must be in 0..{n - 1}")
    return R, allowed


# ---------------------------------------------------------------------- equivalence (miter)
@dataclass
class EquivalenceResult:
    status: str  # "equivalent" | "different" | "unknown"
    time_s: float
    witness: np.ndarray | None = field(default=None, repr=False)
    predictions: list[int] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)


def equivalent(a: Model, b: Model, R: Region | None = None, backend: str = "auto",
               timeout: float | None = None, implies: tuple[Sequence[int], Sequence[int]] | None = None
               ) -> EquivalenceResult:
    """Do a and b predict the same class on every input of R (default: the whole domain)?

    With ``implies=(A, B)``: does ``pred_a in A`` imply ``pred_b in B`` on R?  A witness is an
    input where it fails, replayed through both engines.
    """
    ca, cb = a.ir.coding, b.ir.coding
    if (ca.feature_shape, ca.lo, ca.hi) != (cb.feature_shape, cb.lo, cb.hi) or a.ir.n_classes != b.ir.n_classes:
        raise UserError("the two models take different inputs or classes; they cannot be compared")
    R = R or region.domain(ca)
    n = a.ir.n_classes
    if implies is None:
        goal = [[(0, [k]), (1, [j for j in range(n) if j != k])] for k in range(n)]
    else:
        A, B = implies
        goal = [[(0, list(A)), (1, [j for j in range(n) if j not in set(B)])]]
    t0 = time.perf_counter()
    q = Query([a.ir, b.ir], R, goal, _backend(backend)[0], engines=[a.engine, b.engine])
    ans = q.solve(timeout=timeout)
    stats = q.stats
    q.close()
    status = {"sat": "different", "unsat": "equivalent"}.get(ans.status, "unknown")
    return EquivalenceResult(status, time.perf_counter() - t0, ans.witness, ans.predictions, stats)
