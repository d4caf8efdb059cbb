"""Where batch queries run: this process, a local pool of worker processes, or a Ray cluster.

An executor runs calls ``fn(model, *args)`` for one model and yields an ``Outcome`` per call
as it finishes (in completion order).  What a call computes (a verification, an explanation,
a count: ``bnnlogic.batch``) is no concern of the executor.

    SerialExecutor  in this process, one call after another (``jobs=0``): no hard time
                    limit, a crash ends the run (for debugging and small tests)
    PoolExecutor    ``jobs`` worker processes on this machine (pebble's ProcessPool)
    RayExecutor     actors on a Ray cluster: a local one started on demand, or a running one
                    joined at an address (``ray`` is imported only here, when asked for)

Pool and Ray keep the same contract:

* the model goes to each worker once: pool workers receive it when they start; on Ray it is
  put in the object store once (``ray.put``) and each worker (an actor) fetches it once;
* at most ``slots`` calls are in flight (one per worker), so a call starts when it is sent;
* a call still running after its hard ``limit`` (seconds) is stopped by killing its worker
  process (pebble counts from the call's start on the worker; Ray from its submission) and
  yields ``failure = "stopped after the hard limit ..."``;
* a worker process that dies while running a call (killed, out of memory, a crash in native
  code) loses only that call: the call runs once more on a fresh worker, and if that worker
  dies too it yields ``failure = "worker process died twice ..."``; every other call goes on;
* ``cancel(ids)`` drops calls not yet started and stops running ones (their workers killed);
  cancelled calls yield nothing;
* an exception raised by ``fn`` itself (a bug, not a verdict) is raised by ``run``.

On Ray, a call whose ``files_arg`` names an output folder argument writes into a temporary
folder on its node instead; the files travel back with the result and are written (atomically)
under the real folder on this machine, with the paths in the result rewritten to match, so
the nodes need no shared file system.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import tempfile
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Hashable, Iterable, Iterator

RETRIES = 1  # a call whose worker died runs once more before it is given up


@dataclass
class Call:
    """One unit of work: ``fn(model, *args)``, a picklable module-level function."""

    id: Hashable
    fn: Callable[..., Any]
    args: tuple = ()
    limit: float | None = None  # hard limit in seconds (None: none)
    files_arg: int | None = None  # index into args of an output folder fn writes files into


@dataclass
class Outcome:
    call: Call
    value: Any = None  # fn's return value (None on failure)
    failure: str | None = None  # why there is no value
    seconds: float = 0.0  # from the call's (last) submission to its outcome, on this machine's clock
    started: float = field(default=0.0, repr=False)  # time.perf_counter() at that submission


class Executor:
    """Runs calls of one model (see the module docstring); a context manager.  ``cores``: the
    cores one call may use (``cores_per_call``)."""

    name = "executor"
    slots = 1
    cores: int | None = None

    def run(self, calls: Iterable[Call]) -> Iterator[Outcome]:
        raise NotImplementedError

    def cancel(self, ids: Iterable[Hashable]) -> None:
        """Drop these calls: pending ones never start, running ones are stopped."""

    def close(self) -> None:
        """Release the workers."""

    def __enter__(self) -> "Executor":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


class SerialExecutor(Executor):
    """Every call in this process, in order."""

    name = "serial"

    def __init__(self, model: Any) -> None:
        self.model = model
        self._cancelled: set = set()

    def run(self, calls: Iterable[Call]) -> Iterator[Outcome]:
        self._cancelled = set()
        for call in calls:
            if call.id in self._cancelled:
                continue
            t0 = time.perf_counter()
            value = call.fn(self.model, *call.args)
            yield Outcome(call, value, None, time.perf_counter() - t0, t0)

    def cancel(self, ids: Iterable[Hashable]) -> None:
        self._cancelled.update(ids)


class _Workers(Executor):
    """The loop shared by the pool and Ray: at most ``slots`` calls in flight, one retry of a
    call whose worker died.  A subclass sends a call (``_submit``), waits for some to finish
    (``_wait``: ``(handle, kind, value)`` with kind ok / died / timeout, ``value`` the result,
    the reason, or the limit) and stops one (``_stop``)."""

    def __init__(self) -> None:
        self._pending: deque[tuple[Call, int]] = deque()
        self._running: dict[Any, tuple[Call, int, float]] = {}

    def run(self, calls: Iterable[Call]) -> Iterator[Outcome]:
        self._pending.extend((c, 0) for c in calls)
        try:
            while self._pending or self._running:
                while self._pending and len(self._running) < self.slots:
                    call, attempt = self._pending.popleft()
                    self._running[self._submit(call)] = (call, attempt, time.perf_counter())
                for handle, kind, value in self._wait(list(self._running)):
                    if handle not in self._running:  # cancelled while an earlier outcome was handled
                        continue
                    call, attempt, t0 = self._running.pop(handle)
                    if kind == "died" and attempt < RETRIES:
                        self._pending.appendleft((call, attempt + 1))
                        continue
                    yield Outcome(call, value if kind == "ok" else None, _failure(kind, value),
                                  time.perf_counter() - t0, t0)
        finally:  # a run left early (an exception, or its consumer stopped) takes its calls along
            self._pending.clear()
            for handle in list(self._running):
                self._stop(handle)
            self._running.clear()
            self._release()

    def cancel(self, ids: Iterable[Hashable]) -> None:
        ids = set(ids)
        self._pending = deque(p for p in self._pending if p[0].id not in ids)
        for handle, (call, _, _) in list(self._running.items()):
            if call.id in ids:
                del self._running[handle]
                self._stop(handle)

    def _submit(self, call: Call) -> Any:
        raise NotImplementedError

    def _wait(self, handles: list) -> list[tuple[Any, str, Any]]:
        raise NotImplementedError

    def _stop(self, handle: Any) -> None:
        raise NotImplementedError

    def _release(self) -> None:
        """Give back what idle workers hold when a run ends (nothing here)."""


def _failure(kind: str, value: Any) -> str | None:
    """The reason a call has no result (None if it has one)."""
    if kind == "died":
        return f"worker process died twice ({value}); the query was retried once"
    if kind == "timeout":
        return f"stopped after the hard limit of {value:g} s (worker process killed)"
    return None


# ---------------------------------------------------------------------- local pool
_MODEL: dict[str, Any] = {}  # in a pool worker: the model; on a Ray worker: models by object id


def _prepare_worker(cores: int | None) -> None:
    """Set up a worker process: its heap bounded (``heap.bound_heap``), and at most ``cores``
    threads for numba's parallel kernels and BLAS: workers share the machine's cores, and a
    worker running both at full width beside another oversubscribes them (measured: 2 pool
    workers on 2 cores ran 1.04x one worker)."""
    from .heap import bound_heap

    bound_heap()
    if cores:
        import numba
        from threadpoolctl import threadpool_limits

        numba.set_num_threads(max(1, min(int(cores), numba.config.NUMBA_NUM_THREADS)))
        threadpool_limits(int(cores))


def _pool_init(model: Any, cores: int | None = None) -> None:
    """A pool worker: the model, and its share of the cores (``_prepare_worker``)."""
    _MODEL["pool"] = model
    _prepare_worker(cores)


def _pool_call(fn: Callable[..., Any], args: tuple) -> Any:
    return fn(_MODEL["pool"], *args)


def _exit_reason(code: int | None) -> str:
    return f"killed by signal {-code}" if code is not None and code < 0 else f"exit code {code}"


class PoolExecutor(_Workers):
    """``jobs`` worker processes on this machine (spawned, each with its own copy of the model),
    each using ``cores`` cores (default: an equal share, ``cores_per_call``)."""

    name = "pool"

    def __init__(self, model: Any, jobs: int, cores: int | None = None) -> None:
        from pebble import ProcessPool

        super().__init__()
        self.slots = max(1, int(jobs))
        self.cores = cores or cores_per_call(self.slots)
        self._pool = ProcessPool(max_workers=self.slots, initializer=_pool_init, initargs=(model, self.cores),
                                 context=mp.get_context("spawn"))

    def _submit(self, call: Call) -> Any:
        return self._pool.schedule(_pool_call, args=(call.fn, call.args), timeout=call.limit)

    def _wait(self, handles: list) -> list[tuple[Any, str, Any]]:
        from concurrent import futures

        from pebble import ProcessExpired

        done, _ = futures.wait(handles, return_when=futures.FIRST_COMPLETED)
        out = []
        for f in done:
            try:
                out.append((f, "ok", f.result()))
            except ProcessExpired as exc:
                out.append((f, "died", _exit_reason(exc.exitcode)))
            except futures.TimeoutError:
                out.append((f, "timeout", self._running[f][0].limit))
        return out

    def _stop(self, handle: Any) -> None:
        handle.cancel()  # pebble stops the worker running it

    def close(self) -> None:
        self._pool.stop()
        self._pool.join()


# ---------------------------------------------------------------------- Ray
def _run_call(model: Any, fn: Callable[..., Any], args: tuple, files_arg: int | None) -> tuple:
    """``fn(model, *args)`` on a Ray worker; files written into the output folder argument
    come back as ``{relative path: bytes}`` with the temporary folder's name."""
    if files_arg is None or args[files_arg] is None:
        return fn(model, *args), {}, None
    tmp = tempfile.mkdtemp(prefix="bnnlogic-")
    try:
        value = fn(model, *args[:files_arg], tmp, *args[files_arg + 1:])
        files = {str(p.relative_to(tmp)): p.read_bytes() for p in Path(tmp).rglob("*") if p.is_file()}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return value, files, tmp


