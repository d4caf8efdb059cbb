"""verify / radius / property / equivalence / batch against brute force on tiny models."""
from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest

from bnnlogic import Model
from bnnlogic.batch import read_done, run_batch
from bnnlogic.errors import UserError
from bnnlogic.logic import region
from bnnlogic.verification import VerifyResult, equivalent, load_property, robustness_radius, verify, verify_region
from tests.helpers import box_inputs, random_ir


def tiny(seed, **kw):
    return Model(random_ir(seed, **{**dict(n_features=4, hi=5, hidden=(6, 4)), **kw}))


def brute_cex(m, x, eps, allowed):
    R = region.linf(m.ir.coding, x, eps)
    return bool((~np.isin(m.ir.predict(box_inputs(R.lo, R.hi)), allowed)).any())


@pytest.mark.parametrize("seed", range(8))
@pytest.mark.parametrize("use_attack", [True, False])
def test_verify_matches_brute_force(seed, use_attack):
    m = tiny(seed)
    x = np.random.default_rng(seed).integers(0, 6, 4)
    y = int(m.predict(x)[0])
    for eps in (0, 1, 2, 3):
        r = verify(m, x, eps=eps, use_attack=use_attack)
        assert r.status == ("counterexample" if brute_cex(m, x, eps, [y]) else "robust"), (seed, eps)
        if r.status == "counterexample":
            assert r.adv_label != y and np.abs(r.counterexample - x).max() <= eps
            assert int(m.predict(r.counterexample)[0]) == r.adv_label


def test_bounds_alone_decide_a_point_and_agree_with_brute_force():
    """At eps 0 every neuron is fixed, so interval bounds decide a correctly kept label with no
    search (backend "bounds"); over eps 0-3 every robust verdict, whoever gave it, is true."""
    deciders = set()
    for seed in range(8):
        m = tiny(seed)
        x = np.random.default_rng(seed).integers(0, 6, 4)
        y = int(m.predict(x)[0])
        assert verify(m, x, eps=0).backend == "bounds"
        for eps in (1, 2, 3):
            r = verify(m, x, eps=eps)
            deciders.add(r.backend)
            assert (r.status == "robust") == (not brute_cex(m, x, eps, [y]))
    assert "bounds" in deciders


@pytest.mark.parametrize("seed", range(6))
def test_targeted_and_allowed_sets(seed):
    m = tiny(seed, n_classes=4)
    x = np.random.default_rng(seed).integers(0, 6, 4)
    for t in range(4):
        r = verify(m, x, eps=2, target=t)
        assert r.status == ("counterexample" if brute_cex(m, x, 2, [c for c in range(4) if c != t]) else "robust")
        if r.status == "counterexample":
            assert r.adv_label == t
    r = verify(m, x, eps=2, allowed=[0, 1])
    assert r.status == ("counterexample" if brute_cex(m, x, 2, [0, 1]) else "robust")


@pytest.mark.parametrize("seed", range(8))
def test_robustness_radius_is_exact(seed):
    m = tiny(seed)
    x = np.random.default_rng(seed).integers(0, 6, 4)
    y = int(m.predict(x)[0])
    first = next((e for e in range(6) if brute_cex(m, x, e, [y])), None)
    r = robustness_radius(m, x)
    assert r.complete and r.open_reason is None
    assert r.radius_counterexample == first
    assert r.radius_robust == (5 if first is None else first - 1)
    if first is not None:
        assert int(m.predict(r.counterexample)[0]) != y
    # every probe was a decision that brute force confirms; after the bounds' radius the search
    # is the ladder: eps b + 1, b + 2, ..., robust up to the last
    for p in r.probes:
        assert p["status"] == ("counterexample" if brute_cex(m, x, p["eps"], [y]) else "robust")
    ladder = [p for p in r.probes if p["backend"] != "bounds"]
    start = r.probes[0]["eps"] + 1 if r.probes[0]["backend"] == "bounds" else 1
    assert [p["eps"] for p in ladder] == list(range(start, start + len(ladder)))
    assert all(p["status"] == "robust" for p in ladder[:-1]) and r.solver_calls == len(r.probes)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 7, 18])  # nets where bounds alone prove some eps, not all
