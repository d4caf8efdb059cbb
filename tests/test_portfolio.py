"""The racing portfolio: every engine and schedule agrees with brute force; losers are cancelled;
the deadline holds."""
from __future__ import annotations

import threading
import time

import numpy as np
import pytest

from bnnlogic import Model, portfolio, verification
from bnnlogic.batch import run_query
from bnnlogic.logic import propagate, region
from bnnlogic.portfolio import Race
from bnnlogic.verification import verify_region
from tests.helpers import blas_threads, box_inputs, random_ir

SINGLE = {e: (((e, None),),) for e in ("exact", "cpsat", "cnf", "bab")}


def question(seed: int, eps: int = 2, classes: int = 3):
    """A tiny model, an L-inf box around a random input, its label and the bad classes."""
    m = Model(random_ir(seed, n_features=5, hi=5, hidden=(7, 5), levels=2, n_classes=classes))
    x = np.random.default_rng(seed).integers(0, 6, 5)
    y = int(m.predict(x)[0])
    R = region.linf(m.ir.coding, x, eps)
    return m, R, y, [c for c in range(classes) if c != y]


def truth(m, R, bad) -> bool:
    """Brute force: some input of R is predicted in bad."""
    return bool(np.isin(m.ir.predict(box_inputs(R.lo, R.hi)), bad).any())


@pytest.mark.parametrize("seed", range(10))
@pytest.mark.parametrize("schedule", ["exact", "cpsat", "cnf", "bab", "one-core", "two-core"])
def test_every_engine_and_schedule_agrees_with_brute_force(seed, schedule):
    m, R, y, bad = question(seed)
    lanes = SINGLE.get(schedule) or portfolio.SCHEDULES[1 if schedule == "one-core" else 2]
    race = Race(m, R, bad, propagate(m.ir, R.lo, R.hi))
    out = race.run(30, schedule=lanes)
    race.close()
    assert out.status == ("sat" if truth(m, R, bad) else "unsat"), (seed, schedule, out)
    if out.status == "sat":
        assert R.contains(out.witness[None])[0] and int(m.predict(out.witness)[0]) in bad
        assert out.engine in {e for lane in lanes for e, _ in lane}


#: seeds of ``question(seed, 3, 5)`` whose boxes the bounds leave several bad classes: some
#: reached (0, 4, 18, 27, 28, 32, 35, 37, 45, 49), none (10, 42, 48, 50, 56)
SEVERAL_CLASSES = [0, 4, 10, 18, 27, 28, 32, 35, 37, 42, 45, 48, 49, 50, 56]


@pytest.mark.parametrize("seed", SEVERAL_CLASSES)
def test_exact_lanes_share_the_bad_classes_and_agree_with_brute_force(seed):
    """Two Exact lanes refute the bad classes one at a time between them: the verdict is brute
    force's, a witness is in R and predicted bad, "unsat" means every class that the bounds
    left possible was refuted, and no class that some input of R gets is ever refuted."""
    m, R, y, bad = question(seed, eps=3, classes=5)
    race = Race(m, R, bad, propagate(m.ir, R.lo, R.hi))
    out = race.run(30, schedule=((("exact", None),), (("exact", None),)))
    lits = race._class_literals()
    race.close()
    reached = set(m.ir.predict(box_inputs(R.lo, R.hi)).tolist())
    assert len(lits) > 1 and out.status == ("sat" if reached & set(bad) else "unsat"), (seed, out)
    if out.status == "sat":
        assert R.contains(out.witness[None])[0] and int(m.predict(out.witness)[0]) in bad
    else:
        assert race.refuted == set(lits)
    assert not race.refuted & reached


@pytest.mark.parametrize("seed", SEVERAL_CLASSES)
def test_one_lane_refutes_the_classes_in_turn_until_one_is_reached(seed):
    """One lane alone: a witness of a reached class, or every class refuted; the classes it
    refuted on the way are never predicted in R."""
    m, R, y, bad = question(seed, eps=3, classes=5)
    race = Race(m, R, bad, propagate(m.ir, R.lo, R.hi))
    status, x = race.solve_by_class(race.query("exact"), 30, threading.Event())
    race.close()
    reached = set(m.ir.predict(box_inputs(R.lo, R.hi)).tolist()) & set(bad)
    assert status == ("sat" if reached else "unsat")
    if reached:
        assert int(m.predict(x)[0]) in reached and R.contains(x[None])[0]
    assert not race.refuted & reached


