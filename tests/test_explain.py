"""Explanations against brute force on tiny networks: every AXp/CXp is a minimal (in)sufficient
set, enumeration finds them all, the minimum one is cardinality-minimum, top-k search is exact."""
from __future__ import annotations

import itertools
import time

import numpy as np
import pytest

import bnnlogic.explain as explain_mod
from bnnlogic.explain import Explainer, margin_order
from bnnlogic.logic.encoding import nearest_in_interval
from tests.helpers import box_inputs, random_ir

NETS = {
    "dense": dict(n_features=5, hi=3, hidden=(8,)),
    "thermometer": dict(n_features=4, hi=4, levels=2, hidden=(6,), n_classes=2),
    "conv": dict(image=(1, 3, 3), hi=2, conv=((2, 2, 1),), hidden=(3,)),
    "conv-pad": dict(image=(1, 3, 3), hi=2, conv=((2, 3, 1, 1),), hidden=(), position_k=True),
}


def entails(ir, ex, S):
    """Brute force: every input of the region with S pinned to x keeps the prediction."""
    lo, hi = ex.region.lo.copy(), ex.region.hi.copy()
    S = list(S)
    lo[S] = hi[S] = ex.x[S]
    return bool(np.all(ir.predict(box_inputs(lo, hi)) == ex.prediction))


def all_subsets(feats):
    return [set(c) for r in range(len(feats) + 1) for c in itertools.combinations(feats, r)]


def brute_axps(ir, ex):
    suff = [S for S in all_subsets(range(ir.coding.n_features)) if entails(ir, ex, S)]
    return {frozenset(S) for S in suff if not any(T < S for T in suff)}


def brute_cxps(ir, ex):
    every = set(range(ir.coding.n_features))
    ok = [S for S in all_subsets(every) if not entails(ir, ex, every - S)]
    return {frozenset(S) for S in ok if not any(T < S for T in ok)}


# seeds whose decisions have non-trivial explanations (several AXps; the thermometer ones
# change with eps), plus one constant network (the empty AXp, no CXp)
CASES = [("dense", s, None) for s in (0, 8, 22, 24)] + [("dense", 20, 1), ("dense", 2, None)] \
    + [("thermometer", s, e) for s in (5, 9, 17, 26) for e in (None, 1)] \
    + [("conv", s, e) for s in (16, 22) for e in (None, 1)] + [("conv-pad", s, None) for s in (1, 4)]


def make(net, seed, eps, enum_cells=1 << 14):
    ir = random_ir(seed, **NETS[net])
    x = np.random.default_rng(seed).integers(ir.coding.lo, ir.coding.hi + 1, ir.coding.n_features)
    return ir, Explainer(ir, x, eps, enum_cells=enum_cells)


@pytest.mark.parametrize("net,seed,eps", CASES)
@pytest.mark.parametrize("oracle", ("sat", "enumeration"))
def test_axp_cxp_minimum_against_brute_force(net, seed, eps, oracle, monkeypatch):
    """``oracle="sat"``: the solver answers the search and checks it; "enumeration": the sweep
    answers and the engine checks every cell."""
    if oracle == "sat":
        monkeypatch.setattr(explain_mod, "CHECK_CELLS", 0)
    ir, ex = make(net, seed, eps, 0 if oracle == "sat" else 1 << 14)
    axps, cxps = brute_axps(ir, ex), brute_cxps(ir, ex)
    for method in ("deletion", "quickxplain"):
        for order in (None, sorted(ex.features, reverse=True)):
            e = ex.abductive(method, order)
            assert frozenset(e.features) in axps and e.verified, (method, e.features, axps)
    c = ex.contrastive()
    if not cxps:
        assert c is None
    else:
        assert frozenset(c.features) in cxps and c.verified
        assert ir.predict(c.witness[None])[0] == c.witness_class != ex.prediction
        assert ex.region.contains(c.witness[None])[0]
    m = ex.minimum()
    assert m.verified and frozenset(m.features) in axps and m.size == min(len(S) for S in axps)
    found = ex.enumerate(limit=100)
    assert {frozenset(e.features) for e in found["abductive"]} == axps
    assert all(e.verified for e in found["abductive"] + found["contrastive"])
    found = ex.enumerate(limit=100, kind="contrastive")
    assert {frozenset(e.features) for e in found["contrastive"]} == cxps
    # duality: every AXp hits every CXp
    assert all(A & C for A in axps for C in cxps)
    ex.close()


