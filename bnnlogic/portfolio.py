"""The racing portfolio behind ``verify(backend="auto")``: complementary engines on the cores at
once, the first decisive answer wins, the others are cancelled.

Every engine answers one question about a model: does some raw input of the box R get a
prediction in ``bad``?  ("sat" with a witness, "unsat", or "unknown")

    attack   counterexample search on the engine (``bnnlogic.attack``); never proves
    hunt     the attack again (reported as ``attack``), but only on an L-inf box of more than
             2^HUNT_MIN_LOG_CELLS threshold cells, where no prover was seen to decide late
    bab      branch and bound over input thresholds with the exhaustive sweep at the leaves
             (``logic.bab``); complete, but run only where sweeping the box's threshold cells
             would fit the step's time (``bab_fits``: about ``SWEEP_CELL_S`` s per cell and
             thread, ``BAB_SLACK`` times less for what its bounds prune); resumable (a later
             step searches only the boxes an earlier one left open)
    exact    the Exact pseudo-Boolean solver on the bounds-first encoding, one bad class at a
             time (``Race.solve_by_class``): the lanes share the classes, each lane's own
             Exact; resumable (a later step of a lane continues, learned constraints kept)
    cpsat    OR-Tools CP-SAT, one worker, on the same encoding
    cnf      a CDCL solver on a CNF of the same encoding (``CNF_BACKEND``)
    wait     nothing (the lane sleeps; it leaves the core and the GIL to the other lanes)
    yield    while branch and bound runs in another lane and is on course to end in the time
             left (``bab_on_course``), this lane sleeps: its core goes to branch and bound's
             threads (a schedule with a yield step gives branch and bound every core); once it
             is off course, this lane abandons it (branch and bound's lane goes on to its next
             steps, the open boxes kept) and goes on with its own next step, as it does at once
             where branch and bound does not run

A *schedule* gives each core a lane: a sequence of steps ``(engine, seconds)`` run in order
(``None``: until the deadline).  Lanes run on threads of this process (one lane: the caller's
thread, no hand-off per query): the sweep, CP-SAT and
PySAT release the GIL, so the cores really work in parallel; Exact's binding does not, so a
race runs it in a forked process (``logic.backends._Forked``) that inherits the encoding and is
killed at its deadline, which keeps a race's time limit even on one core.  The model and the
encoding are built once and shared, and cancelling is an ``interrupt`` of each solver (a forked
Exact is killed if it does not answer at once, CP-SAT and PySAT stop at once, branch and bound
between nodes and sweep chunks).  The schedules below were chosen from per-engine solve times
measured on a benchmark of hard queries (``benchmarks/hard.py --engines``); see docs.

Soundness does not depend on the schedule: "unsat" comes from a solver's UNSAT or from branch
and bound's complete case split; every witness is replayed by the caller.
"""
from __future__ import annotations

import itertools
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .blas import one_blas_thread
from .logic import Query
from .logic.bab import Progress, Either, bab, conv_first
from .logic.bounds import Bounds
from .logic.encoding import Encoding
from .logic.region import Region
from .logic.sweep import n_cells

Step = tuple[str, float | None]
Lane = tuple[Step, ...]
Schedule = tuple[Lane, ...]

