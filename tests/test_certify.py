"""Certificates of robust verdicts: made for every source of "robust", checked by the trusted checker."""
from __future__ import annotations

import numpy as np
import pytest

import bnnlogic.certify as certify_mod
from bnnlogic import Model, load
from bnnlogic.certify import make_certificate
from bnnlogic.errors import UserError
from bnnlogic.logic import region
from bnnlogic.trusted.check import check
from bnnlogic.verification import verify, verify_region
from tests.helpers import box_inputs, random_ir


def saved(tmp_path, seed, **kw):
    Model(random_ir(seed, **{**dict(n_features=5, hi=4, hidden=(8, 6)), **kw})).save(tmp_path / f"m{seed}.bnn")
    return load(tmp_path / f"m{seed}.bnn")


def robust_queries(m, n=40, norms=("linf", "l0")):
    rng = np.random.default_rng(0)
    for _ in range(n):
        x = rng.integers(m.ir.coding.lo, m.ir.coding.hi + 1, m.ir.coding.n_features)
        y = int(m.predict(x[None])[0])
        for norm in norms:
            for eps in (1, 2):
                R = region.linf(m.ir.coding, x, eps) if norm == "linf" else region.l0(m.ir.coding, x, eps)
                X = box_inputs(R.lo, R.hi)
                if (m.ir.predict(X[R.contains(X)]) == y).all():
                    yield R, y


@pytest.mark.parametrize("seed", range(3))
def test_every_robust_verdict_gets_a_certificate_that_checks(tmp_path, seed):
    m = saved(tmp_path, seed)
    backends, made = set(), 0
    for i, (R, y) in enumerate(robust_queries(m, 12)):
        for backend in ("auto", "exact", "cnf:glucose4:totalizer"):
            r = verify_region(m, R, [y], y, backend)
            assert r.status == "robust"
            backends.add(r.backend)
            c = make_certificate(m, R, [y], tmp_path / f"q{i}_{backend}.cert.zip", verdict={"backend": r.backend})
            assert c.status == "certified" and c.check_s is not None
            made += 1
    assert made >= 6 and "exact" in backends


def test_case_split_leaves_of_every_kind_check(tmp_path, monkeypatch):
    """With no whole-query slice the certificate is a case split: B, E and P leaves all check."""
    monkeypatch.setattr(certify_mod, "FIRST_SLICE", 0.0)
    monkeypatch.setattr(certify_mod, "ENUM_CELLS", 4)
    monkeypatch.setattr(certify_mod, "LEAF_CELLS", 64)
    m = saved(tmp_path, 5, n_features=6, hi=6, hidden=(10, 6), levels=2)
    kinds = {"B": 0, "E": 0, "P": 0}
    for i, (R, y) in enumerate(robust_queries(m, 20, ("linf",))):
        c = make_certificate(m, R, [y], tmp_path / f"s{i}.cert.zip")
        assert c.status == "certified", c.reason
        for k in kinds:
            kinds[k] += c.leaves[k]
        rep = check(tmp_path / f"s{i}.cert.zip")
        assert rep.valid and rep.leaves["B"] + rep.leaves["E"] + rep.leaves["P"] >= 1
    assert all(kinds.values()), kinds


def test_verify_certify_and_cross_check_api(tmp_path):
    m = saved(tmp_path, 1)
    for R, y in robust_queries(m, 3, ("linf",)):
        r = verify(m, R.center, eps=R.eps, certify=tmp_path / "v.cert.zip", cross_check=True)
        assert r.status == "robust" and r.certificate["status"] == "certified"
        assert r.cross_check["agree"] is True and r.cross_check["backend"] != r.backend
        assert check(tmp_path / "v.cert.zip").valid
        break
    else:
        pytest.fail("no robust query")


def test_a_model_without_a_file_cannot_be_certified(tmp_path):
    m = Model(random_ir(0))
    with pytest.raises(UserError, match="model file"):
        make_certificate(m, region.domain(m.ir.coding), [0, 1, 2], tmp_path / "c.cert.zip")


def test_a_wrong_robust_verdict_is_a_bug_not_a_certificate(tmp_path):
    """Certifying a region that holds a bad input raises with the replayed input."""
    def classes(m):
        R = region.domain(m.ir.coding)
        return np.bincount(m.ir.predict(box_inputs(R.lo, R.hi)))

    m = next(m for m in (saved(tmp_path, s) for s in range(10)) if np.count_nonzero(classes(m)) > 1)
    R, y = region.domain(m.ir.coding), int(classes(m).argmax())
    with pytest.raises(RuntimeError, match="bug"):
        make_certificate(m, R, [y], tmp_path / "wrong.cert.zip")
    assert not (tmp_path / "wrong.cert.zip").exists()
