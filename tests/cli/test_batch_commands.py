"""CLI batch mode of explain and count, verify on Ray and with --split, one-line errors."""
import json

import numpy as np
import pytest

from bnnlogic import Model
from bnnlogic.cli import main
from tests.helpers import random_ir


@pytest.fixture()
def model(tmp_path):
    Model(random_ir(5, image=(1, 8, 8), hi=16, hidden=(6,), n_classes=10)).save(tmp_path / "d.bnn")
    return tmp_path


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_explain_batch_writes_records_pictures_and_resumes(model, capsys):
    out = model / "ex.jsonl"
    args = ["explain", str(model / "d.bnn"), "--data", "digits", "--indices", "0:3", "--eps", "1,2",
            "--out", str(out), "--jobs", "0", "--json"]
    assert main(args) == 0
    summary = json.loads(capsys.readouterr().out)
    assert [r["eps"] for r in summary["summary"]] == [1, 2] and sum(r["n"] for r in summary["summary"]) == 6
    recs = records(out)
    assert len(recs) == 6 and all(r["task"] == "explain" and r["kind"] == "abductive" for r in recs)
    assert all(r["verified"] and (model / "ex.pictures").is_dir() for r in recs if r["status"] == "explained")
    assert all(r["picture"].startswith(str(model / "ex.pictures")) for r in recs if r["status"] == "explained")
    assert main(args[:5] + ["0:4"] + args[6:]) == 0  # one more row: only its two queries run
    assert len(records(out)) == 8 and records(out)[:6] == recs


def test_count_batch_counts_misclassified_inputs(model, capsys):
    out = model / "ct.jsonl"
    assert main(["count", str(model / "d.bnn"), "--data", "digits", "--indices", "0:2", "--eps", "1",
                 "--out", str(out), "--jobs", "0", "--json"]) == 0
    recs = records(out)
    assert [r["status"] for r in recs] == ["counted"] * 2
    assert all(r["target"] == "misclassified" and 0 <= r["count"] <= r["total"] for r in recs)
    assert json.loads(capsys.readouterr().out)["summary"][0]["counted"] == 2


def test_verify_on_ray_matches_the_pool(model, capsys, ray_session):
    base = ["verify", str(model / "d.bnn"), "--data", "digits", "--indices", "0:4", "--eps", "1,2", "--json"]
    assert main(base + ["--out", str(model / "ray.jsonl"), "--ray"]) == 0
    assert main(base + ["--out", str(model / "pool.jsonl"), "--jobs", "2"]) == 0
    verdicts = [{(r["index"], r["eps"]): r["status"] for r in records(model / f"{m}.jsonl")} for m in ("ray", "pool")]
    assert verdicts[0] == verdicts[1] and len(verdicts[0]) == 8
    assert main(["report", str(model / "ray.jsonl"), "--json"]) == 0
    assert (model / "ray.html").exists()


def test_verify_one_input_split(model, capsys):
    np.save(model / "x.npy", np.full((1, 8, 8), 8))
    base = ["verify", str(model / "d.bnn"), "--input", str(model / "x.npy"), "--eps", "3", "--json",
            "--cex-dir", str(model / "cex")]
    assert main(base) == 0
    whole = json.loads(capsys.readouterr().out)
    assert main(base + ["--split", "4", "--jobs", "0"]) == 0
    split = json.loads(capsys.readouterr().out)
    assert split["status"] == whole["status"] and split["backend"] == "split:auto"
    assert split["stats"]["parts"] == 4


@pytest.mark.parametrize("argv, message", [
    (["explain", "{m}"], "give --input x.npy"),
    (["explain", "{m}", "--data", "digits"], "needs --out"),
    (["explain", "{m}", "--data", "digits", "--out", "{d}/r.jsonl", "--all", "3"], "--all enumerates"),
    (["count", "{m}", "--data", "digits", "--out", "{d}/r.jsonl"], "needs --eps"),
    (["count", "{m}", "--data", "digits", "--eps", "1", "--label", "2", "--out", "{d}/r.jsonl"], "drop --input"),
    (["verify", "{m}", "--data", "digits", "--out", "{d}/r.jsonl", "--jobs", "-1"], "--jobs -1"),
    (["verify", "{m}", "--data", "digits", "--out", "{d}/r.jsonl", "--norm", "l0", "--split", "2"], "L-infinity"),
    (["verify", "{m}", "--data", "digits", "--indices", "5:x", "--out", "{d}/r.jsonl"], "--indices"),
])
def test_batch_errors_are_one_line(model, capsys, argv, message):
    argv = [a.format(m=model / "d.bnn", d=model) for a in argv]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and message in err