#: the PySAT solver and cardinality encoding behind the ``cnf`` engine
CNF_BACKEND = "cnf:glucose4:kmtotalizer"
#: the sweep's cost per threshold cell on one thread (the 4e-8 measured before the block walk:
#: 31-40 ns on 2^25-2^31-cell boxes of fashion-mlp-small; conv-small's leaves take 300-450 ns,
#: but its bounds prune), and ``DENSE_CELL_S`` where the first layer is dense, in a race (the
#: block walk: 6-36 ns per cell and thread on 2^28-2^32-cell boxes of fashion-mlp-small, 2
#: threads); and how much less branch and bound is expected to need (its bounds prune, a
#: counterexample ends it early)
SWEEP_CELL_S = 4e-8
DENSE_CELL_S = 2e-8
BAB_SLACK = 4.0
#: without a time limit, branch and bound takes boxes of at most 2^BAB_MAX_LOG_CELLS cells
BAB_MAX_LOG_CELLS = 40
#: seconds the attack gets at the head of a lane (it finds most counterexamples in 2-30 ms)
ATTACK_S = 0.1
#: after branch and bound, the attack restarts RESTARTS times for RESTART_S seconds each, each
#: slice on the next seed: its hits come early or not at all (8 seeds x 2.1 s on two queries
#: the record lost and won by seed: fashion conv-small image 9 at eps 10 hit by 5/8 seeds
#: within 1 s, 6/8 within 2 s; mlp-small image 10 at eps 5 5/8 and 7/8), so 1-s slices miss
#: less often than longer ones.  With the attack's local search, on 16 queries of the 2-core
#: record at 2edf371 left unknown (conv-small at eps 5/10/20, mlp-small at eps 10/20) where a
#: 20-s local search had hit: 0.1 s then 3 slices hit 9, 7 slices 12, one 7-s slice 12 (later).
#: CP-SAT, next in the 2-core lane then, decided 1 of the plain nets' 1000 queries in that record
RESTART_S = 1.0
RESTARTS = 7
#: After the slices, a lane on an L-inf box of more than 2^HUNT_MIN_LOG_CELLS threshold cells
#: keeps attacking to the deadline (``hunt``, on the next seed) instead of handing the rest to
#: Exact.  Every hit of the attack after its slices was on a box of 2^51 cells or more: a 40-s
#: attack (seed 8) on the queries the plain nets' two-core records left open hit conv-small's
#: images 36, 76, 77 at eps 20 (2^71-2^164, after 6.7-15.7 s) and mlp-small's 11 at eps 10 and
#: 41 at eps 20 (2^51, after 38-39 s); hunting on every box branch and bound does not take (from
#: 2^34, at 0739fea) hit conv-small images 1 and 36 at eps 20 after 34 s.  Every proof Exact took
#: over 7 s for was on a box of at most 2^48, and that run lost two of them, which need both
#: lanes' Exact (conv-small images 24 and 95 at eps 5, 2^48 and 2^34: 58 and 36 s before).  The
#: one-core lane hunts at the same place, before its last Exact: in its records (b3c615eb) that
#: Exact decided none of the plain nets' 432 queries on such boxes; hunting (220eced), it hit
#: mlp-small image 41 at eps 20 and conv-small 87 at eps 10 (after 50 and 56 s) and lost none.
#: No lane hunts on an L0 region (not measured).
HUNT_MIN_LOG_CELLS = 50
#: seconds Exact races beside branch and bound before it yields its core: on fashion conv-small,
#: Exact decided boxes that branch and bound also takes (2^23-2^32 cells) in 0.2-3.5 s alone,
#: 3.7-4.6 s beside branch and bound's two threads; on mlp-small it decided none of them
EXACT_BESIDE_BAB_S = 6.0

#: branch and bound is judged by its progress (``logic.bab.Progress``) once it has run
#: ``BAB_JUDGE_S`` in all and ``BAB_PACE_S`` at the pace judged (a yielding lane: since it
#: yielded, when branch and bound got its core), and is on course while ``BAB_COURSE_SLACK``
#: times its projected remaining time fits the time left.  On fashion conv-small's queries at
#: the edge (2^26-2^32 cells, 2 threads), the share decided grew about linearly (image 11 at eps
#: 5: 21% at 10 s, 52% at 24 s, done at 44 s); the projection after 10 s was 44 / 10 / 13 /
#: 38 s on four that it proved in 49 / 13 / 15 / 47 s, and 81-838 s on four it never ended, two
#: of which Exact alone proves in 24 and 37 s
BAB_JUDGE_S = 10.0
BAB_PACE_S = 3.0
BAB_COURSE_SLACK = 1.25
#: how often a yielding lane looks at branch and bound's progress
YIELD_POLL_S = 0.25

