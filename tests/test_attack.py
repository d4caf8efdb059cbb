"""The attack against brute force on tiny networks: it never returns a non-counterexample,
finds most of those that exist, keeps the L0 budget, and stops at its budgets."""
from __future__ import annotations

import time
from dataclasses import replace

import numpy as np
import pytest

from bnnlogic.attack import Relaxed, Space, attack
from bnnlogic.infer import Engine
from bnnlogic.logic import region
from tests.helpers import box_inputs, random_ir

KINDS = {  # name -> random_ir keyword arguments (boxes small enough to enumerate)
    "dense": dict(n_features=5, hi=5, levels=2, hidden=(8, 6), n_classes=4),
    "thermometer": dict(n_features=4, hi=9, levels=3, hidden=(10,), n_classes=3),
    "conv-pool": dict(image=(1, 3, 3), hi=3, conv=((3, 2, 1),), pool=2, hidden=(5,), n_classes=3),
    "conv-conv": dict(image=(1, 3, 3), hi=2, levels=2, conv=((3, 2, 1), (2, 2, 1)), hidden=(4,), n_classes=3),
    "conv-padded": dict(image=(1, 3, 3), hi=3, conv=((3, 2, 1, 1),), hidden=(4,), n_classes=3, position_k=True),
    "no-hidden": dict(n_features=4, hi=5, levels=2, hidden=(), n_classes=3),
}


def query(kind: str, seed: int, norm: str, eps: int):
    ir = random_ir(seed, **KINDS[kind])
    rng = np.random.default_rng(seed)
    x = rng.integers(ir.coding.lo, ir.coding.hi + 1, ir.coding.n_features)
    R = region.linf(ir.coding, x, eps) if norm == "linf" else region.l0(ir.coding, x, eps)
    X = box_inputs(R.lo, R.hi)
    X = X[R.contains(X)]
    return ir, R, X, ir.predict(X), int(ir.predict(x[None])[0])


def test_the_network_over_a_region_is_exact():
    """Relaxed (live neurons only, fixed ones folded in) scores every input of the box
    exactly as the IR does, on dense, thermometer, conv, max-pool and output-only nets."""
    for kind in KINDS:
        for seed in range(6):
            ir, R, X, _, _ = query(kind, seed, "linf", 1 + seed % 2)
            S = Space.of(ir, R)
            net = Relaxed(ir, S.x0, S.bits(ir))
            L = (X[:, S.feats, None] >= ir.coding.thresholds[:, S.feats].T[None]).sum(axis=2)
            trace, scores = net.forward(S.bit_values(L))
            assert np.array_equal(scores, ir.scores(X)), (kind, seed)
            assert net.backward(trace, np.ones_like(scores)).shape == (len(X), len(S.bits(ir)))


def test_levels_map_to_inputs_of_the_region():
    ir, R, X, _, _ = query("thermometer", 3, "linf", 3)
    S = Space.of(ir, R)
    rng = np.random.default_rng(0)
    L = rng.integers(S.lo, S.hi + 1, size=(50, S.n))
    raw = S.raw(L)
    assert R.contains(raw).all()
    level = (raw[:, S.feats, None] >= ir.coding.thresholds[:, S.feats].T[None]).sum(axis=2)
    assert np.array_equal(level, L)
    assert np.array_equal(S.raw(S.mid[None])[0], R.center)  # the center is its own representative


@pytest.mark.parametrize("kind", list(KINDS))
def test_never_a_false_counterexample_and_finds_most(kind):
    """Untargeted, targeted and set-valued bad classes, L-infinity and L0: whatever the attack
    returns lies in the region and is predicted bad; it finds a counterexample in at least 90%
    of the queries that have one (all of them at the time of writing)."""
    exists = found = 0
    for seed in range(10):
        for norm, eps in (("linf", 1), ("linf", 2), ("l0", 1)):
            if norm == "l0" and "conv" in kind:
                continue  # L0 boxes of 9-18 features are too big to enumerate
            ir, R, X, pred, y = query(kind, seed, norm, eps)
            for bad in ([c for c in range(ir.n_classes) if c != y], [(y + 1) % ir.n_classes],
                        [c for c in range(ir.n_classes) if c not in (y, 0)]):
                if not bad:
                    continue
                x = attack(Engine(ir), ir, R, bad, seed=seed, timeout=None, max_steps=30)
                has = bool(np.isin(pred, bad).any())
                if x is not None:
                    assert R.contains(x[None])[0] and int(ir.predict(x[None])[0]) in bad, (seed, norm, eps, bad)
                exists += has
                found += has and x is not None
    assert exists >= 5
    assert found >= 0.9 * exists, (found, exists)


def test_l0_budget_and_the_center():
    """An L0 counterexample changes at most k features; a misclassified center is returned as
    it is; with no free feature and a good center there is nothing to find."""
    hits = 0
    for seed in range(12):
        ir, R, X, pred, y = query("dense", seed, "l0", 2)
        bad = [c for c in range(ir.n_classes) if c != y]
        x = attack(Engine(ir), ir, R, bad, timeout=None, max_steps=30)
        if x is not None:
            hits += 1
            assert np.count_nonzero(x != R.center) <= 2 and int(ir.predict(x[None])[0]) in bad
        x0 = attack(Engine(ir), ir, R, [y])
        assert np.array_equal(x0, R.center)
        assert attack(Engine(ir), ir, region.linf(ir.coding, R.center, 0), bad) is None
    assert hits >= 3


