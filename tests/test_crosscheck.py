"""--cross-check: another kind of backend re-decides; a disagreement is an error with both answers saved."""
from __future__ import annotations

import json

import numpy as np
import pytest

import bnnlogic.verification as verification
from bnnlogic import Model
from bnnlogic.cli import main
from bnnlogic.crosscheck import Disagreement, cross_backend, cross_check
from bnnlogic.logic import region
from bnnlogic.verification import verify_region
from tests.helpers import random_ir


@pytest.mark.parametrize("seed", range(4))
def test_cross_checks_agree_on_tiny_nets(seed):
    m = Model(random_ir(seed, n_features=4, hi=5, hidden=(6, 4)))
    x = np.random.default_rng(seed).integers(0, 6, 4)
    y = int(m.predict(x[None])[0])
    for eps in (1, 2, 3):
        R = region.linf(m.ir.coding, x, eps)
        for backend in ("auto", "exact", "cpsat", "cnf:glucose4:totalizer"):
            r = verify_region(m, R, [y], y, backend)
            cc = cross_check(m, R, [y], r)
            assert cc.agree is True and cc.backend.split(":")[0] != r.backend.split(":")[0]


def test_backends_of_another_kind():
    R = region.linf(random_ir(0).coding, np.array([1, 1, 1, 1]), 1)
    thr = random_ir(0).coding.thresholds
    assert cross_backend("exact", R, thr) == "sweep" and cross_backend("bab", R, thr).startswith("cnf:")
    assert cross_backend("cnf:glucose4:totalizer", R, thr) == "cpsat" and cross_backend("cpsat", R, thr) == "exact"


def test_a_disagreement_is_an_error_with_both_answers_saved(tmp_path, monkeypatch, capsys):
    m = Model(random_ir(1, n_features=4, hi=5, hidden=(6, 4)))
    m.save(tmp_path / "m.bnn")
    x = np.array([2, 3, 1, 4])
    np.save(tmp_path / "x.npy", x)
    real = verification.verify_region

    def lying(model, R, allowed, label, backend="auto", *a, **k):  # the second backend contradicts the first
        r = real(model, R, allowed, label, backend, *a, **k)
        if backend != "auto":
            r.status = "counterexample" if r.status == "robust" else "robust"
        return r

    monkeypatch.setattr(verification, "verify_region", lying)
    monkeypatch.setattr("bnnlogic.crosscheck.SWEEP_CELLS", -1)  # use a solver, which lies
    R = region.linf(m.ir.coding, x, 1)
    y = int(m.predict(x[None])[0])
    with pytest.raises(Disagreement):
        cross_check(m, R, [y], real(m, R, [y], y), save_dir=tmp_path, tag="t")
    saved = json.loads((tmp_path / "disagreement_t.json").read_text())
    assert {saved["first"]["status"], saved["second"]["status"]} == {"robust", "counterexample"}
    assert main(["verify", str(tmp_path / "m.bnn"), "--input", str(tmp_path / "x.npy"), "--eps", "1", "--cross-check",
                 "--cex-dir", str(tmp_path / "cex")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "saved" in err and err.count("\n") == 1
    assert (tmp_path / "cex" / "disagreement_eps1.json").exists()