#: schedules by the number of cores a query may use (more cores: the 2-core schedule).  Chosen
#: from per-engine solve times on hard queries (``benchmarks/hard.py --tune``, recorded as
#: ``benchmarks/records/schedules``): on plainly trained dense nets only the attack and branch
#: and bound decide much (the solvers time out on most queries), on sparse ones (the EEV recipe)
#: Exact decides most, CP-SAT some others; a longer attack after branch and bound catches the
#: counterexamples of boxes too big to sweep (conv nets at eps 20).  The Exact lane first waits
#: while the attack takes its first slice: encoding the query for Exact is Python that holds the
#: GIL, and beside the attack it made the counterexamples the attack finds in 2-7 ms take 40-50
#: ms (digits mlp:64,32 at eps 3: mean per query 55 ms without the wait, 4 ms with it).  Where
#: branch and bound runs, Exact then yields its core to it after ``EXACT_BESIDE_BAB_S``: branch
#: and bound on both cores decides about twice as fast (fashion conv-small image 11 at eps 5:
#: unknown at 60 s -> 40 s; mlp-small image 11: 20 -> 12 s).  2 s cut off Exact's 2.6-3.5-s
#: proofs on conv-small's radius ladder (image 2 at eps 13: 2.9 s -> unknown).  While branch and
#: bound is on course, that is; off course, Exact takes its core back (and the attack slices run
#: on the other): on conv-small's queries at the edge, Exact then proved images 30 at eps 3 and
#: 87 at eps 5 (34 and 50 s), the attack found image 71 at eps 3 (11 s, branch and bound: 42 s),
#: and branch and bound still proved images 11, 18, 78 (47, 12, 15 s).  The one-core lane does
#: not ask: skipping its second branch and bound step when off course (at the pace of its first
#: 10 s) lost mlp-small image 24 at eps 3 (proved in 46 s) and gained none of those three.
#: The one-core lane runs the two lanes' steps in turn: branch and bound first on boxes it
#: sweeps in 10 s, Exact's 6 s, branch and bound again until the deadline (resumed: it searches
#: only the boxes its first step left open) where the box fits, else the ``RESTARTS`` attack slices and
#: Exact (resumed) to the end.  On the 26 one-core queries of the 100-image hard record that took
#: over 10 s and had at most 2^34 cells or another verdict on two cores, it decided 12 more than
#: the old lane (attack 0.1 s, bab 10 s, attack 1 s, exact): mlp-small's boxes of 2^31-2^33 cells
#: in 13-53 s, five counterexamples of the later attack slices; it lost two that Exact proved
#: after 24 and 41 s on conv-small.
#: Exact refutes the bad classes one at a time (``Race.solve_by_class``), and on two cores both
#: lanes end with it, sharing the classes: on conv-small (one core each, 60 s) the most
#: threatening class takes most of the time (image 30 at eps 3: 14 s of 15, the other eight
#: 0.1-3 s each), so two lanes prove what one joint Exact leaves open or proves late (images
#: 24 and 5 at eps 5 in 54 and 33 s, unknown before; 87 at eps 5: 32 s, was 53; 95 at eps 5,
#: which CP-SAT had proved in 59 s at the end of the second lane: 31 s).  One class alone on one
#: core took 15 / 37 s where the joint query took 22 / 38 s (images 30 at eps 3, 87 at eps 5).
SCHEDULES: dict[int, Schedule] = {
    1: ((("attack", ATTACK_S), ("bab", 10.0), ("exact", EXACT_BESIDE_BAB_S), ("bab", None))
        + (("attack", RESTART_S),) * RESTARTS + (("hunt", None), ("exact", None)),),
    2: ((("wait", ATTACK_S), ("exact", EXACT_BESIDE_BAB_S), ("yield", None), ("exact", None)),
        (("attack", ATTACK_S), ("bab", None)) + (("attack", RESTART_S),) * RESTARTS
        + (("hunt", None), ("exact", None))),
}