def test_the_radius_search_starts_at_the_bounds_radius_and_climbs_like_the_ladder(seed):
    """Interval bounds alone first give the largest eps b they prove (checked eps by eps); the
    first full decision is the ladder's next step, b + 1; the radius is brute force's."""
    from bnnlogic.logic.bounds import propagate
    from bnnlogic.verification import _bounds_exclude, make_region

    m = tiny(seed, hi=9, levels=3)
    x = np.random.default_rng(seed).integers(0, 10, 4)
    y = int(m.predict(x)[0])
    bad = [k for k in range(m.ir.n_classes) if k != y]

    def proves(e):
        R = make_region(m, x, e)
        return _bounds_exclude(m, R, propagate(m.ir, R.lo, R.hi), bad)

    span = m.ir.coding.hi - m.ir.coding.lo
    b = max((e for e in range(span + 1) if all(proves(k) for k in range(1, e + 1))), default=0)
    assert [proves(e) for e in range(1, span + 1)] == [e <= b for e in range(1, span + 1)]  # monotone in eps
    first = next((e for e in range(span + 1) if brute_cex(m, x, e, [y])), None)
    r = robustness_radius(m, x, label=y)
    eps = [p["eps"] for p in r.probes]
    assert r.complete and r.radius_counterexample == first and 0 < b <= r.radius_robust
    assert (r.probes[0]["backend"], eps[0]) == ("bounds", b)
    if b < span:  # the first full decision
        assert eps[1] == b + 1


def test_an_attack_hit_above_the_radius_that_fails_replay_is_a_bug(monkeypatch):
    """``_upper_bracket`` replays every hit like any counterexample: one that keeps the label
    raises, it is never reported."""
    import time

    from bnnlogic import verification

    m = tiny(0)
    x = np.array([1, 2, 3, 4])
    y = int(m.predict(x)[0])
    monkeypatch.setattr(verification, "attack", lambda engine, ir, R, bad, **kw: x.copy())  # x keeps y
    with pytest.raises(RuntimeError, match="failed replay"):
        verification._upper_bracket(m, x, y, 1, 5, time.perf_counter() + 5, "low")


def test_robustness_radius_of_a_misclassified_input_is_zero():
    m = tiny(0)
    x = np.array([1, 2, 3, 4])
    other = (int(m.predict(x)[0]) + 1) % m.ir.n_classes
    r = robustness_radius(m, x, label=other)
    assert (r.radius_robust, r.radius_counterexample, r.open_reason, r.complete) == (None, 0, "misclassified", True)


@pytest.mark.parametrize("seed", range(4))
def test_robustness_radius_through_the_race_and_out_of_time(monkeypatch, seed):
    """Each probe goes through the full decision path (here forced into the racing portfolio);
    with no time left the interval stays open and says why."""
    from bnnlogic import verification

    monkeypatch.setattr(verification, "SWEEP_FIRST", -1)
    m = tiny(seed)
    x = np.random.default_rng(seed).integers(0, 6, 4)
    y = int(m.predict(x)[0])
    first = next((e for e in range(6) if brute_cex(m, x, e, [y])), None)
    r = robustness_radius(m, x, timeout=60)
    assert r.complete and r.radius_counterexample == first
    r = robustness_radius(m, x, timeout=0)
    assert not r.complete and r.open_reason == "time" and r.radius_robust == 0


