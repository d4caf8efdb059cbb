"""Solver backends behind one interface: ``backend = make_backend(name, formula)``, then
``backend.solve(assumptions, timeout) -> (status, value)`` with status in
{"sat", "unsat", "unknown"} and ``value(var) -> bool`` reading the model after "sat";
``backend.core()``: after "unsat", assumptions that alone are unsatisfiable with the formula
(None where the engine gives none); ``backend.interrupt()`` (from any thread): the running and
every later ``solve`` return "unknown" soon (within ``Exact``'s slice, at most ``EXACT_SLICE``
s), until ``backend.clear_interrupt()``, so a racing portfolio can cancel the losers and race
the same solvers again.

Names (``BACKENDS``):

    cnf:<solver>:<encoding>   clauses through PySAT's cardinality encodings (``pysat.card``:
                              seqcounter, totalizer, sortnetwrk, cardnetwrk, mtotalizer,
                              kmtotalizer) solved by a PySAT SAT solver (cadical195, glucose4, ...)
    native:<solver>           PySAT's native cardinality solvers (minicard, gluecard4):
                              reified constraints become plain AtMost constraints
    cpsat                     OR-Tools CP-SAT, Boolean linear constraints with enforcement literals
    exact                     the Exact pseudo-Boolean solver, one reified constraint per neuron

Every backend builds its solver once, so repeated ``solve`` calls with different assumptions
(literals that must hold) reuse it.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, Iterator, Sequence

from ..errors import UserError
from .formula import Card, Formula

Status = str
Value = Callable[[int], bool]

ENCODINGS = ("seqcounter", "totalizer", "sortnetwrk", "cardnetwrk", "mtotalizer", "kmtotalizer")
NATIVE_SOLVERS = ("minicard", "gluecard4")
#: PySAT cannot interrupt these (no time limit; a timeout is refused).
UNINTERRUPTIBLE = ("cadical103", "cadical153", "cadical195", "cadical300", "lingeling")
DEFAULT = "exact"
#: Exact runs in slices of at most this many seconds (it resumes where it stopped, learned
#: constraints kept), so an interrupt or a wall-clock deadline is seen within a slice
EXACT_SLICE = 0.5
#: seconds a forked backend (``_Forked``) may take to answer after its solve's timeout before
#: it is killed (an interrupted one is killed at once: waiting 50 ms for it made each race of a
#: whole-domain explanation 50-60 ms longer, 1.4 -> 2.0 s median on digits mlp:200,100 friendly)
KILL_GRACE = 0.05
#: seconds between the parent's checks for a forked backend's answer
POLL_S = 0.005
#: seconds between the repeated stops of an interrupted CP-SAT solve (``_CPSAT.interrupt``)
STOP_RETRY_S = 0.005
BACKENDS = tuple([f"cnf:{s}:{e}" for s in ("glucose4", "cadical195") for e in ENCODINGS]
                 + [f"native:{s}" for s in NATIVE_SOLVERS] + ["cpsat", "exact"])


def card_to_clauses(card: Card, top: int, encoding: str) -> tuple[list[list[int]], int]:
    """CNF of one cardinality constraint (both directions if reified), fresh variables above
    ``top``.  ``head => sum >= b`` is the encoding of ``sum >= b`` with ``-head`` added to each
    clause; ``-head => sum <= b-1`` likewise with ``head``.  Repeated literals get copies."""
    from pysat.card import CardEnc, EncType

    enc = getattr(EncType, encoding)
    lits, clauses, seen = [], [], set()
    for l in card.lits:
        if l in seen:  # a coefficient > 1: a fresh copy equal to l
            top += 1
            clauses += [[-top, l], [top, -l]]
            l = top
        seen.add(l)
        lits.append(l)
    n, b = len(lits), card.bound

    def part(cnf, extra):
        nonlocal top
        top = max(top, cnf.nv)
        clauses.extend(c + extra for c in cnf.clauses)

    if card.head is None:
        part(CardEnc.atleast(lits, b, top_id=top, encoding=enc), [])
        return clauses, top
    part(CardEnc.atleast(lits, b, top_id=top, encoding=enc), [-card.head])
    if card.both:
        part(CardEnc.atmost(lits, b - 1, top_id=top, encoding=enc), [card.head])
    return clauses, top


def cnf_parts(formula: Formula, encoding: str = "totalizer") -> Iterator[tuple[list[list[int]], int]]:
    """``formula`` as clauses, part by part: its plain clauses, then each cardinality
    constraint's; each part with the number of variables used so far."""
    top = formula.n_vars
    yield formula.clauses, top
    for card in formula.cards:
        cl, top = card_to_clauses(card, top, encoding)
        yield cl, top