#: steps reported (``Outcome.engine``, ``Outcome.seconds``) as the engine they run
REPORTED_AS = {"hunt": "attack"}


def bab_price(log_cells: float, cell_s: float = SWEEP_CELL_S, threads: int = 1) -> float:
    """Seconds branch and bound is expected to need on a box of 2^log_cells threshold cells:
    sweeping them at ``cell_s`` seconds a cell and thread on ``threads`` threads, ``BAB_SLACK``
    times faster than every cell, ``2^log_cells * cell_s / (BAB_SLACK * threads)``.  Measured
    on 2 threads (``benchmarks/tail.py``): fashion mlp-small image 82 at eps 5 (2^34 cells,
    bounds prune nothing) priced 43 s, proved in 44 s; but image 65 (2^35) priced 86 s took 261
    s, two of 2^37 priced 344 s were open at 600 s, and conv-small boxes of 2^33-2^34 priced 43
    and 86 s took 600+ and 217 s (Exact): a lower bound more than a forecast."""
    return 2.0 ** log_cells * cell_s / (BAB_SLACK * max(threads, 1))


def bab_fits(log_cells: float, seconds: float | None, cell_s: float = SWEEP_CELL_S, threads: int = 1) -> bool:
    """Branch and bound is worth ``seconds`` on ``threads`` threads on a box of 2^log_cells
    threshold cells: its price (``bab_price``) fits (no limit: the box has at most
    2^BAB_MAX_LOG_CELLS cells)."""
    if seconds is None:
        return log_cells <= BAB_MAX_LOG_CELLS
    return log_cells <= BAB_MAX_LOG_CELLS and bab_price(log_cells, cell_s, threads) <= seconds


def hunt_fits(log_cells: float) -> bool:
    """The hunt is worth its time on a box of 2^log_cells threshold cells: finite (an L-inf box,
    not an L0 region) and more than 2^HUNT_MIN_LOG_CELLS."""
    return bool(np.isfinite(log_cells)) and log_cells > HUNT_MIN_LOG_CELLS


def bab_on_course(progress: Progress, left: float | None, mark: tuple[float, float] = (0.0, 0.0)) -> bool:
    """Whether branch and bound, ``progress`` so far, should go on with ``left`` seconds to go
    (None: no limit): always before ``BAB_JUDGE_S`` of search and ``BAB_PACE_S`` since ``mark``
    (``Progress.mark``; default: the start), then while ``BAB_COURSE_SLACK`` times its projected
    remaining time at the pace since ``mark`` fits in ``left``."""
    elapsed = progress.elapsed()
    return (left is None or elapsed < max(BAB_JUDGE_S, mark[0] + BAB_PACE_S)
            or BAB_COURSE_SLACK * progress.remaining(mark) <= left)


def default_cores() -> int:
    """Cores a single query races on: ``BNNLOGIC_CORES`` if set, else the CPU count (at most 2
    lanes are scheduled)."""
    env = os.environ.get("BNNLOGIC_CORES")
    return max(1, int(env)) if env else max(1, os.cpu_count() or 1)


def schedule_for(cores: int) -> Schedule:
    return SCHEDULES[min(max(cores, 1), max(SCHEDULES))]


@dataclass
class Outcome:
    """What a race decided: ``status`` in {"sat", "unsat", "unknown"}, the witness (raw input,
    replayed by ``Query`` for solver engines, to be replayed by the caller for attack and bab),
    the deciding engine, and the wall seconds each engine ran (summed over its steps)."""

    status: str = "unknown"
    witness: np.ndarray | None = None
    engine: str | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    bab_nodes: int = 0