def test_an_unknown_race_lists_the_classes_still_open(monkeypatch):
    """A race that runs out of time says which bad classes neither bounds nor Exact excluded."""
    def first_class_only(self, q, seconds, stop, lane=0):
        self.refuted.add(min(self._class_literals()))
        return "unknown", None

    monkeypatch.setattr(verification, "SWEEP_FIRST", -1)
    monkeypatch.setitem(portfolio.SCHEDULES, 1, ((("exact", None),),))
    monkeypatch.setattr(Race, "solve_by_class", first_class_only)
    m, R, y, bad = question(10, eps=3, classes=5)  # bounds leave classes 1 and 2, neither reached
    r = verify_region(m, R, [y], y, timeout=5, cores=1)
    assert r.status == "unknown" and r.stats["classes_open"] == [2]
    rec = run_query(m, 0, R.center, y, 3, "auto", 5, "linf", None, cores=1)  # a batch's line
    assert rec["status"] == "unknown" and rec["classes_open"] == [2]


def test_an_unknown_race_prices_the_box_for_branch_and_bound(monkeypatch):
    """An unknown says what branch and bound alone would need: with none of the box decided,
    the price ``bab_fits`` puts on its cells, on the query's cores; in the CLI's words too."""
    from bnnlogic.cli.verify import _estimate_text
    from bnnlogic.logic.sweep import n_cells

    monkeypatch.setattr(verification, "SWEEP_FIRST", -1)
    monkeypatch.setitem(portfolio.SCHEDULES, 2, ((("wait", None),), (("wait", None),)))
    m, R, y, bad = question(10, eps=3, classes=5)
    r = verify_region(m, R, [y], y, timeout=0.2, cores=2)
    log_cells = n_cells(m.ir.coding.thresholds, R.lo, R.hi)[0]
    price = 2.0 ** log_cells * portfolio.DENSE_CELL_S / (portfolio.BAB_SLACK * 2)
    assert r.status == "unknown" and r.stats["bab_decided"] == 0
    assert r.stats["log2_cells"] == round(log_cells, 2) and r.stats["bab_estimate_s"] == round(price, 1)
    r.stats.update(log2_cells=39.0, bab_estimate_s=1380.0)
    assert _estimate_text(r.stats).startswith("2^39 threshold cells: branch and bound alone would need at least "
                                              "about 23 min by its price per cell")
    rec = run_query(m, 0, R.center, y, 3, "auto", 0.2, "linf", None, cores=2)
    assert rec["status"] == "unknown" and rec["bab_estimate_s"] == round(price, 1)


def test_branch_and_bound_is_priced_at_the_pace_it_kept():
    """Once branch and bound decided a share of the box, the estimate is its time over that
    share; an L0 region, which it does not decide, has none."""
    m, R, y, bad = question(3)
    race = Race(m, R, bad, propagate(m.ir, R.lo, R.hi))
    race.bab_progress.add(np.array([race.log_cells - 2.0]))  # a quarter of the cells
    race.bab_progress._busy = 3.0
    assert race.bab_estimate(cores=2) == pytest.approx(12.0)
    assert Race(m, region.l0(m.ir.coding, R.center, 2), bad, None).bab_estimate(cores=2) is None


@pytest.mark.parametrize("seed", range(6))
def test_the_attack_alone_never_proves(seed):
    m, R, y, bad = question(seed, eps=3)
    out = Race(m, R, bad, propagate(m.ir, R.lo, R.hi)).run(5, schedule=((("attack", None),),))
    assert out.status in ("sat", "unknown")
    if out.status == "sat":
        assert truth(m, R, bad) and int(m.predict(out.witness)[0]) in bad


def test_each_attack_slice_of_a_race_takes_the_next_seed(monkeypatch):
    """A race's attack slices search with seeds seed, seed + 1, ... (the attack is deterministic
    given its seed: a second slice on the first one's seed would replay its search)."""
    import bnnlogic.attack

    seeds = []
    monkeypatch.setattr(bnnlogic.attack, "attack", lambda *a, seed, **kw: seeds.append(seed))
    m, R, y, bad = question(0)
    race = Race(m, R, bad, propagate(m.ir, R.lo, R.hi), seed=7)
    out = race.run(5, schedule=((("attack", 0.01), ("wait", 0.01), ("attack", 0.01)), (("attack", 0.01),)))
    assert out.status == "unknown" and sorted(seeds) == [7, 8, 9]


