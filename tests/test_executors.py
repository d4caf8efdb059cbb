"""Executors: the same outcomes in this process, on the local pool and on Ray; a worker that
dies loses only its call (retried once), hard limits stop calls, cancellation, the model
reaches each worker once, files come back from Ray workers."""
import os
import signal
import time
from pathlib import Path

import pytest

from bnnlogic.executors import Call, PoolExecutor, RayExecutor, SerialExecutor
from bnnlogic.model import Model
from tests.helpers import loaded_modules, random_ir

MODEL = Model(random_ir(0))


# calls: module-level, so that pool and Ray workers import them by name
def double(model, i):
    return {"i": i, "twice": 2 * i, "classes": model.ir.n_classes}


def where(model, i):
    return os.getpid(), id(model)


def die_once(model, marker, i):
    """Kills its own worker the first time (no marker file yet), answers the second time."""
    if not os.path.exists(marker):
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    return {"i": i}


def die(model, i):
    os.kill(os.getpid(), signal.SIGKILL)


def sleep(model, seconds):
    time.sleep(seconds)
    return seconds


def write_file(model, i, folder):
    path = Path(folder) / "sub" / f"f{i}.txt"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(str(i))
    return {"i": i, "path": str(path)}


def fail(model, i):
    raise ValueError(f"boom {i}")


def make(kind):
    if kind == "serial":
        return SerialExecutor(MODEL)
    if kind == "pool":
        return PoolExecutor(MODEL, 2)
    return RayExecutor(MODEL, jobs=2)


@pytest.fixture(scope="module", params=["pool", "ray"])
def workers(request):
    """One pool / one Ray executor for the module's tests (each leaves it idle)."""
    if request.param == "ray":
        request.getfixturevalue("ray_session")
    with make(request.param) as ex:
        yield ex


def test_outcomes_agree_across_executors(ray_session):
    calls = [Call(i, double, (i,)) for i in range(12)]
    got = {}
    for kind in ("serial", "pool", "ray"):
        with make(kind) as ex:
            outs = list(ex.run(calls))
        assert all(o.failure is None for o in outs) and sorted(o.call.id for o in outs) == list(range(12))
        got[kind] = sorted((o.value["i"], o.value["twice"], o.value["classes"]) for o in outs)
    assert got["serial"] == got["pool"] == got["ray"] == [(i, 2 * i, 3) for i in range(12)]


def test_a_dead_worker_loses_only_its_call(workers, tmp_path):
    """A worker killed mid-call: the call runs once more; killed twice: a failure with the
    reason; every other call answers."""
    calls = ([Call("once", die_once, (str(tmp_path / "marker"), 7)), Call("always", die, (0,))]
             + [Call(i, double, (i,)) for i in range(6)])
    outs = {o.call.id: o for o in workers.run(calls)}
    assert set(outs) == {"once", "always", *range(6)}
    assert outs["once"].failure is None and outs["once"].value == {"i": 7}
    assert outs["always"].value is None
    assert "died twice" in outs["always"].failure
    assert "signal 9" in outs["always"].failure or "ActorDiedError" in outs["always"].failure
    assert all(outs[i].value["twice"] == 2 * i for i in range(6))


def test_hard_limit_stops_a_call(workers):
    t0 = time.perf_counter()
    outs = {o.call.id: o for o in workers.run([Call("slow", sleep, (60,), limit=1.0), Call("quick", sleep, (0,))])}
    assert outs["slow"].value is None and "hard limit of 1 s" in outs["slow"].failure
    assert outs["quick"].value == 0 and outs["quick"].failure is None
    assert time.perf_counter() - t0 < 30


def test_cancel_drops_pending_and_stops_running_calls(workers):
    calls = [Call("first", sleep, (0,)), Call("s1", sleep, (60,)), Call("s2", sleep, (60,)),
             Call("p", sleep, (60,)), Call("last", double, (1,))]
    t0, seen = time.perf_counter(), []
    for o in workers.run(calls):
        seen.append(o.call.id)
        if o.call.id == "first":
            workers.cancel(["s1", "s2", "p"])
    assert seen == ["first", "last"] and time.perf_counter() - t0 < 30


def test_the_model_reaches_each_worker_once(workers):
    """Every call on one worker process sees the same model object (not one per call)."""
    pairs = {o.value for o in workers.run([Call(i, where, (i,)) for i in range(30)])}
    pids = {p for p, _ in pairs}
    assert len(pairs) == len(pids) and os.getpid() not in pids


def test_exceptions_in_calls_are_raised(workers):
    with pytest.raises(ValueError, match="boom 3"):
        list(workers.run([Call(3, fail, (3,))]))


def test_files_written_on_ray_workers_land_in_the_real_folder(ray_session, tmp_path):
    with make("ray") as ex:
        outs = [o.value for o in ex.run([Call(i, write_file, (i, str(tmp_path / "out")), files_arg=1)
                                         for i in range(3)])]
    for v in outs:
        assert v["path"] == str(tmp_path / "out" / "sub" / f"f{v['i']}.txt")
        assert Path(v["path"]).read_text() == str(v["i"])


def test_ray_is_imported_only_when_asked_for():
    assert loaded_modules("import bnnlogic.batch, bnnlogic.batch_queries, bnnlogic.split, bnnlogic.report\n"
                          "from bnnlogic.cli import build_parser; build_parser()", ["ray", "pebble"]) == []


def test_a_pool_gives_each_call_the_cores_asked_for():
    """``cores`` overrides the equal share (a benchmark gives 1 and 2 workers the same cores)."""
    m = Model(random_ir(0, n_features=4, hi=3, hidden=(3,), n_classes=2))
    with PoolExecutor(m, 1, cores=1) as ex:
        assert ex.cores == 1
    with PoolExecutor(m, 1) as ex:
        assert ex.cores == max(1, os.cpu_count() or 1)
