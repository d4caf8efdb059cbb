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
from .ir import IR, check_ties, in_classes
from .logic import DEFAULT, Answer, Query, Region, region
from .logic.backends import check_backend
from .logic.bounds import Bounds, fixed_counts, propagate
from .logic.encoding import size_stats
from .logic.sweep import n_cells
from .model import Model

#: boxes with at most 2^SWEEP_FIRST threshold cells go to branch and bound before any encoding:
#: its sweep (``logic.sweep``: 2-36 ns per cell behind a dense first layer, about 200 behind a
#: convolution) decides them in at most about a second
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
    found_by: str | None = None  # "attack" | "bab" | "solver" for counterexamples
    stats: dict[str, Any] = field(default_factory=dict)
    certificate: dict[str, Any] | None = None  # ``certify.Certificate.to_dict()`` (verify(certify=...))
    cross_check: dict[str, Any] | None = None  # ``crosscheck.CrossCheck.to_dict()`` (verify(cross_check=True))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["counterexample"] = None if self.counterexample is None else self.counterexample.tolist()
        return d


def _backend(name: str) -> tuple[str, str]:
    """(backend name, encoding name): ``cnf:<solver>:<encoding>`` -> its encoding, else the name."""
    parts = name.split(":")
    return name, (parts[2] if parts[0] == "cnf" and len(parts) == 3 else parts[0])


def solver_name(backend: str) -> str:
    """The one solver that answers a single-solver question (a miter, a score property) when
    ``backend`` is asked for: ``auto`` means the default solver (``logic.DEFAULT``)."""
    return DEFAULT if backend == "auto" else backend


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
                  seed: int = 0, cores: int | None = None, ties: str = "low") -> VerifyResult:
    """Is every input of R predicted in ``allowed``?  (see the module docstring)

    ``ties="adversarial"``: an input where a class outside ``allowed`` has a maximal score is a
    counterexample even if the IR's tie rule (lowest class) would predict an allowed one.

    ``backend="auto"``, cheapest first: if the region's interval bounds already exclude every
    bad class it is robust (no search); a box with at most 2^SWEEP_FIRST threshold cells goes
    to branch and bound over input thresholds (``logic.bab``), which sweeps it; otherwise the
    racing portfolio (``bnnlogic.portfolio``) runs its engines on ``cores`` cores (default:
    ``portfolio.default_cores()``) until one decides or ``timeout`` passes.  A named backend
    runs the attack (unless ``use_attack`` is False) and then that solver alone (``bab``: branch
    and bound alone).  ``res.backend`` names the engine that decided (``bounds``, ``bab``,
    ``attack``, a solver).
    """
    t0 = time.perf_counter()
    check_ties(ties)
    if backend not in ("auto", "bab"):
        check_backend(backend)  # a misspelt backend fails at once, not after the attack
    name, enc = _backend(backend)
    allowed = sorted(set(int(c) for c in allowed))
    bad = [c for c in range(model.ir.n_classes) if c not in allowed]
    res = VerifyResult("unknown", R.eps, int(label), allowed, 0.0, name, enc)

    def left() -> float | None:
        return None if timeout is None else timeout - (time.perf_counter() - t0)

    # auto: R's bit bounds, computed once (the bounds check, the encoding and bab share them)
    bounds = propagate(model.ir, R.lo, R.hi) if use_bounds and bad and backend == "auto" else None
    if not bad:
        res.status = "robust"
    elif backend != "auto":
        if use_attack and (x := attack(model.engine, model.ir, R, bad, seed=seed, ties=ties)) is not None:
            _set_counterexample(model, R, bad, res, x, "attack", ties)
            res.backend = res.encoding = "attack"
        elif backend == "bab":
            if R.l0 is not None:
                raise UserError("branch and bound decides boxes (L-infinity regions), not L0 budgets")
            _bab(model, R, bad, left(), res, ties=ties, threads=cores)
        else:
            q = Query(model.ir, R, [[(0, bad)]], name, use_bounds, [model.engine], ties=ties)
            limit = left()
            ans = q.solve(timeout=limit) if limit is None or limit > 0 else Answer("unknown")
            res.stats = q.stats
            if ans.status == "unsat":
                res.status = "robust"
            elif ans.status == "sat":
                _set_counterexample(model, R, bad, res, ans.witness, "solver", ties)
            q.close()
    elif bounds is not None and _bounds_exclude(model, R, bounds, bad, ties):  # bounds alone: no encoding, no search
        res.status, res.backend, res.encoding = "robust", "bounds", "bounds"
        res.stats = size_stats(*fixed_counts(model.ir, bounds))
    elif R.l0 is None and n_cells(model.ir.coding.thresholds, R.lo, R.hi)[0] <= SWEEP_FIRST \
            and _bab(model, R, bad, left(), res, bounds=bounds, ties=ties, threads=cores):  # a small box: swept
        res.stats.update(size_stats(*fixed_counts(model.ir, bounds)))
    else:
        _race(model, R, bad, bounds, left(), res, cores, seed, use_attack, ties)
    res.time_s = time.perf_counter() - t0
    return res


