"""explain, count and compile: a time limit for the whole command, the best result so far marked
incomplete (JSON and exit status 3), and interrupts that end in one line (exit status 130)."""
import json

import numpy as np
import pytest

from bnnlogic import Model
from bnnlogic.cli import main
from tests.helpers import random_ir


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("long")
    ir = random_ir(3, n_features=6, hi=7, levels=2, hidden=(8, 6), n_classes=3)
    Model(ir, {"dataset": "random"}).save(d / "m.bnn")
    np.save(d / "x.npy", np.array([[1, 5, 2, 7, 0, 3]]))
    return str(d / "m.bnn"), str(d / "x.npy")


@pytest.mark.parametrize("cmd", [["explain"], ["explain", "--kind", "contrastive"], ["explain", "--all", "5"],
                                 ["explain", "--kind", "minimum"], ["count", "--misclassified"],
                                 ["count", "--misclassified", "--method", "ganak"], ["compile"]])
def test_complete_runs_say_so(files, cmd, capsys):
    model, x = files
    extra = ["--input", x] if cmd[0] != "compile" else []
    capsys.readouterr()
    code = main([cmd[0], model, *extra, *cmd[1:], "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["complete"] is True and out["stopped"] is None


@pytest.mark.parametrize("cmd", [["explain"], ["explain", "--kind", "minimum"], ["count", "--misclassified"],
                                 ["compile"]])
def test_the_time_limit_gives_the_best_result_so_far_marked_incomplete(files, cmd, capsys):
    model, x = files
    extra = ["--input", x] if cmd[0] != "compile" else []
    capsys.readouterr()
    code = main([cmd[0], model, *extra, *cmd[1:], "--timeout", "1e-9", "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 3 and out["complete"] is False and out["stopped"] == "time"
    if cmd[0] == "explain":
        assert out["features"] and out["verified"] is None  # sufficient (all relevant features), not re-checked
    if cmd[0] == "count":
        assert out["count"] is None and 0 <= out["count_at_least"] <= out["count_at_most"] <= out["total"]


def test_text_mode_says_the_result_is_incomplete(files, capsys):
    model, x = files
    capsys.readouterr()
    assert main(["explain", model, "--input", x, "--timeout", "1e-9"]) == 3
    out = capsys.readouterr().out
    assert "best so far" in out and "time limit" in out


def test_bad_time_limits_are_one_line_errors(files, capsys):
    model, x = files
    capsys.readouterr()
    assert main(["explain", model, "--input", x, "--call-timeout", "0"]) == 2
    assert capsys.readouterr().err.strip() == "error: --call-timeout must be positive, got 0"


@pytest.mark.parametrize("exc", [KeyboardInterrupt(), RuntimeError("Program interrupted by user.")])
def test_an_interrupt_anywhere_is_one_line_and_status_130(monkeypatch, capsys, exc):
    import bnnlogic.cli.info as info

    def run(args):
        raise exc
    monkeypatch.setattr(info, "run", run)
    assert main(["info", "whatever.bnn"]) == 130
    assert capsys.readouterr().err == "interrupted\n"


def test_other_runtime_errors_are_not_swallowed(monkeypatch):
    import bnnlogic.cli.info as info

    def run(args):
        raise RuntimeError("a real bug")
    monkeypatch.setattr(info, "run", run)
    with pytest.raises(RuntimeError, match="a real bug"):
        main(["info", "whatever.bnn"])


def test_sigterm_ends_a_command_like_ctrl_c(files):
    import subprocess
    import sys
    import time
    from pathlib import Path

    code = ("import time, bnnlogic.cli.info as info\n"
            "def run(args):\n    print('ready', flush=True); time.sleep(60)\n"
            "info.run = run\n"
            "from bnnlogic.cli import main\nraise SystemExit(main(['info', 'x.bnn']))\n")
    p = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2], text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert p.stdout.readline().strip() == "ready"
    t0 = time.perf_counter()
    p.terminate()
    out, err = p.communicate(timeout=30)
    assert p.returncode == 130 and err == "interrupted\n" and time.perf_counter() - t0 < 30