class Race:
    """One question (model, box R, bad classes) and the engines that answer it.

    ``bounds``: R's bit bounds (``logic.bounds.propagate``); ``encoding``: the bounds-first
    encoding if the caller built it (else built by the first solver engine that needs it);
    ``ties``: how a tie with a bad class reads (``ir.TIES``), the same for every engine.
    The k-th attack slice of a race (k = 0, 1, ...) searches with ``seed + k``: the attack is
    deterministic given its seed, so a later slice on the old seed would replay the first one's
    search before it saw anything new (fashion mlp-small image 10 at eps 5: seed 0 misses in
    2 s, seeds 1, 2, 4, 5 hit in 0.09-0.5 s).
    """

    def __init__(self, model, R: Region, bad: Sequence[int], bounds: Bounds, encoding: Encoding | None = None,
                 seed: int = 0, ties: str = "low") -> None:
        self.model, self.R, self.bad, self.bounds, self.seed, self.ties = model, R, list(bad), bounds, seed, ties
        self._encoding = encoding
        self._build = threading.Lock()  # one lane encodes, the other waits for it
        self._lock = threading.Lock()  # guards the dicts and class sets only (held briefly: interrupt never waits on a build)
        self._queries: dict[tuple[str, int], Query] = {}
        self._order: list[int] | None = None  # bad classes, most threatening first (``solve_by_class``)
        self.refuted: set[int] = set()  # bad classes no input of R reaches
        self._working: dict[int, tuple[int, Query]] = {}  # lane -> (class, its query) being refuted now
        self.log_cells = n_cells(model.ir.coding.thresholds, R.lo, R.hi)[0] if R.l0 is None else float("inf")
        self._attacks = itertools.count()  # attack slices started (each takes the next seed)
        self._bab_left: list[tuple[np.ndarray, np.ndarray]] | None = None  # boxes a bab step left open
        self.bab_progress = Progress(self.log_cells)
        self.bab_abandoned = threading.Event()  # set when branch and bound is off course: it gives up

    # ------------------------------------------------------------------ engines
    def query(self, backend: str, lane: int = 0) -> Query:
        """The query for ``backend`` on lane ``lane`` (each lane its own solver), built once; all
        share one encoding."""
        key = (backend, lane)
        with self._build:
            if key not in self._queries:
                q = Query(self.model.ir, self.R, [[(0, self.bad)]], backend, engines=[self.model.engine],
                          bounds=[self.bounds], ties=self.ties, encoding=self._encoding, isolated=True)
                self._encoding = q.encoding
                with self._lock:
                    self._queries[key] = q
            return self._queries[key]

    @property
    def cell_s(self) -> float:
        """The sweep's price per threshold cell and thread on this model (``bab_fits``)."""
        return SWEEP_CELL_S if conv_first(self.model.ir) else DENSE_CELL_S

    def applies(self, engine: str, seconds: float | None, threads: int = 1) -> bool:
        """Whether the engine should run for ``seconds`` (None: no limit) on this question: branch
        and bound (on ``threads`` threads) only if ``bab_fits``, the hunt only on an L-inf box
        of more than 2^HUNT_MIN_LOG_CELLS cells."""
        if engine == "hunt":
            return hunt_fits(self.log_cells)
        return engine != "bab" or bab_fits(self.log_cells, seconds, self.cell_s, threads)

    def bab_estimate(self, cores: int) -> float | None:
        """Seconds branch and bound alone would roughly need to decide all of R on ``cores``
        threads, for an ``unknown``: ``elapsed / share`` at the pace it kept in this race once it
        decided a share of R's cells (``Progress``; it had at most ``cores`` threads), else its
        price on ``cores`` threads (``bab_price``).  None for an L0 region (branch and bound
        decides boxes)."""
        p = self.bab_progress
        if not np.isfinite(self.log_cells):
            return None
        if p.share > 0:
            return p.elapsed() / min(p.share, 1.0)
        return bab_price(self.log_cells, self.cell_s, cores)

    def run_engine(self, engine: str, seconds: float | None, stop: threading.Event, threads: int = 1,
                   lane: int = 0) -> tuple[str, np.ndarray | None, int]:
        """Run one engine for ``seconds`` (None: until stopped) on lane ``lane``; (status,
        witness, bab nodes)."""
        if engine == "wait":
            stop.wait(seconds)
            return "unknown", None, 0
        if engine in ("attack", "hunt"):
            from .attack import attack

            x = attack(self.model.engine, self.model.ir, self.R, self.bad, seed=self.seed + next(self._attacks),
                       ties=self.ties, timeout=seconds, stop=stop)
            return ("sat", x, 0) if x is not None else ("unknown", None, 0)
        if engine == "bab":  # a later bab step resumes from the boxes an earlier one left open
            left: list[tuple[np.ndarray, np.ndarray]] = []
            out = bab(self.model.engine, self.model.ir, self.R, self.bad, timeout=seconds, bounds=self.bounds,
                      threads=threads, ties=self.ties, stop=Either(stop, self.bab_abandoned), parts=self._bab_left,
                      left=left, progress=self.bab_progress)
            self._bab_left = left if out[0] == "unknown" else None
            return out
        if engine == "exact":
            return self.solve_by_class(self.query("exact", lane), seconds, stop, lane) + (0,)
        q = self.query({"cpsat": "cpsat", "cnf": CNF_BACKEND}[engine])
        if stop.is_set():
            return "unknown", None, 0
        ans = q.solve(timeout=seconds)
        return ans.status, ans.witness, 0

    def solve_by_class(self, q: Query, seconds: float | None, stop: threading.Event, lane: int = 0
                       ) -> tuple[str, np.ndarray | None]:
        """Refute the bad classes one at a time: for class c, ``q`` solves under the assumption
        that every other class's literal is false (``Network.class_lits``: ``l_d => d beats every
        good class``), so UNSAT proves that no input of R puts c above the good classes, and a
        model is a witness of c.  The goal is ``OR_c l_c``, so R is safe once every class is
        refuted; the classes the bounds already exclude have no literal.  Lanes share the work:
        lane 0 takes the most threatening open class (by the center's scores), other lanes the
        least, and once every open class is taken a lane joins one in progress (each lane has its
        own solver); the first refutation interrupts the other lanes on that class, which go on
        to the next.  One class left (or none): the joint query.  Returns ``(status, witness)``
        within ``seconds``."""
        if stop.is_set():
            return "unknown", None
        end = None if seconds is None else time.perf_counter() + seconds
        lits = self._class_literals() or {}
        if len(lits) <= 1:
            ans = q.solve(timeout=seconds)
            return ans.status, ans.witness
        while (c := self._take_class(lits, lane, q)) is not None:
            try:
                left = None if end is None else end - time.perf_counter()
                if stop.is_set() or (left is not None and left <= 0):
                    return "unknown", None
                ans = q.solve([-l for d, l in lits.items() if d != c], left)
                if ans.status == "sat":
                    return "sat", ans.witness
                if ans.status == "unsat":
                    with self._lock:
                        self.refuted.add(c)
                        for other, (c2, q2) in self._working.items():
                            if c2 == c and other != lane:
                                q2.interrupt()
                elif c not in self.refuted:  # the time is up, or the race was decided
                    return "unknown", None
            finally:
                with self._lock:
                    del self._working[lane]
                    if not stop.is_set():  # an interrupt from a lane that refuted c first
                        q.clear_interrupt()
        return "unsat", None

    def open_classes(self) -> list[int] | None:
        """The bad classes that neither R's bounds nor a solver have excluded so far (None: no
        solver encoded R by class)."""
        lits = self._class_literals()
        return None if lits is None else sorted(set(lits) - self.refuted)

    def _class_literals(self) -> dict[int, int] | None:
        """The shared encoding's literal of each bad class the bounds leave possible
        (``Network.class_lits`` of the atom ``pred in bad``); None before it is encoded."""
        return None if self._encoding is None else self._encoding.nets[0].class_lits.get(tuple(sorted(self.bad)))

    def _take_class(self, lits: dict[int, int], lane: int, q: Query) -> int | None:
        """The class that lane refutes next with ``q`` (``solve_by_class``), or None if all are
        refuted."""
        with self._lock:
            if self._order is None:
                x = self.R.center if self.R.center is not None else (self.R.lo + self.R.hi) // 2
                scores = self.model.engine.scores(x[None])[0]
                self._order = sorted(lits, key=lambda c: (-scores[c], c))
            open_ = [c for c in self._order if c not in self.refuted]
            if not open_:
                return None
            taken = {c2 for c2, _ in self._working.values()}
            pool = [c for c in open_ if c not in taken] or open_
            c = pool[0] if lane == 0 else pool[-1]
            self._working[lane] = (c, q)
            return c

    def interrupt(self) -> None:
        with self._lock:
            queries = list(self._queries.values())
        for q in queries:
            q.interrupt()

    def close(self) -> None:
        for q in self._queries.values():
            q.close()

    @property
    def encoding(self) -> Encoding | None:
        return self._encoding

    # ------------------------------------------------------------------ the race
    def run(self, timeout: float | None, cores: int | None = None, schedule: Schedule | None = None,
            grace: float = 1.0) -> Outcome:
        """Run ``schedule`` (default: the tuned one for ``cores``) until the first decisive
        answer or ``timeout`` seconds; cancel the rest.  Returns within about ``timeout`` plus
        the time a lane takes to notice the cancel (a sweep chunk, a CP-SAT or PySAT stop; a
        forked Exact is killed within ``logic.backends.POLL_S``)."""
        with one_blas_thread():
            return self._run(timeout, cores, schedule, grace)

    def _run(self, timeout: float | None, cores: int | None, schedule: Schedule | None, grace: float) -> Outcome:
        cores = cores or default_cores()
        lanes = schedule or schedule_for(cores)
        # branch and bound's threads: every core if another lane yields to it, else a lane's share
        yields = any(engine == "yield" for steps in lanes for engine, _ in steps)
        bab_threads = cores if yields else max(1, cores // len(lanes))
        bab_running = threading.Event()
        t0 = time.perf_counter()
        deadline = None if timeout is None else t0 + timeout
        stop = threading.Event()
        results: queue.Queue = queue.Queue()
        out = Outcome()
        tlock = threading.Lock()

        def lane(index: int, steps: Lane) -> None:
            try:
                for engine, seconds in steps:
                    now = time.perf_counter()
                    left = None if deadline is None else deadline - now
                    if left is not None and left <= 0:
                        break
                    limit = seconds if left is None else (left if seconds is None else min(seconds, left))
                    if engine == "yield":
                        self._yield_to_bab(bab_running, stop, deadline)
                        continue
                    if stop.is_set() or not self.applies(engine, limit, bab_threads):
                        continue
                    if engine == "bab":
                        bab_running.set()
                    try:
                        st, x, nodes = self.run_engine(engine, limit, stop, threads=bab_threads, lane=index)
                    finally:
                        if engine == "bab":
                            bab_running.clear()
                    reported = REPORTED_AS.get(engine, engine)
                    with tlock:
                        if engine != "wait":
                            out.seconds[reported] = out.seconds.get(reported, 0.0) + time.perf_counter() - now
                        out.bab_nodes += nodes
                    if st != "unknown":
                        results.put((st, x, reported))
                        return
            except BaseException as e:  # noqa: BLE001  (re-raised on the caller's thread)
                results.put(("error", e, None))
                return
            results.put(None)  # this lane is done, undecided

        threads = [threading.Thread(target=lane, args=(i, steps), daemon=True, name=f"bnnlogic-lane{i}")
                   for i, steps in enumerate(lanes)] if len(lanes) > 1 else []
        for th in threads:
            th.start()
        if not threads:  # one lane runs on this thread: no hand-off between threads per query
            lane(0, lanes[0])
        open_lanes, error = len(lanes), None
        while open_lanes:
            wait = None if deadline is None else max(0.0, deadline - time.perf_counter())
            try:
                item = results.get(timeout=wait)
            except queue.Empty:
                break
            if item is None:
                open_lanes -= 1
            elif item[0] == "error":
                error = item[1]
                break
            else:
                out.status, out.witness, out.engine = item
                break
        stop.set()
        self.interrupt()
        end = time.perf_counter() + grace
        for th in threads:
            th.join(max(0.0, end - time.perf_counter()))
        if error is not None:
            raise error
        return out

    def _yield_to_bab(self, bab_running: threading.Event, stop: threading.Event, deadline: float | None) -> None:
        """A yield step: sleep while branch and bound runs and is ``bab_on_course`` at its pace
        since the yield; once it is off course, abandon it (``bab_abandoned``: it gives up, its
        open boxes kept) and return."""
        mark = self.bab_progress.mark()
        while bab_running.is_set() and not stop.is_set():
            left = None if deadline is None else deadline - time.perf_counter()
            if not bab_on_course(self.bab_progress, left, mark):
                self.bab_abandoned.set()
                return
            stop.wait(YIELD_POLL_S)


def race_calls(calls: Sequence, interrupt: Sequence = ()) -> tuple[str, object, int | None]:
    """Run ``calls`` (each ``fn(stop) -> (status, payload)``, ``stop`` a ``threading.Event``) on
    threads at once; the first with a status other than "unknown" wins, then ``stop`` is set,
    every function in ``interrupt`` is called (a solver's ``interrupt``), and every thread is
    joined before returning ``(status, payload, index of the winner)`` (``("unknown", None,
    None)`` if none decided).  An exception in a call is re-raised here."""
    if len(calls) == 1:
        status, payload = calls[0](threading.Event())
        return status, payload, 0 if status != "unknown" else None
    with one_blas_thread():
        return _race_calls(calls, interrupt)


def _race_calls(calls: Sequence, interrupt: Sequence) -> tuple[str, object, int | None]:
    stop = threading.Event()
    results: queue.Queue = queue.Queue()

    def run(i: int) -> None:
        try:
            results.put((*calls[i](stop), i))
        except BaseException as e:  # noqa: BLE001  (re-raised on the caller's thread)
            results.put(("error", e, i))

    threads = [threading.Thread(target=run, args=(i,), daemon=True, name="bnnlogic-racer") for i in range(len(calls))]
    for th in threads:
        th.start()
    out: tuple[str, object, int | None] = ("unknown", None, None)
    error = None
    for _ in calls:
        status, payload, i = results.get()
        if status == "error":
            error = payload
            break
        if status != "unknown":
            out = (status, payload, i)
            break
    stop.set()
    for fn in interrupt:
        fn()
    for th in threads:  # every racer stops within a slice; none may still run when the caller goes on
        th.join()
    if error is not None:
        raise error
    return out


def race_solvers(queries: Sequence[Query], assumptions: Sequence[int] = (), timeout: float | None = None,
                 extra: Sequence = ()) -> tuple[str, object, Query | None]:
    """One question to several incremental solvers at once (``race_calls``): each query's
    backend (built once, kept across calls: learned constraints and cores stay) solves under
    the same ``assumptions``; ``extra`` calls (``fn(stop) -> (status, payload)``, e.g. branch
    and bound on the same sub-box) race beside them.  Returns ``(status, value, winner)``: a
    solver's ``value`` and query, or an extra call's payload and None.  The queries should
    share one encoding, so that a value decodes the same whichever won; they are ready for the
    next race afterwards."""
    def solver(q: Query):
        # the backend is built on the first call (seconds for a large model): a race over by then
        # reaches it through ``Query.live_backend``
        return lambda stop: q.live_backend().solve(assumptions, timeout)

    for q in queries:
        q.clear_interrupt()
    try:
        status, payload, i = race_calls([solver(q) for q in queries] + list(extra),
                                        [q.interrupt for q in queries])
    finally:
        for q in queries:
            q.clear_interrupt()
    return status, payload, queries[i] if i is not None and i < len(queries) else None
