"""OPB and WCNF exports, solved by independent solvers, against brute force and bnnlogic's own answers.

OPB: Debian's clasp (reads OPB itself; installed by .ci/run) and CP-SAT fed by a ten-line OPB
reader here.  WCNF: PySAT's RC2 reading the file.  Oracle: every input of the box.
"""
import itertools
import json
import re
import shutil
import subprocess

import numpy as np
import pytest

from bnnlogic import Model
from bnnlogic.cli import main
from bnnlogic.interop.opb import write_opb
from bnnlogic.interop.wcnf import radius_encoding, write_wcnf
from bnnlogic.logic import encode, region
from bnnlogic.logic.dimacs import decode_model
from bnnlogic.verification import robustness_radius
from tests.helpers import box_inputs, random_ir

NETS = [dict(seed=2, levels=2, hi=5), dict(seed=0, hi=4, hidden=(6, 4)),
        dict(seed=8, image=(1, 3, 3), conv=((2, 2, 1),), pool=2, hidden=(3,), hi=2),
        dict(seed=6, levels=3, hi=7, n_features=3, hidden=(5,))]  # seeds whose predictions vary


def _cases():
    """(model, center, label, eps) over the nets, with robust and non-robust queries."""
    for kw in NETS:
        model = Model(random_ir(**kw))
        c = model.ir.coding
        rng = np.random.default_rng(kw["seed"])
        for _ in range(3):
            x = rng.integers(c.lo, c.hi, size=c.n_features, endpoint=True)
            label = int(model.predict(x[None])[0])
            for eps in (1, 2):
                yield model, x, label, eps


def _brute_cex(model, R, label) -> bool:
    return bool((model.predict(box_inputs(R.lo, R.hi)) != label).any())


def _read_opb(path):
    """(terms, rhs) rows of an OPB file: ``+a xv ... >= rhs ;``."""
    rows = []
    for line in open(path):
        if line.startswith("*") or not line.strip():
            continue
        lhs, rhs = line.rstrip(" ;\n").split(">=")
        rows.append(([(int(a), int(v)) for a, v in re.findall(r"([+-]\d+) x(\d+)", lhs)], int(rhs)))
    return rows


def _cpsat_opb(path, n_vars):
    from ortools.sat.python import cp_model

    m = cp_model.CpModel()
    x = [None] + [m.NewBoolVar(f"x{i}") for i in range(1, n_vars + 1)]
    for terms, rhs in _read_opb(path):
        m.Add(sum(a * x[v] for a, v in terms) >= rhs)
    s = cp_model.CpSolver()
    st = s.Solve(m)
    if st in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return {i for i in range(1, n_vars + 1) if s.BooleanValue(x[i])}
    assert st == cp_model.INFEASIBLE
    return None


def _clasp_opb(path):
    out = subprocess.run(["clasp", str(path)], capture_output=True, text=True).stdout
    if "s UNSATISFIABLE" in out:
        return None
    assert "s SATISFIABLE" in out or "s OPTIMUM FOUND" in out, out
    return {int(t[1:]) for line in out.splitlines() if line.startswith("v ") for t in line.split()[1:]
            if t.startswith("x")}


OPB_SOLVERS = [_cpsat_opb] + ([lambda p, n: _clasp_opb(p)] if shutil.which("clasp") else [])


@pytest.mark.parametrize("use_bounds", [True, False])
def test_opb_verdicts_match_brute_force(tmp_path, use_bounds):
    path = tmp_path / "q.opb"
    seen = set()
    for model, x, label, eps in _cases():
        R = region.linf(model.ir.coding, x, eps)
        enc = encode(model.ir, R, [[(0, [c for c in range(model.ir.n_classes) if c != label])]], use_bounds)
        size = write_opb(enc, path)
        mapping = json.loads((tmp_path / "q.opb.map.json").read_text())
        truth = _brute_cex(model, R, label)
        for solve in OPB_SOLVERS:
            true_vars = solve(path, size["variables"])
            assert (true_vars is not None) == truth
            if true_vars is not None:  # the model decodes to a replayed counterexample
                adv = decode_model(mapping, true_vars)
                assert R.contains(adv[None])[0] and model.predict(adv[None])[0] != label
        seen.add(truth)
    assert seen == {True, False}


