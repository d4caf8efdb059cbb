"""Batch runs: the same records in this process, on the pool and on Ray (verify, explain,
count), resume across modes, a killed worker loses no finished result, hard limits and dead
workers become `unknown` records with a reason; exclusive results files, resume after SIGKILL,
certificates and cross-checks per line."""
from __future__ import annotations

import fcntl
import json
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from bnnlogic import Model
from bnnlogic.batch import Query, read_done, run_batch, run_queries, run_query
from bnnlogic.batch_queries import run_count_batch, run_explain_batch
from bnnlogic.cli import main
from bnnlogic.errors import UserError
from bnnlogic.explain import Explainer
from bnnlogic.logic import region
from bnnlogic.trusted.check import check
from tests.helpers import box_inputs, random_ir, result_lines, run_killed
from tests.test_verification import brute_cex, tiny

EPS = [1, 2]
#: what a resumed run must reproduce (which engine won a race may differ between runs)
KEY = ("index", "eps", "status", "label")


@pytest.fixture()
def setup(tmp_path):
    m = tiny(1)
    m.save(tmp_path / "m.bnn")
    X = np.random.default_rng(0).integers(0, 6, (6, 4))
    return m, str(tmp_path / "m.bnn"), X, m.predict(X)


def lines(path):
    return [json.loads(s) for s in Path(path).read_text().splitlines()]


def test_compact_rows_give_the_verdicts_of_int64_rows(setup, tmp_path):
    """The CLI keeps a data set's own dtype (uint8 pixels); each query takes its row as int64,
    so a box at the domain's low edge does not wrap around (0 - eps in uint8 is 256 - eps)."""
    m, path, X, y = setup
    X[:, 0] = 0  # every center on the low edge of feature 0
    small = run_batch(path, X.astype(np.uint8), y, range(6), EPS, str(tmp_path / "u8.jsonl"), jobs=0, progress=False)
    wide = run_batch(path, X, y, range(6), EPS, str(tmp_path / "i64.jsonl"), jobs=0, progress=False)
    assert [(r["index"], r["eps"], r["status"]) for r in small] == [(r["index"], r["eps"], r["status"]) for r in wide]
    assert {(r["index"], r["eps"]): r["status"] for r in small} == {
        (i, e): "counterexample" if brute_cex(m, X[i], e, [y[i]]) else "robust" for i in range(6) for e in EPS}


def test_verify_records_agree_in_every_mode_and_with_brute_force(setup, tmp_path, ray_session):
    m, path, X, y = setup
    got = {}
    for mode, kw in {"serial": dict(jobs=0), "pool": dict(jobs=2), "ray": dict(ray=True, jobs=2)}.items():
        recs = run_batch(path, X, y, range(6), EPS, str(tmp_path / f"{mode}.jsonl"), cex_dir=str(tmp_path / mode),
                         progress=False, **kw)
        assert len(lines(tmp_path / f"{mode}.jsonl")) == 12
        got[mode] = {(r["index"], r["eps"]): r["status"] for r in recs}
        for r in recs:
            assert r["task"] == "verify" and {"time_s", "label", "backend", "encoding", "stats"} <= set(r)
            if r["status"] == "counterexample":  # saved on this machine, whichever worker found it
                adv = np.load(r["counterexample"])
                assert r["counterexample"].startswith(str(tmp_path / mode)) and m.predict(adv)[0] == r["adv_label"]
    assert got["serial"] == got["pool"] == got["ray"]
    assert got["serial"] == {(i, e): "counterexample" if brute_cex(m, X[i], e, [y[i]]) else "robust"
                             for i in range(6) for e in EPS}


def test_explain_and_count_records_agree_in_every_mode(setup, tmp_path, ray_session):
    m, path, X, y = setup
    runs = {"serial": dict(jobs=0), "pool": dict(jobs=2), "ray": dict(ray=True, jobs=2)}
    explained, counted = {}, {}
    for mode, kw in runs.items():
        ex = run_explain_batch(path, X, y, range(4), [None, 1], str(tmp_path / f"ex-{mode}.jsonl"),
                               png_dir=str(tmp_path / f"png-{mode}"), progress=False, **kw)
        explained[mode] = {(r["index"], r["eps"]): (r["status"], r["features"], r["verified"]) for r in ex}
        ct = run_count_batch(path, X, y, range(4), EPS, str(tmp_path / f"ct-{mode}.jsonl"), progress=False, **kw)
        counted[mode] = {(r["index"], r["eps"]): (r["count"], r["total"]) for r in ct}
        assert all(Path(r["picture"]).exists() for r in ex if r["status"] == "explained")
    assert explained["serial"] == explained["pool"] == explained["ray"]
    assert counted["serial"] == counted["pool"] == counted["ray"]
    for (i, e), (status, features, verified) in explained["serial"].items():
        ref = Explainer(m.ir, X[i], e).abductive()
        assert status == "explained" and features == ref.features and verified
    for (i, e), (n, total) in counted["serial"].items():
        R = region.linf(m.ir.coding, X[i], e)
        pred = m.ir.predict(box_inputs(R.lo, R.hi))
        assert (n, total) == (int((pred != y[i]).sum()), len(pred))


