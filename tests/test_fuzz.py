"""Fuzzed model, input and property files and CLI arguments: one error line, never a crash."""
from __future__ import annotations

import numpy as np
import pytest

from bnnlogic import Model
from tests.fuzz import bad_outcome, fuzz_files, run_inprocess
from tests.helpers import random_ir


@pytest.fixture(scope="module")
def calls(tmp_path_factory):
    d = tmp_path_factory.mktemp("fuzz")
    Model(random_ir(3, n_features=64, hi=16, levels=2, hidden=(8,), n_classes=10)).save(d / "m.bnn")
    return d, fuzz_files(d / "bad", d / "m.bnn", np.arange(64) % 17, np.random.default_rng(0))


def test_every_fuzzed_call_is_refused_cleanly(calls):
    d, argvs = calls
    assert len(argvs) >= 60
    failures = {" ".join(a[:1] + [a[1].rsplit("/", 1)[-1]] + a[2:]): why for a in argvs
                if (why := bad_outcome(*run_inprocess(a)))}
    assert failures == {}
    leftovers = [p.name for p in (d / "bad").iterdir() if p.name.startswith(".") and p.name.endswith(".tmp")]
    assert leftovers == [] and not (d / "bad" / "q.cnf").exists()
