"""Batch runs: exclusive results files, resume after SIGKILL, certificates and cross-checks per line."""
from __future__ import annotations

import fcntl
import sys

import numpy as np
import pytest

from bnnlogic import Model
from bnnlogic.batch import run_batch
from bnnlogic.cli import main
from bnnlogic.errors import UserError
from bnnlogic.trusted.check import check
from tests.helpers import random_ir, result_lines, run_killed

KEY = ("index", "eps", "status", "label", "adv_label", "backend")


@pytest.fixture()
def digits_model(tmp_path):
    """A random net over the digits features (64 raw values 0..16)."""
    Model(random_ir(4, n_features=64, hi=16, levels=2, hidden=(12, 8), n_classes=10, p_zero=0.6)).save(tmp_path / "m.bnn")
    return tmp_path / "m.bnn"


def test_a_second_writer_is_refused(tmp_path, digits_model):
    out = tmp_path / "r.jsonl"
    X, y = np.zeros((2, 64), np.int64), np.zeros(2, np.int64)
    with open(out, "a") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)  # another run holds the file
        with pytest.raises(UserError, match="another run"):
            run_batch(str(digits_model), X, y, [0, 1], [1], str(out), progress=False)
    assert out.read_text() == ""
    assert len(run_batch(str(digits_model), X, y, [0, 1], [1], str(out), progress=False)) == 2


def test_killed_batch_resumes_to_exactly_the_uninterrupted_results(tmp_path, digits_model):
    from bnnlogic.data import load_dataset

    d = load_dataset("digits")
    ref = run_batch(str(digits_model), d.X_test.reshape(len(d.X_test), -1).astype(np.int64), d.y_test, range(40),
                    [1, 2], str(tmp_path / "ref.jsonl"), timeout=10, progress=False)
    args = [sys.executable, "-m", "bnnlogic", "verify", str(digits_model), "--data", "digits", "--indices", "0:40",
            "--eps", "1,2", "--timeout", "10", "--json", "--out", str(tmp_path / "killed.jsonl")]
    hit = run_killed(args, kills=3, seed=1, delay=(1.0, 5.0))
    got = result_lines(tmp_path / "killed.jsonl")
    assert hit >= 1
    assert len({(r["index"], r["eps"]) for r in got}) == len(got) == len(ref) == 80
    assert sorted(tuple(r.get(k) for k in KEY) for r in got) == sorted(tuple(r.get(k) for k in KEY) for r in ref)


def test_batch_certifies_and_cross_checks_every_line(tmp_path, digits_model, capsys):
    from bnnlogic import load
    from bnnlogic.data import load_dataset

    d = load_dataset("digits")
    right = np.nonzero(load(digits_model).predict(d.X_test.reshape(len(d.X_test), -1)) == d.y_test)[0]
    out, idx = tmp_path / "c.jsonl", ",".join(map(str, right[:3].tolist() + [int(np.argmin(np.isin(range(9), right)))]))
    assert main(["verify", str(digits_model), "--data", "digits", "--indices", idx, "--eps", "0,1", "--out", str(out),
                 "--certify", "--cross-check", "--json"]) == 0
    recs = result_lines(out)
    assert all(r["cross_check"]["agree"] is not False for r in recs)
    robust = [r for r in recs if r["status"] == "robust"]
    assert robust and all(r["certificate"]["status"] == "certified" for r in robust)
    assert all(check(r["certificate"]["path"]).valid for r in robust)
    assert all("certificate" not in r for r in recs if r["status"] != "robust")
