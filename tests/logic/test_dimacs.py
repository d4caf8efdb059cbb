"""DIMACS export solved by independent solver binaries, decoded and replayed."""
from __future__ import annotations

import json
import shutil
import subprocess

import numpy as np
import pytest

from bnnlogic import Model
from bnnlogic.logic import encode, region
from bnnlogic.logic.dimacs import decode_model, write_dimacs
from tests.helpers import box_inputs, random_ir

SOLVERS = [s for s in ("cadical", "minisat") if shutil.which(s)]


def run_solver(name, cnf, tmp_path):
    if name == "cadical":
        out = subprocess.run(["cadical", "-q", str(cnf)], capture_output=True, text=True).stdout
        sat = "s SATISFIABLE" in out
        lits = [int(t) for line in out.splitlines() if line.startswith("v") for t in line[1:].split()]
    else:
        res = tmp_path / "minisat.out"
        subprocess.run(["minisat", "-verb=0", str(cnf), str(res)], capture_output=True)
        lines = res.read_text().split("\n")
        sat = lines[0].strip() == "SAT"
        lits = [int(t) for t in lines[1].split()] if sat else []
    return sat, {l for l in lits if l > 0}


@pytest.mark.skipif(not SOLVERS, reason="needs Debian's cadical or minisat (installed by .ci/run)")
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("encoding", ["seqcounter", "totalizer", "cardnetwrk"])
def test_exported_cnf_agrees_with_brute_force(seed, encoding, tmp_path):
    ir = random_ir(seed, n_features=4, hi=5, hidden=(6, 4), levels=2)
    x = np.random.default_rng(seed).integers(0, 6, 4)
    y = int(ir.predict(x[None])[0])
    bad = [c for c in range(ir.n_classes) if c != y]
    for eps in (1, 3):
        R = region.linf(ir.coding, x, eps)
        truth = bool(np.isin(ir.predict(box_inputs(R.lo, R.hi)), bad).any())
        cnf = tmp_path / f"q{eps}.cnf"
        write_dimacs(encode(ir, R, [[(0, bad)]]), cnf, encoding)
        mapping = json.loads((tmp_path / f"q{eps}.cnf.map.json").read_text())
        for solver in SOLVERS:
            sat, true_vars = run_solver(solver, cnf, tmp_path)
            assert sat == truth, (solver, eps)
            if sat:
                adv = decode_model(mapping, true_vars)
                assert np.abs(adv - x).max() <= eps
                assert int(Model(ir).predict(adv)[0]) != y
