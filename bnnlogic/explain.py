"""Formal explanations of one BNN decision, by SAT over the exact IR.

Let y be the prediction on x and R a region around it (the whole input domain, or the box
``|x' - x| <= eps``).  For a set S of raw features, "fixing S" restricts R to the inputs with
``x'_f = x_f`` for f in S (the network only sees x_f through its coding thresholds, so this is
the same as fixing every coding bit of f).

    abductive (AXp)    S such that fixing S entails ``pred = y`` on all of R; subset-minimal
    contrastive (CXp)  S such that fixing every feature outside S allows ``pred != y`` in R
                       (a replayed witness shows it); subset-minimal

Entailment is monotone (fixing more features leaves fewer inputs), and the two kinds are
minimal hitting sets of each other (every AXp meets every CXp).  One ``Query`` (goal
``pred != y`` over R) is encoded once; fixing S is a set of assumption literals on the coding
variables of S, so each check is one incremental solver call: UNSAT <=> S suffices.

Algorithms: deletion (drop each feature in a given order if the rest still suffices, shrinking
by the solver's UNSAT core when it has one), QuickXplain (divide and conquer), hitting-set
enumeration of several AXps/CXps (MARCO style, a SAT solver over "feature fixed" selectors),
and cardinality-minimum explanations (implicit hitting sets with PySAT's RC2 MaxSAT solver).
Each check is answered by the cheapest exact means (``Explainer._solve``): enumeration of few
free threshold cells through the engine, a concrete counterexample from the witnesses met so
far (replayed), interval bounds that prove the prediction, and only then the solver.  Features
no first-layer neuron reads are left out.  Every reported explanation is re-checked
(``verify``): an AXp's entailment by another backend (CP-SAT) on a fresh encoding of the
restricted region, each single-feature removal by a counterexample replayed through concrete
inference (one met during the search, else a new oracle call); a CXp's witness by replay and
its minimality by CP-SAT on fresh encodings.

Time.  ``timeout`` bounds each solver call; a ``Budget`` (``limit``) bounds the whole search
and receives progress (checks so far, the smallest sufficient set known).  When it runs out,
or the user interrupts, the search returns the best result it has, marked ``complete=False``
with ``stopped`` = "time" | "interrupt": for an AXp the smallest set of features that the
oracle showed to suffice (sufficient, maybe not minimal, not re-checked), for a CXp the
smallest replayed witness's changed features, for an enumeration the explanations found.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Iterable, Sequence

import numpy as np

from .blas import one_blas_thread
from .budget import Budget, Stopped, interruption
from .errors import UserError
from .ir import IR, Dense
from .logic import DEFAULT, Answer, Query, Region, region
from .logic.encoding import cell_intervals
from .logic.sweep import cell_inputs, n_cells, sweep
from .portfolio import bab_fits, race_solvers

BACKEND = DEFAULT
RACE_PARTNER = "cpsat"  # raced against BACKEND on every solver call when two cores are free
CHECK_BACKEND = "cpsat"
TINY_CELLS = 1 << 14  # boxes this small are swept first (about a millisecond)
#: boxes this small are swept after the replay pool, before bounds and the attack (digits
#: mlp:200,100 friendly, whole domain: a sweep of 2^20 cells takes 45 ms, a missed attack ATTACK_S)
SMALL_CELLS = 1 << 20
ATTACK_S = 0.1  # seconds of ``bnnlogic.attack`` on a larger restricted box, after the replay pool
#: ... when it races beside the solvers or branch and bound, where a missed attack costs a share
#: of a core, not waiting.  Plain digits mlp:200,100 image 1 over the whole domain, 3 runs each:
#: 0.1 s: 6.5-9.1 s (a witness the attack finds alone in 10-240 ms, raced on a shared core it
#: missed, and branch and bound took 3.4 s); 0.3 s: 4.5-4.6 s; 0.5 and 1 s: the same; the
#: friendly net and plain mlp:64,32 unchanged within noise
RACE_ATTACK_S = 0.3
#: boxes with at most this many cells are swept rather than solved (same net: 2^22 cells in 0.15 s,
#: 2^24 in 0.9 s, where the solvers prove 2^26 in 0.17-0.3 s)
ENUM_CELLS = 1 << 22
#: boxes with more cells than ``enum_cells`` but at most this many race branch and bound (its sweep
#: and bounds) against the solvers; a plain net's sweep beats a solver's search well past 2^26
#: cells, and above 2^28 it only took CPU from the solvers (digits mlp:200,100 friendly, whole
#: domain: 0.1-1.2 s less per explanation than with 2^34).  Once it races alone after a sweep
#: went deep (``BAB_ALONE_AFTER``), it takes every box whose sweep may fit the call's time
#: (``portfolio.bab_fits``): plain mlp:200,100 images 2 and 4 met a 2^30-cell call that the
#: solvers left undecided for 330 s.  Not on its wins alone: friendly mlp:64,32 image 0, where
#: it won the first races, then took 3 s for a 2^32-cell box the solvers prove in 0.1 s
BAB_CELLS = 1 << 28
#: once branch and bound has won this many of the races it ran in and the solvers none of them
#: (a plain net: its sweep decides, the solvers time out), or once a sweep of the search went
#: through every layer (``sweep``'s deep walk: nearly every cell a new layer-1 pattern, which
#: happened on the plain digits nets only, never on the friendly ones), it races alone with
#: the attack, on every core.  Measured on digits mlp:200,100 over the whole domain: plain,
#: branch and bound won every such race from the first on, and image 1 took 33 -> 14 s (the
#: deep-walk signal then saved its first race beside the solvers: 5.9 -> 2.1 s); friendly, the
#: solvers won the first three (images 0 and 3), so it never races alone there
BAB_ALONE_AFTER = 1
#: proven-good free sets remembered (``Explainer._skip``; deletion needs only the newest)
GOOD_KEPT = 4
CHECK_CELLS = 1 << 22  # the independent check enumerates boxes this small through the engine
CHECK_RACE_CELLS = 1 << 30  # ... and races that enumeration against its solver up to this many cells
KINDS = ("abductive", "contrastive", "minimum")
METHODS = ("deletion", "quickxplain")


@dataclass
class Explanation:
    kind: str  # "abductive" | "contrastive" (a "minimum" search returns a cardinality-minimum AXp)
    features: list[int]  # flat raw feature indices, sorted
    prediction: int
    method: str
    time_s: float
    calls: int  # solver calls of the search
    verified: bool | None = None
    verify_s: float = 0.0
    witness: np.ndarray | None = None  # CXp: a raw input with only these features changed
    witness_class: int | None = None
    oracle: dict | None = None  # search calls answered by enumerate / replay / bounds / solver
    complete: bool = True  # False: the time limit or an interrupt ended the search (best result so far)
    stopped: str | None = None  # "time" | "interrupt" when not complete

    @property
    def size(self) -> int:
        return len(self.features)

    def to_json(self) -> dict:
        d = {"kind": self.kind, "features": self.features, "size": self.size, "prediction": self.prediction,
             "method": self.method, "time_s": round(self.time_s, 6), "calls": self.calls,
             "verified": self.verified, "verify_s": round(self.verify_s, 6), "complete": self.complete,
             "stopped": self.stopped}
        if self.witness is not None:
            d.update(witness=self.witness.tolist(), witness_class=self.witness_class)
        if self.oracle is not None:
            d.update(oracle=self.oracle)
        return d


def margin_order(ir: IR, x: np.ndarray, R: Region, features: Sequence[int], engine=None) -> list[int]:
    """Least relevant first: features sorted by the worst margin ``score_y - max_{c != y} score_c``
    reachable by changing that feature alone within R (largest first; ties by index).  One
    batched forward pass over every interval of every feature's coding thresholds (through
    ``engine``, the compiled inference engine, when given: same exact integer scores)."""
    if not features:
        return []
    scores = engine.scores if engine is not None else ir.scores
    y = int(np.argmax(scores(x[None])[0]))
    thr, free = ir.coding.thresholds, ir.coding.free(R.lo, R.hi)
    rows, owner = [], []
    for f in features:
        vals = np.unique(np.concatenate([[R.lo[f], R.hi[f]], thr[free[:, f], f]]))
        for v in vals:
            x2 = x.copy()
            x2[f] = v
            rows.append(x2)
            owner.append(f)
    S = scores(np.array(rows))
    other = np.delete(S, y, axis=1).max(axis=1)
    margin = S[:, y] - other - (np.argmax(S, axis=1) != y)  # a lost tie counts below 0
    worst = {f: np.inf for f in features}
    for f, m in zip(owner, margin):
        worst[f] = min(worst[f], int(m))
    return sorted(features, key=lambda f: (-worst[f], f))


class Explainer:
    """Explanations of ``ir``'s decision on the raw input ``x`` over the domain (``eps=None``)
    or the L-infinity box of radius ``eps`` (the robust variant).  ``timeout``: seconds per
    solver call (a call that gives up raises ``UserError``); ``fast``: try concrete witnesses
    and interval bounds before the solver (see ``_solve``); ``engine``: a compiled inference
    engine of ``ir`` to reuse across explanations; ``budget``: seconds per abductive search
    (beyond it, ``UserError``); ``limit``: a ``Budget`` for everything this explainer does
    (beyond it, the best result so far, marked incomplete; see the module docstring);
    ``cores``: with two or more (default: ``portfolio.default_cores()``) every solver call
    races ``backend`` against ``RACE_PARTNER`` (``portfolio.race_solvers``)."""

    def __init__(self, ir: IR, x: np.ndarray, eps: int | None = None, backend: str = BACKEND,
                 check_backend: str = CHECK_BACKEND, enum_cells: int = ENUM_CELLS,
                 timeout: float | None = None, fast: bool = True, pool: int = 16, engine=None,
                 budget: float | None = None, limit: Budget | None = None, cores: int | None = None) -> None:
        from .portfolio import default_cores

        c = ir.coding
        self.ir = ir
        R0 = region.linf(c, x, 0)  # validates x
        self.x = R0.center
        if eps is None:  # the domain, centred on x so that witnesses change only what they must
            D = region.domain(c)
            self.region = Region(D.lo, D.hi, self.x, None, "domain", None)
        else:
            self.region = region.linf(c, self.x, eps)
        self.eps = eps
        self.prediction = int(ir.predict(self.x[None])[0])
        self.other = [k for k in range(ir.n_classes) if k != self.prediction]
        self.backend, self.check_backend = backend, check_backend
        self.goal = [[(0, self.other)]]
        # on two or more cores the solver calls race a second kind of solver on the same encoding
        # (``portfolio.race_solvers``): both stay loaded across calls (a GIL-holding one forked)
        self.cores = cores or default_cores()
        racing = self.cores >= 2
        self.query = Query(ir, self.region, self.goal, backend, engines=None if engine is None else [engine],
                           isolated=racing)
        partner = RACE_PARTNER if RACE_PARTNER != backend else DEFAULT
        self.solvers = [self.query] + ([Query(ir, self.region, self.goal, partner, engines=self.query.engines,
                                              encoding=self.query.encoding, isolated=True)] if racing else [])
        inp = self.query.encoding.inputs
        # only features with a coding threshold inside their range can matter
        self.features: list[int] = sorted(int(f) for f in inp.vars)
        self._fix = inp.box_literals(self.x, self.x)
        self._lit_feature = {l: f for f, ls in self._fix.items() for l in ls}
        self.calls = 0
        self.enum_cells, self.timeout, self.fast, self.pool = enum_cells, timeout, fast, pool
        self.budget, self.deadline = budget, None  # seconds per abductive search
        self.limit = limit
        self.stopped: str | None = None  # why the last search ended early ("time" | "interrupt")
        self.oracle = {"enumerate": 0, "replay": 0, "attack": 0, "bounds": 0, "solver": 0}  # which branch answered
        self.core: set[int] | None = None  # after a solver's "unsat": the features its core fixes
        self.witnesses: list[np.ndarray] = []  # every witness met (replayed), for replay and verify
        self._recent: list[int] = []  # indices into witnesses, most recently useful first
        self._bad = np.isin(np.arange(ir.n_classes), self.other)
        self._greedy: np.ndarray | None = None
        # features no first-layer neuron reads (every weight of their coding bits is 0) never
        # change the output, so they belong to no subset-minimal explanation
        first = ir.layers[0] if ir.layers else None
        if isinstance(first, Dense):
            read = (first.A != 0).reshape(len(first.A), c.n_levels, c.n_features).any(axis=(0, 1))
            self.relevant = [f for f in self.features if read[f]]
        else:
            self.relevant = list(self.features)
        self._bounds_tries = self._bounds_hits = 0
        self._bab_wins = self._solver_wins = 0  # in the races branch and bound ran in
        self._deep = False  # a sweep met a new layer-1 pattern in nearly every cell (``logic.sweep``)
        # free sets whose boxes are proven good (no other class): x's own cell, then the free
        # set of each "unsat" (the newest first; ``_skip``)
        self._good: list[frozenset[int]] = [frozenset()]
        # per feature, one raw value per interval of its thresholds: the one nearest x
        R = self.region
        self._cells = {f: np.clip(self.x[f], *cell_intervals(R.lo[f], R.hi[f], inp.thresholds[f]))
                       for f in self.features}
        # the best results met so far (returned when the time runs out): fixing every relevant
        # feature pins every first-layer input, so that set always suffices
        self.best_axp: list[int] = list(self.relevant)
        self.best_cxp: tuple[list[int], np.ndarray, int] | None = None  # (changed features, witness, its class)

    # ------------------------------------------------------------------ time
    def _call_timeout(self) -> float | None:
        """Seconds for one solver call: ``timeout``, cut to what is left of the budget."""
        t = self.timeout if self.limit is None else self.limit.call_timeout(self.timeout)
        if self.deadline is not None:
            left = max(1e-3, self.deadline - time.perf_counter())
            t = left if t is None else min(t, left)
        return t

    def _gave_up(self, what: str) -> Exception:
        """The error for a solver call that returned unknown: ``Stopped`` if the whole limit ran
        out, else a ``UserError``: the abductive search's ``budget`` ran out, or the per-call
        limit was too short for a definite answer."""
        if self.limit is not None and self.limit.expired():
            return Stopped("time")
        if self.deadline is not None and time.perf_counter() >= self.deadline - 2e-3:  # the call had the budget's rest
            return UserError(f"no explanation within the budget of {self.budget} s")
        return UserError(f"{what} gave up after {self._call_timeout()} s; explanations need a definite answer "
                         "(raise the time per call)")

    def _stop(self, exc: BaseException) -> str:
        """The reason ``exc`` ended a search early, recorded in ``self.stopped``; re-raises
        anything that is not a time-out or an interrupt."""
        if not (isinstance(exc, Stopped) or interruption(exc)):
            raise exc
        self.stopped = exc.reason if isinstance(exc, Stopped) else "interrupt"
        return self.stopped

    def _checked(self, e: Explanation, verify: bool) -> Explanation:
        """``e`` verified if asked; a check cut short leaves ``verified`` None and marks ``e`` incomplete."""
        if not verify:
            return e
        try:
            return self.verify(e)
        except (Stopped, KeyboardInterrupt, RuntimeError) as exc:
            e.complete, e.stopped, e.verified = False, self._stop(exc), None
            return e

    # ------------------------------------------------------------------ oracle
    def _solve(self, fixed: Iterable[int], hint: int | None = None) -> Answer:
        """``_answer`` under the budget (progress, deadline), remembering the smallest
        sufficient set (an "unsat": the solver's core, else ``fixed``) and the witness that
        changes the fewest features (a "sat")."""
        fixed = set(fixed)
        if self.limit is not None:
            self.limit.tick(done=self.calls, unit="checks", smallest_sufficient=len(self.best_axp))
        ans = self._answer(fixed, hint)
        if ans.status == "unsat":
            S = [f for f in (self.core if self.core is not None else fixed) if f in set(self.relevant)]
            if len(S) < len(self.best_axp):
                self.best_axp = sorted(S)
            self._good = [frozenset(self.relevant).difference(S)] + self._good[:GOOD_KEPT - 1]
        elif ans.witness is not None:
            changed = np.nonzero(ans.witness != self.x)[0].tolist()
            if self.best_cxp is None or len(changed) < len(self.best_cxp[0]):
                self.best_cxp = (changed, ans.witness, int(ans.predictions[0]))
        return ans

    def _answer(self, fixed: set[int], hint: int | None = None) -> Answer:
        """Can the region with ``fixed`` pinned to x reach another class?  Exact in every
        branch, cheapest first (``self.oracle`` counts which branch answered):

            enumerate  at most ``enum_cells`` threshold cells of the free features: the sweep
                       (``logic.sweep``) visits every cell (exact, far faster than a
                       solver's proof); first if at most TINY_CELLS, after replay if at
                       most SMALL_CELLS, else after the attack and bounds;
            replay     a recent witness with ``fixed`` reset to x is still an input of the
                       restricted region: "sat" if the engine gives it another class (the
                       witness is replayed like any other);
            attack     ``bnnlogic.attack`` on the restricted region (boxes of more than
                       SMALL_CELLS cells): a replayed witness; on one core for ``ATTACK_S``
                       s before the solver, on two or more raced beside the solvers for
                       ``RACE_ATTACK_S`` s (a missed attack then costs a share of a core,
                       not its time of waiting);
            bounds     interval bounds over the restricted box (exact integers) show that no
                       other class can be preferred: "unsat";
            solver     the incremental solvers, raced (``portfolio.race_solvers``; with branch
                       and bound on boxes of at most BAB_CELLS cells; it races alone on every
                       core once it has won BAB_ALONE_AFTER of those races and the solvers
                       none, or once a sweep went deep, and then, after a deep sweep, on any
                       box it may sweep in time);
                       their witnesses join the replay pool.  With ``hint`` freed next to a
                       box proven good (``_skip``), the sweep and branch and bound search
                       only the cells where it leaves x's cell.

        ``hint``: a feature just freed (deletion's candidate); replayed witnesses are also tried
        with it moved to each of its other cells.  ``fast=False`` skips replay and bounds (the
        solver alone, for comparison and tests).  After the solver's "unsat", ``self.core`` is
        the set of features its core fixes (a subset of ``fixed`` that also suffices), else None."""
        self.calls += 1
        self.core = None
        if self.deadline is not None and time.perf_counter() > self.deadline:
            raise UserError(f"no explanation within the budget of {self.budget} s")
        free = [f for f in self.relevant if f not in fixed]  # the others cannot change the output
        racing = len(self.solvers) > 1
        skip = self._skip(free, hint)
        cells = int(np.prod([len(self._cells[f]) - (f == skip) for f in free], dtype=object))
        if cells <= min(self.enum_cells, TINY_CELLS) and (ans := self._sweep(free, skip)) is not None:
            return ans
        if self.fast and (ans := self._replay_pool(fixed, hint)) is not None:
            self.oracle["replay"] += 1
            return ans
        if TINY_CELLS < cells <= min(self.enum_cells, SMALL_CELLS) and (ans := self._sweep(free, skip)) is not None:
            return ans
        if self.fast:
            if cells > SMALL_CELLS and not racing and (ans := self._attack(fixed)) is not None:
                self.oracle["attack"] += 1
                return ans
            # bounds are tried while they pay: always at first, then while >= 1 in 8 tries proves
            if (self._bounds_tries < 16 or 8 * self._bounds_hits >= self._bounds_tries) and self._bounds_entail(fixed):
                self.oracle["bounds"] += 1
                return Answer("unsat")
        if SMALL_CELLS < cells <= self.enum_cells and (ans := self._sweep(free, skip)) is not None:
            return ans
        t0 = time.perf_counter()
        extra, hits, solvers = [], [], self.solvers
        alone = racing and self._solvers_lost
        # alone after a deep sweep, it is the one complete engine that decides: any box its sweep may finish in time
        big = alone and self._deep and bab_fits(math.log2(cells), self._call_timeout())
        with_bab = racing and (cells <= BAB_CELLS or big)
        if with_bab:
            solvers = [] if alone else solvers
            extra.append(self._bab_call(fixed, self.cores if alone else 1, skip))
        if racing and self.fast and cells > SMALL_CELLS:
            extra.append(self._attack_call(fixed, hits, RACE_ATTACK_S))
        status, value, winner = race_solvers(solvers, [l for f in fixed for l in self._fix[f]],
                                             self._call_timeout(), extra)
        by_attack = bool(hits) and status == "sat" and winner is None and value is hits[0]
        if with_bab and status != "unknown" and not by_attack:
            self._solver_wins += winner is not None
            self._bab_wins += winner is None
        self.oracle["attack" if by_attack else "solver"] += 1
        if status == "unknown":
            raise self._gave_up("the solver")
        if status == "unsat":
            core = winner.backend.core() if winner is not None else None
            if core is not None:
                self.core = {self._lit_feature[l] for l in core if l in self._lit_feature}
            return Answer("unsat", time_s=time.perf_counter() - t0)
        w = self.query.encoding.inputs.decode(value) if winner is not None else value
        self._remember(w)
        return Answer("sat", w, self.query.replay(w), time.perf_counter() - t0)

    def _restricted(self, fixed: Iterable[int]) -> Region:
        """The region with the features ``fixed`` pinned to x, and those no first-layer neuron
        reads (they cannot change the output): only the relevant free features keep their range."""
        fixed = set(fixed)
        free = np.array([f for f in self.relevant if f not in fixed], dtype=np.int64)
        lo, hi = self.x.copy(), self.x.copy()
        lo[free], hi[free] = self.region.lo[free], self.region.hi[free]
        return Region(lo, hi, self.x, None, "box", None)

    @property
    def _solvers_lost(self) -> bool:
        """The solvers lost every race so far (a plain net): branch and bound won
        BAB_ALONE_AFTER of them, or a sweep went deep, and the solvers won none."""
        return (self._bab_wins >= BAB_ALONE_AFTER or self._deep) and not self._solver_wins

    def _skip(self, free: list[int], hint: int | None) -> int | None:
        """``hint`` if the box with ``free`` minus it is inside a box proven good (``_good``):
        then only the cells where ``hint`` leaves x's cell can be bad, and the sweep and branch
        and bound search those alone (``_parts``; with deletion, every call after the first
        "unsat": 1/n of the n cells of the freed feature are skipped)."""
        if hint is None or hint not in free:
            return None
        rest = set(free) - {hint}
        return hint if any(rest <= G for G in self._good) else None

    def _parts(self, R: Region, skip: int | None) -> list[tuple[np.ndarray, np.ndarray]]:
        """The restricted box R (``_restricted``) as disjoint boxes (lo, hi), without the cells
        where feature ``skip`` (if any) sits in x's cell: at most two, below and above it."""
        if skip is None:
            return [(R.lo, R.hi)]
        low, high = cell_intervals(R.lo[skip], R.hi[skip], self.query.encoding.inputs.thresholds[skip])
        c = int(np.searchsorted(low, self.x[skip], side="right")) - 1  # x's cell
        parts = []
        if c > 0:
            hi = R.hi.copy()
            hi[skip] = high[c - 1]
            parts.append((R.lo, hi))
        if c < len(low) - 1:
            lo = R.lo.copy()
            lo[skip] = low[c + 1]
            parts.append((lo, R.hi))
        return parts

    def _attack(self, fixed: set[int]) -> Answer | None:
        """``bnnlogic.attack`` on the restricted region for ``ATTACK_S`` s: a witness joins the
        replay pool (replayed), None if it finds none."""
        _, w = self._attack_call(fixed, [])(None)
        if w is None:
            return None
        self._remember(w)
        return Answer("sat", w, self.query.replay(w))

    def _attack_call(self, fixed: set[int], hits: list, seconds: float = ATTACK_S):
        """The attack as a racer of ``portfolio.race_solvers`` (``seconds``, cancelled when a
        solver decides first; ``stop`` None: not cancelled): ``("sat", witness)``, the witness
        also appended to ``hits``, or ``("unknown", None)``."""
        from .attack import attack

        R = self._restricted(fixed)

        def run(stop):
            w = attack(self.query.engines[0], self.ir, R, self.other, timeout=seconds, stop=stop)
            if w is None:
                return "unknown", None
            hits.append(w)
            return "sat", w
        return run

    def _bab_call(self, fixed: set[int], threads: int = 1, skip: int | None = None):
        """Branch and bound over the region with ``fixed`` pinned to x (``logic.bab``, on
        ``threads`` threads; without the cells of ``skip`` in x's cell, ``_parts``), as a racer
        of ``portfolio.race_solvers``: ``(status, witness or None)``."""
        from .logic.bab import bab

        R, timeout = self._restricted(fixed), self._call_timeout()
        parts = self._parts(R, skip)

        def run(stop):
            status, w, _ = bab(self.query.engines[0], self.ir, R, self.other, timeout=timeout, threads=threads,
                               stop=stop, parts=parts)
            return status, w
        return run

    def _remember(self, w: np.ndarray) -> None:
        self.witnesses.append(w)
        self._recent.insert(0, len(self.witnesses) - 1)
        del self._recent[self.pool:]

    def _greedy_values(self) -> np.ndarray:
        """Per other class c and feature f: the cell value of f that, changed alone, brings
        ``score_y - score_c`` lowest (x_f if none lowers it); (n_other, d).  One batch through
        the engine over every cell of every feature, computed once."""
        if self._greedy is None:
            G = np.repeat(self.x[None], len(self.other), axis=0)
            rows, owner, vals = [], [], []
            for f in self.features:
                for v in self._cells[f]:
                    if v != self.x[f]:
                        rows.append(v)
                        owner.append(f)
            if rows:
                owner = np.array(owner)
                X = np.repeat(self.x[None], len(rows), axis=0)
                X[np.arange(len(rows)), owner] = rows
                S = self.query.engines[0].scores(X)
                base = self.query.engines[0].scores(self.x[None])[0]
                for i, c in enumerate(self.other):
                    gain = (base[self.prediction] - base[c]) - (S[:, self.prediction] - S[:, c])  # > 0: closer to c
                    best: dict[int, tuple[int, int]] = {}
                    for f, g, v in zip(owner.tolist(), gain.tolist(), rows):
                        if g > 0 and g > best.get(f, (0, 0))[0]:
                            best[f] = (g, int(v))
                    for f, (_, v) in best.items():
                        G[i, f] = v
            self._greedy = G
        return self._greedy

    def _replay_pool(self, fixed: set[int], hint: int | None = None) -> Answer | None:
        """Concrete candidates of the restricted region through the engine in one batch: the
        most recent witnesses with ``fixed`` reset to x, and per other class the input that
        moves every free feature to its value closest to that class (``_greedy_values``).  The
        first that gets another class is a witness (replayed); a witness from the pool moves
        to its front."""
        idx = np.fromiter(fixed, dtype=np.int64, count=len(fixed))
        P = np.array([self.witnesses[i] for i in self._recent]).reshape(-1, len(self.x))
        W = np.concatenate([P, self._greedy_values()])
        W[:, idx] = self.x[idx]
        if hint is not None and hint not in fixed and len(P):
            V = []
            for v in self._cells[hint]:
                if v != self.x[hint]:
                    Pv = W[: len(P)].copy()
                    Pv[:, hint] = v
                    V.append(Pv)
            W = np.concatenate([W] + V)
        bad = np.nonzero(self.query.engines[0].predict(W) != self.prediction)[0]
        if not len(bad):
            return None
        j = int(bad[0])
        if j < len(P):  # a projected witness: its source moves to the front
            self._recent.insert(0, self._recent.pop(j))
        else:  # a greedy or moved-hint candidate joins the pool
            self._remember(W[j].copy())
        return Answer("sat", W[j], self.query.replay(W[j]))

    def _bounds_entail(self, fixed: Iterable[int]) -> bool:
        """Interval bounds over the region with ``fixed`` pinned to x prove that no other class
        can be preferred to the prediction (sound, not complete)."""
        from .logic.bab import safe_nodes
        from .logic.bounds import propagate

        R = self._restricted(fixed)
        blo, bhi = propagate(self.ir, R.lo, R.hi)[-1]
        ok = bool(safe_nodes(self.ir, blo, bhi, np.array([self.prediction]), self._bad)[0])
        self._bounds_tries += 1
        self._bounds_hits += ok
        return ok

    def _sweep(self, free: list[int], skip: int | None = None) -> Answer | None:
        """Every threshold cell of the free features, the others pinned to x (``logic.sweep``;
        without the cells of ``skip`` in x's cell, ``_parts``); None if the time limit
        (``timeout``, or the search's budget) ran out first."""
        t0 = time.perf_counter()
        ends = [t for t in (self.deadline, None if self.timeout is None else t0 + self.timeout,
                            None if self.limit is None else self.limit.deadline) if t is not None]
        for lo, hi in self._parts(self._restricted(set(self.relevant) - set(free)), skip):
            stats: dict = {}
            status, x, _ = sweep(self.ir, lo, hi, self._bad, self.x, min(ends) if ends else None, stats=stats)
            self._deep |= stats.get("deep", False)
            if status != "unsat":
                break
        if status == "unknown":
            return None
        self.oracle["enumerate"] += 1
        if status == "unsat":
            return Answer("unsat", time_s=time.perf_counter() - t0)
        self._remember(x)
        return Answer("sat", x, self.query.replay(x), time.perf_counter() - t0)

    def entails(self, S: Iterable[int]) -> bool:
        """Does fixing S (to x's values) force the prediction over the region?"""
        return self._solve([f for f in S if f in self._fix]).status == "unsat"

    # ------------------------------------------------------------------ abductive
    def _deletion(self, start: Sequence[int], order: Sequence[int] | None) -> list[int]:
        keep = set(start)
        for f in (order if order is not None else sorted(start)):
            if f not in keep:
                continue
            if self._solve(keep - {f}, hint=f).status == "unsat":
                keep.discard(f)
                if self.core is not None:
                    keep &= self.core
        return sorted(keep)

    def _quickxplain(self, C: Sequence[int]) -> list[int]:
        def qx(B: list[int], delta: bool, C: list[int]) -> list[int]:
            if delta and self.entails(B):
                return []
            if len(C) == 1:
                return list(C)
            C1, C2 = C[: len(C) // 2], C[len(C) // 2:]
            X2 = qx(B + C1, bool(C1), C2)
            X1 = qx(B + X2, bool(X2), C1)
            return X1 + X2

        C = list(C)
        if not C or self.entails([]):
            return []
        return sorted(qx([], False, C))

    def abductive(self, method: str = "deletion", order: Sequence[int] | None = None,
                  verify: bool = True) -> Explanation:
        """A subset-minimal AXp.  ``order``: features to try dropping first come first (the
        deletion method; default: ``margin_order``, least relevant first)."""
        if method not in METHODS:
            raise UserError(f"unknown method {method!r}; choose {', '.join(METHODS)}")
        t0, c0, o0 = time.perf_counter(), self.calls, dict(self.oracle)
        self.deadline = None if self.budget is None else t0 + self.budget
        if order is None:
            order = margin_order(self.ir, self.x, self.region, self.features, self.query.engines[0])
        rel = set(self.relevant)
        order = [f for f in order if f in rel]
        stopped = None
        # single-row interval bounds are tiny matrix products: BLAS threads only cost
        # (tens of ms per product on a loaded 2-core machine)
        try:
            with one_blas_thread():
                if method == "deletion":
                    # a robust decision has the empty explanation: one call instead of one per feature
                    S = [] if self.entails([]) else self._deletion(self.relevant, order)
                else:
                    S = self._quickxplain(order)
        except (Stopped, KeyboardInterrupt, RuntimeError) as exc:
            stopped, S = self._stop(exc), list(self.best_axp)  # sufficient, maybe not minimal
        finally:
            self.deadline = None
        e = Explanation("abductive", S, self.prediction, method, time.perf_counter() - t0, self.calls - c0,
                        oracle={k: v - o0[k] for k, v in self.oracle.items()})
        if stopped is not None:
            e.complete, e.stopped = False, stopped
            return e
        return self._checked(e, verify)

    # ------------------------------------------------------------------ contrastive
    def _shrink_free(self, free: Iterable[int], order: Sequence[int] | None = None) -> tuple[list[int], Answer] | None:
        """A subset-minimal set of freed features (all others fixed) that still allows another
        class, found by deletion inside ``free``; with the witness of the last SAT call."""
        free = set(free)
        ans = self._solve(set(self.features) - free)
        if ans.status == "unsat":
            return None
        for f in (order if order is not None else sorted(free)):
            if f not in free:
                continue
            a = self._solve(set(self.features) - (free - {f}))
            if a.status == "sat":
                free.discard(f)
                ans = a
        return sorted(free), ans

    def contrastive(self, order: Sequence[int] | None = None, verify: bool = True) -> Explanation | None:
        """A subset-minimal CXp with its witness, or None when no input of the region changes
        the prediction.  ``order``: features to try keeping fixed first (default: margin order)."""
        t0, c0 = time.perf_counter(), self.calls
        if order is None:
            order = margin_order(self.ir, self.x, self.region, self.features, self.query.engines[0])
        rel = set(self.relevant)
        try:
            res = self._shrink_free(self.relevant, [f for f in order if f in rel])
        except (Stopped, KeyboardInterrupt, RuntimeError) as exc:
            stopped = self._stop(exc)
            if self.best_cxp is None:
                return None  # nothing found before the stop: ``self.stopped`` says so
            S, w, k = self.best_cxp
            return Explanation("contrastive", S, self.prediction, "deletion", time.perf_counter() - t0,
                               self.calls - c0, witness=w, witness_class=k, complete=False, stopped=stopped)
        if res is None:
            return None
        S, ans = res
        e = Explanation("contrastive", S, self.prediction, "deletion", time.perf_counter() - t0, self.calls - c0,
                        witness=ans.witness, witness_class=ans.predictions[0])
        return self._checked(e, verify)

    # ------------------------------------------------------------------ duality
    def enumerate(self, limit: int = 10, kind: str = "abductive", verify: bool = True) -> dict[str, list[Explanation]]:
        """Up to ``limit`` explanations of ``kind`` (all of them if fewer exist), plus the
        explanations of the other kind met on the way, by hitting-set duality: a SAT solver
        over selectors s_f ("f fixed") proposes a seed not yet covered; a seed that suffices
        shrinks to a new AXp (blocked: some of its features must be freed), one that does not
        leaves a freed set that shrinks to a new CXp (blocked: one of them must be fixed)."""
        from pysat.solvers import Solver

        if kind not in ("abductive", "contrastive"):
            raise UserError("enumerate explanations of kind abductive or contrastive")
        sel = {f: i + 1 for i, f in enumerate(self.features)}
        found: dict[str, list[Explanation]] = {"abductive": [], "contrastive": []}
        with Solver(name="glucose4") as hs:
            hs.add_clause([len(sel) + 1])  # a variable, so an empty feature list still has a model
            phase = 1 if kind == "abductive" else -1  # big seeds yield AXps, small ones CXps
            hs.set_phases([phase * v for v in sel.values()])
            while len(found[kind]) < limit and hs.solve():
                t0, c0 = time.perf_counter(), self.calls
                model = set(l for l in hs.get_model() if l > 0)
                seed = [f for f in self.features if sel[f] in model]
                try:
                    if self.entails(seed):
                        S = self._deletion(seed, None)
                        e = Explanation("abductive", S, self.prediction, "duality", 0.0, 0)
                        hs.add_clause([-sel[f] for f in S])
                    else:
                        S, ans = self._shrink_free(set(self.features) - set(seed))
                        e = Explanation("contrastive", S, self.prediction, "duality", 0.0, 0,
                                        witness=ans.witness, witness_class=ans.predictions[0])
                        hs.add_clause([sel[f] for f in S])
                except (Stopped, KeyboardInterrupt, RuntimeError) as exc:
                    self._stop(exc)  # the explanations found so far; ``self.stopped`` says why
                    break
                e.time_s, e.calls = time.perf_counter() - t0, self.calls - c0
                found[e.kind].append(self._checked(e, verify))
                if not S or not e.complete:
                    break  # the empty AXp: the prediction is constant on the region; or out of time
        return found

    def minimum(self, verify: bool = True, max_iter: int = 10_000) -> Explanation:
        """A cardinality-minimum AXp: the minimum hitting set (RC2 MaxSAT) of the CXps found so
        far, refined until it suffices (each failure adds a new CXp disjoint from it)."""
        from pysat.examples.rc2 import RC2
        from pysat.formula import WCNF

        t0, c0 = time.perf_counter(), self.calls
        sel = {f: i + 1 for i, f in enumerate(self.features)}
        cxps: list[list[int]] = []
        for _ in range(max_iter):
            w = WCNF()
            for S in cxps:
                w.append([sel[f] for f in S])
            for v in sel.values():
                w.append([-v], weight=1)
            with RC2(w) as rc2:
                model = set(l for l in (rc2.compute() or []) if l > 0)
            H = [f for f in self.features if sel[f] in model]
            try:
                res = self._shrink_free(set(self.features) - set(H))
            except (Stopped, KeyboardInterrupt, RuntimeError) as exc:  # sufficient, maybe not minimum
                return Explanation("abductive", list(self.best_axp), self.prediction, "minimum",
                                   time.perf_counter() - t0, self.calls - c0, complete=False, stopped=self._stop(exc))
            if res is None:
                e = Explanation("abductive", H, self.prediction, "minimum", time.perf_counter() - t0, self.calls - c0)
                return self._checked(e, verify)
            cxps.append(res[0])
        raise UserError(f"no minimum explanation after {max_iter} hitting-set rounds")

    # ------------------------------------------------------------------ heuristic explanations
    def sufficient(self, ranking: Sequence[int], k: int) -> bool:
        """Do the top-k features of ``ranking`` (most important first) fix the prediction?"""
        return self.entails(list(ranking)[:k])

    def smallest_sufficient_k(self, ranking: Sequence[int]) -> int:
        """The smallest k whose top-k features suffice (binary search: sufficiency is monotone
        in k because the top-k sets are nested); len(ranking) + 1 if even all do not."""
        ranking = list(ranking)
        if not self.sufficient(ranking, len(ranking)):
            return len(ranking) + 1
        lo, hi = 0, len(ranking)  # invariant: top-hi suffices, and top-(lo-1) does not
        while lo < hi:
            mid = (lo + hi) // 2
            if self.sufficient(ranking, mid):
                hi = mid
            else:
                lo = mid + 1
        return lo

    # ------------------------------------------------------------------ independent checks
    def _fixed_region(self, S: Iterable[int]) -> Region:
        lo, hi = self.region.lo.copy(), self.region.hi.copy()
        S = list(S)
        lo[S] = hi[S] = self.x[S]
        return Region(lo, hi, self.x, None, "box", None)

    def _independent_unsat(self, fixed: Iterable[int]) -> bool:
        """No input of R with ``fixed`` pinned to x changes the prediction.  At most
        CHECK_CELLS threshold cells: one input per cell through the compiled engine (concrete
        inference, sharing no code with the sweep or the solvers, ``_enumerate_call``); else a
        fresh encoding of the restricted region, solved by the check backend, on two or more
        cores raced against that enumeration up to CHECK_RACE_CELLS cells (a plain net's
        2^24-cell check: seconds by enumeration, minutes by CP-SAT), or that enumeration alone
        where the search's solvers lost every race.  ``timeout`` per call; a
        check that gives up raises ``UserError``: an explanation is never reported unchecked."""
        from .portfolio import race_calls

        R = self._fixed_region(fixed)
        log_cells = n_cells(self.ir.coding.thresholds, R.lo, R.hi)[0]
        timeout = self._call_timeout()
        racing = len(self.solvers) > 1
        # the search's solvers lost every race it ran them in (a plain net): the check's solver
        # would only take a core from the enumeration (plain mlp:64,32 image 3, 2^26 cells:
        # 16.6 s raced, 11.7 s alone; mlp:200,100 image 1, 2^24: 6.1 -> 3.7 s)
        lost = racing and self._solvers_lost
        if (CHECK_CELLS > 0 and log_cells <= np.log2(CHECK_CELLS)) or (lost and log_cells <= np.log2(CHECK_RACE_CELLS)):
            status = self._enumerate_call(R, timeout)(None)[0]
        else:
            q = Query(self.ir, R, self.goal, self.check_backend, isolated=racing)
            calls = [lambda stop: (q.solve(timeout=timeout).status, None)]
            if racing and log_cells <= np.log2(CHECK_RACE_CELLS):
                calls.append(self._enumerate_call(R, timeout))
            try:
                status = race_calls(calls, [q.interrupt])[0]
            finally:
                q.close()
        if status == "unknown":
            raise self._gave_up("the independent check")
        return status == "unsat"

    def _enumerate_call(self, R: Region, timeout: float | None):
        """Every threshold cell of R through the engine, as a racer (``fn(stop) -> (status,
        None)``): "sat" at the first input of another class, "unsat" after the last cell,
        "unknown" when ``stop`` is set or ``timeout`` passes."""
        def run(stop):
            t0, engine = time.perf_counter(), self.query.engines[0]
            for X in cell_inputs(self.ir.coding.thresholds, R.lo, R.hi, self.x):
                if (engine.predict(X) != self.prediction).any():
                    return "sat", None
                if (stop is not None and stop.is_set()) or (timeout is not None and time.perf_counter() - t0 > timeout):
                    return "unknown", None
            return "unsat", None
        return run

    def _removals_break(self, S: set[int]) -> bool:
        """Dropping any one feature f of S admits an input of the region that agrees with x on
        S - {f} and gets another class, by concrete inference.  Candidates: a witness met during
        the search that differs from x on S only at f (deletion records one per kept feature),
        else an oracle call (which replays recent witnesses with S - {f} reset to x before it
        asks the solver); all candidates are then replayed in one batch."""
        Sl = sorted(S)
        if not Sl:
            return True
        cand: dict[int, np.ndarray] = {}
        if self.witnesses:
            W = np.array(self.witnesses)
            M = W[:, Sl] != self.x[Sl]
            for r in np.nonzero(M.sum(axis=1) == 1)[0]:
                cand.setdefault(Sl[int(np.argmax(M[r]))], W[r])
        for f in Sl:
            if f not in cand:
                ans = self._solve(S - {f}, hint=f)
                if ans.status != "sat":
                    return False
                cand[f] = ans.witness
        X, Sa = np.array([cand[f] for f in Sl]), np.array(Sl)
        agree = ~np.any((X[:, Sa] != self.x[Sa]) & (Sa[None, :] != Sa[:, None]), axis=1)  # row i: off S only at Sl[i]
        pred = self.query.engines[0].predict(X)
        return bool(np.all(agree) and np.all(pred != self.prediction) and np.all(self.region.contains(X)))

    def verify(self, e: Explanation) -> Explanation:
        """Re-check ``e`` and set ``e.verified``.  AXp: entailment holds (``_independent_unsat``:
        every cell through the engine, or the check backend on a fresh encoding), and dropping
        any one feature admits a counterexample replayed by concrete inference.  CXp: the witness replays and differs
        from x only on S, and freeing S minus any one feature cannot change the prediction
        (``_independent_unsat``)."""
        t0 = time.perf_counter()
        S, rest = set(e.features), set(self.features) - set(e.features)
        if e.kind == "abductive":
            ok = self._independent_unsat(S) and self._removals_break(S)
        else:
            w = e.witness
            ok = (w is not None and self.query.replay(w)[0] != self.prediction
                  and set(np.nonzero(w != self.x)[0].tolist()) <= S
                  and all(self._independent_unsat(rest | {f}) for f in S))
        e.verified, e.verify_s = bool(ok), time.perf_counter() - t0
        return e

    def close(self) -> None:
        for q in self.solvers:
            q.close()


def save_explanation_png(path: str, coding, x: np.ndarray, features: Sequence[int], caption: str = "") -> None:
    """The input in grey, with the explanation's pixels outlined in red (upscaled)."""
    from PIL import Image, ImageDraw

    from .fileio import atomic_open
    from .pictures import _panel, image_shape

    shape = image_shape(coding.feature_shape)
    if shape is None:
        raise UserError(f"--png draws image inputs; features of shape {coding.feature_shape} are not an image")
    h, w = shape
    scale = max(1, 240 // max(h, w))
    img = Image.new("RGB", (w * scale, h * scale + 16), "white")
    img.paste(Image.fromarray(_panel(x, shape, coding.lo, coding.hi, scale)), (0, 16))
    draw = ImageDraw.Draw(img)
    for f in features:
        r, c = divmod(int(f), w)
        draw.rectangle([c * scale, 16 + r * scale, (c + 1) * scale - 1, 16 + (r + 1) * scale - 1], outline="red", width=max(1, scale // 8))
    draw.text((2, 2), caption or f"{len(features)} features suffice", fill="black")
    with atomic_open(path, "wb") as fh:
        img.save(fh, format="PNG")
