"""Every backend x encoding agrees with brute force over tiny networks and regions."""
from __future__ import annotations

import numpy as np
import pytest

from bnnlogic.logic import BACKENDS, Query, propagate, region
from tests.helpers import box_inputs, random_ir

NETS = {
    "dense": dict(n_features=4, hi=3, hidden=(5, 4)),
    "thermometer": dict(n_features=3, hi=4, levels=2, hidden=(6,), n_classes=4),
    "sparse": dict(n_features=5, hi=2, hidden=(4, 3), p_zero=0.5),
    "conv": dict(image=(1, 3, 3), hi=2, conv=((2, 2, 1),), hidden=(3,)),
    "conv-pool": dict(image=(1, 4, 3), hi=1, conv=((2, 2, 1),), pool=2, hidden=(3,)),
    # zero padding; per-position thresholds (a +-1 net with PyTorch's zero padding)
    "conv-pad": dict(image=(1, 3, 3), hi=2, conv=((2, 3, 1, 1),), hidden=()),
    "conv-pad-pos": dict(image=(1, 3, 3), hi=2, conv=((2, 2, 2, 1), (2, 2, 1, 1)), hidden=(), position_k=True),
}


def brute(ir, R, goal_classes):
    X = box_inputs(R.lo, R.hi)
    X = X[R.contains(X)]
    return bool(np.isin(ir.predict(X), goal_classes).any())


@pytest.mark.parametrize("net", sorted(NETS))
@pytest.mark.parametrize("seed", range(4))
def test_untargeted_linf_all_backends(net, seed):
    ir = random_ir(seed, **NETS[net])
    rng = np.random.default_rng(seed)
    x = rng.integers(ir.coding.lo, ir.coding.hi + 1, ir.coding.n_features)
    y = int(ir.predict(x[None])[0])
    for eps in range(min(2, ir.coding.hi) + 1):
        R = region.linf(ir.coding, x, eps)
        bad = [c for c in range(ir.n_classes) if c != y]
        expected = brute(ir, R, bad)
        for b in BACKENDS:
            ans = Query(ir, R, [[(0, bad)]], backend=b).solve()
            assert ans.status == ("sat" if expected else "unsat"), (net, seed, eps, b)
            if expected:
                assert ans.predictions[0] != y and R.contains(ans.witness[None])[0]


@pytest.mark.parametrize("seed", range(6))
def test_targeted_and_sets_naive_and_default(seed):
    ir = random_ir(seed, n_features=4, hi=3, hidden=(6, 4), n_classes=4)
    R = region.box(ir.coding, 1, 2)
    for S in ([0], [3], [1, 2], [0, 1, 2, 3]):
        expected = brute(ir, R, S)
        for use_bounds in (True, False):
            for b in ("cnf:glucose4:seqcounter", "cnf:cadical195:totalizer", "exact"):
                ans = Query(ir, R, [[(0, S)]], backend=b, use_bounds=use_bounds).solve()
                assert ans.status == ("sat" if expected else "unsat"), (seed, S, use_bounds, b)


@pytest.mark.parametrize("seed", range(6))
def test_l0_region(seed):
    ir = random_ir(seed, n_features=5, hi=3, hidden=(5, 4))
    x = np.random.default_rng(seed).integers(0, 4, 5)
    y = int(ir.predict(x[None])[0])
    bad = [c for c in range(ir.n_classes) if c != y]
    for k in (0, 1, 2):
        R = region.l0(ir.coding, x, k)
        expected = brute(ir, R, bad)
        for b in ("cnf:cadical195:seqcounter", "native:minicard", "cpsat", "exact"):
            ans = Query(ir, R, [[(0, bad)]], backend=b).solve()
            assert ans.status == ("sat" if expected else "unsat"), (seed, k, b)
            if expected:
                assert np.count_nonzero(ans.witness != x) <= k


@pytest.mark.parametrize("seed", range(6))
def test_miter_two_networks(seed):
    a = random_ir(seed, n_features=4, hi=3, hidden=(4,), n_classes=3)
    b = random_ir(seed + 100, n_features=4, hi=3, hidden=(5,), n_classes=3)  # other thresholds too
    R = region.domain(a.coding)
    X = box_inputs(R.lo, R.hi)
    pa, pb = a.predict(X), b.predict(X)
    goal = [[(0, [c]), (1, [d for d in range(3) if d != c])] for c in range(3)]
    for back in ("cnf:cadical195:totalizer", "cpsat", "exact"):
        ans = Query([a, b], R, goal, backend=back).solve()
        assert ans.status == ("sat" if (pa != pb).any() else "unsat")
        if ans.status == "sat":
            assert ans.predictions[0] != ans.predictions[1]