def test_opb_rows_mean_the_formula():
    """On every assignment, the OPB rows hold iff the formula's clauses and (reified) cardinality
    constraints hold: repeated and negated literals, both directions, one way, hard."""
    import itertools

    from bnnlogic.interop.opb import pb_constraints
    from bnnlogic.logic.formula import Card, Formula

    f = Formula(n_vars=6)
    f.clauses += [[2, -3], [-4, 5, -6], []][:2]
    f.cards += [Card((2, 2, -3, 4), 2, 5, True), Card((-2, 3, -4, -6), 3, 6, False), Card((2, 3, 4), 2, None),
                Card((3, -5, 6, 6), 1, -2, True)]

    def holds(value, lit):
        return value[abs(lit)] if lit > 0 else not value[abs(lit)]

    def card_holds(value, card):
        met = sum(holds(value, l) for l in card.lits) >= card.bound
        if card.head is None:
            return met
        return met == holds(value, card.head) if card.both else (not holds(value, card.head) or met)

    rows = list(pb_constraints(f))
    n_true = 0
    for bits in itertools.product([False, True], repeat=f.n_vars):
        value = dict(zip(range(1, f.n_vars + 1), bits))
        formula = all(any(holds(value, l) for l in c) for c in f.clauses) and all(card_holds(value, c) for c in f.cards)
        opb = all(sum(a * value[v] for v, a in t.items()) >= r for t, r in rows)
        assert formula == opb, value
        n_true += formula
    assert 0 < n_true < 2 ** f.n_vars


@pytest.mark.skipif(not shutil.which("clasp"), reason="needs Debian's clasp (installed by .ci/run)")
def test_cli_encode_opb_solved_by_clasp(tmp_path, capsys):
    model = Model(random_ir(**NETS[0]))
    model.save(tmp_path / "m.bnn")
    x = np.array([2, 3, 1, 4])
    np.save(tmp_path / "x.npy", x)
    for eps in (0, 1, 2, 3):
        assert main(["encode", str(tmp_path / "m.bnn"), "--input", str(tmp_path / "x.npy"), "--eps", str(eps),
                     "--format", "opb", "--out", str(tmp_path / "q.opb"), "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["format"] == "opb" and out["constraints"] > 0
        R = region.linf(model.ir.coding, x, eps)
        assert (_clasp_opb(tmp_path / "q.opb") is not None) == _brute_cex(model, R, out["label"])


def _rc2(path):
    from pysat.examples.rc2 import RC2
    from pysat.formula import WCNF

    with RC2(WCNF(from_file=str(path))) as rc2:
        m = rc2.compute()
        return (None, None) if m is None else (rc2.cost, {l for l in m if l > 0})


def test_wcnf_optimum_is_the_robustness_radius(tmp_path):
    path = tmp_path / "q.wcnf"
    costs = set()
    for kw in NETS:
        model = Model(random_ir(**kw))
        c = model.ir.coding
        rng = np.random.default_rng(kw["seed"] + 10)
        X = box_inputs(np.full(c.n_features, c.lo), np.full(c.n_features, c.hi))
        for x, E in itertools.product(rng.integers(c.lo, c.hi, size=(4, c.n_features), endpoint=True),
                                      (1, c.hi - c.lo)):
            problem = radius_encoding(model, x, E)
            size = write_wcnf(problem, path)
            assert size["soft"] == E
            cost, true_vars = _rc2(path)
            dist = np.abs(X - x).max(axis=1)[model.predict(X) != problem.label]
            brute = int(dist.min()) if len(dist) and dist.min() <= E else None
            assert cost == brute == robustness_radius(model, x, max_eps=E).radius_counterexample
            if cost is not None:
                adv = decode_model(json.loads((tmp_path / "q.wcnf.map.json").read_text()), true_vars)
                assert int(np.abs(adv - x).max()) == cost and model.predict(adv[None])[0] != problem.label
            costs.add(cost)
    assert None in costs and len(costs) >= 3, costs  # robust up to E, and several radii


def test_cli_encode_wcnf(tmp_path, capsys):
    model = Model(random_ir(**NETS[3]))
    model.save(tmp_path / "m.bnn")
    x = np.array([3, 0, 6])
    np.save(tmp_path / "x.npy", x)
    assert main(["encode", str(tmp_path / "m.bnn"), "--input", str(tmp_path / "x.npy"), "--format", "wcnf",
                 "--out", str(tmp_path / "q.wcnf"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["max_eps"] == 7 == out["soft"]
    mapping = json.loads((tmp_path / "q.wcnf.map.json").read_text())
    assert len(mapping["radius"]["vars"]) == 7 and mapping["radius"]["center"] == x.tolist()
    cost, _ = _rc2(tmp_path / "q.wcnf")
    assert cost == robustness_radius(model, x).radius_counterexample


@pytest.mark.parametrize("argv, message", [
    (["--format", "opb"], "needs --eps"),
    (["--format", "wcnf", "--norm", "l0"], "use --norm linf"),
    (["--format", "wcnf", "--eps", "99"], "--eps must be"),
    (["--format", "opb", "--eps", "1", "--label", "7"], "--label 7"),
])
def test_cli_encode_errors_are_one_line(tmp_path, capsys, argv, message):
    Model(random_ir(seed=1)).save(tmp_path / "m.bnn")
    np.save(tmp_path / "x.npy", np.array([1, 2, 3, 0]))
    assert main(["encode", str(tmp_path / "m.bnn"), "--input", str(tmp_path / "x.npy"),
                 "--out", str(tmp_path / "q"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and not (tmp_path / "q").exists()
