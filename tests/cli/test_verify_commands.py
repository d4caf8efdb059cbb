"""CLI verify / encode: JSON contract, saved counterexamples, batch file, one-line errors."""
import json

import numpy as np
import pytest

from bnnlogic import Model
from bnnlogic.cli import main
from tests.helpers import random_ir


@pytest.fixture()
def model(tmp_path):
    m = Model(random_ir(2, image=(1, 3, 3), hi=4, hidden=(8, 6), n_classes=3))
    m.save(tmp_path / "m.bnn")
    np.save(tmp_path / "x.npy", np.array([[0, 1, 2], [3, 4, 0], [1, 2, 3]]))
    return tmp_path


def test_verify_json_contract_and_counterexample_files(model, capsys):
    capsys.readouterr()
    assert main(["verify", str(model / "m.bnn"), "--input", str(model / "x.npy"), "--eps", "4",
                 "--cex-dir", str(model / "cex"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] in ("robust", "counterexample") and {"time_s", "label", "backend", "stats"} <= set(out)
    if out["status"] == "counterexample":
        adv = np.load(out["counterexample"])
        assert adv.shape == (1, 3, 3) and (model / "cex" / "counterexample_eps4.png").exists()
        assert out["adv_label"] != out["label"]


def test_min_eps_keys(model, capsys):
    capsys.readouterr()
    assert main(["verify", str(model / "m.bnn"), "--input", str(model / "x.npy"), "--min-eps",
                 "--cex-dir", str(model / "cex"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {"radius_robust", "radius_counterexample", "time_s"} <= set(out)


def test_encode_writes_cnf_and_map(model, capsys):
    capsys.readouterr()
    assert main(["encode", str(model / "m.bnn"), "--input", str(model / "x.npy"), "--eps", "2",
                 "--out", str(model / "q.cnf"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    header = [l for l in (model / "q.cnf").read_text().splitlines() if l.startswith("p cnf")][0]
    assert header == f"p cnf {out['variables']} {out['clauses']}"
    assert json.loads((model / "q.cnf.map.json").read_text())["format"] == "bnnlogic-dimacs-map"


@pytest.mark.parametrize("argv,msg", [
    (["--eps", "99"], "eps must be an integer"),
    (["--backend", "nope"], "unknown backend"),
    (["--label", "9"], "out of range"),
])
def test_user_errors_are_one_line(model, capsys, argv, msg):
    capsys.readouterr()
    rc = main(["verify", str(model / "m.bnn"), "--input", str(model / "x.npy"), "--no-attack"] + argv)
    err = capsys.readouterr().err
    assert rc == 2 and msg in err and err.count("\n") == 1


def test_info_reports_verification_profile(tmp_path, capsys):
    from bnnlogic.data import load_dataset
    from bnnlogic.nn import train

    m = train(load_dataset("digits"), "mlp:16", epochs=1, progress=False)
    m.save(tmp_path / "d.bnn")
    capsys.readouterr()
    assert main(["info", str(tmp_path / "d.bnn"), "--eps", "1", "--n", "20", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert 0.0 <= out["stable_fraction"] <= 1.0 and out["clauses"] > 0 and out["nonzero"] > 0
    assert main(["info", str(tmp_path / "d.bnn"), "--eps", "0", "--n", "20", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["stable_fraction"] == 1.0


def test_batch_mode_honours_cex_dir(tmp_path, capsys):
    """Batch counterexamples go to --cex-dir when given (default: <out>.cex)."""
    m = Model(random_ir(5, n_features=64, hi=16, hidden=(6,), n_classes=10))
    m.save(tmp_path / "d.bnn")
    out, cex = tmp_path / "res.jsonl", tmp_path / "mine"
    assert main(["verify", str(tmp_path / "d.bnn"), "--data", "digits", "--indices", "0:4", "--eps", "2",
                 "--out", str(out), "--cex-dir", str(cex), "--json"]) == 0
    recs = [json.loads(line) for line in out.read_text().splitlines()]
    saved = [r["counterexample"] for r in recs if r["status"] == "counterexample"]
    assert saved and all(str(cex) in p and np.load(p).shape == (64,) for p in saved)
    assert not (tmp_path / "res.cex").exists()


def test_ties_adversarial_counts_a_tie_as_a_counterexample(tmp_path, capsys):
    """Classes 0 and 1 tie on every input: robust with the model's own rule (0 wins), a
    counterexample with --ties adversarial (class 1 ties the label); batches refuse the flag."""
    from bnnlogic.ir import IR, Output

    ir = random_ir(2, image=(1, 3, 3), hi=4, hidden=(4,), n_classes=3)
    ir = IR(ir.coding, ir.layers, Output(np.zeros_like(ir.output.A), 1, np.array([1, 1, 0])))
    Model(ir).save(tmp_path / "t.bnn")
    np.save(tmp_path / "x.npy", np.zeros((3, 3), dtype=np.int64))
    base = ["verify", str(tmp_path / "t.bnn"), "--input", str(tmp_path / "x.npy"), "--eps", "1",
            "--cex-dir", str(tmp_path / "cex"), "--json"]
    capsys.readouterr()
    for ties, status in (("low", "robust"), ("adversarial", "counterexample")):
        assert main(base + ["--ties", ties]) == 0
        out = json.loads(capsys.readouterr().out)
        assert (out["status"], out["label"]) == (status, 0)
        if status == "counterexample":
            assert out["adv_label"] == 1
    assert main(base[:4] + ["--min-eps", "--ties", "adversarial", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["radius_counterexample"] == 0
    rc = main(["verify", str(tmp_path / "t.bnn"), "--input", str(tmp_path / "x.npy"), "--equivalent",
               str(tmp_path / "t.bnn"), "--ties", "adversarial"])
    err = capsys.readouterr().err
    assert rc == 2 and "--equivalent" in err and err.count("\n") == 1


def test_batches_read_ties_by_the_rule_asked_for(tmp_path, capsys):
    """Digits of class 0 on a model whose classes 0 and 1 always tie: robust in a batch with the
    model's own rule, counterexamples with --ties adversarial (recorded in each line)."""
    from bnnlogic.data import load_dataset
    from bnnlogic.ir import IR, Output

    ir = random_ir(3, n_features=64, hi=16, hidden=(4,), n_classes=10)
    offset = np.zeros(10, dtype=np.int64)
    offset[:2] = 1
    Model(IR(ir.coding, ir.layers, Output(np.zeros_like(ir.output.A), 1, offset))).save(tmp_path / "t.bnn")
    zeros = np.nonzero(load_dataset("digits").y_test == 0)[0][:3]
    for ties, status in (("low", "robust"), ("adversarial", "counterexample")):
        out = tmp_path / f"{ties}.jsonl"
        assert main(["verify", str(tmp_path / "t.bnn"), "--data", "digits", "--indices", ",".join(map(str, zeros)),
                     "--eps", "1", "--out", str(out), "--ties", ties, "--json"]) == 0
        recs = [json.loads(line) for line in out.read_text().splitlines()]
        assert len(recs) == 3 and {r["status"] for r in recs} == {status}
        assert all(r.get("ties") == (None if ties == "low" else ties) for r in recs)
    capsys.readouterr()