class _RayWorker:
    """One slot on Ray, an actor holding one CPU: it fetches the model from the object store
    once (``model_box`` holds its reference unresolved), keeps numba and BLAS to its CPU, and
    runs calls one at a time."""

    def __init__(self, model_box: list) -> None:
        import ray

        self.model = ray.get(model_box[0])
        _prepare_worker(RayExecutor.cores)

    def call(self, fn: Callable[..., Any], args: tuple, files_arg: int | None) -> tuple:
        return _run_call(self.model, fn, args, files_arg)


def _rebase(value: Any, old: str, new: str) -> Any:
    """``value`` with every string that starts with the folder ``old`` moved under ``new``."""
    if isinstance(value, str) and (value == old or value.startswith(old + os.sep)):
        return new + value[len(old):]
    if isinstance(value, dict):
        return {k: _rebase(v, old, new) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_rebase(v, old, new) for v in value)
    return value


class RayExecutor(_Workers):
    """Calls on Ray actors, one per slot: joins the cluster at ``address``, or an already
    initialised Ray, or starts a local one with ``jobs`` CPUs (all of this machine's by default).
    ``jobs`` also caps the calls in flight (default: the cluster's CPUs).  The actors of a
    ``run`` end with it (each holds a CPU another executor may need).  A call is stopped by
    killing its actor (``ray.kill``), which a fresh actor replaces, never by ``ray.cancel``:
    Ray 2.60's driver aborts the whole process (a failed RAY_CHECK "Tried to complete task that
    was not pending") when a force-cancel meets a task's lease or completion.  A Ray this
    executor started is shut down by ``close``."""

    name = "ray"
    cores = 1  # each actor holds one CPU

    def __init__(self, model: Any, address: str | None = None, jobs: int | None = None) -> None:
        from .errors import UserError

        try:
            import ray
        except ImportError:
            raise UserError("--ray needs Ray: pip install 'bnnlogic[ray]' (or pip install ray)") from None
        super().__init__()
        self._ray = ray
        self._started = not ray.is_initialized()
        if self._started:
            opts = dict(logging_level="WARNING", log_to_driver=False)
            try:
                if address:
                    ray.init(address=address, **opts)
                else:
                    ray.init(num_cpus=jobs, include_dashboard=False, **opts)
            except (ConnectionError, ValueError, RuntimeError, ray.exceptions.RayError) as exc:
                where = f"the Ray cluster at {address}" if address else "a local Ray"
                first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise UserError(f"cannot start or join {where} ({first}); check the address (`ray status` on the "
                                f"head node prints it) and, with token authentication, RAY_AUTH_MODE=token and the "
                                f"head's token on this machine (docs/ray.md)") from None
        self.slots = int(jobs) if jobs else max(1, int(ray.cluster_resources().get("CPU", 1)))
        self._model = [ray.put(model)]  # the one copy in the object store, shared by every actor
        self._actor = ray.remote(num_cpus=1, max_restarts=0, max_task_retries=0)(_RayWorker)
        self._idle: list = []  # actors with no call
        self._busy: dict[Any, Any] = {}  # call's object ref -> its actor
        self._deadline: dict[Any, tuple[float, float] | None] = {}
        self._files: dict[Any, str] = {}

    def _submit(self, call: Call) -> Any:
        actor = self._idle.pop() if self._idle else self._actor.remote(self._model)
        ref = actor.call.remote(call.fn, call.args, call.files_arg)
        self._busy[ref] = actor
        self._deadline[ref] = None if call.limit is None else (time.perf_counter() + call.limit, call.limit)
        if call.files_arg is not None and call.args[call.files_arg] is not None:
            self._files[ref] = str(call.args[call.files_arg])
        return ref

    def _wait(self, handles: list) -> list[tuple[Any, str, Any]]:
        from ray import exceptions as rx

        ray = self._ray
        ends = [d[0] for h in handles if (d := self._deadline.get(h)) is not None]
        timeout = None if not ends else max(0.0, min(ends) - time.perf_counter())
        ready, _ = ray.wait(handles, num_returns=1, timeout=timeout)
        if ready:
            ready, _ = ray.wait(handles, num_returns=len(handles), timeout=0)
        out = []
        for ref in ready:
            self._deadline.pop(ref, None)
            actor = self._busy.pop(ref, None)
            try:
                value, files, tmp = ray.get(ref)
            except (rx.RayActorError, rx.WorkerCrashedError, rx.NodeDiedError, rx.OutOfMemoryError,
                    rx.LocalRayletDiedError, rx.ObjectLostError) as exc:
                self._files.pop(ref, None)
                out.append((ref, "died", type(exc).__name__))
                continue
            except BaseException:
                self._idle.append(actor)  # the call raised; its actor lives on
                raise
            self._idle.append(actor)
            out.append((ref, "ok", self._land(ref, value, files, tmp)))
        now = time.perf_counter()
        for ref in set(handles) - set(ready):
            d = self._deadline.get(ref)
            if d is not None and now >= d[0]:
                self._stop(ref)
                out.append((ref, "timeout", d[1]))
        return out

    def _land(self, ref: Any, value: Any, files: dict[str, bytes], tmp: str | None) -> Any:
        """Write the files a call made under its real output folder; rebase its paths."""
        from .fileio import atomic_open

        folder = self._files.pop(ref, None)
        if tmp is None or folder is None:
            return value
        for rel, data in files.items():
            with atomic_open(Path(folder) / rel, "wb") as fh:
                fh.write(data)
        return _rebase(value, tmp, folder)

    def _stop(self, handle: Any) -> None:
        self._deadline.pop(handle, None)
        self._files.pop(handle, None)
        actor = self._busy.pop(handle, None)
        if actor is not None:
            self._ray.kill(actor, no_restart=True)

    def _release(self) -> None:
        """Kill the idle actors: each holds a CPU, which another executor's calls may need."""
        for actor in self._idle:
            self._ray.kill(actor, no_restart=True)
        self._idle.clear()

    def close(self) -> None:
        self._release()
        if self._started:
            self._ray.shutdown()


