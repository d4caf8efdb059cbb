"""Unique conv filters in `summarize()` / `bnnlogic info`, against a brute-force count."""
from __future__ import annotations

import itertools

import numpy as np

from bnnlogic.cli import main
from bnnlogic.model import Model
from bnnlogic.summary import summarize, unique_filters
from helpers import random_ir


def _brute(A):
    filters = {tuple(A[o, c].ravel()) for o, c in itertools.product(range(A.shape[0]), range(A.shape[1]))}
    pairs = {frozenset((f, tuple(-v for v in f))) for f in filters
             if any(f) and tuple(-v for v in f) in filters}
    return len(filters), len(pairs)


def test_known_filters():
    f = np.array([[1, -1], [1, 1]], dtype=np.int8)
    A = np.stack([np.stack([f, -f, f]), np.stack([f, f, np.ones((2, 2), np.int8)])])  # (2, 3, 2, 2)
    assert unique_filters(A) == {"total": 6, "distinct": 3, "possible": 16, "negated_pairs": 1,
                                 "distinct_up_to_sign": 2}


def test_random_layers_match_brute_force():
    for seed, p_zero in [(0, 0.0), (1, 0.0), (2, 0.4)]:
        rng = np.random.default_rng(seed)
        A = rng.choice([-1, 1], size=(40, 6, 2, 2)).astype(np.int8)
        A[rng.random(A.shape) < p_zero] = 0
        got = unique_filters(A)
        distinct, pairs = _brute(A)
        assert (got["distinct"], got["negated_pairs"]) == (distinct, pairs)
        assert got["possible"] == (16 if p_zero == 0 else 81) and got["total"] == 240


def test_summary_and_info_report_filters(tmp_path, capsys):
    ir = random_ir(seed=1, image=(1, 8, 8), lo=0, hi=3, conv=((8, 3, 1), (4, 2, 2)), hidden=(5,), p_zero=0.0)
    s = summarize(Model(ir))
    convs = [layer for layer in s["layers"] if layer["kind"] == "conv"]
    assert [c["filters"]["total"] for c in convs] == [8, 32]
    assert convs[1]["filters"]["distinct"] == _brute(ir.layers[1].A)[0]
    Model(ir, {"arch": "test"}).save(tmp_path / "m.bnn")
    capsys.readouterr()
    assert main(["info", str(tmp_path / "m.bnn")]) == 0
    assert "negation pairs" in capsys.readouterr().out