@pytest.mark.parametrize("log_cells, hunts", [(portfolio.HUNT_MIN_LOG_CELLS + 1, True),
                                               (portfolio.HUNT_MIN_LOG_CELLS, False)])
def test_a_hunt_attacks_only_a_box_too_big_for_a_late_proof_and_reads_as_the_attack(log_cells, hunts):
    """``("hunt", None)``: on a box of more than 2^HUNT_MIN_LOG_CELLS cells the attack runs to
    the deadline (its hit is the attack's); on a smaller one the lane skips it."""
    m, R, y, bad = question(0)
    race, log = Race(m, R, bad, propagate(m.ir, R.lo, R.hi)), []
    race.log_cells = log_cells

    def run_engine(engine, seconds, stop, threads=1, lane=0):
        log.append((engine, seconds))
        return ("sat", R.lo, 0) if engine == "hunt" else ("unknown", None, 0)

    race.run_engine = run_engine
    out = race.run(5, schedule=((("hunt", None), ("exact", None)),))
    if hunts:
        assert out.status == "sat" and out.engine == "attack" and set(out.seconds) == {"attack"}
        assert log[0][0] == "hunt" and log[0][1] == pytest.approx(5, abs=0.1)
    else:
        assert out.status == "unknown" and [e for e, _ in log] == ["exact"]


def test_an_l0_region_is_never_hunted():
    m, R, y, bad = question(0)
    L = region.l0(m.ir.coding, R.lo, 2)
    race = Race(m, L, bad, propagate(m.ir, L.lo, L.hi))
    assert race.log_cells == float("inf") and not race.applies("hunt", None)


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("cores", [1, 2])
def test_verify_races_when_the_box_is_not_swept_first(monkeypatch, seed, cores):
    """With the small-box sweep turned off every undecided query goes through the race: the
    verdict is brute force's, the backend names the engine that decided, stats say who ran."""
    monkeypatch.setattr(verification, "SWEEP_FIRST", -1)
    m, R, y, bad = question(seed)
    r = verify_region(m, R, [y], y, timeout=30, cores=cores)
    assert r.status == ("counterexample" if truth(m, R, bad) else "robust")
    if r.backend != "bounds":
        assert r.backend in ("exact", "cpsat", "bab", "attack", portfolio.CNF_BACKEND)
        assert set(r.stats["engines"]) <= {"exact", "cpsat", "cnf", "bab", "attack"}
    if r.status == "counterexample":
        assert r.found_by == {"attack": "attack", "bab": "bab"}.get(r.backend, "solver")


def _stuck(race: Race, log: list):
    """An engine that never decides but notices the cancel (records when)."""

    def run_engine(engine, seconds, stop, threads=1, lane=0):
        if engine == "exact":
            time.sleep(0.2)
            return "unsat", None, 0
        end = time.perf_counter() + (seconds or 1e9)
        while not stop.is_set() and time.perf_counter() < end:
            time.sleep(0.01)
        log.append((engine, stop.is_set()))
        return "unknown", None, 0

    race.run_engine = run_engine


def test_the_first_answer_cancels_the_other_lanes():
    m, R, y, bad = question(0)
    race, log = Race(m, R, bad, propagate(m.ir, R.lo, R.hi)), []
    _stuck(race, log)
    t0 = time.perf_counter()
    out = race.run(30, schedule=((("exact", None),), (("cpsat", None),)))
    assert out.status == "unsat" and out.engine == "exact"
    assert time.perf_counter() - t0 < 2
    assert log == [("cpsat", True)]


def test_an_attack_step_stops_when_another_lane_decides():
    """A long attack step on a box it cannot break ends with the race (it used to run to its own
    time limit: the race waited its one-second grace and left the lane running in the
    background, 1.1 s of 1.2 s on some queries of the EEV-recipe net)."""
    m = Model(random_ir(13, n_features=8, hi=5, hidden=(40, 20), levels=2, n_classes=3))
    x = np.random.default_rng(13).integers(0, 6, 8)
    R, y = region.linf(m.ir.coding, x, 1), int(m.predict(x)[0])
    bad = [c for c in range(3) if c != y]
    assert not truth(m, R, bad)  # robust, and too many live neurons for the attack to see it at once
    race = Race(m, R, bad, propagate(m.ir, R.lo, R.hi))
    t0 = time.perf_counter()
    out = race.run(30, schedule=((("wait", 0.05), ("bab", None)), (("attack", 30.0),)))
    assert out.status == "unsat" and out.engine == "bab" and time.perf_counter() - t0 < 0.5
    assert not any(t.name.startswith("bnnlogic-lane") and t.is_alive() for t in threading.enumerate())


