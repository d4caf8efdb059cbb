"""CLI: train -> eval -> predict -> info on embedded digits, and one-line user errors."""
import json

import numpy as np
import pytest

from bnnlogic.cli import main


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    path = tmp_path_factory.mktemp("m") / "d.bnn"
    assert main(["train", "--data", "digits", "--arch", "mlp:32", "--epochs", "5", "--out", str(path)]) == 0
    return path


def test_eval_reports_accuracy_and_full_ir_agreement(trained, capsys):
    capsys.readouterr()
    assert main(["eval", str(trained), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["n"] == 360 and out["ir_agreement"] == 1.0 and 0.3 < out["accuracy"] <= 1.0


def test_predict_json_contract(trained, tmp_path, capsys):
    from sklearn.datasets import load_digits

    X = load_digits().data[:3].astype(np.int64)
    np.save(tmp_path / "x.npy", X)
    np.save(tmp_path / "row.npy", X[0])
    capsys.readouterr()
    assert main(["predict", str(trained), "--input", str(tmp_path / "x.npy"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["predictions"]) == 3 and len(out["scores"]) == 3 and len(out["scores"][0]) == 10
    assert out["predictions"] == [int(np.argmax(s)) for s in out["scores"]]
    assert main(["predict", str(trained), "--input", str(tmp_path / "row.npy"), "--json"]) == 0
    assert len(json.loads(capsys.readouterr().out)["predictions"]) == 1


def test_info_json(trained, capsys):
    capsys.readouterr()
    assert main(["info", str(trained), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["parameters"] == 192 * 32 + 32 * 10 and out["nonzero"] <= out["parameters"]
    assert out["compression"] > 20


@pytest.mark.parametrize("argv,msg", [
    (["eval", "missing.bnn"], "no such model file"),
    (["train", "--data", "digits", "--arch", "resnet:50", "--out", "x.bnn"], "bad architecture"),
    (["train", "--data", "digits", "--coding", "levels:99", "--out", "x.bnn"], "levels:99"),
])
def test_user_errors_are_one_line_exit_2(argv, msg, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and msg in err and err.count("\n") == 1 and "Traceback" not in err


def test_wrong_input_shape_is_a_user_error(trained, tmp_path, capsys):
    np.save(tmp_path / "bad.npy", np.zeros((2, 10)))
    assert main(["predict", str(trained), "--input", str(tmp_path / "bad.npy")]) == 2
    assert "shape (2, 10)" in capsys.readouterr().err