def to_cnf(formula: Formula, encoding: str = "totalizer") -> tuple[list[list[int]], int]:
    """All of ``formula`` as clauses; returns (clauses, number of variables)."""
    clauses, top = [], formula.n_vars
    for cl, top in cnf_parts(formula, encoding):
        clauses += cl
    return clauses, top


class _PySAT:
    """A PySAT solver, fed clauses (and native AtMost constraints for minicard/gluecard)."""

    def __init__(self, formula: Formula, solver: str, encoding: str | None) -> None:
        from pysat.solvers import Solver

        if encoding is None:
            self.solver = Solver(name=solver)
            for c in formula.clauses:
                self.solver.add_clause(c)
            top = formula.n_vars
            for card in formula.cards:
                for lits, bound in _native_atmost(card):
                    self.solver.add_atmost(lits, bound)
            self.n_clauses = len(formula.clauses)
        else:  # part by part: the whole CNF never sits in a Python list beside the solver's copy
            self.solver, self.n_clauses, top = Solver(name=solver), 0, formula.n_vars
            for cl, top in cnf_parts(formula, encoding):
                self.solver.append_formula(cl)
                self.n_clauses += len(cl)
        self.n_vars, self.name = top, solver
        self.status: Status | None = None

    def interrupt(self) -> None:
        self._stopped = True
        if self.name not in UNINTERRUPTIBLE:
            self.solver.interrupt()

    def clear_interrupt(self) -> None:
        self._stopped = False

    def solve(self, assumptions: Sequence[int], timeout: float | None) -> tuple[Status, Value]:
        timer = None
        if getattr(self, "_stopped", False):
            return "unknown", _no_model
        if timeout and self.name in UNINTERRUPTIBLE:
            raise UserError(f"PySAT cannot interrupt {self.name}: drop the timeout or use another backend")
        if timeout:
            timer = threading.Timer(timeout, self.solver.interrupt)
            timer.start()
        try:
            res = self.solver.solve_limited(assumptions=list(assumptions),
                                            expect_interrupt=self.name not in UNINTERRUPTIBLE)
        finally:
            if timer:
                timer.cancel()
            if self.name not in UNINTERRUPTIBLE:
                self.solver.clear_interrupt()
        self.status = "unknown" if res is None else "sat" if res else "unsat"
        if res is None:
            return "unknown", _no_model
        if not res:
            return "unsat", _no_model
        model = set(l for l in self.solver.get_model() if l > 0)
        return "sat", lambda v: v in model

    def core(self) -> list[int] | None:
        """PySAT's core; empty when the formula is unsatisfiable without assumptions."""
        core = self.solver.get_core()
        return [] if core is None and self.status == "unsat" else core

    def close(self) -> None:
        self.solver.delete()


def _native_atmost(card: Card) -> list[tuple[list[int], int]]:
    """``head => sum(L) >= b`` as ``AtMost(-L + b copies of head, n)`` and
    ``-head => sum(L) <= b-1`` as ``AtMost(L + (n-b+1) copies of -head, n)`` (a repeated
    literal counts once per copy in Minicard/Gluecard)."""
    L, b, h = list(card.lits), card.bound, card.head
    n = len(L)
    neg = [-l for l in L]
    if h is None:
        return [(neg, n - b)]
    out = [(neg + [h] * b, n)]
    if card.both:
        out.append((L + [-h] * (n - b + 1), n))
    return out


def _no_model(v: int) -> bool:
    raise RuntimeError("no model: the last solve was not sat")