def test_the_deadline_holds_when_nobody_decides():
    m, R, y, bad = question(0)
    race, log = Race(m, R, bad, propagate(m.ir, R.lo, R.hi)), []
    _stuck(race, log)
    t0 = time.perf_counter()
    out = race.run(0.5, schedule=((("cpsat", None),), (("bab", None), ("cnf", None))))
    assert out.status == "unknown" and out.engine is None
    assert time.perf_counter() - t0 < 0.5 + 0.3
    # each lane ends at the deadline (its own time limit or the race's cancel, whichever it sees
    # first: a matter of thread timing), and no lane starts a step after it
    assert sorted(engine for engine, _ in log) == ["bab", "cpsat"]


def test_races_run_blas_on_one_thread_and_restore_it():
    """OpenBLAS deadlocks when a lane forks a solver server while another lane is inside a
    multi-threaded product, so every race (``Race.run``, ``race_calls``, nested or on several
    threads at once) holds BLAS to one thread, and the last one out restores the setting."""
    from threadpoolctl import threadpool_limits

    with threadpool_limits(2, user_api="blas"):
        before = blas_threads()
        assert before and max(before) == 2
        seen = []

        def look(stop):
            seen.append(blas_threads())
            return "unknown", None

        def nested(stop):
            portfolio.race_calls([look, look])
            seen.append(blas_threads())  # the inner race has ended, the outer one has not
            return "unknown", None

        assert portfolio.race_calls([nested, look, look]) == ("unknown", None, None)
        m, R, y, bad = question(0)
        race = Race(m, R, bad, propagate(m.ir, R.lo, R.hi))
        race.run_engine = lambda engine, seconds, stop, threads=1, lane=0: (seen.append(blas_threads()), ("unknown", None, 0))[1]
        race.run(5, schedule=((("exact", None),), (("cpsat", None),)))
        assert len(seen) == 7 and all(max(t) == 1 for t in seen)
        assert blas_threads() == before


def test_an_engine_error_reaches_the_caller():
    m, R, y, bad = question(0)
    race = Race(m, R, bad, propagate(m.ir, R.lo, R.hi))

    def boom(engine, seconds, stop, threads=1, lane=0):
        raise RuntimeError("engine bug")

    race.run_engine = boom
    with pytest.raises(RuntimeError, match="engine bug"):
        race.run(5, schedule=((("exact", None),),))


def test_interrupt_stops_a_running_exact_solve():
    """``Query.interrupt`` from another thread ends an Exact solve within a slice."""
    from bnnlogic.logic import Query
    from bnnlogic.logic.backends import EXACT_SLICE

    m, R, y, bad = question(1)
    q = Query(m.ir, R, [[(0, bad)]], "exact")
    q.interrupt()  # before the backend exists: the next solve returns at once
    t0 = time.perf_counter()
    assert q.solve(timeout=30).status == "unknown"
    assert time.perf_counter() - t0 < EXACT_SLICE + 0.5
    timer = threading.Timer(0.05, q.interrupt)
    timer.start()
    q.solve(timeout=30)  # tiny: may finish before the interrupt; must not hang either way
    timer.join()


@pytest.mark.parametrize("seed", range(6))
def test_branch_and_bound_as_a_named_backend(seed):
    m, R, y, bad = question(seed)
    r = verify_region(m, R, [y], y, backend="bab", use_attack=False)
    assert r.status == ("counterexample" if truth(m, R, bad) else "robust") and r.backend == "bab"


def test_a_misspelt_backend_is_a_user_error_before_any_search():
    from bnnlogic.errors import UserError

    m, R, y, bad = question(0)
    with pytest.raises(UserError, match="unknown backend"):
        verify_region(m, R, [y], y, backend="exakt")


