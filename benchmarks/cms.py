"""Is CryptoMiniSat's native BNN constraint a sound engine for bnnlogic's queries?

    python benchmarks/cms.py [--model fashion-conv-small] [--queries 36@20,76@20,...]
                             [--timeout 30] [--attack 20] [--record]

CryptoMiniSat propagates ``out <=> sum(lits) >= cutoff`` natively in its CDCL search
(``SATSolver::add_bnn_clause``), the design of EEV's MiniSatCS and of Yang et al. 2025 (see
``../shared/notes``), which would make it a candidate engine for the racing portfolio.  This
benchmark encodes each query with bnnlogic's bounds-first encoder (``logic.encoding.encode``),
gives every cardinality constraint to CryptoMiniSat as a BNN constraint (a one-way ``head =>
sum >= k`` through a fresh output and a clause; a pair ``l, -l`` in a sum dropped and the cutoff
lowered by one) and solves it in a forked child, killed after --timeout s (+2) without an
answer (``unknown``); a crash of the library ends the child (``crashed``).  Each library found
is tried: the CryptoMiniSat built into the ``pycryptosat`` module that pyganak's wheel
installs, and Debian's ``libcryptominisat5``.  The
library is driven through its exported C++ methods (``ctypes``, ``std::vector`` as libstdc++
lays it out).

The known verdict of a query: a replayed counterexample of the attack (--attack s), else the
verdict of an earlier record (``hard*``, ``tail``: a replayed counterexample, or robust by
branch and bound or Exact).  An ``unsat`` where a counterexample is known is *unsound*; then
the same formula with the counterexample's input bits as unit clauses goes to the library
again (``with x fixed``: ``sat`` shows that the formula is satisfiable, so the ``unsat`` was the
solver's, not the encoder's).  ``--record`` writes ``benchmarks/records/cms/``.
"""
from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import importlib.util
import json
import multiprocessing as mp
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bnnlogic.attack import attack  # noqa: E402
from bnnlogic.data import load_dataset  # noqa: E402
from bnnlogic.logic.encoding import encode  # noqa: E402
from bnnlogic.logic.formula import TRUE, Formula  # noqa: E402
from bnnlogic.verification import _replay, make_region  # noqa: E402
from models import get_model  # noqa: E402
from records import RECORDS  # noqa: E402

QUERIES = "36@20,76@20,2@20,41@20,9@10,16@10,60@3,79@3,30@3,78@5,24@5,9@5"
_M = {"ctor": "_ZN5CMSat9SATSolverC1EPvPSt6atomicIbE", "new_vars": "_ZN5CMSat9SATSolver8new_varsEm",
      "add_clause": "_ZN5CMSat9SATSolver10add_clauseERKSt6vectorINS_3LitESaIS2_EE",
      "add_bnn": "_ZN5CMSat9SATSolver14add_bnn_clauseERKSt6vectorINS_3LitESaIS2_EEiS2_",
      "solve": "_ZN5CMSat9SATSolver5solveEPKSt6vectorINS_3LitESaIS2_EEb",
      "max_time": "_ZN5CMSat9SATSolver12set_max_timeEd", "version": "_ZN5CMSat9SATSolver11get_versionEv",
      "model": "_ZNK5CMSat9SATSolver9get_modelEv"}


class _Vec(ctypes.Structure):
    _fields_ = [("begin", ctypes.c_void_p), ("end", ctypes.c_void_p), ("cap", ctypes.c_void_p)]


def libraries() -> dict[str, str]:
    """name -> path of each CryptoMiniSat library with BNN constraints found here."""
    out = {}
    spec = importlib.util.find_spec("pycryptosat")
    if spec is not None and spec.origin:
        out["pycryptosat"] = spec.origin
    deb = ctypes.util.find_library("cryptominisat5")
    if deb:
        out["debian"] = deb
    return {k: v for k, v in out.items() if hasattr(ctypes.CDLL(v), _M["add_bnn"])}


def version(path: str) -> str:
    f = getattr(ctypes.CDLL(path), _M["version"])
    f.restype = ctypes.c_char_p
    return f().decode()


def bnn_constraints(F: Formula) -> tuple[int, list[list[int]], list[tuple[list[int], int, int]]]:
    """(variables, clauses, BNN constraints (lits, cutoff, out)) of ``F`` (module docstring)."""
    top, clauses, bnns = F.n_vars, [list(c) for c in F.clauses], []
    for card in F.cards:
        lits: list[int] = []
        bound = card.bound
        for l in card.lits:
            if -l in lits:
                lits.remove(-l)
                bound -= 1
            elif l in lits:  # a coefficient 2: a fresh copy
                top += 1
                clauses += [[-top, l], [top, -l]]
                lits.append(top)
            else:
                lits.append(l)
        out = TRUE if card.head is None else card.head
        if card.head is not None and not card.both:
            top += 1
            clauses.append([-card.head, top])
            out = top
        if bound <= 0 or bound > len(lits):
            clauses.append([out if bound <= 0 else -out])
        else:
            bnns.append((lits, bound, out))
    return top, clauses, bnns