def _race(model: Model, R: Region, bad: list[int], bounds: Bounds, limit: float | None, res: VerifyResult,
          cores: int | None, seed: int, use_attack: bool, ties: str) -> None:
    """The racing portfolio (``bnnlogic.portfolio``) decides R, or the time runs out."""
    from . import portfolio

    cores = cores or portfolio.default_cores()
    race = portfolio.Race(model, R, bad, bounds, seed=seed, ties=ties)
    lanes = portfolio.schedule_for(cores)
    if not use_attack:
        lanes = tuple(tuple(s for s in lane if s[0] != "attack") for lane in lanes)
    try:
        out = race.run(limit, cores=cores, schedule=lanes)
    finally:
        race.close()
    enc = race.encoding
    res.stats = enc.stats if enc is not None else size_stats(*fixed_counts(model.ir, bounds))
    res.stats.update(engines={k: round(v, 6) for k, v in out.seconds.items()}, bab_nodes=out.bab_nodes)
    if out.engine is not None:
        res.backend = portfolio.CNF_BACKEND if out.engine == "cnf" else out.engine
        res.encoding = _backend(res.backend)[1]
    if out.status == "unknown" and (open_ := race.open_classes()) is not None:
        res.stats["classes_open"] = open_
    if out.status == "unknown" and (est := race.bab_estimate(cores)) is not None:
        res.stats.update(log2_cells=round(race.log_cells, 2), bab_decided=round(min(race.bab_progress.share, 1.0), 6),
                         bab_estimate_s=round(est, 1))
    if out.status == "unsat":
        res.status = "robust"
    elif out.status == "sat":
        _set_counterexample(model, R, bad, res, out.witness,
                            out.engine if out.engine in ("attack", "bab") else "solver", ties)


def _safe_boxes(ir: IR, scores: np.ndarray, blo: np.ndarray, bhi: np.ndarray, bad: np.ndarray,
                ties: str = "low") -> np.ndarray:
    """Per box (n,): its probe (a point of the box, whose ``scores`` (n, classes) are given)
    gets a good class, and the box's interval bit bounds on the last hidden layer (blo, bhi)
    show that no class in ``bad`` (a class mask) can be preferred to it anywhere in the box
    (``logic.bab.safe_nodes``), ties read by ``ties``."""
    from .logic.bab import safe_nodes

    return ~in_classes(scores, bad, ties) & safe_nodes(ir, blo, bhi, np.argmax(scores, axis=1), bad, ties=ties)


def _bounds_exclude(model: Model, R: Region, bounds: Bounds, bad: list[int], ties: str = "low") -> bool:
    """True if R's interval ``bounds`` prove that no class in ``bad`` is ever predicted: the
    class of R's center (its low corner without one) is good and no bad class can be preferred
    to it anywhere in R (``_safe_boxes``)."""
    probe = np.clip(R.center if R.center is not None else R.lo, R.lo, R.hi)[None]
    scores = model.engine.scores(probe)
    return bool(_safe_boxes(model.ir, scores, *bounds[-1], np.isin(np.arange(model.ir.n_classes), bad), ties)[0])