def test_branch_and_bound_runs_where_sweeping_the_box_fits_the_time():
    assert portfolio.bab_fits(20, 1.0) and not portfolio.bab_fits(36, 60.0)
    assert portfolio.bab_fits(30, 60.0) and not portfolio.bab_fits(30, 1.0)
    assert portfolio.bab_fits(portfolio.BAB_MAX_LOG_CELLS, None)
    assert not portfolio.bab_fits(portfolio.BAB_MAX_LOG_CELLS + 1, None)
    # a dense first layer sweeps faster (the block walk): 2^33 cells fit a minute there only
    assert portfolio.bab_fits(33, 60.0, portfolio.DENSE_CELL_S) and not portfolio.bab_fits(33, 60.0)
    # ... and 2^34 on two threads (fashion mlp-small image 82 at eps 5: proved in 44 s on two)
    assert portfolio.bab_fits(34, 60.0, portfolio.DENSE_CELL_S, threads=2)
    assert not portfolio.bab_fits(34, 60.0, portfolio.DENSE_CELL_S)
    assert portfolio.bab_price(34, portfolio.DENSE_CELL_S, 2) == pytest.approx(2 ** 34 * 2e-8 / 8)


def test_a_race_prices_branch_and_bound_on_the_threads_it_gives_it(monkeypatch):
    """Both cores to branch and bound (a lane yields to it): the box fits at half the time it
    needs on one thread; one lane of two gets one thread and not the box."""
    m, R, y, bad = question(10, eps=3, classes=5)
    race = Race(m, R, bad, propagate(m.ir, R.lo, R.hi))
    race.log_cells = np.log2(portfolio.BAB_SLACK / race.cell_s)  # priced 1 s on one thread
    need = portfolio.bab_price(race.log_cells, race.cell_s)
    ran = []
    monkeypatch.setattr(Race, "run_engine", lambda self, engine, *a, **kw: ran.append(engine) or ("unknown", None, 0))
    yielding = ((("yield", None),), (("bab", None),))
    race.run(0.7 * need, cores=2, schedule=yielding)
    race.run(0.7 * need, cores=2, schedule=((("wait", None),), (("bab", None),)))
    assert ran == ["bab", "wait"]


@pytest.mark.parametrize("net, conv", [("dense", False), ("conv", True), ("no hidden layer", False)])
def test_a_race_prices_the_sweep_by_its_first_layer(net, conv):
    """Branch and bound's leaf size and the race's price per cell ask the same question."""
    from bnnlogic.logic.bab import leaf_cells
    from tests.logic.test_query import NETS

    ir = random_ir(0, **NETS.get(net, dict(n_features=4, hi=3, hidden=())))
    m = Model(ir)
    R = region.domain(ir.coding)
    race = Race(m, R, [0], propagate(ir, R.lo, R.hi))
    race.log_cells = 33.0
    assert race.applies("bab", 60.0) == (not conv)
    assert leaf_cells(ir) == (1 << 20 if conv else 1 << 24)


def test_a_one_lane_race_runs_on_the_calling_thread():
    """One lane needs no thread: its engines run on the caller's (no hand-off per query)."""
    m, R, y, bad = question(0)
    race, seen = Race(m, R, bad, propagate(m.ir, R.lo, R.hi)), []

    def run_engine(engine, seconds, stop, threads=1, lane=0):
        seen.append(threading.current_thread())
        return ("unsat", None, 0) if engine == "cpsat" else ("unknown", None, 0)

    race.run_engine = run_engine
    out = race.run(5, schedule=((("bab", 1.0), ("cpsat", None)),))
    assert out.status == "unsat" and out.engine == "cpsat"
    assert seen == [threading.current_thread()] * 2


def test_a_wait_step_leaves_the_cores_to_the_other_lane_and_is_not_an_engine():
    """``("wait", s)`` sleeps until the other lane decides (then the race ends at once) and is
    not reported among the engines that ran."""
    m, R, y, bad = question(0)
    race, log = Race(m, R, bad, propagate(m.ir, R.lo, R.hi)), []
    _stuck(race, log)
    stuck = race.run_engine

    def run_engine(engine, seconds, stop, threads=1, lane=0):
        if engine == "wait":
            return Race.run_engine(race, engine, seconds, stop, threads)
        if engine == "attack":
            return "sat", R.lo.copy(), 0
        return stuck(engine, seconds, stop, threads)

    race.run_engine = run_engine
    t0 = time.perf_counter()
    out = race.run(30, schedule=((("wait", 20.0), ("cpsat", None)), (("attack", None),)))
    assert out.status == "sat" and out.engine == "attack"
    assert time.perf_counter() - t0 < 2 and log == []
    assert "wait" not in out.seconds