def test_deterministic_for_a_step_budget():
    ir, R, _, _, y = query("dense", 4, "linf", 2)
    bad = [c for c in range(ir.n_classes) if c != y]
    runs = [attack(Engine(ir), ir, R, bad, seed=7, timeout=None, max_steps=20) for _ in range(2)]
    assert (runs[0] is None and runs[1] is None) or np.array_equal(runs[0], runs[1])


def test_time_budget_is_kept_on_a_robust_query():
    """Class 2 can never win (its offset is far below every score), so nothing is found: the
    attack stops at its time budget, not after max_steps steps."""
    ir = random_ir(0, n_features=64, hi=255, levels=3, hidden=(64, 32), n_classes=3)
    off = ir.output.offset.copy()
    off[2] = -10**6
    ir = replace(ir, output=replace(ir.output, offset=off))
    R = region.linf(ir.coding, np.full(64, 128), 100)
    e = Engine(ir)
    t0 = time.perf_counter()
    assert attack(e, ir, R, [2], timeout=0.2, max_steps=10**9) is None
    assert time.perf_counter() - t0 < 2.0  # 0.2 s plus the set-up


def test_a_set_stop_event_ends_the_search():
    """A racer's cancel: set from another thread, the search ends within a gradient step (no
    time limit, no step limit)."""
    import threading

    ir = random_ir(0, n_features=64, hi=255, levels=3, hidden=(64, 32), n_classes=3)
    off = ir.output.offset.copy()
    off[2] = -10**6
    ir = replace(ir, output=replace(ir.output, offset=off))
    R = region.linf(ir.coding, np.full(64, 128), 100)
    stop = threading.Event()
    threading.Timer(0.3, stop.set).start()
    t0 = time.perf_counter()
    assert attack(Engine(ir), ir, R, [2], timeout=None, max_steps=10**9, stop=stop) is None
    assert 0.3 <= time.perf_counter() - t0 < 2.0


def test_no_bad_pattern_means_no_counterexample():
    """The pattern stage's claim "no pattern of the live first-layer neurons is bad" (the
    attack then stops at once) holds exactly when brute force finds no counterexample."""
    from bnnlogic.attack import _patterns, _Search

    claims = 0
    for kind in ("dense", "thermometer", "no-hidden"):
        for seed in range(10):
            for norm, eps in (("linf", 1), ("linf", 2), ("l0", 1)):
                ir, R, X, pred, y = query(kind, seed, norm, eps)
                bad = np.array([c != y for c in range(ir.n_classes)])
                S = Space.of(ir, R)
                if not S.n:
                    continue
                q = _Search(Relaxed(ir, S.x0, S.bits(ir)), S, bad, Engine(ir), np.random.default_rng(0), 8, 50)
                out = _patterns(q, None)
                if out is not None and not len(out):
                    claims += 1
                    assert not bad[pred].any(), (kind, seed, norm, eps)
                elif out is not None:
                    assert bad[ir.predict(S.raw(out))].all()
    assert claims >= 10


@pytest.mark.parametrize("stage", ["_single_moves", "_patterns", "_gradient", "_local_search"])
def test_each_stage_alone_is_sound(stage):
    """Every stage on its own returns only levels whose inputs lie in the region (an L0
    region: within its budget) and are predicted bad; the gradient stage alone and the local
    search alone each find most counterexamples of these boxes."""
    import bnnlogic.attack as A

    exists = found = 0
    for kind in ("dense", "thermometer", "conv-pool"):
        for seed in range(8):
            for norm, eps in (("linf", 1), ("linf", 2)) + ((("l0", 2),) if kind != "conv-pool" else ()):
                ir, R, X, pred, y = query(kind, seed, norm, eps)
                bad = np.array([c != y for c in range(ir.n_classes)])
                S = Space.of(ir, R)
                if not S.n or bad[ir.predict(S.x0[None])[0]]:
                    continue
                q = A._Search(Relaxed(ir, S.x0, S.bits(ir)), S, bad, Engine(ir), np.random.default_rng(seed), 16, 40)
                out = getattr(A, stage)(q, None)
                if out is not None and len(out):
                    Xo = S.raw(out)
                    assert R.contains(Xo).all() and bad[ir.predict(Xo)].all(), (kind, seed, norm, eps)
                    assert S.l0 is None or (out != S.mid).sum(axis=1).max() <= S.l0
                exists += bool(bad[pred].any())
                found += out is not None and len(out) > 0
    assert exists >= 10
    if stage in ("_gradient", "_local_search"):
        assert found >= 0.8 * exists, (found, exists)


def test_the_local_search_keeps_its_best_input():
    """Where the local search finds nothing, ``q.elite`` is (gap, levels) of the best input it
    met: levels of the region whose exact gap (best bad score minus best good score) is the
    one recorded, and at most 0 (a robust box: at best a tie the good class wins)."""
    import bnnlogic.attack as A

    kept = 0
    for seed in range(12):
        ir, R, X, pred, y = query("dense", seed, "linf", 1)
        bad = np.array([c != y for c in range(ir.n_classes)])
        S = Space.of(ir, R)
        if not S.n or bad[pred].any():  # robust boxes only: the search runs its whole budget
            continue
        q = A._Search(Relaxed(ir, S.x0, S.bits(ir)), S, bad, Engine(ir), np.random.default_rng(seed), 16, 60)
        assert A._local_search(q, None) is None
        gap, L = q.elite
        assert ((L >= S.lo) & (L <= S.hi)).all()
        scores = ir.scores(S.raw(L[None]))
        assert gap == A._gap(q, scores)[0] <= 0
        kept += 1
    assert kept >= 3