@pytest.mark.parametrize("seed", range(4))
def test_topk_and_smallest_k(seed):
    ir, ex = make("dense", seed, None, enum_cells=0)
    ranking = list(np.random.default_rng(seed).permutation(ir.coding.n_features))
    truth = [entails(ir, ex, ranking[:k]) for k in range(len(ranking) + 1)]
    assert [ex.sufficient(ranking, k) for k in range(len(ranking) + 1)] == truth
    assert ex.smallest_sufficient_k(ranking) == truth.index(True)


def test_margin_order_is_a_permutation_of_free_features():
    ir, ex = make("dense", 1, 1)
    order = margin_order(ir, ex.x, ex.region, ex.features)
    assert sorted(order) == ex.features


@pytest.mark.parametrize("check", ["engine", "solver", "race", "lost"])
def test_verify_rejects_insufficient_and_non_minimal_sets(check, monkeypatch):
    """Each way the independent check decides entailment: every cell through the engine, the
    check backend on a fresh encoding, the two raced (two cores), and the engine alone on two
    cores once the search's solvers lost every race (no check solver is built)."""
    if check != "engine":
        monkeypatch.setattr(explain_mod, "CHECK_CELLS", 0)
    if check == "solver":
        monkeypatch.setattr(explain_mod, "CHECK_RACE_CELLS", 0)
    ir = random_ir(22, **NETS["dense"])
    x = np.random.default_rng(22).integers(ir.coding.lo, ir.coding.hi + 1, ir.coding.n_features)
    ex = Explainer(ir, x, None, cores=2 if check in ("race", "lost") else 1)  # AXps {0,2}, {0,4}, {1}, {2,4}
    e = ex.abductive()
    ex._deep, ex._bab_wins, ex._solver_wins = False, int(check == "lost"), 0
    if check == "lost":
        def no_solver(*args, **kw):
            raise AssertionError("the check built a solver")

        monkeypatch.setattr(explain_mod, "Query", no_solver)
    for wrong in ([0], [1, 2], [2, 3]):  # not sufficient, not minimal, not sufficient
        e.features = wrong
        assert ex.verify(e).verified is False
    e.features = [0, 2]
    assert ex.verify(e).verified is True


# ---------------------------------------------------------------- fast paths of the oracle
def _subsets_sample(feats, rng, n=24):
    return [set(np.nonzero(rng.random(len(feats)) < p)[0].tolist()) for p in np.linspace(0, 1, n)]


@pytest.mark.parametrize("net,seed,eps", CASES)
def test_fast_oracle_branches_agree_with_brute_force(net, seed, eps):
    """Interval bounds only say "entailed" when brute force agrees; a replayed or greedy
    candidate is a real counterexample of the restricted region; the fast oracle (bounds,
    replay, solver) and the solver alone answer every check the same."""
    ir, ex = make(net, seed, eps, enum_cells=0)
    _, slow = make(net, seed, eps, enum_cells=0)
    slow.fast = False
    rng = np.random.default_rng(seed)
    for _ in range(2):  # the second round meets a populated witness pool
        for S in _subsets_sample(range(ir.coding.n_features), rng):
            truth = entails(ir, ex, S)
            if ex._bounds_entail(S):
                assert truth, S
            for hint in (None, *sorted(set(ex.features) - S)[:1]):
                ans = ex._replay_pool(set(S) & set(ex.features), hint)
                if ans is not None:
                    w = ans.witness
                    assert not truth and ir.predict(w[None])[0] != ex.prediction
                    assert ex.region.contains(w[None])[0] and np.array_equal(w[list(S)], ex.x[list(S)])
            assert ex.entails(S) == slow.entails(S) == truth, S
    ex.close()
    slow.close()


