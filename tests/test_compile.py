"""OBDD compilation: class counts equal brute force, cofactor explanations equal SAT ones."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from bnnlogic.compile import TooLarge, compile_bdd
from bnnlogic.explain import Explainer
from bnnlogic.logic import region
from tests.helpers import box_inputs, random_ir

NETS = {
    "dense": dict(n_features=5, hi=3, hidden=(8,)),
    "deep": dict(n_features=4, hi=5, levels=2, hidden=(6, 4), n_classes=4),
    "conv": dict(image=(1, 3, 3), hi=2, conv=((2, 2, 1),), hidden=(3,)),
}


@pytest.mark.parametrize("net", sorted(NETS))
@pytest.mark.parametrize("seed", range(4))
def test_class_diagrams_count_and_explain(net, seed):
    ir = random_ir(seed, **NETS[net])
    c = ir.coding
    x = np.random.default_rng(seed).integers(c.lo, c.hi + 1, c.n_features)
    for eps in (None, 1):
        R = region.domain(c) if eps is None else region.linf(c, x, eps)
        comp = compile_bdd(ir, R)
        pred = ir.predict(box_inputs(R.lo, R.hi))
        assert [comp.count([k]) for k in range(ir.n_classes)] == np.bincount(pred, minlength=ir.n_classes).tolist()
        ex = Explainer(ir, x, eps)
        for S in itertools.chain.from_iterable(itertools.combinations(range(c.n_features), r)
                                               for r in range(c.n_features + 1)):
            assert comp.entails(x, S) == ex.entails(S), S
        e = ex.abductive()
        e.features = comp.abductive(x)
        assert ex.verify(e).verified


def test_node_budget():
    ir = random_ir(0, n_features=5, hi=3, hidden=(8,))
    with pytest.raises(TooLarge):
        compile_bdd(ir, region.domain(ir.coding), max_nodes=3)