@pytest.mark.parametrize("first", [1, 2, 4, 5, 6, None])
def test_an_undecided_eps_ends_the_radius_search_with_all_the_time_left(monkeypatch, first):
    """Boxes of eps >= 7 are too hard (every probe of them runs out of time); the others are
    decided.  The search climbs eps 1, 2, ... as the ladder does, each probe with all the time
    left; it proves both sides of the radius when it lies below 7 and otherwise stops at the
    undecided eps 7 with the interval open, its reserve then spent on the attack above 7."""
    from bnnlogic import verification

    m = tiny(0)
    x = np.array([1, 2, 3, 4])
    y = int(m.predict(x[None])[0])
    limits = {}

    def fake(model, R, allowed, label, backend, timeout, **kw):
        eps = int(R.eps)
        limits[eps] = timeout
        out = VerifyResult("robust", eps, label, allowed, 0.0, backend, "")
        if eps >= 7:
            out.status = "unknown"
        elif first is not None and eps >= first:
            out.status, out.counterexample = "counterexample", x.copy()
            out.counterexample[0] += first
        return out

    monkeypatch.setattr(verification, "verify_region", fake)
    monkeypatch.setattr(verification, "_bounds_radius", lambda *a: 0)  # every eps from the fake
    monkeypatch.setattr(verification.region, "linf", lambda coding, x, eps: SimpleNamespace(eps=eps))  # eps > domain
    above = []

    def upper(model, x, label, lo, max_eps, end, ties):  # the attack above the open eps: a hit at 12
        above.append(lo)
        a = x.copy()
        a[1] += 12
        return 15, a

    monkeypatch.setattr(verification, "_upper_bracket", upper)
    r = robustness_radius(m, x, label=y, max_eps=20, timeout=60)
    probed = [p["eps"] for p in r.probes if p["backend"] != "attack"]
    last = 7 if first is None else first
    assert probed == list(range(1, last + 1))
    if first is None:  # the radius is at least 6 and 7 is undecided: the interval stays open above 6
        assert (r.radius_robust, r.radius_counterexample, r.complete, r.open_reason) == (6, 12, False, "time")
        assert above == [8] and r.probes[-1]["backend"] == "attack" and r.probes[-1]["eps"] == 15
    else:
        assert (r.radius_robust, r.radius_counterexample, r.complete) == (first - 1, first, True)
        assert above == []  # a search that completes never looks above
    reserve = min(verification.UPPER_TOTAL_S, verification.UPPER_SHARE * 60)
    assert all(limits[e] == pytest.approx(60 - reserve, abs=0.5) for e in probed)  # all the time left but the reserve


@pytest.mark.parametrize("seed", range(8))
def test_the_attack_above_an_open_eps_brackets_the_radius(seed):
    """``_upper_bracket`` (attack-only probes from eps lo up, then bisection down) returns a
    replayed counterexample no closer to x than brute force's first bad eps, within its eps; or
    None where no eps up to the domain's span has one."""
    import time

    from bnnlogic.verification import _upper_bracket

    m = tiny(seed)
    x = np.random.default_rng(seed).integers(0, 6, 4)
    y = int(m.predict(x)[0])
    span = m.ir.coding.hi - m.ir.coding.lo
    first = next((e for e in range(span + 1) if brute_cex(m, x, e, [y])), None)
    hit = _upper_bracket(m, x, y, 1, span, time.perf_counter() + 5, "low")
    if first is None:
        assert hit is None
    else:
        eps, a = hit
        d = int(np.abs(a - x).max())
        assert int(m.predict(a)[0]) != y and first <= d <= eps and brute_cex(m, x, d, [y])


def test_property_file(tmp_path):
    m = tiny(3, n_classes=3)
    p = tmp_path / "p.json"
    p.write_text(json.dumps({"pre": {"norm": "box", "lo": 1, "hi": 3}, "post": {"not_in": [2]}}))
    R, allowed = load_property(p, m, None)
    assert allowed == [0, 1]
    preds = m.ir.predict(box_inputs(R.lo, R.hi))
    r = verify_region(m, R, allowed, 0)
    assert r.status == ("counterexample" if (preds == 2).any() else "robust")
    p.write_text("{not json")
    with pytest.raises(UserError):
        load_property(p, m, None)


@pytest.mark.parametrize("seed", range(4))
def test_equivalence_miter(seed):
    a, b = tiny(seed, n_classes=3), tiny(seed + 50, n_classes=3)
    assert equivalent(a, a).status == "equivalent"
    X = box_inputs(np.zeros(4), np.full(4, 5))
    r = equivalent(a, b)
    assert r.status == ("different" if (a.ir.predict(X) != b.ir.predict(X)).any() else "equivalent")
    if r.status == "different":
        assert r.predictions[0] != r.predictions[1]


def test_verify_rejects_bad_input():
    m = tiny(0)
    with pytest.raises(UserError):
        verify(m, [1, 2, 3], eps=1)
    with pytest.raises(UserError):
        verify(m, [1, 2, 3, 4], eps=6)
    with pytest.raises(UserError):
        verify(m, [1, 2, 3, 4], eps=1, label=7)


