"""BLAS (numpy's matrix products) held to one thread while bnnlogic's own parallelism runs.

Racing lanes, branch-and-bound threads and numba kernels are the parallelism; a BLAS thread
pool beside them only contends for the cores (the attack's small products fought numba's
threads).  And OpenBLAS deadlocks when a thread forks (a solver server,
``logic.backends._Forked``) while another is inside a multi-threaded product (branch and
bound's bounds, the attack): seen as a 2-core race that never returned.
"""
from __future__ import annotations

import threading
from contextlib import contextmanager
from typing import Iterator

_LOCK = threading.Lock()
_STATE: dict = {"users": 0, "limiter": None, "controller": None}


@contextmanager
def one_blas_thread() -> Iterator[None]:
    """BLAS on one thread while any block of this kind runs in the process: counted across
    threads, the first to enter sets the limit and the last to leave restores it (so nested
    and concurrent blocks never restore it under each other).  threadpoolctl's controller is
    made once (finding the libraries takes ~50 ms; a limit then costs ~8 µs)."""
    s = _STATE
    with _LOCK:
        if s["users"] == 0:
            if s["controller"] is None:
                from threadpoolctl import ThreadpoolController

                s["controller"] = ThreadpoolController()
            s["limiter"] = s["controller"].limit(limits=1, user_api="blas")
        s["users"] += 1
    try:
        yield
    finally:
        with _LOCK:
            s["users"] -= 1
            if s["users"] == 0:
                s["limiter"].restore_original_limits()