@pytest.mark.parametrize("seed", range(6))
def test_vectorized_decode_matches_the_scalar_rule(seed):
    ir, ex = make("thermometer", seed, 1 if seed % 2 else None, enum_cells=0)
    rng = np.random.default_rng(seed)
    inp = ex.query.encoding.inputs
    for _ in range(20):
        model = {int(v): bool(rng.random() < 0.5) for f in inp.vars for v in inp.vars[f]}
        # a consistent model: thresholds in order (x >= t' implies x >= t for t < t')
        for f, vs in inp.vars.items():
            n = int(rng.integers(0, len(vs) + 1))
            model.update({int(v): i < n for i, v in enumerate(vs)})
        value = lambda v: model[int(v)]  # noqa: E731
        r = inp.region
        ref = np.clip(r.center, r.lo, r.hi)
        for f, ts in inp.thresholds.items():
            ref[f] = nearest_in_interval(int(ref[f]), int(r.lo[f]), int(r.hi[f]), ts,
                                         sum(1 for v in inp.vars[f] if value(int(v))))
        assert np.array_equal(inp.decode(value), ref)
    ex.close()


def test_unread_features_are_in_no_explanation():
    """A feature whose coding bits no first-layer neuron reads never enters an AXp or CXp, and
    the search results still match brute force."""
    from dataclasses import replace

    base = random_ir(8, **NETS["dense"])
    first = base.layers[0]
    A = first.A.copy()
    A[:, 2] = 0  # feature 2 (one level): unread
    ir = replace(base, layers=(replace(first, A=A),) + base.layers[1:])
    x = np.random.default_rng(8).integers(ir.coding.lo, ir.coding.hi + 1, ir.coding.n_features)
    ex = Explainer(ir, x, None, enum_cells=0)
    assert 2 not in ex.relevant
    axps, cxps = brute_axps(ir, ex), brute_cxps(ir, ex)
    for method in ("deletion", "quickxplain"):
        e = ex.abductive(method)
        assert frozenset(e.features) in axps and e.verified and 2 not in e.features
    c = ex.contrastive()
    assert (c is None and not cxps) or (frozenset(c.features) in cxps and c.verified)
    ex.close()


# ---------------------------------------------------------------- budgets: the best result so far
def _interrupt_after(n: int, exc: BaseException):
    """A progress callback that raises ``exc`` at its n-th call (a user's Ctrl-C mid-search)."""
    calls = []

    def progress(info):
        calls.append(info)
        if len(calls) >= n:
            raise exc
    return progress


@pytest.mark.parametrize("net,seed,eps", [c for c in CASES if c[0] != "conv"][:6])
@pytest.mark.parametrize("after", (1, 3, 6))
@pytest.mark.parametrize("method", ("deletion", "quickxplain"))
def test_an_interrupted_abductive_search_returns_a_sufficient_set_marked_incomplete(net, seed, eps, after, method):
    from bnnlogic.budget import Budget

    ir, ex0 = make(net, seed, eps)
    full = ex0.abductive(method)
    ex0.close()
    ir, ex = make(net, seed, eps)
    ex.limit = Budget(progress=_interrupt_after(after, KeyboardInterrupt()))
    e = ex.abductive(method)
    ex.close()
    if e.complete:  # the search needed fewer checks than the interrupt point
        assert e.features == full.features and e.verified
        return
    assert e.stopped == "interrupt" and ex.stopped == "interrupt" and e.verified is None
    assert entails(ir, ex, e.features)  # sufficient (maybe not minimal)
    assert e.to_json()["complete"] is False and e.to_json()["stopped"] == "interrupt"