class _CPSAT:
    """OR-Tools CP-SAT, one worker.  A reified cardinality ``h => sum >= b`` (and ``-h => sum <=
    b - 1``) is a linear constraint with an enforcement literal.

    Assumptions are not CP-SAT's: each ``solve`` pins the assumed variables' domains in the
    model for that call (restored after it) and turns presolve and SAT inprocessing off.
    Measured on the calls of whole-domain explanations (digits mlp:64,32 and mlp:200,100
    friendly, 12-25 incremental calls per image, replayed one engine at a time): CP-SAT's
    assumptions with presolve 10.7 s in all, pinned without presolve 3.6-3.9 s, and without
    inprocessing 2.7 s (on mlp:64,32 0.85 -> 0.16 s).  Presolve re-ran on the whole network every
    call and could not use what assumptions fix.  The price: no core (``core()`` is None);
    Exact's and PySAT's cores remain."""

    def __init__(self, formula: Formula, workers: int = 1) -> None:
        self._lock, self._solver, self._stopped = threading.Lock(), None, False
        from ortools.sat.python import cp_model

        self.cp = cp_model
        m = self.model = cp_model.CpModel()
        self.x = [None] + [m.NewBoolVar(f"v{i}") for i in range(1, formula.n_vars + 1)]
        lit = self.lit
        for c in formula.clauses:
            m.AddBoolOr([lit(l) for l in c])
        for card in formula.cards:
            s = sum(lit(l) for l in card.lits)
            if card.head is None:
                m.Add(s >= card.bound)
                continue
            m.Add(s >= card.bound).OnlyEnforceIf(lit(card.head))
            if card.both:
                m.Add(s <= card.bound - 1).OnlyEnforceIf(lit(-card.head))
        self.workers = workers
        self.n_vars, self.n_clauses = formula.n_vars, len(formula.clauses)

    def lit(self, l: int):
        return self.x[l] if l > 0 else self.x[-l].Not()

    def solve(self, assumptions: Sequence[int], timeout: float | None) -> tuple[Status, Value]:
        solver = self.cp.CpSolver()
        solver.parameters.num_workers = self.workers
        # CP-SAT's own SIGINT handler outlives the solve it belongs to: a Ctrl-C after a race
        # aborted the process (std::bad_function_call); bnnlogic stops it with StopSearch
        solver.parameters.catch_sigint_signal = False
        if timeout:
            solver.parameters.max_time_in_seconds = float(timeout)
        domains = self.model.Proto().variables
        pinned = {abs(l): int(l > 0) for l in assumptions}
        if len(pinned) < len({*assumptions}):  # l and -l both assumed
            return "unsat", _no_model
        if pinned:
            solver.parameters.cp_model_presolve = False
            solver.parameters.use_sat_inprocessing = False
        with self._lock:
            if self._stopped:
                return "unknown", _no_model
            self._solver = solver
        try:
            for v, b in pinned.items():
                d = domains[v - 1].domain
                d[0] = d[1] = b
            st = solver.Solve(self.model)
        finally:
            for v in pinned:
                d = domains[v - 1].domain
                d[0], d[1] = 0, 1
            with self._lock:
                self._solver = None
        if st in (self.cp.OPTIMAL, self.cp.FEASIBLE):
            vals = {i for i in range(1, len(self.x)) if solver.BooleanValue(self.x[i])}
            return "sat", lambda v: v in vals
        if st == self.cp.INFEASIBLE:
            return "unsat", _no_model
        return "unknown", _no_model

    def interrupt(self) -> None:
        """Stop the running solve.  CP-SAT ignores a ``StopSearch`` that comes before its search
        has started (measured, OR-Tools 9.15: the solve then runs to its time limit; in an
        explanation's race this held a call 50 s after the attack had won), and a large model
        takes tens of ms to load; so the stop is repeated every ``STOP_RETRY_S`` until the
        solve returns."""
        with self._lock:
            self._stopped = True
            solver = self._solver
        if solver is not None:
            threading.Thread(target=self._keep_stopping, args=(solver,), daemon=True,
                             name="bnnlogic-cpsat-stop").start()

    def _keep_stopping(self, solver) -> None:
        while True:
            with self._lock:
                if self._solver is not solver:  # the solve returned
                    return
                solver.StopSearch()
            time.sleep(STOP_RETRY_S)

    def clear_interrupt(self) -> None:
        with self._lock:
            self._stopped = False

    def core(self) -> None:
        """None: assumptions are pinned domains, not CP-SAT assumptions (see the class)."""
        return None

    def close(self) -> None:
        pass


