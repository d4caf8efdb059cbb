"""The reference CNF and bounds of ``bnnlogic.trusted.cnf`` against brute-force enumeration."""
from __future__ import annotations

import numpy as np
import pytest
from pysat.solvers import Solver

from bnnlogic.logic import propagate, region
from bnnlogic.trusted.cnf import CNF, bit_bounds, bounds_exclude, query_cnf
from tests.helpers import box_inputs, random_ir

NETS = {
    "dense": dict(n_features=4, hi=3, hidden=(5, 4)),
    "thermometer": dict(n_features=3, hi=4, levels=2, hidden=(6,), n_classes=4),
    "sparse": dict(n_features=5, hi=2, hidden=(4, 3), p_zero=0.5),
    "conv": dict(image=(1, 3, 3), hi=2, conv=((2, 2, 1),), hidden=(3,)),
    "conv-pool": dict(image=(1, 4, 3), hi=1, conv=((2, 2, 1),), pool=2, hidden=(3,)),
}


def regions(ir, x):
    span = ir.coding.hi - ir.coding.lo
    for eps in range(min(2, span) + 1):
        yield region.linf(ir.coding, x, eps)
        yield region.l0(ir.coding, x, eps)


@pytest.mark.parametrize("net", sorted(NETS))
@pytest.mark.parametrize("seed", range(5))
def test_query_cnf_is_satisfiable_iff_some_input_is_bad(net, seed):
    ir = random_ir(seed, **NETS[net])
    x = np.random.default_rng(seed).integers(ir.coding.lo, ir.coding.hi + 1, ir.coding.n_features)
    y = int(ir.predict(x[None])[0])
    for R in regions(ir, x):
        X = box_inputs(R.lo, R.hi)
        pred = ir.predict(X[R.contains(X)])
        for bad in ([c for c in range(ir.n_classes) if c != y], [0], [1, 2]):
            F = query_cnf(ir, R.lo, R.hi, bad, R.center, R.l0)
            with Solver(name="glucose4", bootstrap_with=F.clauses) as s:
                assert s.solve() == bool(np.isin(pred, bad).any()), (net, seed, R.norm, R.eps, bad)
            assert F.dimacs() == query_cnf(ir, R.lo, R.hi, bad, R.center, R.l0).dimacs()  # deterministic


@pytest.mark.parametrize("n", range(1, 8))
def test_at_least_is_exact_for_every_bound_and_assignment(n):
    """[sum >= b] for every b, under every assignment of the n literals (one repeated)."""
    for b in range(-1, n + 3):
        F = CNF()
        xs = [F.var() for _ in range(n)]
        lits = xs + [xs[0]] if n > 2 else xs  # a coefficient 2
        out = F.at_least(lits, b)
        for bits in range(2 ** n):
            val = [(bits >> i) & 1 for i in range(n)]
            fixed = [[v if val[i] else -v] for i, v in enumerate(xs)]
            with Solver(name="glucose4", bootstrap_with=F.clauses + fixed) as s:
                want = sum(val[xs.index(l)] for l in lits) >= b
                assert s.solve(assumptions=[out]) == want and s.solve(assumptions=[-out]) == (not want)


@pytest.mark.parametrize("net", sorted(NETS))
def test_bit_bounds_equal_the_solvers_bounds_and_are_sound(net):
    ir = random_ir(3, **NETS[net])
    rng = np.random.default_rng(0)
    x = rng.integers(ir.coding.lo, ir.coding.hi + 1, (6, ir.coding.n_features))
    lo, hi = np.maximum(x - 1, ir.coding.lo), np.minimum(x + 1, ir.coding.hi)
    for (a, b), (c, d) in zip(bit_bounds(ir, lo, hi), propagate(ir, lo, hi)):
        assert (a == c).all() and (b == d).all()
    for i in range(len(x)):
        pred = ir.predict(box_inputs(lo[i], hi[i]))
        for bad in ([0], [1, 2], [2]):
            if bounds_exclude(ir, lo[i:i + 1], hi[i:i + 1], bad)[0]:
                assert not np.isin(pred, bad).any()
    point = bounds_exclude(ir, x, x, [1, 2])  # every bit fixed: the bounds are exact
    assert (point == ~np.isin(ir.predict(x), [1, 2])).all()