@pytest.mark.parametrize("bab_runs", [True, False])
def test_a_yield_step_sleeps_while_branch_and_bound_runs_on_course_and_gives_it_every_core(bab_runs):
    """``("yield", None)``: while branch and bound runs in another lane on course, the yielding
    lane sleeps (its later steps never run if branch and bound decides) and branch and bound got
    every core as threads; where branch and bound does not run (its box too big for the time),
    the lane goes on."""
    m, R, y, bad = question(0)
    race, log = Race(m, R, bad, propagate(m.ir, R.lo, R.hi)), []
    race.applies = lambda engine, seconds, threads=1: engine != "bab" or bab_runs

    def run_engine(engine, seconds, stop, threads=1, lane=0):
        log.append((engine, threads))
        if engine == "wait":
            stop.wait(seconds)
        if engine == "bab":
            stop.wait(0.5)  # still running when the other lane reaches its yield
            return "unsat", None, 0
        return "unknown", None, 0

    race.run_engine = run_engine
    out = race.run(10, cores=2, schedule=((("wait", 0.1), ("exact", 0.1), ("yield", None), ("cpsat", None)),
                                          (("bab", None),)))
    engines = [e for e, _ in log]
    if bab_runs:
        assert out.status == "unsat" and out.engine == "bab"
        assert ("bab", 2) in log and "cpsat" not in engines
    else:
        assert out.status == "unknown" and "bab" not in engines and "cpsat" in engines
    assert "yield" not in engines and "yield" not in out.seconds


def test_branch_and_bound_is_on_course_while_its_projection_fits_the_time_left():
    """Judged only after ``BAB_JUDGE_S`` of search (and ``BAB_PACE_S`` since a mark); then its
    projected remaining time at the pace since the mark, with ``BAB_COURSE_SLACK``, must fit
    the time left."""
    from bnnlogic.logic.bab import Progress

    p = Progress(10.0)
    p._busy = portfolio.BAB_JUDGE_S / 2
    assert portfolio.bab_on_course(p, 1.0)  # too early to judge, even with nothing decided
    p._busy = portfolio.BAB_JUDGE_S
    assert not portfolio.bab_on_course(p, 1e9)  # nothing decided: never ends
    p.add(np.array([9.0]))  # half of the box decided: as long again to go
    assert p.remaining() == pytest.approx(portfolio.BAB_JUDGE_S)
    assert portfolio.bab_on_course(p, portfolio.BAB_COURSE_SLACK * portfolio.BAB_JUDGE_S + 0.01)
    assert not portfolio.bab_on_course(p, portfolio.BAB_COURSE_SLACK * portfolio.BAB_JUDGE_S - 0.01)
    assert portfolio.bab_on_course(p, None)
    mark = p.mark()  # judged at the pace since a mark: not before BAB_PACE_S more seconds
    p._busy += portfolio.BAB_PACE_S / 2
    assert portfolio.bab_on_course(p, 0.0, mark)
    p._busy += portfolio.BAB_PACE_S / 2
    assert not portfolio.bab_on_course(p, 1e9, mark)  # nothing decided since the mark
    p.add(np.array([8.0]))  # a quarter more of the box in BAB_PACE_S: a quarter left, as long to go
    assert p.remaining(mark) == pytest.approx(portfolio.BAB_PACE_S)
    assert portfolio.bab_on_course(p, portfolio.BAB_COURSE_SLACK * portfolio.BAB_PACE_S + 0.01, mark)
    assert not portfolio.bab_on_course(p, portfolio.BAB_COURSE_SLACK * portfolio.BAB_PACE_S - 0.01, mark)


def test_a_yield_step_abandons_branch_and_bound_off_course_and_both_lanes_go_on(monkeypatch):
    """Off course, the yielding lane abandons branch and bound (``bab_abandoned``: the running
    step gives up) and goes on with its next step; branch and bound's lane goes on too."""
    monkeypatch.setattr(portfolio, "bab_on_course", lambda progress, left, mark=None: False)
    m, R, y, bad = question(0)
    race, log = Race(m, R, bad, propagate(m.ir, R.lo, R.hi)), []
    race.applies = lambda engine, seconds, threads=1: True

    def run_engine(engine, seconds, stop, threads=1, lane=0):
        log.append(engine)
        if engine == "bab":
            assert race.bab_abandoned.wait(5)
            return "unknown", None, 0
        if engine == "attack":  # branch and bound's lane, after it gave up
            stop.wait(0.3)  # the yielding lane meanwhile goes on too
            return "sat", R.lo.copy(), 0
        stop.wait(seconds)
        return "unknown", None, 0

    race.run_engine = run_engine
    t0 = time.perf_counter()
    out = race.run(10, cores=2, schedule=((("wait", 0.1), ("yield", None), ("exact", None)),
                                          (("bab", None), ("attack", None))))
    assert out.status == "sat" and out.engine == "attack" and time.perf_counter() - t0 < 2
    assert log.index("bab") < log.index("exact")