_SIGNAL_LOCK = threading.Lock()


def _new_exact():
    """A fresh ``exact.Exact()`` that leaves the process's signal handlers as they were.

    Exact's constructor installs C handlers for SIGINT, SIGTERM and SIGXCPU that only set its
    own interrupt flag: afterwards Ctrl-C and ``kill`` no longer reach Python (a process at exit
    cannot even end a forked solver server), and a Ctrl-C during a race aborted the process
    (``std::bad_function_call``).  bnnlogic interrupts Exact itself (``EXACT_SLICE``), so the
    previous handlers (C ``struct sigaction``s, saved and restored as opaque bytes through libc;
    a module lock keeps concurrent constructions from saving each other's) are put back."""
    import ctypes
    import signal

    import exact

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        sigaction = libc.sigaction
    except (OSError, AttributeError):  # no POSIX sigaction (Windows): nothing to keep
        return exact.Exact()
    signals = [getattr(signal, n) for n in ("SIGINT", "SIGTERM", "SIGXCPU") if hasattr(signal, n)]
    with _SIGNAL_LOCK:
        saved = {n: ctypes.create_string_buffer(512) for n in signals}  # > sizeof(struct sigaction)
        for n, buf in saved.items():
            sigaction(n, None, buf)
        try:
            return exact.Exact()
        finally:
            for n, buf in saved.items():
                sigaction(n, buf, None)


class _Exact:
    """Exact: one (reified) linear constraint per card, no auxiliary variables.  ``stop``: a
    function that says "interrupted" (``_Forked``'s shared flag), checked like ``interrupt``."""

    def __init__(self, formula: Formula, stop: Callable[[], bool] | None = None) -> None:
        s = self.s = _new_exact()
        self.names = [f"v{i}" for i in range(formula.n_vars + 1)]
        for name in self.names[1:]:
            s.addVariable(name)
        for c in formula.clauses:
            terms, b = self._terms(c, 1)
            s.addConstraint(terms, True, b)
        for card in formula.cards:
            terms, b = self._terms(card.lits, card.bound)
            if card.head is None:
                s.addConstraint(terms, True, b)
            elif card.both:
                s.addReification(self.names[card.head], True, terms, b)
            else:
                s.addRightReification(self.names[card.head], True, terms, b)
        self.n_vars, self.n_clauses = formula.n_vars, len(formula.clauses)
        self.assumed: dict[int, int] = {}  # variable -> assumed literal, of the last solve
        self._stopped, self._stop = False, stop

    def _terms(self, lits: Sequence[int], bound: int) -> tuple[list[tuple[int, str]], int]:
        """``sum(lits) >= bound`` over variables: a negative literal -v is 1 - v."""
        coef: dict[int, int] = {}
        for l in lits:
            coef[abs(l)] = coef.get(abs(l), 0) + (1 if l > 0 else -1)
            if l < 0:
                bound -= 1
        return [(c, self.names[v]) for v, c in coef.items() if c], bound

    def solve(self, assumptions: Sequence[int], timeout: float | None) -> tuple[Status, Value]:
        s = self.s
        s.clearAssumptions()
        self.assumed = {abs(l): l for l in assumptions}
        if assumptions:
            s.setAssumptions([(self.names[abs(l)], 1 if l > 0 else 0) for l in assumptions])
        # slices against the wall clock: Exact's own limit runs on process time, which lags the
        # wall clock on a loaded machine; each slice resumes the search (learned constraints kept)
        end = None if not timeout else time.monotonic() + float(timeout)
        res = "TIMEOUT"
        while res == "TIMEOUT" and not self._stopped and not (self._stop is not None and self._stop()):
            left = EXACT_SLICE if end is None else min(EXACT_SLICE, end - time.monotonic())
            if left <= 0:
                break
            res = s.runFull(False, left)
        if res == "SAT":
            vals = s.getLastSolutionFor(self.names[1:])
            return "sat", lambda v: bool(vals[v - 1])
        if res in ("UNSAT", "INCONSISTENT"):
            return "unsat", _no_model
        return "unknown", _no_model

    def interrupt(self) -> None:
        self._stopped = True

    def clear_interrupt(self) -> None:
        self._stopped = False

    def core(self) -> list[int]:
        """Exact's last core: the assumed variables its final conflict used (named ``v<i>``), as literals."""
        return [self.assumed[int(name[1:])] for name in self.s.getLastCore()]

    def close(self) -> None:
        pass