def _bounds_radius(model: Model, x: np.ndarray, label: int, max_eps: int, ties: str = "low") -> int:
    """The largest eps in [0, max_eps] whose L-infinity box around x interval bounds alone prove
    to keep ``label`` (``_safe_boxes``, x the probe of every box).  Proofs are monotone in eps
    (the bounds of a smaller box are tighter), so eps 1 alone, then two batched propagations
    find it: the powers of two up to max_eps, then every eps between the largest proven one and
    the next."""
    ir, c = model.ir, model.ir.coding
    bad, scores = np.arange(ir.n_classes) != label, model.engine.scores(x[None])

    def proven(eps: list[int]) -> np.ndarray:
        boxes = [region.linf(c, x, e) for e in eps]
        blo, bhi = propagate(ir, np.stack([R.lo for R in boxes]), np.stack([R.hi for R in boxes]))[-1]
        return _safe_boxes(ir, np.repeat(scores, len(eps), axis=0), blo, bhi, bad, ties)

    def climb(lo: int, eps: list[int]) -> tuple[int, int]:
        """(largest proven, first not proven) among ``eps`` (ascending, above ``lo``)."""
        ok = proven(eps) if eps else np.zeros(0, bool)
        k = int(np.argmin(ok)) if not ok.all() else len(eps)  # proofs are monotone: a prefix holds
        return (eps[k - 1] if k else lo), (eps[k] if k < len(eps) else max_eps + 1)

    if max_eps < 1 or not proven([1])[0]:  # often so on plain nets: one propagation, not a batch
        return 0
    lo, hi = climb(1, [e for e in (1 << i for i in range(1, max_eps.bit_length())) if e <= max_eps])
    return climb(lo, list(range(lo + 1, hi)))[0]


def _bab(model: Model, R: Region, bad: list[int], left: float | None, res: VerifyResult,
         bounds: Bounds | None = None, ties: str = "low", threads: int | None = None) -> bool:
    """Branch and bound over input thresholds (``logic.bab``, boxes only) for the time left
    (None: no limit) on ``threads`` threads (default: ``portfolio.default_cores()``), reusing R's
    bit ``bounds`` if given; True if it decided."""
    from .logic.bab import bab
    from .portfolio import default_cores

    status, x, nodes = bab(model.engine, model.ir, R, bad, timeout=left, bounds=bounds, ties=ties,
                           threads=threads or default_cores())
    res.stats["bab_nodes"] = nodes
    if status != "unknown":
        res.backend = res.encoding = "bab"
    if status == "sat":
        _set_counterexample(model, R, bad, res, x, "bab", ties)
    elif status == "unsat":
        res.status = "robust"
    return status != "unknown"


def _set_counterexample(model: Model, R: Region, bad: list[int], res: VerifyResult, x: np.ndarray,
                        source: str, ties: str = "low") -> None:
    """Replay x (``_replay``) and record it in ``res`` as found by ``source``."""
    adv = _replay(model, R, bad, x, source, ties)
    res.status, res.adv_label, res.counterexample, res.found_by = "counterexample", adv, x, source


def _replay(model: Model, R: Region, bad: list[int], x: np.ndarray, source: str, ties: str = "low") -> int:
    """Replay x through the engine: it lies in R and a class in ``bad`` wins (ties read by
    ``ties``); a failed replay is a bug, never a result.  Returns the lowest bad class with a
    maximal score (the prediction, with ties low)."""
    scores = model.scores(x[None])
    mask = np.isin(np.arange(model.ir.n_classes), bad)
    if not in_classes(scores, mask, ties)[0] or not R.contains(x[None])[0]:
        raise RuntimeError(f"{source} counterexample failed replay (scores {scores[0].tolist()}); this is a bug")
    return int(np.argmax(np.where(mask, scores[0], np.iinfo(np.int64).min)))