def test_resume_skips_finished_queries_across_modes(setup, tmp_path, ray_session):
    """A run on Ray, then a larger one on the pool: the file keeps the first run's lines
    and gains only the missing queries."""
    m, path, X, y = setup
    out = tmp_path / "res.jsonl"
    run_batch(path, X, y, range(3), EPS, str(out), progress=False, ray=True)
    first = out.read_text()
    with open(out, "a") as fh:  # a run killed while writing a line
        fh.write('{"task": "verify", "index": 5, "ep')
    recs = run_batch(path, X, y, range(6), EPS, str(out), jobs=2, progress=False)
    assert out.read_text().startswith(first)
    assert sorted((r["index"], r["eps"]) for r in lines(out)) == [(i, e) for i in range(6) for e in EPS]
    assert len(recs) == 12 and len(read_done(out)) == 12


def flaky_query(model, marker, index, *args):
    """verify's query, except: index 2 kills its worker the first time, index 4 every time,
    index 5 outlives its hard limit."""
    if index == 2 and not os.path.exists(marker):
        Path(marker).touch()
        os.kill(os.getpid(), signal.SIGKILL)
    if index == 4:
        os.kill(os.getpid(), signal.SIGKILL)
    if index == 5:
        time.sleep(120)
    return run_query(model, index, *args)


@pytest.mark.parametrize("mode", ["pool", "ray"])
def test_a_killed_worker_loses_no_finished_result(setup, tmp_path, mode, request):
    """Index 2's worker is killed mid-query: it is retried and answered; index 4's worker dies
    twice and index 5 outlives its limit: both are `unknown` with the reason; every other
    query is answered, each line whole."""
    if mode == "ray":
        request.getfixturevalue("ray_session")
    m, path, X, y = setup
    marker, out = str(tmp_path / "killed-once"), tmp_path / "res.jsonl"
    queries = [Query({"task": "verify", "index": i, "eps": 1, "label": int(y[i]), "backend": "auto"}, flaky_query,
                     (marker, i, X[i], int(y[i]), 1, "auto", 10, "linf", None), 3.0 if i == 5 else None)
               for i in range(6)]
    kw = dict(jobs=2) if mode == "pool" else dict(ray=True, jobs=2)
    recs = {r["index"]: r for r in run_queries("verify", queries, out, m, progress=False, **kw)}
    assert {r["index"] for r in lines(out)} == set(range(6)) and os.path.exists(marker)
    for i in (0, 1, 2, 3):
        assert recs[i]["status"] == ("counterexample" if brute_cex(m, X[i], 1, [y[i]]) else "robust")
    assert recs[4]["status"] == "unknown" and "died twice" in recs[4]["reason"]
    assert recs[5]["status"] == "unknown" and "hard limit of 3 s" in recs[5]["reason"]
    assert {"task", "index", "eps", "label", "backend", "time_s"} <= set(recs[4]) & set(recs[5])


def test_a_file_holds_one_task(setup, tmp_path):
    m, path, X, y = setup
    out = str(tmp_path / "res.jsonl")
    run_batch(path, X, y, range(2), [1], out, jobs=0, progress=False)
    with pytest.raises(UserError, match="holds verify results"):
        run_count_batch(path, X, y, range(2), [1], out, jobs=0, progress=False)


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
    ref = run_batch(str(digits_model), d.X_test.reshape(len(d.X_test), -1).astype(np.int64), d.y_test, range(200),
                    [1, 2], str(tmp_path / "ref.jsonl"), timeout=10, progress=False)
    args = [sys.executable, "-m", "bnnlogic", "verify", str(digits_model), "--data", "digits", "--indices", "0:200",
            "--eps", "1,2", "--timeout", "10", "--json", "--out", str(tmp_path / "killed.jsonl")]
    hit = run_killed(args, kills=3, seed=1, delay=(0.0, 0.1), watch=tmp_path / "killed.jsonl")
    got = result_lines(tmp_path / "killed.jsonl")
    assert hit == 3
    assert len({(r["index"], r["eps"]) for r in got}) == len(got) == len(ref) == 400
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