@pytest.mark.parametrize("budget,timeout,message", [(0.05, None, "no explanation within the budget of 0.05 s"),
                                                    (None, 0.01, "the solver gave up after 0.01 s")])
def test_a_solver_call_that_gives_up_names_what_ran_out(monkeypatch, budget, timeout, message):
    """The last call of an abductive search has only the budget's rest: its "unknown" means the
    budget ran out (not "raise the time per call"); a call cut by the per-call limit says so."""
    from bnnlogic.errors import UserError

    def undecided(solvers, assumptions, timeout, extra=()):
        time.sleep(timeout)
        return "unknown", None, None

    monkeypatch.setattr(explain_mod, "race_solvers", undecided)
    ir, ex = make("dense", 0, None, enum_cells=0)
    ex.fast, ex.budget, ex.timeout = False, budget, timeout
    with pytest.raises(UserError, match=message):
        ex.abductive()
    ex.close()


def test_the_time_limit_returns_the_relevant_features_when_nothing_better_was_shown():
    from bnnlogic.budget import Budget

    ir, ex = make("dense", 0, None)
    ex.limit = Budget(seconds=1e-9)
    e = ex.abductive()
    assert (e.complete, e.stopped) == (False, "time") and e.features == ex.relevant
    assert entails(ir, ex, e.features)
    ex.close()


@pytest.mark.parametrize("net,seed,eps", [("dense", 0, None), ("dense", 8, None), ("thermometer", 5, None)])
def test_an_interrupted_contrastive_search_returns_a_replayed_witness_or_nothing(net, seed, eps):
    from bnnlogic.budget import Budget

    for after in (1, 2, 4):
        ir, ex = make(net, seed, eps)
        ex.limit = Budget(progress=_interrupt_after(after, RuntimeError("Program interrupted by user.")))
        e = ex.contrastive()
        ex.close()
        if e is None:
            assert ex.stopped == "interrupt"
            continue
        if not e.complete:
            assert e.stopped == "interrupt"
            assert int(ir.predict(e.witness[None])[0]) == e.witness_class != ex.prediction
            assert set(np.nonzero(e.witness != ex.x)[0].tolist()) == set(e.features)


def test_an_interrupted_enumeration_keeps_what_it_found():
    from bnnlogic.budget import Budget

    ir, ex = make("dense", 0, None)
    everything = ex.enumerate(50)
    ex.close()
    ir, ex = make("dense", 0, None)
    ex.limit = Budget(progress=_interrupt_after(6, KeyboardInterrupt()))
    part = ex.enumerate(50)
    ex.close()
    assert ex.stopped == "interrupt"
    for kind in ("abductive", "contrastive"):
        whole = {tuple(e.features) for e in everything[kind]}
        assert {tuple(e.features) for e in part[kind] if e.complete} <= whole


def test_other_errors_are_not_taken_for_a_stop():
    from bnnlogic.budget import Budget

    ir, ex = make("dense", 0, None)
    ex.limit = Budget(progress=_interrupt_after(2, RuntimeError("a real bug")))
    with pytest.raises(RuntimeError, match="a real bug"):
        ex.abductive()
    ex.close()


@pytest.mark.parametrize("bab_wins", [True, False])
def test_branch_and_bound_races_alone_once_it_wins_and_the_solvers_do_not(monkeypatch, bab_wins):
    """Races where branch and bound ran: after its first win (the solvers none), later races
    run it alone on every core; a solver's win keeps the solvers in.  The explanation stays
    exact either way."""
    real = explain_mod.race_solvers
    seen = []

    def race(solvers, assumptions, timeout, extra=()):  # one side decides, deterministically
        seen.append(len(solvers))
        if bab_wins or not solvers:
            status, value = extra[0](None)
            return status, value, None
        return real(solvers, assumptions, timeout)

    monkeypatch.setattr(explain_mod, "race_solvers", race)
    ir = random_ir(0, **NETS["dense"])
    x = np.random.default_rng(0).integers(ir.coding.lo, ir.coding.hi + 1, ir.coding.n_features)
    ex = Explainer(ir, x, None, enum_cells=0, cores=2)
    ex.fast = False  # every check races
    e = ex.abductive()
    assert len(seen) >= 3 and seen[0] == 2
    assert seen[1:] == ([0] * (len(seen) - 1) if bab_wins else [2] * (len(seen) - 1))
    assert entails(ir, ex, e.features) and all(not entails(ir, ex, set(e.features) - {f}) for f in e.features)
    ex.close()


