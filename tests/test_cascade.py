"""Two-BNN bounding cascade: answer rule, calibration, metrics, consistency vs brute force, CLI."""
import json

import numpy as np
import pytest

from bnnlogic.cascade import (NO, UNKNOWN, YES, Cascade, calibrate, calibrate_shared, consistent, evaluate,
                              guarantee, margin, shift_yes, side_threshold, split)
from bnnlogic.cli import main
from bnnlogic.logic import region
from bnnlogic.model import Model
from bnnlogic.verification import equivalent
from helpers import box_inputs, random_ir


def _pair(seed: int, **kw) -> tuple[Model, Model]:
    kw = {"n_features": 3, "hi": 3, "hidden": (4,), "n_classes": 2, **kw}
    return Model(random_ir(seed, **kw)), Model(random_ir(seed + 100, **kw))


def _all_inputs(m: Model) -> np.ndarray:
    c = m.ir.coding
    return box_inputs(np.full(c.n_features, c.lo), np.full(c.n_features, c.hi))


@pytest.mark.parametrize("seed", range(8))
def test_consistency_miter_agrees_with_enumeration(seed):
    lower, upper = _pair(seed)
    X = _all_inputs(lower)
    bad = (lower.predict(X) == YES) & (upper.predict(X) == NO)
    r = equivalent(lower, upper, implies=([YES], [YES]))
    assert r.status == ("different" if bad.any() else "equivalent")
    c = Cascade(lower, upper, positive=0)
    v = consistent(c, timeout=30)
    assert v["status"] == ("inconsistent" if bad.any() else "consistent")
    if bad.any():
        w = np.array(v["witness"])
        assert (v["lower_pred"], v["upper_pred"]) == (YES, NO)
        assert bad[np.flatnonzero((X == w).all(1))[0]]