def cores_per_call(jobs: int | None = None, ray: bool = False, ray_address: str | None = None) -> int | None:
    """The cores one call of ``make_executor(model, jobs, ray, ray_address)`` may use (a
    verify query races its engines on them): None (every core) in this process, the one CPU a
    task holds on Ray, else an equal share of this machine, ``cpu_count // jobs`` (at least 1)."""
    if ray or ray_address:
        return 1
    if jobs == 0:
        return None
    return max(1, (os.cpu_count() or 1) // max(1, jobs or 1))


def make_executor(model: Any, jobs: int | None = None, ray: bool = False,
                  ray_address: str | None = None, cores: int | None = None) -> Executor:
    """Ray if ``ray`` or ``ray_address`` (``jobs``: local CPUs / calls in flight, default all),
    else ``jobs`` local worker processes (default 1; ``cores`` each, default an equal share),
    or this process if ``jobs == 0``."""
    from .errors import UserError

    if jobs is not None and jobs < 0:
        raise UserError(f"--jobs {jobs}: give 0 (this process) or a number of worker processes")
    if ray or ray_address:
        return RayExecutor(model, ray_address, jobs or None)
    if jobs == 0:
        return SerialExecutor(model)
    return PoolExecutor(model, 1 if jobs is None else jobs, cores)
