"""The checker rejects every certificate that does not prove its claim."""
from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

import bnnlogic.certify as certify_mod
from bnnlogic import Model, load
from bnnlogic.certify import make_certificate
from bnnlogic.cli import main
from bnnlogic.errors import UserError
from bnnlogic.logic import region
from bnnlogic.trusted.check import check
from bnnlogic.trusted.cnf import query_cnf, sha256
from tests.helpers import box_inputs, flipped_copies, random_ir


@pytest.fixture()
def cert(tmp_path, monkeypatch):
    """A certificate with a proof leaf (whole query, P) for an L-inf query robust at eps 1 but
    not at eps 2 and not refuted by unit propagation alone, its folder, model, the eps-2 region and the label."""
    monkeypatch.setattr(certify_mod, "bounds_exclude", lambda ir, lo, hi, bad: np.zeros(len(lo), bool))
    for seed in range(10):
        Model(random_ir(seed, n_features=5, hi=6, levels=3, hidden=(8, 6))).save(tmp_path / "m.bnn")
        m = load(tmp_path / "m.bnn")
        for x in np.random.default_rng(seed).integers(0, 7, (30, 5)):
            y = int(m.predict(x[None])[0])
            R1, R2 = region.linf(m.ir.coding, x, 1), region.linf(m.ir.coding, x, 2)
            if [(m.ir.predict(box_inputs(R.lo, R.hi)) == y).all() for R in (R1, R2)] == [True, False]:
                c = make_certificate(m, R1, [y], tmp_path / "c.cert.zip")
                assert c.leaves["P"] == 1 and check(tmp_path / "c.cert.zip").valid
                if c.proof_bytes > 10:  # not refuted by unit propagation alone
                    return tmp_path, m, R2, y
    pytest.fail("no robust query")


def rewrite(path, out, spec=None, members=None):
    """Copy certificate ``path`` to ``out`` with the JSON changed by ``spec(d)`` and members replaced."""
    with zipfile.ZipFile(path) as zf:
        files = {n: zf.read(n) for n in zf.namelist()}
    d = json.loads(files["certificate.json"])
    if spec:
        spec(d)
    files["certificate.json"] = json.dumps(d).encode()
    files.update(members or {})
    with zipfile.ZipFile(out, "w") as zf:
        for n, b in files.items():
            zf.writestr(n, b)
    return out


def test_a_proof_of_another_formula_is_rejected(cert):
    """The eps-1 proof under the (false) eps-2 claim: the re-encoded CNF differs from the proved
    one; claiming the new formula's hash too leaves the DRAT check, which fails."""
    d, m, R2, y = cert

    def wider(s):
        s["region"].update(eps=2, lo=R2.lo.tolist(), hi=R2.hi.tolist())

    r = check(rewrite(d / "c.cert.zip", d / "wider.cert.zip", wider))
    assert not r.valid and "another formula" in r.reason
    text = query_cnf(m.ir, R2.lo, R2.hi, [c for c in range(m.ir.n_classes) if c != y]).dimacs()

    def wider_and_rehashed(s):
        wider(s)
        s["proofs"][0]["cnf_sha256"] = sha256(text)

    r = check(rewrite(d / "c.cert.zip", d / "rehashed.cert.zip", wider_and_rehashed))
    assert not r.valid and "DRAT check failed" in r.reason


@pytest.mark.parametrize("tamper, reason", [
    (lambda s: s["region"].update(eps=3), "ball"),
    (lambda s: s["region"].update(norm="box"), "box region"),
    (lambda s: s.update(allowed=[]), "allowed"),
    (lambda s: s.update(tree=[[0, 99], "P"]), "tree"),
    (lambda s: s.update(tree=["P", "P"]), "tree"),
    (lambda s: s.update(tree=[[0, 2], "P", "P"]), "proofs"),
    (lambda s: s["model"].update(sha256="0" * 64), "not the certified model"),
    (lambda s: s.update(version=99), "version"),
])
def test_tampered_claims_are_rejected(cert, tamper, reason):
    d = cert[0]
    r = check(rewrite(d / "c.cert.zip", d / "t.cert.zip", tamper))
    assert not r.valid and reason in r.reason, r.reason


@pytest.mark.parametrize("proof", [b"", b"1 2 0\n", b"garbage\n", b"0\n"])
def test_broken_proofs_are_rejected(cert, proof):
    d = cert[0]
    r = check(rewrite(d / "c.cert.zip", d / "p.cert.zip", members={"leaf0.drat": proof}))
    assert not r.valid and "P leaf 0" in r.reason


@pytest.mark.parametrize("leaf", ["B", "E"])
def test_bounds_and_enumeration_leaves_of_a_false_claim_are_rejected(cert, leaf):
    d, m, R2, y = cert

    def false_claim(s):
        s["region"].update(eps=2, lo=R2.lo.tolist(), hi=R2.hi.tolist())
        s.update(tree=[leaf], proofs=[])

    r = check(rewrite(d / "c.cert.zip", d / "e.cert.zip", false_claim))
    assert not r.valid and f"{leaf} leaf" in r.reason


def test_check_cli_exit_codes(cert, capsys):
    d = cert[0]
    assert main(["check", str(d / "c.cert.zip"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["valid"] and out["leaves"]["P"] == 1 and out["engine"] in ("native", "python")
    assert main(["check", str(d / "c.cert.zip"), "--engine", "python"]) == 0
    rewrite(d / "c.cert.zip", d / "bad.cert.zip", lambda s: s["region"].update(eps=3))
    assert main(["check", str(d / "bad.cert.zip")]) == 1
    assert "INVALID" in capsys.readouterr().out
    (d / "junk.cert.zip").write_bytes(b"not a zip")
    assert main(["check", str(d / "junk.cert.zip")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    with pytest.raises(UserError, match="model file"):
        check(d / "c.cert.zip", d / "missing.bnn")


def test_bit_rot_anywhere_in_a_certificate_is_rejected_or_a_user_error(cert):
    """A flipped byte never escapes as another exception, and passes only where it changed no
    content that the check reads (a zip header's timestamp; the leaves' CNF copies, kept for
    external checkers: the check re-encodes them): otherwise the certificate is unreadable
    (UserError) or invalid (its reason says why)."""
    folder = cert[0]

    def members(path):  # what the check reads: the claim and the proofs
        with zipfile.ZipFile(path) as zf:
            return {n: zf.read(n) for n in zf.namelist() if n == "certificate.json" or n.endswith(".drat")}

    original = members(folder / "c.cert.zip")
    p = folder / "flipped.cert.zip"
    for pos in flipped_copies(folder / "c.cert.zip", p):
        try:
            r = check(p, model=folder / "m.bnn")
        except UserError:
            continue
        assert not r.valid or members(p) == original, pos