@pytest.mark.parametrize("net", sorted(NETS))
def test_bounds_are_sound(net):
    ir = random_ir(7, **NETS[net])
    rng = np.random.default_rng(0)
    x = rng.integers(ir.coding.lo, ir.coding.hi + 1, ir.coding.n_features)
    R = region.linf(ir.coding, x, 1)
    bounds = propagate(ir, R.lo, R.hi)
    acts = ir.activations(box_inputs(R.lo, R.hi))
    for (lo, hi), act in zip(bounds, acts):
        assert (act >= lo).all() and (act <= hi).all()


def test_incremental_assumptions_match_cold_solves():
    ir = random_ir(3, n_features=4, hi=6, hidden=(6, 4))
    x = np.array([3, 3, 3, 3])
    y = int(ir.predict(x[None])[0])
    bad = [c for c in range(ir.n_classes) if c != y]
    R = region.linf(ir.coding, x, 3)
    for b in ("cnf:cadical195:totalizer", "native:gluecard4", "cpsat", "exact"):
        q = Query(ir, R, [[(0, bad)]], backend=b)
        inp = q.encoding.inputs
        for eps in (0, 1, 2, 3, 0, 3):  # boxes shrink again: no call's assumptions outlive it
            small = region.linf(ir.coding, x, eps)
            assume = [l for ls in inp.box_literals(small.lo, small.hi).values() for l in ls]
            ans = q.solve(assume)
            assert ans.status == ("sat" if brute(ir, small, bad) else "unsat"), (b, eps)
        assert q.solve().status == ("sat" if brute(ir, R, bad) else "unsat"), b
        l = next(l for ls in inp.box_literals(x, x).values() for l in ls)
        assert q.backend.solve([l, -l], None)[0] == "unsat", b


def test_unsat_cores_are_assumptions_that_suffice():
    """After "unsat", ``core()`` is a subset of the assumptions that is unsatisfiable alone: the
    box with only the features the core touches fixed to x holds no input of another class."""
    nontrivial = 0
    for seed in range(12):
        ir = random_ir(seed, n_features=6, hi=3, levels=3, hidden=(8,), n_classes=3)
        x = np.random.default_rng(seed).integers(0, 4, 6)
        y = int(ir.predict(x[None])[0])
        bad = [c for c in range(ir.n_classes) if c != y]
        R = region.domain(ir.coding)
        for b in ("cnf:cadical195:totalizer", "native:gluecard4", "exact"):  # CP-SAT gives no core
            q = Query(ir, R, [[(0, bad)]], backend=b)
            fix = q.encoding.inputs.box_literals(x, x)
            assume = [l for ls in fix.values() for l in ls]
            assert q.backend.solve(assume, None)[0] == "unsat"
            core = q.backend.core()
            assert set(core) <= set(assume), b
            assert q.backend.solve(core, None)[0] == "unsat", b
            lo, hi = R.lo.copy(), R.hi.copy()
            kept = [f for f, ls in fix.items() if set(ls) & set(core)]
            lo[kept] = hi[kept] = x[kept]
            assert not brute(ir, region.Region(lo, hi, x), bad), b
            nontrivial += q.backend.solve([], None)[0] == "sat"
    assert nontrivial >= 8  # the domain alone reaches another class: the core is needed


def test_cpsat_assumptions_hold_for_their_call_only():
    """CP-SAT pins the assumed variables for one call: pinned to x the domain holds no other
    class, and the next call without assumptions sees the whole domain again."""
    nontrivial = 0
    for seed in range(12):
        ir = random_ir(seed, n_features=6, hi=3, levels=3, hidden=(8,), n_classes=3)
        x = np.random.default_rng(seed).integers(0, 4, 6)
        bad = [c for c in range(ir.n_classes) if c != int(ir.predict(x[None])[0])]
        R = region.domain(ir.coding)
        q = Query(ir, R, [[(0, bad)]], backend="cpsat")
        assume = [l for ls in q.encoding.inputs.box_literals(x, x).values() for l in ls]
        assert q.backend.solve(assume, None)[0] == "unsat"
        assert q.backend.core() is None
        reach = brute(ir, R, bad)
        assert q.solve().status == ("sat" if reach else "unsat"), seed
        nontrivial += reach
    assert nontrivial >= 8


def test_region_errors_and_size():
    from bnnlogic.errors import UserError
    ir = random_ir(0, n_features=3, hi=3)
    with pytest.raises(UserError):
        region.linf(ir.coding, [0, 1, 2], 9)
    with pytest.raises(UserError):
        region.linf(ir.coding, [0, 1], 1)
    R = region.l0(ir.coding, np.array([0, 1, 2]), 1)
    assert R.size() == len(box_inputs(R.lo, R.hi)[R.contains(box_inputs(R.lo, R.hi))])
    assert region.linf(ir.coding, [0, 1, 3], 1).size() == 2 * 3 * 2