class _Forked:
    """A backend in a forked child process: Exact's Python binding holds the GIL while it
    solves, which would stall every other thread of a racing portfolio, so a race runs it
    here; a solver that sees an interrupt late (``LATE_INTERRUPT``) always runs here, where
    it can be killed at its timeout.  The child inherits the formula (fork, copy-on-write:
    nothing is pickled), builds the backend once and answers ``solve`` requests over a pipe
    (the parent's wait releases the GIL), so learned constraints stay across calls.
    ``interrupt`` sets a shared flag that the child's solver checks between slices, but a
    slice lasts up to ``EXACT_SLICE``: a child that has not answered when the parent next
    looks (within ``POLL_S``) after an interrupt, or ``KILL_GRACE`` seconds after the solve's
    timeout (still building, or inside a slice that overran), is killed, the solve returns
    "unknown" at once and the next solve forks a fresh child.  ``close`` kills the child."""

    def __init__(self, formula: Formula, name: str) -> None:
        self._formula, self._name = formula, name
        self.n_vars, self.n_clauses = formula.n_vars, len(formula.clauses)
        self._core: list[int] | None = None
        self._interrupted = False  # an interrupt is pending
        self._proc = None
        self._spawn()

    def _spawn(self) -> None:
        import multiprocessing as mp

        ctx = mp.get_context("fork")
        self._conn, child = ctx.Pipe()
        self._stop = ctx.RawValue("b", self._interrupted)  # lock-free: the child may be killed
        self._proc = ctx.Process(target=_serve, args=(self._formula, self._name, child, self._conn, self._stop),
                                 daemon=True)
        self._proc.start()
        child.close()

    def _reply(self, end: float | None = None):
        """The child's answer; None if it was killed after an interrupt, or at ``end``
        (monotonic) plus ``KILL_GRACE``."""
        while not self._conn.poll(POLL_S):
            if self._interrupted or (end is not None and time.monotonic() > end + KILL_GRACE):
                self._kill()
                return None
            if not self._proc.is_alive() and not self._conn.poll(0):
                raise RuntimeError("the forked solver process died")
        try:
            kind, payload = self._conn.recv()
        except (EOFError, OSError):
            raise RuntimeError("the forked solver process died") from None
        if kind == "error":
            raise RuntimeError(f"the forked solver failed: {payload}")
        return payload

    def solve(self, assumptions: Sequence[int], timeout: float | None) -> tuple[Status, Value]:
        self._core = None
        if self._proc is None:
            self._spawn()
        end = None if not timeout else time.monotonic() + float(timeout)
        self._conn.send(("solve", list(assumptions), timeout))
        reply = self._reply(end)
        if reply is None:
            return "unknown", _no_model
        status, true, self._core = reply
        if status == "sat":
            model = set(true)
            return "sat", lambda v: v in model
        return status, _no_model

    def interrupt(self) -> None:
        self._interrupted = True
        if self._proc is not None:
            self._stop.value = 1

    def clear_interrupt(self) -> None:
        self._interrupted = False
        if self._proc is not None:
            self._stop.value = 0

    def core(self) -> list[int] | None:
        return self._core

    def _kill(self) -> None:
        if self._proc is not None:
            self._proc.kill()
            self._proc.join()
            self._conn.close()
            self._proc = None

    def close(self) -> None:
        self._kill()

    def __del__(self) -> None:  # a backend dropped without close() takes its child with it
        try:
            self._kill()
        except Exception:  # noqa: BLE001  (interpreter shutdown)
            pass


