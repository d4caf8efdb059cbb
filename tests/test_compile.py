"""OBDD compilation: class counts equal brute force, cofactor explanations equal SAT ones."""
from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

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
    "conv-pad-pos": dict(image=(1, 3, 3), hi=2, conv=((2, 2, 2, 1), (2, 2, 1, 1)), hidden=(), position_k=True),
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


def test_no_diagram_outlives_its_manager_at_exit():
    # diagrams held in a reference cycle were freed after the CUDD manager, which then printed
    # "Still N nodes referenced upon shutdown" at the exit of every compiling program
    code = ("from tests.helpers import random_ir; from bnnlogic.compile import compile_bdd\n"
            "from bnnlogic.logic import region\n"
            "for w in (4, 8):\n"
            "    ir = random_ir(0, n_features=12, hi=15, levels=3, hidden=(w,), n_classes=3)\n"
            "    n = compile_bdd(ir, region.domain(ir.coding)).stats['nodes']\n"
            "print(n)")
    out = subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], capture_output=True,
                         text=True, check=True)
    assert int(out.stdout) > 0 and "referenced" not in out.stderr


def test_a_budget_sees_every_neuron_and_stops_compilation():
    from bnnlogic.budget import Budget, Stopped

    ir = random_ir(0, **NETS["deep"])
    seen = []
    comp = compile_bdd(ir, region.domain(ir.coding), limit=Budget(60, progress=seen.append))
    assert seen[-1]["done"] == seen[-1]["total"] == len(seen)  # one tick per neuron and output comparison
    assert comp.count(range(ir.n_classes)) == region.domain(ir.coding).size()
    with pytest.raises(Stopped):
        compile_bdd(ir, region.domain(ir.coding), limit=Budget(1e-9))
