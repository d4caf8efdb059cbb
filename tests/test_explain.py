"""Explanations against brute force on tiny networks: every AXp/CXp is a minimal (in)sufficient
set, enumeration finds them all, the minimum one is cardinality-minimum, top-k search is exact."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from bnnlogic.explain import Explainer, margin_order
from tests.helpers import box_inputs, random_ir

NETS = {
    "dense": dict(n_features=5, hi=3, hidden=(8,)),
    "thermometer": dict(n_features=4, hi=4, levels=2, hidden=(6,), n_classes=2),
    "conv": dict(image=(1, 3, 3), hi=2, conv=((2, 2, 1),), hidden=(3,)),
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
    + [("conv", s, e) for s in (16, 22) for e in (None, 1)]


def make(net, seed, eps, enum_cells=1 << 14):
    ir = random_ir(seed, **NETS[net])
    x = np.random.default_rng(seed).integers(ir.coding.lo, ir.coding.hi + 1, ir.coding.n_features)
    return ir, Explainer(ir, x, eps, enum_cells=enum_cells)


@pytest.mark.parametrize("net,seed,eps", CASES)
@pytest.mark.parametrize("oracle", ("sat", "enumeration"))
def test_axp_cxp_minimum_against_brute_force(net, seed, eps, oracle):
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


def test_verify_rejects_insufficient_and_non_minimal_sets():
    ir, ex = make("dense", 22, None)  # AXps {0,2}, {0,4}, {1}, {2,4}
    e = ex.abductive()
    for wrong in ([0], [1, 2], [2, 3]):  # not sufficient, not minimal, not sufficient
        e.features = wrong
        assert ex.verify(e).verified is False
    e.features = [0, 2]
    assert ex.verify(e).verified is True