def _serve(formula: Formula, name: str, conn, parent_end, stop) -> None:  # pragma: no cover  (runs in the child)
    """The child of ``_Forked``: build the backend, answer each ``("solve", assumptions, timeout)``
    with ``("ok", (status, true variables after "sat", core after "unsat"))``, until killed or
    the parent's end of the pipe closes (the parent died: its copy inherited by the fork is
    closed here first, else the child would wait on it forever)."""
    import signal

    parent_end.close()
    # the parent ends this child (kill, or terminate at exit): no handler inherited from it may
    # keep it alive; a Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        b = _Exact(formula, lambda: stop.value != 0) if name == "exact" else _build(name, formula)
        while True:
            _, assumptions, timeout = conn.recv()
            status, value = b.solve(assumptions, timeout)
            true = [v for v in range(1, b.n_vars + 1) if value(v)] if status == "sat" else None
            conn.send(("ok", (status, true, b.core() if status == "unsat" else None)))
    except EOFError:  # the parent closed the pipe
        pass
    except Exception as e:  # noqa: BLE001  (reported to the parent, which raises it)
        conn.send(("error", f"{type(e).__name__}: {e}"))


def check_backend(name: str) -> None:
    """Raise ``UserError`` unless ``name`` names a backend (see the module docstring)."""
    parts = name.split(":")
    if parts[0] == "cnf" and len(parts) == 3 and parts[2] in ENCODINGS:
        from pysat.solvers import SolverNames

        if parts[1] not in vars(SolverNames) or parts[1].startswith("kissat"):  # kissat: no assumptions
            raise UserError(f"unknown or unsuitable SAT solver {parts[1]!r}; try glucose4 or cadical195")
        return
    if not ((parts[0] == "native" and len(parts) == 2 and parts[1] in NATIVE_SOLVERS) or name in ("cpsat", "exact")):
        raise UserError(f"unknown backend {name!r}; choose auto, cpsat, exact, native:minicard|gluecard4 "
                        f"or cnf:<solver>:<encoding> with encoding in {', '.join(ENCODINGS)}")


def backend_size(name: str, formula: Formula) -> tuple[int, int] | None:
    """(variables, clauses) that backend ``name`` would hold for ``formula``, known without
    building it for the backends that add no variables (cpsat, exact, native); None for CNF."""
    return None if name.startswith("cnf:") else (formula.n_vars, len(formula.clauses))


#: backends whose Python binding holds the GIL while solving (``isolated`` runs them forked)
HOLDS_GIL = ("exact",)
#: backends that see PySAT's interrupt late, so they always run forked and a late one is
#: killed: with ``timeout=90`` Gluecard4 answered 4.8-8.4 s after the interrupt on fashion
#: conv-small image 79 at eps 3 and mlp-small image 82 at eps 5 (within 0.4 s at 10 and 60 s);
#: Minicard (image 82, 90 s) and Glucose 4 with kmtotalizer (image 79, 90 s) stopped at once
LATE_INTERRUPT = ("native:gluecard4",)


def make_backend(name: str, formula: Formula, isolated: bool = False):
    """Build the solver ``name`` (see the module docstring) loaded with ``formula``;
    ``isolated``: one that holds the GIL while it solves (``HOLDS_GIL``) runs in a forked
    process (``_Forked``), so that other threads of this process keep running; one that sees
    an interrupt late (``LATE_INTERRUPT``) always does, so that its timeout holds."""
    check_backend(name)
    if (isolated and name in HOLDS_GIL) or name in LATE_INTERRUPT:
        return _Forked(formula, name)
    return _build(name, formula)


def _build(name: str, formula: Formula):
    """The solver ``name`` in this process (``make_backend``'s, or a forked child's)."""
    parts = name.split(":")
    if parts[0] == "cnf":
        from .memory import check_fits

        check_fits(formula, parts[2])
        return _PySAT(formula, parts[1], parts[2])
    if parts[0] == "native":
        return _PySAT(formula, parts[1], None)
    return _CPSAT(formula) if name == "cpsat" else _Exact(formula)
