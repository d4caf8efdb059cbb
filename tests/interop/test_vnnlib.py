"""VNN-LIB properties: exact mapping onto bnnlogic queries, against brute force; one-line errors."""
import json
from fractions import Fraction

import numpy as np
import pytest

from bnnlogic import Model, verify
from bnnlogic.cli import main
from bnnlogic.errors import UserError
from bnnlogic.interop.onnx_io import onnx_agreement
from bnnlogic.interop.vnnlib import read_vnnlib, verify_vnnlib, write_vnnlib
from bnnlogic.logic import region
from tests.helpers import box_inputs, random_ir

NET = dict(seed=6, levels=3, hi=7, n_features=3, hidden=(5,))  # all three classes predicted


@pytest.fixture(scope="module")
def model():
    return Model(random_ir(**NET))


def _header(n_x=3, n_y=3):
    return "".join(f"(declare-const X_{i} Real)\n" for i in range(n_x)) + \
        "".join(f"(declare-const Y_{j} Real)\n" for j in range(n_y))


F = Fraction
#: (name, input assertions, output assertion, oracle on (x, scores)); VNN-LIB 1.0 syntax
CASES = [
    ("robust, adversarial ties", "(assert (>= X_0 1.5)) (assert (< X_0 5)) (assert (<= X_1 3.0))",
     "(assert (or (and (>= Y_1 Y_0)) (and (>= Y_2 Y_0))))",
     lambda x, s: F(3, 2) <= x[0] < 5 and x[1] <= 3 and (s[1] >= s[0] or s[2] >= s[0])),
    ("prediction is 1 (ties low)", "(assert (> X_2 2.5)) (assert (<= 1.0 X_1))",
     "(assert (and (> Y_1 Y_0) (>= Y_1 Y_2)))",
     lambda x, s: x[2] > F(5, 2) and x[1] >= 1 and s[1] > s[0] and s[1] >= s[2]),
    ("one score, fractions", "(assert (>= (- X_0) -4)) (assert (<= (* 2 X_1) 9))",
     "(assert (<= (* 0.5 Y_0) (- Y_1 0.25)))",
     lambda x, s: -x[0] >= -4 and 2 * x[1] <= 9 and F(1, 2) * s[0] <= s[1] - F(1, 4)),
    ("equal and not equal", "(assert (= X_2 3))",
     "(assert (or (= Y_0 Y_1) (and (distinct Y_1 Y_2) (>= Y_2 1e0))))",
     lambda x, s: x[2] == 3 and (s[0] == s[1] or (s[1] != s[2] and s[2] >= 1))),
    ("scores against constants", "",
     "(assert (and (>= Y_0 -3.75) (or (< Y_2 0.5) (> (+ Y_0 Y_1) 2))))",
     lambda x, s: s[0] >= F(-15, 4) and (s[2] < F(1, 2) or s[0] + s[1] > 2)),
    ("unsatisfiable output", "(assert (<= X_0 2))", "(assert (and (> Y_0 Y_1) (> Y_1 Y_0)))",
     lambda x, s: False),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_properties_match_brute_force(tmp_path, model, case):
    name, inputs, outputs, oracle = case
    path = tmp_path / "p.vnnlib"
    path.write_text(_header() + inputs + "\n" + outputs + "\n")
    c = model.ir.coding
    X = box_inputs(np.full(3, c.lo), np.full(3, c.hi))
    S = model.scores(X)
    truth = [bool(oracle([F(int(v)) for v in x], [int(v) for v in s])) for x, s in zip(X, S)]
    prop = read_vnnlib(path, model)
    inside = prop.region.contains(X)
    assert all(inside[i] for i, t in enumerate(truth) if t)  # the box holds every counterexample
    for backend in ("auto", "cpsat"):
        r = verify_vnnlib(model, path, backend=backend)
        assert r.status == ("counterexample" if any(truth) else "robust"), (name, backend)
        if r.counterexample is not None:  # an independent replay against the oracle
            adv = r.counterexample
            assert oracle([F(int(v)) for v in adv], [int(v) for v in model.scores(adv[None])[0]])


def test_box_in_raw_units(model):
    """Real bounds map to the integers between them: x in [a, b] iff ceil(a) <= x <= floor(b)."""
    from bnnlogic.interop.vnnlib import map_property, parse

    text = _header() + "(assert (>= X_0 0.5)) (assert (<= X_0 4.9999)) (assert (> X_1 2)) (assert (< X_1 6))" \
                       "(assert (>= X_2 -10)) (assert (<= X_2 100)) (assert (>= Y_0 Y_1))"
    R = map_property(parse(text), model).region
    assert R.lo.tolist() == [1, 3, 0] and R.hi.tolist() == [4, 5, 7]


@pytest.mark.parametrize("eps", [0, 1, 2, 3])
def test_written_properties_read_back_as_the_same_query(tmp_path, model, eps):
    """write_vnnlib -> verify --vnnlib is verify's "prediction in {label}" (with its portfolio)."""
    for x in np.random.default_rng(eps).integers(0, 7, size=(4, 3), endpoint=True):
        label = int(model.predict(x[None])[0])
        R = region.linf(model.ir.coding, x, eps)
        out = write_vnnlib(model, R, [label], tmp_path / "p.vnnlib")
        prop = read_vnnlib(out["out"], model)
        assert prop.bad == [k for k in range(3) if k != label]
        assert np.array_equal(prop.region.lo, R.lo) and np.array_equal(prop.region.hi, R.hi)
        r = verify_vnnlib(model, out["out"])
        assert r.status == verify(model, x, eps).status and r.stats["property"] == f"prediction in {[label]}"
        assert onnx_agreement(out["onnx"], model, box_inputs(R.lo, R.hi))["scores_equal"] == R.size()


def test_vnnlib_2(tmp_path, model):
    path = tmp_path / "p.vnnlib"
    path.write_text("(vnnlib-version <2.0>)\n(declare-network net (declare-input X real [3]) "
                    "(declare-output Y real [3]))\n(assert (<= X[0] 2.0))\n(assert (>= Y[2] (+ Y[0] 1.0)))\n")
    c = model.ir.coding
    X = box_inputs(np.full(3, c.lo), np.full(3, c.hi))
    S = model.scores(X)
    truth = bool(((X[:, 0] <= 2) & (S[:, 2] >= S[:, 0] + 1)).any())
    assert verify_vnnlib(model, path).status == ("counterexample" if truth else "robust")


def test_cli_encode_vnnlib_then_verify(tmp_path, model, capsys):
    model.save(tmp_path / "m.bnn")
    x = np.array([3, 0, 6])
    np.save(tmp_path / "x.npy", x)
    for eps in (0, 2):
        assert main(["encode", str(tmp_path / "m.bnn"), "--input", str(tmp_path / "x.npy"), "--eps", str(eps),
                     "--format", "vnnlib", "--out", str(tmp_path / "q.vnnlib"), "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["onnx"] == str(tmp_path / "q.onnx") and (tmp_path / "q.onnx").exists()
        assert main(["verify", str(tmp_path / "m.bnn"), "--vnnlib", str(tmp_path / "q.vnnlib"),
                     "--cex-dir", str(tmp_path / "cex"), "--json"]) == 0
        res = json.loads(capsys.readouterr().out)
        assert res["status"] == verify(model, x, eps).status
        if res["status"] == "counterexample":
            assert np.load(res["counterexample"]).shape == (3,)


BAD = {
    "syntax": ("(declare-const X_0 Real)(declare-const Y_0 Real)(assert (<= X_0 1.0)", "syntax error"),
    "not vnnlib": ("hello", "not a VNN-LIB property"),
    "integer sort": ("(declare-const X_0 Int)(declare-const Y_0 Real)", "of sort Real"),
    "input count": (_header(2, 3) + "(assert (>= Y_0 Y_1))", "the property has 2 inputs"),
    "output count": (_header(3, 4) + "(assert (>= Y_0 Y_1))", "and 4 outputs"),
    "undeclared": (_header() + "(assert (>= Y_0 Z_1))", "Undeclared variable"),
    "out of range": (_header() + "(assert (>= Y_0 Y_7))", "out of bounds"),
    "input disjunction": (_header() + "(assert (or (<= X_0 1) (>= X_0 3)))", "disjunction over inputs"),
    "mixed": (_header() + "(assert (<= X_0 Y_1))", "mixes inputs and outputs"),
    "two inputs": (_header() + "(assert (<= (+ X_0 X_1) 3))", "a single input"),
    "product": (_header() + "(assert (<= (* Y_0 Y_1) 3))", "not linear"),
    "normalised units": (_header() + "(assert (>= X_0 0.2)) (assert (<= X_0 0.3))", "no raw input"),
    "huge coefficients": (_header() + "(assert (>= Y_0 (* 1.0001 Y_1)))", "too large"),
    "v2 type error": ("(vnnlib-version <2.0>)\n(declare-network n (declare-input X real [3]) "
                      "(declare-output Y real [3]))\n(assert (<= X[0] 1))", "Type mismatch"),
    "v2 two networks": ("(vnnlib-version <2.0>)\n(declare-network a (declare-input X real [3]) (declare-output Y "
                        "real [3]))\n(declare-network b (declare-input U real [3]) (declare-output V real [3]))\n"
                        "(assert (<= X[0] 1.0))", "networks declared"),
}


def test_malformed_properties_are_one_line_errors(tmp_path, model, capsys):
    model.save(tmp_path / "m.bnn")
    for name, (text, message) in BAD.items():
        path = tmp_path / f"{name.replace(' ', '_')}.vnnlib"
        path.write_text(text)
        with pytest.raises(UserError, match=message):
            read_vnnlib(path, model)
        assert main(["verify", str(tmp_path / "m.bnn"), "--vnnlib", str(path)]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1 and "Traceback" not in err, name
    with pytest.raises(UserError, match="no such VNN-LIB file"):
        read_vnnlib(tmp_path / "none.vnnlib", model)
    (tmp_path / "binary.vnnlib").write_bytes(bytes(range(256)))
    with pytest.raises(UserError):
        read_vnnlib(tmp_path / "binary.vnnlib", model)
