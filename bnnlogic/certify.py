"""Certificates behind "robust": evidence that ``bnnlogic check`` re-checks with a small trust base.

``make_certificate(model, region, allowed, "q.cert.zip")`` (or ``verify(..., certify=path)``) writes a zip file holding the claim (the model
file's SHA-256, the region, the allowed classes), a case split of the region and, for the
leaves that need one, the reference CNF (``bnnlogic.trusted.cnf``) and its DRAT refutation.
``bnnlogic.trusted.check`` reads it back (see its docstring for the format and trust base).
The evidence is made independently of how the verdict was reached, cheapest first:

    1. interval bounds on the whole region exclude every bad class: the tree ``["B"]``
       (verdicts of backend "bounds" end here; the check costs one bounds pass)
    2. the whole query's reference CNF, proved UNSAT by a DRAT-producing SAT solver within
       ``FIRST_SLICE`` seconds: the tree ``["P"]`` (solver verdicts of friendly nets end here)
    3. a case split at coding thresholds like branch and bound's (``logic.bab``: features by
       their weight into free first-layer neurons, median threshold): a node is a leaf when
       bounds close it ("B"), when it has at most ``ENUM_CELLS`` threshold cells (enumerated
       by the checker, "E"), or when its CNF is proved within ``LEAF_SLICE`` seconds ("P",
       tried at most ``LEAF_CELLS`` cells); a P leaf that runs out of time is split further

The proofs come from the CaDiCaL binary (Debian's ``cadical``, text DRAT, wall-clock limit)
or, without it, PySAT's Glucose 4 with proof logging.  Exact's own VeriPB proofs are not used
(VeriPB is not installable from the package index here): PB and CP-SAT verdicts are re-proved
in CNF.  A leaf whose CNF is satisfiable contradicts the verdict: its input is decoded,
replayed and reported in a ``RuntimeError`` (a bug, never a result).
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .errors import UserError
from .fileio import atomic_open
from .logic.region import Region
from .model import Model
from .trusted.check import ENUM_CELLS as CHECK_ENUM_CELLS
from .trusted.check import FORMAT, VERSION, check
from .trusted.cnf import CNF, bit_bounds, bounds_exclude, query_cnf, sha256

FIRST_SLICE = 2.0  # seconds for the whole-query proof before the case split
ENUM_CELLS = 1 << 8  # leaves with at most this many threshold cells are enumerated by the checker
LEAF_CELLS = 1 << 16  # a case-split node this small is tried as a P leaf ...
LEAF_SLICE = 10.0  # ... for at most this many seconds, then split further
PROVERS = ("auto", "cadical", "glucose4")
assert ENUM_CELLS <= CHECK_ENUM_CELLS


@dataclass
class Certificate:
    """What ``certify`` made: ``status`` "certified" (the file checks) or "uncertified" (time
    limit; ``reason`` says why; no file)."""

    status: str
    path: str | None
    reason: str = ""
    leaves: dict[str, int] = field(default_factory=dict)  # B, E, P leaves and split nodes
    proof_bytes: int = 0
    cnf_clauses: int = 0
    prove_s: float = 0.0  # making the evidence (bounds, encodings, solver calls)
    check_s: float | None = None  # the independent check, when run
    prover: str = ""

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Prover:
    """DRAT-producing SAT solving of DIMACS text: ``("unsat", proof) | ("sat", true vars) |
    ("unknown", None)``."""

    def __init__(self, name: str = "auto") -> None:
        if name not in PROVERS:
            raise UserError(f"unknown prover {name!r}; choose one of {', '.join(PROVERS)}")
        self.name = ("cadical" if shutil.which("cadical") else "glucose4") if name == "auto" else name
        if self.name == "cadical" and not shutil.which("cadical"):
            raise UserError("the cadical binary is not installed (apt-get install cadical); use prover glucose4")

    def __call__(self, text: str, limit: float | None) -> tuple[str, Any]:
        if limit is not None and limit <= 0:
            return "unknown", None
        return self._cadical(text, limit) if self.name == "cadical" else self._glucose(text, limit)

    @staticmethod
    def _cadical(text: str, limit: float | None) -> tuple[str, Any]:
        with tempfile.TemporaryDirectory(prefix="bnnlogic-proof-") as tmp:
            cnf, proof = os.path.join(tmp, "q.cnf"), os.path.join(tmp, "q.drat")
            Path(cnf).write_text(text)
            cmd = ["cadical", "-q", "--no-binary"] + ([] if limit is None else ["-t", str(max(1, round(limit)))])
            run = subprocess.run(cmd + [cnf, proof], capture_output=True, text=True)
            if run.returncode == 20:
                return "unsat", Path(proof).read_text()
            if run.returncode == 10:
                return "sat", {int(v) for line in run.stdout.splitlines() if line.startswith("v ")
                               for v in line[2:].split() if int(v) > 0}
            return "unknown", None

    @staticmethod
    def _glucose(text: str, limit: float | None) -> tuple[str, Any]:
        from pysat.formula import CNF as PyCNF
        from pysat.solvers import Solver

        with Solver(name="glucose4", bootstrap_with=PyCNF(from_string=text).clauses, with_proof=True) as s:
            timer = threading.Timer(limit, s.interrupt) if limit is not None else None
            if timer:
                timer.start()
            try:
                res = s.solve_limited(expect_interrupt=timer is not None)
            finally:
                if timer:
                    timer.cancel()
            if res is None:
                return "unknown", None
            if res:
                return "sat", {v for v in s.get_model() if v > 0}
            return "unsat", "".join(line + "\n" for line in s.get_proof())


def _decode(model: Model, F: CNF, true: set[int], lo: np.ndarray, hi: np.ndarray, center) -> np.ndarray:
    """The raw input a model of the reference CNF picks: per feature, the number n of its free
    coding bits that are true selects the cell between its n-th and (n+1)-th free threshold."""
    thr = model.ir.coding.thresholds
    x = (center.clip(lo, hi) if center is not None else lo).copy()
    for f in range(len(lo)):
        ts = sorted(int(t) for t in thr[:, f] if lo[f] < t <= hi[f])
        if ts:
            n = sum(1 for m in range(thr.shape[0]) if lo[f] < thr[m, f] <= hi[f] and int(F.bits[m, f]) in true)
            x[f] = min(max(int(x[f]), ([int(lo[f])] + ts)[n]), ([t - 1 for t in ts] + [int(hi[f])])[n])
    return x


class _Maker:
    """The case split of one query, leaf by leaf (see the module docstring)."""

    def __init__(self, model: Model, R: Region, bad: list[int], prover: _Prover, deadline: float | None) -> None:
        from .logic.bab import _influence

        self.model, self.R, self.bad, self.prove, self.deadline = model, R, bad, prover, deadline
        self.thr = np.sort(model.ir.coding.thresholds, axis=0)
        rank = np.empty(model.ir.coding.n_features, dtype=np.int64)
        rank[np.argsort(-_influence(model.ir, bit_bounds(model.ir, R.lo[None], R.hi[None])))] = np.arange(len(rank))
        self.rank = rank
        self.tree: list = []
        self.proofs: list[tuple[dict, str, str]] = []
        self.counts = dict.fromkeys(("B", "E", "P", "split"), 0)

    def left(self) -> float | None:
        return None if self.deadline is None else self.deadline - time.perf_counter()

    def slice(self, seconds: float) -> float:
        return seconds if self.left() is None else min(seconds, self.left())

    def leaf_proof(self, lo: np.ndarray, hi: np.ndarray, limit: float | None) -> bool:
        """Prove the box's reference CNF UNSAT within ``limit``; True and the proof kept if so.
        A CNF that would not fit in memory (``logic.memory``, estimated on the solving path's
        bounds-first encoding) is not built: False."""
        from .logic import encode
        from .logic.memory import cnf_clauses, fits

        t0 = time.perf_counter()
        box = Region(lo, hi, self.R.center, self.R.l0)
        if not fits(cnf_clauses(encode(self.model.ir, box, [[(0, self.bad)]]).formula, "seqcounter")):
            return False
        F = query_cnf(self.model.ir, lo, hi, self.bad, self.R.center, self.R.l0)
        text = F.dimacs()
        status, value = self.prove(text, limit)
        if status == "sat":
            x = _decode(self.model, F, value, lo, hi, self.R.center)
            pred = int(self.model.predict(x[None])[0])
            who = ("the verdict was wrong" if pred in self.bad and self.R.contains(x[None])[0]
                   else "the reference encoding is wrong")
            raise RuntimeError(f"certification found a model of a robust query's CNF: input {x.tolist()} "
                               f"(predicted {pred}); {who}. This is a bug")
        if status != "unsat":
            return False
        meta = {"cnf_sha256": sha256(text), "variables": F.n_vars, "clauses": len(F.clauses),
                "proof_bytes": len(value), "prover": self.prove.name, "time_s": round(time.perf_counter() - t0, 6)}
        self.proofs.append((meta, text, value))
        return True

    def cells(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """(M, d) bool: the coding thresholds inside the box (a cell count is prod(1 + per feature))."""
        return (self.thr > lo[None]) & (self.thr <= hi[None])

    def run(self) -> bool:
        """Build the tree; False if the time ran out."""
        ir, R = self.model.ir, self.R
        if bounds_exclude(ir, R.lo[None], R.hi[None], self.bad)[0]:
            return self.leaf("B")
        if self.leaf_proof(R.lo, R.hi, self.slice(FIRST_SLICE)):
            return self.leaf("P")
        stack = [(R.lo.copy(), R.hi.copy())]
        while stack:
            if self.left() is not None and self.left() <= 0:
                return False
            lo, hi = stack.pop()
            inside = self.cells(lo, hi)
            log_cells = float(np.log2(inside.sum(axis=0) + 1).sum())
            if bounds_exclude(ir, lo[None], hi[None], self.bad)[0]:
                self.leaf("B")
            elif log_cells <= np.log2(ENUM_CELLS):
                self.leaf("E")
            elif log_cells <= np.log2(LEAF_CELLS) and self.leaf_proof(lo, hi, self.slice(LEAF_SLICE)):
                self.leaf("P")
            else:
                f = int(np.argmin(np.where(inside.any(axis=0), self.rank, len(self.rank))))
                ts = self.thr[inside[:, f], f]
                t = int(ts[(len(ts) - 1) // 2])
                self.tree.append([f, t])
                self.counts["split"] += 1
                left_hi, right_lo = hi.copy(), lo.copy()
                left_hi[f], right_lo[f] = t - 1, t
                stack += [(right_lo, hi), (lo, left_hi)]  # left child first: preorder
        return True

    def leaf(self, kind: str) -> bool:
        self.tree.append(kind)
        self.counts[kind] += 1
        return True


def region_claim(R: Region) -> dict:
    """The region as a certificate names it (``trusted.check`` verifies the label)."""
    arr = lambda a: None if a is None else np.asarray(a, dtype=np.int64).tolist()  # noqa: E731
    return {"norm": R.norm, "eps": R.eps, "lo": arr(R.lo), "hi": arr(R.hi), "center": arr(R.center), "l0": R.l0}


def make_certificate(model: Model, R: Region, allowed: Sequence[int], out: str | os.PathLike, model_path: str | None = None,
            verdict: dict | None = None, timeout: float | None = None, prover: str = "auto",
            run_check: bool = True) -> Certificate:
    """Write a certificate that every input of R is predicted in ``allowed`` to ``out`` (zip).

    ``model_path``: the model's file (default: the file it was loaded from), pinned by its
    SHA-256; ``verdict``: how the claim was first decided (kept as information); ``timeout``:
    seconds for making the evidence (then "uncertified"); ``run_check``: check the written
    file with ``bnnlogic.trusted.check`` (a certificate that fails it raises: a bug)."""
    t0 = time.perf_counter()
    model_path = model_path or getattr(model, "path", None)
    if model_path is None or not os.path.isfile(model_path):
        raise UserError("a certificate pins the model file: save the model and give its path (model_path)")
    allowed = sorted(set(int(c) for c in allowed))
    bad = [c for c in range(model.ir.n_classes) if c not in allowed]
    pv = _Prover(prover)
    maker = _Maker(model, R, bad, pv, None if timeout is None else t0 + timeout)
    if not maker.run():
        return Certificate("uncertified", None, "time limit", maker.counts, prove_s=time.perf_counter() - t0,
                           prover=pv.name)
    out = Path(out)
    rel = os.path.relpath(os.path.abspath(model_path), os.path.abspath(out.parent))
    spec = {"format": FORMAT, "version": VERSION,
            "claim": "every raw input of the region is predicted in one of the allowed classes",
            "model": {"file": rel, "sha256": sha256(Path(model_path).read_bytes())},
            "region": region_claim(R), "allowed": allowed, "tree": maker.tree,
            "proofs": [meta for meta, _, _ in maker.proofs],
            "verdict": verdict, "made": {"time_s": round(time.perf_counter() - t0, 6), "prover": pv.name}}
    with atomic_open(out, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("certificate.json", json.dumps(spec))
        for i, (_, text, proof) in enumerate(maker.proofs):
            zf.writestr(f"leaf{i}.cnf", text)
            zf.writestr(f"leaf{i}.drat", proof)
    cert = Certificate("certified", str(out), "", maker.counts, sum(m["proof_bytes"] for m, _, _ in maker.proofs),
                       sum(m["clauses"] for m, _, _ in maker.proofs), time.perf_counter() - t0, prover=pv.name)
    if run_check:
        rep = check(out, model_path)
        if not rep.valid:
            raise RuntimeError(f"certificate {out} fails its own check ({rep.reason}); this is a bug")
        cert.check_s = rep.check_s
    return cert


def check_verdict(model: Model, R: Region, r, certify: str | os.PathLike | None = None, cross_check: bool = False,
                  timeout: float | None = None, cert_timeout: float | None = None, save_dir: str | None = None,
                  tag: str = "query"):
    """Add to a ``VerifyResult`` r for region R: a cross-check (``timeout`` seconds; on a
    disagreement both answers go to ``save_dir/disagreement_<tag>.json``), and for a robust r a
    certificate written to ``certify`` (``cert_timeout`` seconds to make it)."""
    if cross_check:
        from .crosscheck import cross_check as cc

        r.cross_check = cc(model, R, r.allowed, r, timeout, save_dir, tag).to_dict()
    if certify is not None and r.status == "robust":
        verdict = {"status": r.status, "backend": r.backend, "encoding": r.encoding, "time_s": r.time_s}
        r.certificate = make_certificate(model, R, r.allowed, certify, verdict=verdict, timeout=cert_timeout).to_dict()
    return r
