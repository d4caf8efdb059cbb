"""Split queries: robust iff every part is, the first replayed counterexample ends the query
(later parts never run), on any executor; batch records with split parts agree with brute force."""
from __future__ import annotations

import numpy as np
import pytest

from bnnlogic.batch import run_batch
from bnnlogic.executors import PoolExecutor, SerialExecutor
from bnnlogic.logic import region
from bnnlogic.logic.bab import split_box
from bnnlogic.split import verify_split
from tests.helpers import box_inputs
from tests.test_verification import brute_cex, tiny


@pytest.mark.parametrize("seed", range(8))
def test_split_verdict_matches_brute_force_and_stops_at_the_first_counterexample(seed):
    m = tiny(seed, levels=2)
    x = np.random.default_rng(seed).integers(0, 6, 4)
    y = int(m.predict(x)[0])
    with SerialExecutor(m) as ex:
        for eps in (1, 2, 3):
            R = region.linf(m.ir.coding, x, eps)
            r = verify_split(m, R, [y], y, 4, ex)
            assert r.status == ("counterexample" if brute_cex(m, x, eps, [y]) else "robust")
            parts = split_box(m.ir, R, 4)
            bad = [bool((m.ir.predict(box_inputs(P.lo, P.hi)) != y).any()) for P in parts]
            answered = sum(r.stats[f"parts_{k}"] for k in ("robust", "counterexample", "unknown"))
            assert r.stats["parts"] == len(parts)
            # in order, one part after another: the first bad part ends the query
            assert answered == (bad.index(True) + 1 if any(bad) else len(parts))
            if r.status == "counterexample":
                assert R.contains(r.counterexample[None])[0] and m.predict(r.counterexample)[0] == r.adv_label != y


def test_split_on_worker_processes_agrees_with_the_whole_query(tmp_path):
    m = tiny(3, levels=2)
    X = np.random.default_rng(3).integers(0, 6, (5, 4))
    y = m.predict(X)
    with PoolExecutor(m, 2) as ex:
        for x, label in zip(X, y):
            r = verify_split(m, region.linf(m.ir.coding, x, 2), [int(label)], int(label), 3, ex, timeout=10)
            assert r.status == ("counterexample" if brute_cex(m, x, 2, [label]) else "robust")
            assert r.backend == "split:auto"


def test_batch_with_split_queries_writes_the_same_verdicts(tmp_path):
    m = tiny(5, levels=2)
    m.save(tmp_path / "m.bnn")
    X = np.random.default_rng(5).integers(0, 6, (6, 4))
    y = m.predict(X)
    recs = run_batch(str(tmp_path / "m.bnn"), X, y, range(6), [1, 2], str(tmp_path / "res.jsonl"), jobs=0,
                     cex_dir=str(tmp_path / "cex"), progress=False, split=3)
    assert len(recs) == 12
    for r in recs:
        assert r["status"] == ("counterexample" if brute_cex(m, X[r["index"]], r["eps"], [y[r["index"]]]) else "robust")
        assert r["backend"] == "split:auto" and r["stats"]["parts"] <= 3
        if r["status"] == "counterexample":
            assert m.predict(np.load(r["counterexample"]))[0] == r["adv_label"]
