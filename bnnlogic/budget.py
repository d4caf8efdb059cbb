"""Time budgets and progress for long computations (explanations, counting, compilation).

A ``Budget`` is a deadline for a whole computation plus a limit per solver call; the
algorithms ask it for the time a call may take (``call_timeout``) and call ``check`` between
steps.  When time runs out ``check`` raises ``Stopped("time")``; the algorithm catches it and
returns the best result it has, marked incomplete (``complete: false``, ``stopped: "time"``).
A user's interrupt (Ctrl-C, SIGTERM) ends the same way with ``stopped: "interrupt"``: some
solver bindings turn SIGINT into ``RuntimeError("Program interrupted by user.")`` (Exact), which
``interruption`` recognises.  ``tick(**info)`` forwards progress to an optional callback (the
CLI draws a tqdm line on a terminal); the algorithms never print.
"""
from __future__ import annotations

import time
from typing import Any, Callable


class Stopped(Exception):
    """A computation stopped before its end; ``reason`` is "time" or "interrupt"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def interruption(exc: BaseException) -> bool:
    """Is ``exc`` a user's interrupt (KeyboardInterrupt, or a solver binding's rendering of SIGINT)?"""
    return isinstance(exc, KeyboardInterrupt) or (isinstance(exc, RuntimeError) and "interrupted by user" in str(exc))


class Budget:
    """``seconds`` for the whole computation (None: no limit) and ``per_call`` seconds per solver
    call (None: only the remaining time bounds it); ``progress(info)`` receives ``tick``'s keywords."""

    def __init__(self, seconds: float | None = None, per_call: float | None = None,
                 progress: Callable[[dict[str, Any]], None] | None = None) -> None:
        if seconds is not None and seconds <= 0 or per_call is not None and per_call <= 0:
            raise ValueError("time limits must be positive")
        self.seconds, self.per_call, self.progress = seconds, per_call, progress
        self.start = time.perf_counter()
        self.deadline = None if seconds is None else self.start + seconds

    def elapsed(self) -> float:
        return time.perf_counter() - self.start

    def remaining(self) -> float | None:
        """Seconds left (never below 0), or None without a deadline."""
        return None if self.deadline is None else max(0.0, self.deadline - time.perf_counter())

    def expired(self) -> bool:
        return self.deadline is not None and time.perf_counter() >= self.deadline

    def call_timeout(self, per_call: float | None = None) -> float | None:
        """The time one solver call may take: the smaller of ``per_call`` (default: this budget's)
        and the time left; None when neither bounds it."""
        limits = [t for t in (self.per_call if per_call is None else per_call, self.remaining()) if t is not None]
        return min(limits) if limits else None

    def check(self) -> None:
        """Raise ``Stopped("time")`` once the deadline has passed."""
        if self.expired():
            raise Stopped("time")

    def tick(self, **info: Any) -> None:
        """Report progress (``info``: counts so far) and check the deadline."""
        if self.progress is not None:
            self.progress(info)
        self.check()