@pytest.mark.parametrize("seed", [0, 2, 3, 4])  # seeds whose margin takes >= 3 values
def test_shared_calibration_is_safe_and_consistent(seed):
    """One network, two thresholds a >= b: safe on the calibration inputs, consistent everywhere."""
    m, _ = _pair(seed, n_features=4, hidden=(8,))
    X = _all_inputs(m)
    mg = margin(m, X)
    # separable targets with a gap: the two safe thresholds would cross without the a >= b rule
    u = np.unique(mg)
    assert len(u) >= 3
    no, yes = mg <= u[len(u) // 2 - 1], mg >= u[len(u) // 2 + 1]
    target, keep = yes.astype(int), no | yes
    lower, upper, a, b = calibrate_shared(m, X[keep], target[keep])
    assert a >= b
    assert not np.any(lower.predict(X[keep])[target[keep] == NO] == YES)
    assert not np.any(upper.predict(X[keep])[target[keep] == YES] == NO)
    lo, up = lower.predict(X), upper.predict(X)
    assert not np.any((lo == YES) & (up == NO))
    assert consistent(Cascade(lower, upper, 0))["status"] == "consistent"


@pytest.mark.parametrize("seed", range(4))
def test_calibration_is_exact_and_tight(seed):
    m, _ = _pair(seed, n_features=4)
    X = _all_inputs(m)
    target = np.random.default_rng(seed).integers(0, 2, len(X))
    lower, d = calibrate(m, X, target, "lower")
    assert not np.any(lower.predict(X)[target == NO] == YES)
    assert np.any(margin(m, X)[target == NO] + d + 1 > 0)  # one less shift would say yes on a no
    upper, d = calibrate(m, X, target, "upper")
    assert not np.any(upper.predict(X)[target == YES] == NO)
    assert np.any(margin(m, X)[target == YES] + d - 1 <= 0)


@pytest.mark.parametrize("guard", [1, 3])
def test_guard_keeps_margin_units_to_spare(guard):
    m, _ = _pair(1, n_features=4)
    X = _all_inputs(m)
    target = np.random.default_rng(1).integers(0, 2, len(X))
    mg = margin(m, X)
    _, d = calibrate(m, X, target, "lower", guard)
    assert mg[target == NO].max() + d == -guard  # every no input at least `guard` below saying yes
    _, d = calibrate(m, X, target, "upper", guard)
    assert mg[target == YES].min() + d == 1 + guard
    _, _, a0, b0 = calibrate_shared(m, X, target)
    lower, upper, a, b = calibrate_shared(m, X, target, (guard, guard + 1))
    assert (a, b) == (a0 + guard, b0 - guard - 1)
    assert not np.any((lower.predict(X) == YES) & (upper.predict(X) == NO))


def test_split_is_seeded_disjoint_and_sized():
    rows, hold = split(10, 0.3, seed=1)
    assert len(hold) == 3 and sorted(np.concatenate([rows, hold])) == list(range(10))
    assert all(np.array_equal(u, v) for u, v in zip(split(10, 0.3, seed=1), (rows, hold)))
    assert len(split(10, 0.0)[1]) == 0


def test_guarantee_counts_the_held_out_answers():
    g = guarantee(np.array([NO, NO, NO, YES]))
    assert (g["no_inputs"], g["yes_inputs"], g["calibrated_on"]) == (3, 1, 4)
    assert (g["false_yes_rate"], g["false_no_rate"]) == (1 / 4, 1 / 2)


@pytest.mark.parametrize("n", [4, 19])
def test_split_conformal_bound_holds_with_ties(n):
    """The lower threshold set on n exchangeable no-margins (few distinct values: many ties) is
    passed by a new one with frequency <= 1 / (n + 1), the bound ``guarantee`` states."""
    rng = np.random.default_rng(n)
    trials = 20000
    m = rng.integers(0, 6, (trials, n + 1))  # n calibration margins and a new one per trial
    t = np.full(n, NO)
    passed = sum(m[i, n] > side_threshold(m[i, :n], t, "lower") for i in range(trials))
    assert passed / trials <= guarantee(t)["false_yes_rate"] + 3 * np.sqrt(0.25 / trials)
    assert passed > 0  # the bound is not vacuous here: new margins do pass sometimes


def test_answers_follow_the_rule_and_metrics_are_counted():
    lower, upper = _pair(5)
    X = _all_inputs(lower)
    lo, up = lower.predict(X), upper.predict(X)
    c = Cascade(lower, upper, positive=1)
    expect = np.where(lo == YES, YES, np.where(up == NO, NO, UNKNOWN))
    got = c.bnn_answers(X)
    assert np.array_equal(got, expect) and (got == UNKNOWN).any() and (got != UNKNOWN).any()
    dnn = (X.sum(1) % 2).astype(np.int64)  # a stand-in DNN's yes/no
    final = c.answers(X, lambda Z: (Z.sum(1) % 2).astype(np.int64))
    assert np.array_equal(final, np.where(expect == UNKNOWN, dnn, expect))

    from bnnlogic.quant.graph import FloatNet, Linear

    # a float "DNN" with logits (0, x0 - x1 - 0.5): yes iff x0 > x1 (positive class 1)
    c._dnn = FloatNet((3,), [Linear(np.array([[0.0, 0, 0], [1, -1, 0]]), np.array([0.0, -0.5]))])
    y = np.random.default_rng(0).integers(0, 2, len(X))
    res = evaluate(c, X, y, repeat=1)
    dnn = (X[:, 0] > X[:, 1]).astype(np.int64)
    dec = expect != UNKNOWN
    assert res["coverage"] == pytest.approx(dec.mean())
    assert res["fidelity"] == pytest.approx((expect[dec] == dnn[dec]).mean())
    assert res["accuracy"] == pytest.approx((np.where(dec, expect, dnn) == y).mean())
    assert res["dnn_accuracy"] == pytest.approx((dnn == y).mean()) and res["speedup"] > 0


@pytest.mark.parametrize("shifts", [(0, 0), (2, -1), (1, 3), (-2, -2)])
def test_shared_pair_answers_from_one_engine_run(shifts):
    """One network with two yes-offsets is run once (margin + offset gap); the answers equal the
    rule on both BNNs' own predictions, ties (margin 0) included; a different net is not shared."""
    m, other = _pair(7, n_features=4, hidden=(6,))
    lower, upper = shift_yes(m, shifts[0]), shift_yes(m, shifts[1])
    X = _all_inputs(m)
    c = Cascade(lower, upper, positive=1)
    assert c._gap == shifts[1] - shifts[0] and (margin(m, X) == 0).any()
    lo, up = lower.predict(X), upper.predict(X)
    assert np.array_equal(c.bnn_answers(X), np.where(lo == YES, YES, np.where(up == NO, NO, UNKNOWN)))
    assert Cascade(lower, other, positive=1)._gap is None


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A tiny float DNN on digits, saved, and a cascade for digit 0 built by the CLI."""
    from bnnlogic.data import load_dataset
    from bnnlogic.nn.floatnet import save_float, train_float

    d = tmp_path_factory.mktemp("c")
    data = load_dataset("digits")
    dnn = train_float(data, "mlp:16", epochs=5, progress=False)
    save_float(dnn, data.feature_shape, d / "dnn.pt")
    assert main(["cascade", "build", str(d / "dnn.pt"), "--data", "digits", "--positive", "0", "--arch", "mlp:8",
                 "--epochs", "3", "--out", str(d / "c0"), "--timeout", "20", "--shared", "--json"]) == 0
    return d, data


def test_built_cascade_is_calibrated_and_evaluated(built, capsys):
    d, data = built
    c = Cascade.load(d / "c0")
    assert sorted(p.name for p in (d / "c0").iterdir()) == ["cascade.json", "dnn.pt", "lower.bnn", "upper.bnn"]
    rows, hold = split(len(data.X_train), 0.5, seed=0)  # the default split calibration
    assert c.meta["holdout"] == 0.5 and c.meta["trained_on"] == len(rows)
    dnn_hold = c.dnn_yes(data.X_train[hold])
    bnn = c.bnn_answers(data.X_train[hold])
    assert np.all(bnn[bnn != UNKNOWN] == dnn_hold[bnn != UNKNOWN])  # exact on the calibration inputs
    assert c.meta["guarantee"] == guarantee(dnn_hold)
    assert c.meta["consistency"]["status"] in ("consistent", "unknown")  # shared: never inconsistent
    capsys.readouterr()
    assert main(["cascade", "eval", str(d / "c0"), "--data", "digits", "--region-n", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"coverage", "fidelity", "accuracy", "speedup", "consistent", "region_decided", "guarantee"} <= set(out)
    assert 0 <= out["coverage"] <= 1 and out["n"] == len(data.y_test)
    n_yes = int(c.dnn_yes(data.X_test).sum())
    g = c.meta["guarantee"]
    assert out["guarantee"]["expected_disagreements_at_most"] == pytest.approx(
        (len(data.y_test) - n_yes) * g["false_yes_rate"] + n_yes * g["false_no_rate"])
    assert all(a in ("yes", "no", "undecided", "unknown") for a in out["region_decided"]["answers"])


def test_holdout_0_calibrates_on_the_whole_split(built, capsys):
    d, data = built
    capsys.readouterr()
    assert main(["cascade", "build", str(d / "dnn.pt"), "--data", "digits", "--positive", "0", "--arch", "mlp:8",
                 "--epochs", "3", "--out", str(d / "all"), "--timeout", "20", "--shared", "--holdout", "0",
                 "--guard", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["guard"] == [2, 2] and out["guarantee"] is None
    c = Cascade.load(d / "all")
    assert c.meta["trained_on"] == len(data.X_train) and "guarantee" not in c.meta
    bnn = c.bnn_answers(data.X_train)
    assert np.all(bnn[bnn != UNKNOWN] == c.dnn_yes(data.X_train)[bnn != UNKNOWN])
    m = margin(c.lower, data.X_train)  # the guard: every DNN-no input at least 2 units below saying yes
    assert m[c.dnn_yes(data.X_train) == NO].max() <= -2


def test_ensemble_cascade_is_one_summed_network(built, capsys):
    d, data = built
    capsys.readouterr()
    assert main(["cascade", "build", str(d / "dnn.pt"), "--data", "digits", "--positive", "0", "--arch", "mlp:8",
                 "--epochs", "3", "--out", str(d / "ens"), "--timeout", "20", "--shared", "--ensemble", "2",
                 "--json"]) == 0
    c = Cascade.load(d / "ens")
    assert c.meta["ensemble"] == 2 and c.lower.meta["ensemble"]["members"] == 2
    assert [layer.A.shape[0] for layer in c.lower.ir.layers] == [16]
    assert c._gap is not None  # still one network with two yes-offsets
    _, hold = split(len(data.X_train), 0.5, seed=0)
    bnn = c.bnn_answers(data.X_train[hold])
    assert np.all(bnn[bnn != UNKNOWN] == c.dnn_yes(data.X_train[hold])[bnn != UNKNOWN])
    assert main(["cascade", "build", str(d / "dnn.pt"), "--data", "digits", "--positive", "0", "--arch",
                 "cnn:c2k3", "--epochs", "1", "--out", str(d / "x"), "--shared", "--ensemble", "2"]) == 2
    assert "--ensemble 2 with --arch cnn:c2k3" in capsys.readouterr().err


@pytest.mark.parametrize("holdout", [1e-4, 2e-3])
def test_too_few_held_out_inputs_is_a_user_error(built, holdout):
    """No held-out input at all (1e-4 of the digits training split rounds to 0), or a handful."""
    from bnnlogic.errors import UserError
    from bnnlogic.nn.cascade_train import build_cascade
    from bnnlogic.nn.floatnet import load_float

    d, data = built
    with pytest.raises(UserError, match="do not hold both a DNN-yes and a DNN-no input"):
        build_cascade(load_float(d / "dnn.pt"), data, 0, "mlp:8", 1, holdout=holdout, progress=False)


@pytest.mark.parametrize("argv,msg", [
    (["cascade", "build", "nope.pt", "--data", "digits", "--positive", "0", "--out", "x"], "no such network file"),
    (["cascade", "build", "nope.pt", "--data", "digits", "--positive", "0", "--out", "x", "--guard", "-1"],
     "--guard -1"),
    (["cascade", "build", "nope.pt", "--data", "digits", "--positive", "0", "--out", "x", "--holdout", "1"],
     "--holdout 1"),
    (["cascade", "build", "nope.pt", "--data", "digits", "--positive", "0", "--out", "x", "--ensemble", "0"],
     "--ensemble 0"),
    (["cascade", "eval", ".", "--data", "digits"], "not a cascade folder"),
])
def test_user_errors_are_one_line(argv, msg, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and msg in err and err.count("\n") == 1


def test_bad_positive_class_is_one_line(built, capsys):
    d, _ = built
    assert main(["cascade", "build", str(d / "dnn.pt"), "--data", "digits", "--positive", "12",
                 "--out", str(d / "x")]) == 2
    err = capsys.readouterr().err
    assert "classes 0..9" in err and err.count("\n") == 1