def test_branch_and_bound_races_alone_from_the_start_once_a_sweep_went_deep(monkeypatch):
    """A sweep that went through every layer (nearly every cell a new layer-1 pattern) marks
    the search; from then on branch and bound races alone, from the first race on, on boxes
    of any size (here every box is above ``BAB_CELLS``).  Its wins alone do not take it
    above ``BAB_CELLS``: there the solvers race without it."""
    import bnnlogic.logic.sweep as sweep_mod

    real, seen = explain_mod.race_solvers, []

    def race(solvers, assumptions, timeout, extra=()):
        seen.append((len(solvers), len(extra)))
        return real(solvers, assumptions, timeout, extra)

    monkeypatch.setattr(explain_mod, "race_solvers", race)
    monkeypatch.setattr(explain_mod, "BAB_CELLS", 0)
    ir = random_ir(0, **NETS["dense"])
    x = np.random.default_rng(0).integers(ir.coding.lo, ir.coding.hi + 1, ir.coding.n_features)
    ex = Explainer(ir, x, None, enum_cells=0, cores=2)

    def deep_sweep(*args, stats, **kw):  # the sweep as it reports a deep walk
        stats["deep"] = True
        return sweep_mod.sweep(*args, **kw)

    ex.fast = False  # every check races
    ex._bab_wins = 1
    ex.abductive()
    assert seen and all(n == (2, 0) for n in seen)  # the solvers, no branch and bound
    seen.clear()
    monkeypatch.setattr(explain_mod, "sweep", deep_sweep)
    assert not ex._deep and ex._sweep(ex.relevant) is not None and ex._deep
    e = ex.abductive()
    assert seen and all(n == (0, 1) for n in seen)  # branch and bound alone (no attack: fast is off)
    assert entails(ir, ex, e.features) and all(not entails(ir, ex, set(e.features) - {f}) for f in e.features)
    ex.close()


@pytest.mark.parametrize("net,seed,eps", CASES)
def test_parts_leave_out_exactly_the_cells_of_a_box_proven_good(net, seed, eps):
    """``_skip`` names the freed feature only when the rest of the free set lies in a box
    proven good (x's own cell, then each "unsat"); ``_parts`` is then the restricted box
    without the inputs whose skipped feature sits in x's cell, as disjoint boxes."""
    ir, ex = make(net, seed, eps)
    feats, free = ex.relevant, ex.relevant[:2]  # one relevant feature in thermometer-5-1
    f = free[0]
    assert ex._skip([f], f) == f and ex._skip([f], None) is None
    if len(free) == 2:
        g = free[1]
        assert ex._skip(free, f) is None
        if ex._solve(set(feats) - {f}).status == "unsat" and ex.core is None:
            assert ex._skip(free, g) == g and ex._skip(free, f) is None
    ts = ex.query.encoding.inputs.thresholds
    for h in free:
        fixed = set(feats) - set(free)
        R = ex._restricted(fixed)
        every = box_inputs(R.lo, R.hi)
        same_cell = np.all((every[:, h, None] >= ts[h][None]) == (ex.x[h] >= ts[h])[None], axis=1)
        parts = np.concatenate([box_inputs(lo, hi) for lo, hi in ex._parts(R, h)])
        assert len(np.unique(parts, axis=0)) == len(parts)  # disjoint
        assert {tuple(r) for r in parts.tolist()} == {tuple(r) for r in every[~same_cell].tolist()}
    ex.close()
