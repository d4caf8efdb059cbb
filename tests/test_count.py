"""Raw-input counts equal brute-force enumeration of every raw point; ApproxMC stays in its bounds."""
from __future__ import annotations

import numpy as np
import pytest

from bnnlogic.count import count, count_enumerate, raw_cnf
from bnnlogic.errors import UserError
from bnnlogic.logic import region
from tests.helpers import box_inputs, random_ir

NETS = {
    "dense": dict(n_features=4, hi=5, hidden=(6,)),
    "thermometer": dict(n_features=3, hi=6, levels=3, hidden=(5,), n_classes=3),
    "conv-pool": dict(image=(1, 4, 3), hi=1, conv=((2, 2, 1),), pool=2, hidden=(3,)),
    "conv-pad-pos": dict(image=(1, 3, 3), hi=2, conv=((2, 3, 1, 1), (2, 2, 2, 1)), hidden=(), position_k=True),
}


def brute(ir, R, classes):
    X = box_inputs(R.lo, R.hi)
    return int(np.isin(ir.predict(X), classes).sum()), len(X)


def regions(ir, seed):
    c = ir.coding
    x = np.random.default_rng(seed).integers(c.lo, c.hi + 1, c.n_features)
    yield region.domain(c)
    yield region.linf(c, x, 1)
    yield region.box(c, np.minimum(x, c.hi - 1), c.hi)


@pytest.mark.parametrize("net", sorted(NETS))
@pytest.mark.parametrize("seed", range(3))
def test_exact_methods_equal_brute_force(net, seed):
    ir = random_ir(seed, **NETS[net])
    for R in regions(ir, seed):
        for classes in ([0], [1, 2], list(range(ir.n_classes))):
            expected, total = brute(ir, R, classes)
            for method in ("enumerate", "ganak", "bdd", "exact"):
                res = count(ir, R, classes, method)
                assert (res.count, res.total) == (expected, total), (net, seed, method, classes)
                assert res.fraction == expected / total


@pytest.mark.parametrize("seed", range(3))
def test_approxmc_within_tolerance(seed):
    ir = random_ir(seed, n_features=6, hi=7, hidden=(6,), n_classes=2)
    R = region.domain(ir.coding)
    expected, _ = brute(ir, R, [0])
    res = count(ir, R, [0], "approx", epsilon=0.8, delta=0.2, seed=seed + 1)
    assert res.method == "approx" and not res.exact
    assert expected / 1.8 <= res.count <= expected * 1.8


def test_raw_cnf_projection_counts_every_raw_input():
    """With every class as the goal, the CNF's projected models are the whole box."""
    import pyganak

    ir = random_ir(1, n_features=3, hi=9, levels=2, hidden=(4,))
    R = region.box(ir.coding, 2, 8)
    clauses, n, proj, factor = raw_cnf(ir, R, list(range(ir.n_classes)))
    c = pyganak.Counter()
    c.new_vars(n)
    c.add_clauses(clauses)
    c.set_sampling_set(proj)
    assert int(c.count()) * factor == R.size()


def test_enumeration_limit_and_l0_are_user_errors():
    ir = random_ir(0, n_features=4, hi=5, hidden=(4,))
    with pytest.raises(UserError):
        count_enumerate(ir, region.domain(ir.coding), [0], max_cells=2)
    with pytest.raises(UserError):
        count(ir, region.l0(ir.coding, np.zeros(4, int), 1), [0])


# ---------------------------------------------------------------- budgets: bounds when stopped early
def test_a_stopped_enumeration_returns_exact_bounds(monkeypatch):
    import bnnlogic.count as count_mod
    from bnnlogic.budget import Budget

    monkeypatch.setattr(count_mod, "ENUM_BLOCK", 7)
    ir = random_ir(1, **NETS["thermometer"])
    R = region.domain(ir.coding)
    expected, total = brute(ir, R, [0])
    for stop_at in (1, 2, 5):
        ticks = []

        def progress(info, stop_at=stop_at):
            ticks.append(info)
            if len(ticks) >= stop_at:
                raise KeyboardInterrupt

        res = count(ir, R, [0], "enumerate", limit=Budget(progress=progress))
        assert (res.complete, res.stopped, res.count) == (False, "interrupt", None)
        assert res.count_at_least <= expected <= res.count_at_most <= total
        assert res.to_json()["count_at_least"] == res.count_at_least and res.to_json()["fraction"] is None
    done = count(ir, R, [0], "enumerate", limit=Budget(60))
    assert done.complete and done.count == expected and ticks[-1]["unit"] == "cells"


def test_ganak_under_a_budget_counts_in_a_child_and_is_killed_at_the_deadline(monkeypatch):
    import time

    import bnnlogic.count as count_mod
    from bnnlogic.budget import Budget

    ir = random_ir(0, **NETS["dense"])
    R = region.domain(ir.coding)
    expected, total = brute(ir, R, [0])
    assert count(ir, R, [0], "ganak", limit=Budget(60)).count == expected  # the child's answer
    monkeypatch.setattr(count_mod, "_ganak", lambda *a: time.sleep(60))  # a count that never ends
    t0 = time.perf_counter()
    res = count(ir, R, [0], "ganak", limit=Budget(0.5))
    assert time.perf_counter() - t0 < 10
    assert (res.complete, res.stopped, res.count_at_least, res.count_at_most) == (False, "time", 0, total)