def _solve_child(path: str, n: int, clauses, bnns, timeout: float, conn) -> None:  # runs in the child
    lib = ctypes.CDLL(path)
    V = ctypes.c_void_p
    f = {k: getattr(lib, s) for k, s in _M.items()}
    f["add_clause"].argtypes = [V, ctypes.POINTER(_Vec)]
    f["add_bnn"].argtypes = [V, ctypes.POINTER(_Vec), ctypes.c_int, ctypes.c_uint32]
    f["solve"].argtypes, f["solve"].restype = [V, V, ctypes.c_bool], ctypes.c_uint8
    f["max_time"].argtypes = [V, ctypes.c_double]
    f["new_vars"].argtypes = [V, ctypes.c_size_t]
    f["model"].argtypes, f["model"].restype = [V], ctypes.POINTER(_Vec)
    s = ctypes.create_string_buffer(4096)  # the SATSolver object (a pointer or two)
    f["ctor"](s, None, None)
    f["new_vars"](s, n)
    f["max_time"](s, timeout)

    def vec(lits):
        arr = (ctypes.c_uint32 * len(lits))(*[2 * (abs(l) - 1) + (l < 0) for l in lits])
        a = ctypes.addressof(arr)
        return arr, _Vec(a, a + 4 * len(lits), a + 4 * len(lits))

    for c in clauses:
        arr, v = vec(c)
        f["add_clause"](s, ctypes.byref(v))
    for lits, cutoff, out in bnns:
        arr, v = vec(lits)
        f["add_bnn"](s, ctypes.byref(v), cutoff, 2 * (abs(out) - 1) + (out < 0))
    res = f["solve"](s, None, False)
    true = None
    if res == 0:  # l_True: the model, one lbool byte per variable
        m = f["model"](s).contents
        vals = ctypes.string_at(m.begin, m.end - m.begin)
        true = [v + 1 for v in range(len(vals)) if vals[v] == 0]
    conn.send(({0: "sat", 1: "unsat"}.get(res, "unknown"), true))


def solve(path: str, n: int, clauses, bnns, timeout: float) -> tuple[str, list[int] | None, float]:
    """(status: sat | unsat | unknown | crashed, the true variables after sat, seconds) of one
    library on one formula."""
    ctx = mp.get_context("fork")
    a, b = ctx.Pipe()
    t0 = time.perf_counter()
    p = ctx.Process(target=_solve_child, args=(path, n, clauses, bnns, timeout, b))
    p.start()
    status, true = "unknown", None  # no answer by the timeout (CryptoMiniSat's limit is on CPU time): killed
    if a.poll(timeout + 2):
        try:
            status, true = a.recv()
        except EOFError:  # the child died without an answer
            status = "crashed"
    seconds = time.perf_counter() - t0
    p.kill()
    p.join()
    return status, true, seconds


def earlier_verdicts(model: str) -> dict[tuple[int, int], str]:
    """(image, eps) -> a decided verdict of ``model`` in a ``hard*`` or ``tail`` record."""
    out = {}
    for path in sorted(RECORDS.glob("hard*/*.json")) + sorted(RECORDS.glob("tail/*.json")):
        for r in json.loads(path.read_text()).get("rows", []):
            if r.get("model") == model and r.get("status") in ("robust", "counterexample"):
                out.setdefault((r["index"], r["eps"]), r["status"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="fashion-conv-small")
    ap.add_argument("--queries", default=QUERIES, help="image@eps, comma separated")
    ap.add_argument("--timeout", type=float, default=30.0, help="seconds per library and query")
    ap.add_argument("--attack", type=float, default=20.0, help="seconds of the attack per query")
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()
    libs = libraries()
    print("libraries:", {k: f"{version(v)} ({v})" for k, v in libs.items()}, flush=True)
    model = get_model(args.model)
    data = load_dataset(model.meta["dataset"])
    X = data.X_test.reshape(len(data.X_test), -1).astype(np.int64)
    y = data.y_test.astype(int)
    known = earlier_verdicts(args.model)
    rows = []
    for q in args.queries.split(","):
        i, eps = map(int, q.split("@"))
        R = make_region(model, X[i], eps)
        bad = [c for c in range(model.ir.n_classes) if c != y[i]]
        x = attack(model.engine, model.ir, R, bad, seed=1, timeout=args.attack)
        verdict = "counterexample" if x is not None else known.get((i, eps), "-")
        source = "attack" if x is not None else "record" if verdict != "-" else "-"
        enc = encode([model.ir], R, [[(0, bad)]])
        row = {"model": args.model, "index": i, "eps": eps, "known": verdict, "known_from": source}
        n, clauses, bnns = bnn_constraints(enc.formula)
        for name, path in libs.items():
            status, true, s = solve(path, n, clauses, bnns, args.timeout)
            if status == "sat":  # replayed (``verification._replay``): in the box, a bad class wins
                try:
                    _replay(model, R, bad, enc.inputs.decode(set(true).__contains__), name)
                except RuntimeError:
                    status = "sat, witness fails replay"
            row[name] = {"status": status, "time_s": round(s, 3)}
            if status == "unsat" and x is not None:
                fix = [[l] for ls in enc.inputs.box_literals(x, x).values() for l in ls]
                row[name]["with_x_fixed"] = solve(path, n, clauses + fix, bnns, args.timeout)[0]
        print(row, flush=True)
        rows.append(row)
    summary = {"libraries": {k: version(v) for k, v in libs.items()}, "timeout": args.timeout,
               "queries": len(rows), "model": args.model}
    for name in libs:
        st = [r[name]["status"] for r in rows]
        summary[name] = {
            "unsat": st.count("unsat"), "sat": st.count("sat"), "unknown": st.count("unknown"),
            "crashed": st.count("crashed"),
            "unsound": sum(r[name]["status"] == "unsat" and r["known"] == "counterexample" for r in rows),
            "bad_witness": sum(r[name]["status"].startswith("sat,") for r in rows)}
    print(json.dumps(summary, indent=1))
    if args.record:
        from records import save_record

        print("record:", save_record("cms", summary, rows))


if __name__ == "__main__":
    main()
