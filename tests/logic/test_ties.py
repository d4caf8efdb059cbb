"""Both tie rules against brute force on networks whose scores often tie: every solver backend
through the encoding, branch and bound, the sweep, the attack and the bounds check."""
from __future__ import annotations

import numpy as np
import pytest

from bnnlogic import Model
from bnnlogic.attack import attack
from bnnlogic.ir import IR, TIES, Output, in_classes
from bnnlogic.logic import BACKENDS, Query, region
from bnnlogic.logic.bab import bab, safe_nodes
from bnnlogic.logic.bounds import propagate
from bnnlogic.logic import sweep as sweep_mod
from bnnlogic.logic.sweep import sweep
from bnnlogic.verification import _bounds_exclude
from tests.helpers import box_inputs, random_ir

NETS = {
    "dense": dict(n_features=4, hi=3, hidden=(4,), p_zero=0.5),
    "conv-pad": dict(image=(1, 3, 3), hi=2, conv=((2, 3, 1, 1),), hidden=(), position_k=True, p_zero=0.5),
}


def tie_ir(seed: int, net: str) -> IR:
    """A random IR whose output has scale 1 and offsets in {0, 1}: scores tie often."""
    ir = random_ir(seed, **NETS[net])
    rng = np.random.default_rng(seed)
    return IR(ir.coding, ir.layers, Output(ir.output.A, 1, rng.integers(0, 2, ir.n_classes).astype(np.int64)))


def cases():
    """(ir, region, bad mask, truth per tie rule) over seeds, eps and bad sets, with the
    tie rules disagreeing on some of them (checked: otherwise the test could not fail)."""
    out, differ = [], 0
    for net in NETS:
        for seed in range(6):
            ir = tie_ir(seed, net)
            x = np.random.default_rng(seed).integers(ir.coding.lo, ir.coding.hi + 1, ir.coding.n_features)
            y = int(ir.predict(x[None])[0])
            for eps in (0, 1, 2):
                R = region.linf(ir.coding, x, eps)
                S = ir.scores(box_inputs(R.lo, R.hi))
                for bad in ([c for c in range(ir.n_classes) if c != y], [ir.n_classes - 1]):
                    mask = np.isin(np.arange(ir.n_classes), bad)
                    truth = {t: bool(in_classes(S, mask, t).any()) for t in TIES}
                    differ += truth["low"] != truth["adversarial"]
                    out.append((ir, R, mask, truth))
    assert differ >= 5, differ
    return out


CASES = cases()


@pytest.mark.parametrize("ties", TIES)
def test_every_backend_follows_the_tie_rule(ties):
    for ir, R, mask, truth in CASES:
        bad = np.nonzero(mask)[0].tolist()
        for b in BACKENDS:
            for use_bounds in (True, False):
                ans = Query(ir, R, [[(0, bad)]], backend=b, use_bounds=use_bounds, ties=ties).solve()
                assert ans.status == ("sat" if truth[ties] else "unsat"), (b, use_bounds)
                if ans.witness is not None:  # replayed by the query under the same rule
                    assert in_classes(ir.scores(ans.witness[None]), mask, ties)[0]


@pytest.mark.parametrize("ties", TIES)
@pytest.mark.parametrize("enum_cells", [1, 4096])
@pytest.mark.parametrize("deep", [0.0, 2.0])  # the sweep's deep walk from its first decision on, or never
def test_bab_sweep_attack_and_bounds_follow_the_tie_rule(ties, enum_cells, deep, monkeypatch):
    monkeypatch.setattr(sweep_mod, "DEEP_RATIO", deep)
    monkeypatch.setattr(sweep_mod, "TABLE0", 2)
    if deep == 0.0:  # cell by cell, so that the first decision comes at the second cell
        monkeypatch.setattr(sweep_mod, "DEEP_CELLS", 0)
        monkeypatch.setattr(sweep_mod, "BLOCK", 1)
    for ir, R, mask, truth in CASES:
        engine = Model(ir).engine
        status, w, _ = bab(engine, ir, R, np.nonzero(mask)[0], enum_cells=enum_cells, ties=ties)
        assert status == ("sat" if truth[ties] else "unsat")
        st, w2, _ = sweep(ir, R.lo, R.hi, mask, probe=R.center, ties=ties)
        assert st == status
        adv = attack(engine, ir, R, np.nonzero(mask)[0], ties=ties)
        for x in (w, w2, adv):
            if x is not None:
                assert R.contains(x[None])[0] and in_classes(ir.scores(x[None]), mask, ties)[0]
        bounds = propagate(ir, R.lo, R.hi)
        if _bounds_exclude(Model(ir), R, bounds, np.nonzero(mask)[0].tolist(), ties):
            assert not truth[ties]


def test_safe_nodes_adversarial_needs_a_strict_margin():
    """A bad class that can only tie the reference class is safe with ties low when it is the
    higher index, never with ties adversarial."""
    out = Output(np.array([[1, 0], [0, 1]], dtype=np.int8), 1, np.array([0, 0]))
    ir = IR(random_ir(0, n_features=2, hidden=()).coding, (), out)
    lo, hi = np.array([[1, 1]]), np.array([[1, 1]])  # both bits on: scores tie 1 = 1
    bad = np.array([False, True])
    assert safe_nodes(ir, lo, hi, np.array([0]), bad)[0]
    assert not safe_nodes(ir, lo, hi, np.array([0]), bad, ties="adversarial")[0]