@pytest.mark.parametrize("net", sorted(NETS))
@pytest.mark.parametrize("use_bounds", [True, False])
def test_score_atoms_match_brute_force(net, use_bounds):
    """Goals on the integer scores (``ScoreAtLeast``: pairwise differences, one score, a linear
    combination, ANDed and ORed) are SAT iff some input of the box meets them."""
    from bnnlogic.logic.encoding import ScoreAtLeast

    ir = random_ir(7, **NETS[net])
    n = ir.n_classes
    R = region.box(ir.coding)
    S = ir.scores(box_inputs(R.lo, R.hi))
    rng = np.random.default_rng(0)
    answers = set()
    for _ in range(6):
        c, d = (int(v) for v in rng.choice(n, 2, replace=False))
        coefs = [((c, 1), (d, -1)), ((c, 1),), ((c, 2), (d, -1), ((c + 1) % n, -1))]
        # bounds at the largest value reached, one above or one below: met, barely met, never met
        atoms = [ScoreAtLeast(a, int(max(sum(k * S[:, j] for j, k in a))) + int(rng.integers(-1, 2))) for a in coefs]
        goals = [[[(0, a)]] for a in atoms] + [[[(0, atoms[0]), (0, atoms[1])], [(0, atoms[2])]]]
        for goal in goals:
            truth = any(all(a.holds(s) for _, a in term) for term in goal for s in S)
            for backend in ("exact", "cpsat", "cnf:glucose4:seqcounter"):
                q = Query(ir, R, goal, backend, use_bounds)
                assert (q.solve().status == "sat") == truth, (goal, backend)  # a witness is replayed
                q.close()
            answers.add(truth)
    assert answers == {True, False}


def test_forked_exact_answers_like_in_process_exact_and_stops_on_interrupt():
    """``isolated=True`` runs Exact in a forked child (``backends._Forked``): the same verdicts
    under assumptions and the same kind of cores, and an interrupt set before a solve makes it
    return "unknown" (the child answers, or is killed and forked afresh) until cleared."""
    from bnnlogic.logic.backends import _Forked

    ir = random_ir(3, n_features=4, hi=6, hidden=(6, 4))
    x = np.array([3, 3, 3, 3])
    y = int(ir.predict(x[None])[0])
    bad = [c for c in range(ir.n_classes) if c != y]
    R = region.linf(ir.coding, x, 3)
    q = Query(ir, R, [[(0, bad)]], backend="exact", isolated=True)
    try:
        assert isinstance(q.backend, _Forked)
        inp = q.encoding.inputs
        for eps in (0, 1, 2, 3):
            small = region.linf(ir.coding, x, eps)
            assume = [l for ls in inp.box_literals(small.lo, small.hi).values() for l in ls]
            ans = q.solve(assume)
            assert ans.status == ("sat" if brute(ir, small, bad) else "unsat"), eps
            if ans.status == "sat":
                assert ans.predictions[0] != y and small.contains(ans.witness[None])[0]
            else:
                assert set(q.backend.core()) <= set(assume)
        q.interrupt()
        assert q.solve().status == "unknown"
        q.clear_interrupt()
        assert q.solve().status == ("sat" if brute(ir, R, bad) else "unsat")
        proc = q.backend._proc
    finally:
        q.close()
    assert not proc.is_alive()


def test_a_forked_solver_that_does_not_answer_an_interrupt_is_killed_and_forked_afresh(monkeypatch):
    """A child stuck (building, or inside a slice) is killed when the parent next looks after an
    interrupt, or ``KILL_GRACE`` s after its timeout: the waiting solve returns "unknown" at once, and the next solve forks a
    working child."""
    import threading
    import time

    from bnnlogic.logic import backends

    ir = random_ir(1, n_features=3, hi=2, hidden=(4,))
    x = np.array([1, 1, 1])
    y = int(ir.predict(x[None])[0])
    bad = [c for c in range(ir.n_classes) if c != y]
    R = region.linf(ir.coding, x, 1)
    formula = Query(ir, R, [[(0, bad)]], backend="exact").encoding.formula
    real = backends._serve
    monkeypatch.setattr(backends, "_serve", lambda *args: time.sleep(60))
    b = backends._Forked(formula, "exact")
    got = []
    th = threading.Thread(target=lambda: got.append(b.solve([], None)[0]))
    th.start()
    time.sleep(0.2)
    assert th.is_alive()  # the stuck child has not answered
    t0 = time.monotonic()
    b.interrupt()
    th.join(5)
    assert got == ["unknown"] and time.monotonic() - t0 < 2 and b._proc is None
    b.clear_interrupt()
    t0 = time.monotonic()  # a child that overruns the solve's own timeout is killed too
    assert b.solve([], 0.2)[0] == "unknown" and time.monotonic() - t0 < 2 and b._proc is None
    monkeypatch.setattr(backends, "_serve", real)
    b.clear_interrupt()
    assert b.solve([], None)[0] == ("sat" if brute(ir, R, bad) else "unsat")
    b.close()