def test_batch_writes_lines_and_resumes(tmp_path):
    m = tiny(1)
    path = tmp_path / "m.bnn"
    m.save(path)
    rng = np.random.default_rng(0)
    X = rng.integers(0, 6, (6, 4))
    y = m.predict(X)
    out = tmp_path / "res.jsonl"
    first = run_batch(str(path), X, y, range(3), [1, 2], str(out), progress=False, cex_dir=str(tmp_path / "cex"))
    assert len(first) == 6
    with open(out, "a") as fh:  # a run killed while writing a line
        fh.write('{"index": 5, "ep')
    recs = run_batch(str(path), X, y, range(6), [1, 2], str(out), progress=False)
    assert sorted((r["index"], r["eps"]) for r in recs) == [(i, e) for i in range(6) for e in (1, 2)]
    assert len(read_done(out)) == 12
    for r in recs:
        assert {"index", "eps", "status", "time_s", "label", "backend", "encoding", "stats"} <= set(r)
        truth = brute_cex(m, X[r["index"]], r["eps"], [y[r["index"]]])
        assert r["status"] == ("counterexample" if truth else "robust")
        if r["status"] == "counterexample":
            assert "adv_label" in r and "counterexample" in r


def test_top_level_names_are_the_functions_and_the_module_stays_reachable():
    """``bnnlogic.verify(model, x, eps=...)`` is the notebook entry point; the verification
    module has its own name, so importing it never rebinds a package-level function."""
    import bnnlogic
    import bnnlogic.verification as module

    assert module.robustness_radius is bnnlogic.robustness_radius
    assert callable(bnnlogic.verify) and bnnlogic.verify is module.verify
    ir = random_ir(2, n_features=4, hi=3, hidden=(5,))
    x = np.zeros(4, dtype=np.int64)
    r = bnnlogic.verify(Model(ir), x, eps=1)
    assert isinstance(r, bnnlogic.VerifyResult) and r.status in ("robust", "counterexample")
    r2 = verify(Model(ir), x, eps=1)
    assert (r.status, r.adv_label) == (r2.status, r2.adv_label)

def _tie_model(seed):
    """A tiny model whose scores tie often (scale 1, offsets 0/1)."""
    from bnnlogic.ir import IR, Output

    ir = random_ir(seed, n_features=4, hi=5, hidden=(6,), p_zero=0.5)
    off = np.random.default_rng(seed).integers(0, 2, ir.n_classes).astype(np.int64)
    return Model(IR(ir.coding, ir.layers, Output(ir.output.A, 1, off)))


def brute_cex_ties(m, x, eps, allowed, ties):
    from bnnlogic.ir import in_classes

    R = region.linf(m.ir.coding, x, eps)
    bad = ~np.isin(np.arange(m.ir.n_classes), allowed)
    return bool(in_classes(m.ir.scores(box_inputs(R.lo, R.hi)), bad, ties).any())


@pytest.mark.parametrize("seed", range(8))
def test_verify_and_radius_with_adversarial_ties(seed):
    """verify(..., ties=...) and the radius agree with brute force under both tie rules (every
    path of the auto portfolio: bounds, branch and bound, solver; attack on and off); the two
    rules differ on some of these queries."""
    from bnnlogic.ir import in_classes

    m = _tie_model(seed)
    x = np.random.default_rng(seed).integers(0, 6, 4)
    y = int(m.predict(x)[0])
    for ties in ("low", "adversarial"):
        for eps in (0, 1, 2):
            for backend, use_attack in (("auto", True), ("exact", False), ("cnf:glucose4:totalizer", True)):
                r = verify(m, x, eps=eps, backend=backend, use_attack=use_attack, ties=ties)
                assert r.status == ("counterexample" if brute_cex_ties(m, x, eps, [y], ties) else "robust")
                if r.status == "counterexample":
                    bad = np.arange(m.ir.n_classes) != y
                    assert r.adv_label != y and in_classes(m.scores(r.counterexample), bad, ties)[0]
        first = next((e for e in range(6) if brute_cex_ties(m, x, e, [y], ties)), None)
        r = robustness_radius(m, x, label=y, ties=ties)
        assert r.complete and r.radius_counterexample == first


def test_the_two_tie_rules_differ_on_the_tie_models():
    """The test above can fail: some of its queries are robust with ties low only."""
    differ = 0
    for seed in range(8):
        m = _tie_model(seed)
        x = np.random.default_rng(seed).integers(0, 6, 4)
        y = int(m.predict(x)[0])
        differ += sum(brute_cex_ties(m, x, e, [y], "low") != brute_cex_ties(m, x, e, [y], "adversarial")
                      for e in (0, 1, 2))
    assert differ >= 3
