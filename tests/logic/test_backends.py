"""Solver backends leave the process's signals and children in order: Ctrl-C and ``kill``
still reach Python after Exact has run, and a forked solver server never outlives its parent."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# a tiny query's formula; then the scenario named by argv[1]
SCRIPT = """
import os, signal, sys, time
import numpy as np
from bnnlogic.logic import Query, backends, region
from tests.helpers import random_ir

ir = random_ir(1, n_features=3, hi=2, hidden=(4,))
x = np.array([1, 1, 1])
y = int(ir.predict(x[None])[0])
R = region.linf(ir.coding, x, 1)
f = Query(ir, R, [[(0, [c for c in range(ir.n_classes) if c != y])]], backend="exact").encoding.formula
mode = sys.argv[1]
if mode in ("sigint", "sigterm"):
    backends.make_backend("exact", f).solve([], None)  # Exact built and run in this process
    try:
        os.kill(os.getpid(), signal.SIGINT if mode == "sigint" else signal.SIGTERM)
        time.sleep(2)
        print("swallowed", flush=True)
    except KeyboardInterrupt:
        print("KeyboardInterrupt", flush=True)
else:
    b = backends._Forked(f, "cpsat" if mode.endswith("cpsat") else "exact")
    b.solve([], None)
    print(b._proc.pid, flush=True)
    if mode.startswith("killed"):
        os.kill(os.getpid(), signal.SIGKILL)
    # "exit": the interpreter ends without b.close()
"""


def _run(mode: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=60,
                          cwd=ROOT, env=env)


def test_ctrl_c_reaches_python_after_exact():
    """Exact's constructor installs its own SIGINT handler; ``_new_exact`` puts Python's back."""
    assert _run("sigint").stdout.split() == ["KeyboardInterrupt"]


def test_kill_ends_the_process_after_exact():
    p = _run("sigterm")
    assert p.returncode == -signal.SIGTERM and "swallowed" not in p.stdout


def test_interpreter_exits_with_a_forked_server_open():
    """A backend never closed: the interpreter's exit ends the server (it used to wait forever)."""
    t0 = time.monotonic()
    p = _run("exit")
    assert p.returncode == 0 and time.monotonic() - t0 < 30
    _assert_gone(int(p.stdout.split()[0]))


@pytest.mark.parametrize("mode", ["killed", "killed-cpsat"])
def test_forked_server_dies_with_its_parent(mode):
    """The parent is killed (SIGKILL, no clean-up): the server sees its pipe close and exits."""
    p = _run(mode)
    assert p.returncode == -signal.SIGKILL
    _assert_gone(int(p.stdout.split()[0]))


def _assert_gone(pid: int, wait: float = 10.0) -> None:
    end = time.monotonic() + wait
    while time.monotonic() < end:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        # an exited child of a dead parent is reaped by init; a zombie counts as gone
        try:
            if Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z":
                return
        except OSError:
            return
        time.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    raise AssertionError(f"forked solver server {pid} outlived its parent")


def _random_3sat(n_vars: int, ratio: float, seed: int):
    """A hard random 3-SAT formula (ratio 4.26: at the threshold) as a ``Formula``."""
    import numpy as np

    from bnnlogic.logic.formula import Formula

    rng = np.random.default_rng(seed)
    f = Formula(n_vars=n_vars + 1)
    for _ in range(int(ratio * n_vars)):
        vs = rng.choice(n_vars, 3, replace=False) + 2
        f.clauses.append([int(v) if rng.random() < 0.5 else -int(v) for v in vs])
    return f


def test_cpsat_stops_when_interrupted_before_its_search_begins(monkeypatch):
    """CP-SAT ignores a StopSearch that comes before its search starts (the solve then ran to
    its time limit: an explanation's race once waited 50 s after the attack had won).  Here the
    solve takes 0.2 s to begin (a large model's load) and the interrupt comes in that window:
    the solve must still end at once."""
    import threading

    from ortools.sat.python import cp_model

    from bnnlogic.logic import backends

    solve, began = cp_model.CpSolver.Solve, threading.Event()

    def slow_start(self, *a, **kw):
        began.set()
        time.sleep(0.2)
        return solve(self, *a, **kw)

    monkeypatch.setattr(cp_model.CpSolver, "Solve", slow_start)
    b = backends.make_backend("cpsat", _random_3sat(500, 4.26, 0))
    out = {}
    th = threading.Thread(target=lambda: out.setdefault("r", b.solve([], 30.0)))
    t0 = time.monotonic()
    th.start()
    began.wait(10)
    b.interrupt()
    th.join(60)
    assert time.monotonic() - t0 < 5 and out["r"][0] == "unknown"


def test_a_solver_that_sees_its_interrupt_late_still_keeps_its_timeout(monkeypatch):
    """Gluecard4 answered seconds after PySAT's interrupt (``LATE_INTERRUPT``), so it runs in a
    forked child that is killed at its timeout.  Here the child's solver ignores the timeout
    altogether (the fork inherits the patch): the solve still ends at the timeout, "unknown",
    and the next solve, in a fresh child without the patch, answers as the solver in this
    process does."""
    from bnnlogic.logic import backends

    f = _random_3sat(60, 4.0, 1)
    ref = backends._build("native:gluecard4", f)
    expected = ref.solve([], None)[0]
    ref.close()
    solve = backends._PySAT.solve
    monkeypatch.setattr(backends._PySAT, "solve", lambda self, a, t: (time.sleep(30), solve(self, a, t))[1])
    b = backends.make_backend("native:gluecard4", f)
    try:
        assert isinstance(b, backends._Forked)
        t0 = time.monotonic()
        assert b.solve([], 0.2)[0] == "unknown"
        assert time.monotonic() - t0 < 1.0
        monkeypatch.undo()
        assert b.solve([], None)[0] == expected
    finally:
        b.close()