def test_an_abandoned_branch_and_bound_gives_up_and_keeps_its_box():
    """Once abandoned, a branch and bound step ends undecided at once, with the whole box left
    open for a later step."""
    m, R, y, bad = question(0)
    race = Race(m, R, bad, propagate(m.ir, R.lo, R.hi))
    race.bab_abandoned.set()
    assert race.run_engine("bab", 10.0, threading.Event(), threads=2)[:2] == ("unknown", None)
    assert len(race._bab_left) == 1 and np.array_equal(race._bab_left[0][0], R.lo)


@pytest.mark.parametrize("seed", range(6))
def test_races_that_abandon_branch_and_bound_agree_with_brute_force(monkeypatch, seed):
    """Branch and bound always off course: the 2-core schedule abandons it at its yield (where
    it is still running), and the answers still agree with brute force."""
    monkeypatch.setattr(portfolio, "bab_on_course", lambda progress, left, mark=None: False)
    m, R, y, bad = question(seed)
    for lanes in (portfolio.SCHEDULES[2], ((("yield", None), ("exact", None)), (("bab", None), ("cpsat", None)))):
        race = Race(m, R, bad, propagate(m.ir, R.lo, R.hi))
        out = race.run(30, schedule=lanes)
        race.close()
        assert out.status == ("sat" if truth(m, R, bad) else "unsat"), (seed, out)


@pytest.mark.parametrize("cores", [1, 2])
def test_verify_gives_the_race_its_cores(monkeypatch, cores):
    """The cores a query may use reach the race (branch and bound's threads come from them)."""
    monkeypatch.setattr(verification, "SWEEP_FIRST", -1)
    got = []
    run = Race.run

    def spy(self, timeout, cores=None, schedule=None, grace=1.0):
        got.append(cores)
        return run(self, timeout, cores, schedule, grace)

    monkeypatch.setattr(Race, "run", spy)
    m, R, y, bad = question(0)  # the bounds alone do not decide it
    verify_region(m, R, [y], y, timeout=30, cores=cores, use_attack=False)
    assert got == [cores]
    verification.verify(m, R.center, eps=2, timeout=30, use_attack=False, cores=cores)
    assert got == [cores, cores]  # the public verify passes them on


def test_a_solver_still_building_when_the_race_ends_does_not_solve(monkeypatch):
    """``race_solvers`` builds a query's backend on its first call; if another racer wins
    meanwhile, ``Query.interrupt`` finds no backend to stop, so the built one must not start
    its search (it ran to its time limit: 50 s of an explanation's 60 s budget)."""
    from bnnlogic.logic import Query

    ir = random_ir(3, n_features=4, hi=3, hidden=(6,))
    x = np.array([1, 2, 0, 3])
    y = int(ir.predict(x[None])[0])
    q = Query(ir, region.linf(ir.coding, x, 1), [[(0, [c for c in range(ir.n_classes) if c != y])]], "cpsat")
    solved = []

    class Slow:  # a backend whose build takes 0.3 s and whose search would take the whole timeout
        stopped = False

        def solve(self, assumptions, timeout):
            if self.stopped:  # as every backend: an interrupt before the solve ends it at once
                return "unknown", None
            solved.append(timeout)
            time.sleep(timeout)
            return "unknown", None

        def interrupt(self):
            self.stopped = True

        def clear_interrupt(self):
            pass

    def build(self):
        time.sleep(0.3)
        return Slow()

    monkeypatch.setattr(type(q).backend, "func", build)  # Query.backend: a cached_property
    t0 = time.monotonic()
    status, value, winner = portfolio.race_solvers([q], [], 30.0, [lambda stop: ("sat", "found")])
    assert (status, value, winner) == ("sat", "found", None) and time.monotonic() - t0 < 5 and not solved