def verify(model: Model, x: Any, eps: int = 1, label: int | None = None, norm: str = "linf",
           target: int | None = None, allowed: Sequence[int] | None = None, mask: Any = None,
           backend: str = "auto", timeout: float | None = None, use_attack: bool = True,
           ties: str = "low", certify: str | Path | None = None, cross_check: bool = False,
           cert_timeout: float | None = None, cores: int | None = None) -> VerifyResult:
    """Verify one property around raw input x (see the module docstring).

    label        the class that must be kept (default: the model's prediction on x)
    target       prove "never class ``target``" instead of "always ``label``"
    allowed      prove "prediction in ``allowed``" (overrides label/target)
    ties         "low" (the IR's argmax) or "adversarial" (a tie with a wrong class is a counterexample)
    certify      a robust verdict gets a certificate written to this path (``bnnlogic.certify``;
                 the model must have been loaded from a file; ``cert_timeout`` seconds to make it)
    cross_check  re-decide with a backend of another kind (``bnnlogic.crosscheck``)
    cores        cores the racing portfolio may use (default: ``portfolio.default_cores()``)
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
    r = verify_region(model, R, allowed, label, backend, timeout, use_attack, ties=ties, cores=cores)
    if certify is None and not cross_check:
        return r
    if ties != "low":
        raise UserError("certificates and cross-checks read ties as the IR does (lowest class); drop --ties")
    from .certify import check_verdict

    return check_verdict(model, R, r, certify, cross_check, timeout, cert_timeout)



# ---------------------------------------------------------------------- robustness radius
#: the radius search keeps UPPER_SHARE of its timeout (at most UPPER_TOTAL_S seconds) for the
#: attack above an eps its decisions leave open, UPPER_PROBE_S seconds per probed eps
UPPER_SHARE = 0.05
UPPER_TOTAL_S = 1.0
UPPER_PROBE_S = 0.1


@dataclass
class RadiusResult:
    radius_robust: int | None  # largest eps proven robust (None: x itself is not predicted as label)
    # the smallest eps with a replayed counterexample found (None: none found <= max_eps); when
    # complete, the smallest there is
    radius_counterexample: int | None
    complete: bool  # the two are adjacent (or robust up to max_eps, or x itself misclassified)
    time_s: float
    label: int
    max_eps: int
    solver_calls: int  # decisions made (probed eps values)
    counterexample: np.ndarray | None = field(default=None, repr=False)
    open_reason: str | None = None  # why radius_robust is not pinned: "time" | "misclassified" (no robust eps) | None
    probes: list[dict[str, Any]] = field(default_factory=list)  # per probed eps: status, time_s, backend

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["counterexample"] = None if self.counterexample is None else self.counterexample.tolist()
        return d


def robustness_radius(model: Model, x: Any, label: int | None = None, max_eps: int | None = None,
                      backend: str = "auto", timeout: float | None = None, cores: int | None = None,
                      ties: str = "low") -> RadiusResult:
    """The L-infinity robustness radius of x in raw units: the largest eps whose box keeps
    ``label`` (``radius_robust``) and the smallest eps with a replayed counterexample
    (``radius_counterexample``).

    First, interval bounds alone (monotone in eps: a smaller box has tighter bounds) give the
    largest eps ``b`` they prove, in one to three batched propagations (``_bounds_radius``).
    Then the search is the decision ladder from b: eps = b + 1, b + 2, ..., each a full decision
    (``verify_region``: bounds, branch and bound, the racing portfolio, each box with its own,
    tighter bounds) with all the time left, until the first eps that is not robust.  So the
    search is never weaker than deciding each eps by hand, and it makes the ladder's decisions
    above b only.  (Galloping past b was tried and dropped: a probe above the radius can cost far
    more than the ladder's whole climb, e.g. 8.7 s for a counterexample at eps 4 that the ladder
    found at eps 3 in 0.1 s, ``benchmarks/hard.py --ladder``.)  The first counterexample, at eps
    r + 1, is at L-inf distance exactly r + 1 from x.  An eps left undecided when the time runs
    out leaves the interval open with ``open_reason="time"``; a misclassified x has no robust
    radius (``open_reason="misclassified"``, counterexample x itself at eps 0).  ``ties``: as
    in ``verify``.

    With a ``timeout``, the ladder's decisions leave ``UPPER_SHARE`` of it (at most
    ``UPPER_TOTAL_S``) unspent; if a decision runs out of time, that reserve goes to the attack
    above the open eps (``_upper_bracket``), so an open interval still gets a replayed
    counterexample side where a cheap one exists (a search that completes never pays for it).
    """
    t0 = time.perf_counter()
    check_ties(ties)
    x = model.check_inputs(x)[0]
    c = model.ir.coding
    max_eps = c.hi - c.lo if max_eps is None else int(max_eps)
    label = int(model.predict(x[None])[0]) if label is None else int(label)
    res = RadiusResult(None, None, False, 0.0, label, max_eps, 0)
    if in_classes(model.scores(x[None]), np.arange(model.ir.n_classes) != label, ties)[0]:
        res.radius_counterexample, res.counterexample, res.open_reason, res.complete = 0, x, "misclassified", True
        res.time_s = time.perf_counter() - t0
        return res

    reserve = 0.0 if timeout is None else min(UPPER_TOTAL_S, UPPER_SHARE * timeout)  # for _upper_bracket

    def decide(eps: int) -> str:
        left = None if timeout is None else timeout - reserve - (time.perf_counter() - t0)
        if left is not None and left <= 0:
            return "unknown"
        r = verify_region(model, region.linf(c, x, eps), [label], label, backend, left, cores=cores, ties=ties)
        res.solver_calls += 1
        res.probes.append({"eps": eps, "status": r.status, "time_s": round(r.time_s, 6), "backend": r.backend})
        if r.status == "robust":
            res.radius_robust = eps
        elif r.status == "counterexample":
            res.counterexample = r.counterexample
            res.radius_counterexample = int(np.abs(r.counterexample - x).max())  # eps: the ladder proved eps - 1
        return r.status

    res.radius_robust = 0  # eps 0: x itself keeps its label
    if timeout is None or timeout > 0:
        tb, b = time.perf_counter(), _bounds_radius(model, x, label, max_eps, ties)
        if b:
            res.radius_robust, res.solver_calls = b, 1
            res.probes.append({"eps": b, "status": "robust", "time_s": round(time.perf_counter() - tb, 6),
                               "backend": "bounds"})
    status = "robust"
    while res.radius_robust < max_eps and (status := decide(res.radius_robust + 1)) == "robust":
        pass
    if status == "unknown" and timeout is not None:  # out of time: the reserve looks above the open eps
        tu = time.perf_counter()
        hit = _upper_bracket(model, x, label, res.radius_robust + 2, max_eps, t0 + timeout, ties)
        if hit is not None:
            eps, res.counterexample = hit
            res.radius_counterexample = int(np.abs(res.counterexample - x).max())
            res.solver_calls += 1
            res.probes.append({"eps": eps, "status": "counterexample", "time_s": round(time.perf_counter() - tu, 6),
                               "backend": "attack"})
    hi = res.radius_counterexample
    res.complete = res.radius_robust == (max_eps if hi is None else hi - 1)
    res.open_reason = None if res.complete else "time"
    res.time_s = time.perf_counter() - t0
    return res


def _upper_bracket(model: Model, x: np.ndarray, label: int, lo: int, max_eps: int, end: float,
                   ties: str) -> tuple[int, np.ndarray] | None:
    """(eps, replayed counterexample) from attack-only probes on boxes around x of eps >= lo
    until the clock reads ``end``, or None: eps = lo, lo + 1, lo + 3, lo + 7, ... (at most
    max_eps) until the attack hits, then bisection between lo and the hit's L-inf distance d
    (a hit at eps e < d lowers d; a miss raises the lower end, proving nothing).  Each probe gets
    ``UPPER_PROBE_S`` of the attack."""
    bad = [c for c in range(model.ir.n_classes) if c != label]
    c = model.ir.coding

    def probe(eps: int) -> np.ndarray | None:
        left = end - time.perf_counter()
        if left <= 0:
            return None
        R = region.linf(c, x, eps)
        if (a := attack(model.engine, model.ir, R, bad, timeout=min(UPPER_PROBE_S, left), ties=ties)) is not None:
            _replay(model, R, bad, a, "attack", ties)
        return a

    best, low, step, eps = None, lo - 1, 1, lo  # low: the largest eps probed without a hit
    while best is None and eps <= max_eps and time.perf_counter() < end:
        if (a := probe(eps)) is not None:
            best = (eps, a)
        else:
            low, eps, step = eps, eps + step, 2 * step
    if best is None:
        return None
    d = int(np.abs(best[1] - x).max())
    while low + 1 < d and time.perf_counter() < end:
        mid = (low + d) // 2
        if (a := probe(mid)) is not None:
            best, d = (mid, a), int(np.abs(a - x).max())
        else:
            low = mid
    return best


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
    q = Query([a.ir, b.ir], R, goal, solver_name(backend), engines=[a.engine, b.engine])
    ans = q.solve(timeout=timeout)
    stats = q.stats
    q.close()
    status = {"sat": "different", "unsat": "equivalent"}.get(ans.status, "unknown")
    return EquivalenceResult(status, time.perf_counter() - t0, ans.witness, ans.predictions, stats)
