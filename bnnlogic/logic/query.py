"""A question to the solvers: networks + region + goal, encoded once, solved (incrementally).

``Query(irs, region, goal).solve()`` answers whether some raw input of the region reaches the
goal (an OR of ANDs of atoms ``pred_net(x) in S`` or ``ScoreAtLeast``, see ``encode.encode``).  A witness is
decoded to a raw input and replayed through concrete inference (``bnnlogic.infer.Engine``):
it must lie in the region and reach the goal (under the query's tie rule), else ``ReplayError`` is raised — a solver or
encoder bug, never a result.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import cached_property
from typing import Sequence

import numpy as np

from ..ir import IR, in_classes
from .backends import DEFAULT, backend_size, check_backend, make_backend
from .bounds import Bounds
from .encoding import Encoding, ScoreAtLeast, encode
from .region import Region

Goal = Sequence[Sequence[tuple[int, "Sequence[int] | ScoreAtLeast"]]]


class ReplayError(RuntimeError):
    """A solver's witness does not reach the goal under concrete inference (a bug)."""


@dataclass
class Answer:
    status: str  # "sat" (witness found) | "unsat" (proved: no input reaches the goal) | "unknown"
    witness: np.ndarray | None = None  # raw input (d,), replayed
    predictions: list[int] = field(default_factory=list)  # of each network on the witness
    time_s: float = 0.0


def goal_holds(goal: Goal, scores: Sequence[np.ndarray], ties: str = "low") -> bool:
    """Concrete truth of a goal for the integer class scores ``scores[net]`` ((C,) each): an atom
    ``pred_net in S`` read with the tie rule ``ties`` (``ir.in_classes``), a ``ScoreAtLeast``
    on the scores themselves."""
    def atom(n: int, a) -> bool:
        if isinstance(a, ScoreAtLeast):
            return a.holds(scores[n])
        mask = np.zeros(len(scores[n]), dtype=bool)
        mask[list(a)] = True
        return bool(in_classes(np.asarray(scores[n])[None], mask, ties)[0])

    return any(all(atom(n, a) for n, a in term) for term in goal)


class Query:
    """Encode once (bounds first), build the backend once (lazily), solve under assumptions."""

    def __init__(self, irs: Sequence[IR] | IR, region: Region, goal: Goal, backend: str = DEFAULT,
                 use_bounds: bool = True, engines: Sequence | None = None,
                 bounds: Sequence[Bounds | None] | None = None, ties: str = "low",
                 encoding: Encoding | None = None, isolated: bool = False) -> None:
        """``engines``: the networks' compiled inference engines, ``bounds``: their bit bounds
        over the region (``bounds.propagate``), if the caller has them; ``ties``: how the goal
        reads a tie of scores (``ir.TIES``); ``encoding``: the encoding of this very question,
        if another query built it (several backends share it); ``isolated``: a backend that
        holds the GIL runs in a forked process (``backends.make_backend``), for racing."""
        from ..infer import Engine

        self.irs = [irs] if isinstance(irs, IR) else list(irs)
        self.region, self.goal, self.backend_name, self.ties = region, goal, backend, ties
        self.isolated = isolated
        check_backend(backend)
        t0 = time.perf_counter()
        self.encoding: Encoding = encoding or encode(self.irs, region, goal, use_bounds, bounds, ties)
        self.encode_s = time.perf_counter() - t0
        self.engines = list(engines) if engines is not None else [Engine(ir) for ir in self.irs]

    @cached_property
    def backend(self):
        """The solver, loaded with the encoding on first use (a query that bounds or branch
        and bound decide never builds it); its build time is added to ``encode_s``."""
        t0 = time.perf_counter()
        b = make_backend(self.backend_name, self.encoding.formula, self.isolated)
        self.encode_s += time.perf_counter() - t0
        return b

    @property
    def stats(self) -> dict:
        """The encoding's stats, with the backend's variables and clauses (auxiliary CNF
        variables included; a CNF backend is built to count them)."""
        s = self.encoding.stats
        size = None if "backend" in vars(self) else backend_size(self.backend_name, self.encoding.formula)
        n_vars, n_clauses = size or (self.backend.n_vars, self.backend.n_clauses)
        s.update(variables=n_vars, clauses=n_clauses, encode_s=round(self.encode_s, 6))
        return s

    def replay(self, x: np.ndarray) -> list[int]:
        """Predictions of each network on x; raises ``ReplayError`` unless x is a real witness."""
        scores = [e.scores(x[None])[0] for e in self.engines]
        preds = [int(np.argmax(s)) for s in scores]
        if not self.region.contains(x[None])[0]:
            raise ReplayError("solver witness lies outside the region (encoder bug)")
        if not goal_holds(self.goal, scores, self.ties):
            raise ReplayError(f"solver witness does not reach the goal: predictions {preds} (encoder bug)")
        return preds

    def live_backend(self):
        """The backend, built on first use; an ``interrupt`` that came while it was being built
        (and so found no backend to stop) is passed on, so that its next solve returns
        "unknown" at once instead of searching to its time limit."""
        backend = self.backend
        if getattr(self, "_interrupted", False):
            backend.interrupt()
        return backend

    def solve(self, assumptions: Sequence[int] = (), timeout: float | None = None) -> Answer:
        """Solve under ``assumptions`` within ``timeout`` seconds, building the backend on the
        first call counted in them (on a large encoding the build is part of the wait)."""
        t0 = time.perf_counter()
        backend = self.live_backend()
        if timeout is not None:
            timeout -= time.perf_counter() - t0
            if timeout <= 0:
                return Answer("unknown", time_s=time.perf_counter() - t0)
        status, value = backend.solve(assumptions, timeout)
        dt = time.perf_counter() - t0
        if status != "sat":
            return Answer(status, time_s=dt)
        x = self.encoding.inputs.decode(value)
        return Answer("sat", x, self.replay(x), dt)

    def interrupt(self) -> None:
        """Make the running and later ``solve`` calls return "unknown" soon (until
        ``clear_interrupt``); safe from any thread."""
        self._interrupted = True
        if "backend" in vars(self):
            self.backend.interrupt()

    def clear_interrupt(self) -> None:
        """Undo ``interrupt`` once no solve is running: the next ``solve`` runs normally."""
        self._interrupted = False
        if "backend" in vars(self):
            self.backend.clear_interrupt()

    def close(self) -> None:
        if "backend" in vars(self):
            self.backend.close()
