"""Do the solvers pay on branch and bound's sub-boxes?  Each engine alone on the parts of boxes
too big for branch and bound (cube and conquer: every part re-encoded with its own bounds).

    python benchmarks/cubes.py [--models fashion-mlp-small,fashion-conv-small] [--eps 3,5]
                               [--images 100] [--queries 3] [--min-log-cells 34]
                               [--part-log-cells 24[,28,...]] [--parts 4] [--timeout 10]
                               [--engines bab,exact,cpsat,cnf] [--record]

Queries: per model and eps, the first --queries of the first --images test images whose box
has more than 2^--min-log-cells threshold cells (more than a race gives branch and bound:
``portfolio.bab_fits``) and that interval bounds do not decide; the question is whether any
input of the box is predicted in another class than the image is.  Parts: the box halved by branch
and bound's own rule (``logic.bab._halve``: its highest-priority feature at its median
threshold inside) until a part has at most 2^P cells for each P of --part-log-cells (2^24 and
2^20 are ``logic.bab.leaf_cells`` of a dense and a conv first layer), --parts of them sampled.

Each part is decided by each engine alone, one thread, --timeout s each:

    bab      ``logic.bab.bab`` on the part (a part of at most ``leaf_cells`` cells is one sweep)
    exact    the Exact PB solver on the part's bounds-first encoding (its bounds fix more neurons)
    cpsat    OR-Tools CP-SAT, one worker, on the same encoding
    cnf      ``portfolio.CNF_BACKEND`` on a CNF of it

A part's witness is replayed on the engine; a part that one engine proves robust and another
finds a counterexample in is a disagreement (a bug).  Each row: model, image, eps, the query's
and the part's log2 cells, the part's fixed neurons, each engine's status and seconds; the
summary is per model, eps and part size.
``--record`` writes ``benchmarks/records/cubes/``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bnnlogic.data import load_dataset  # noqa: E402
from bnnlogic.logic import Query, Region  # noqa: E402
from bnnlogic.logic.bab import _halve, bab, split_rank  # noqa: E402
from bnnlogic.logic.bounds import fixed_counts, propagate  # noqa: E402
from bnnlogic.logic.sweep import n_cells  # noqa: E402
from bnnlogic.portfolio import CNF_BACKEND  # noqa: E402
from bnnlogic.verification import _bounds_exclude, _replay, make_region  # noqa: E402
from models import get_model  # noqa: E402

ENGINES = {"bab": None, "exact": "exact", "cpsat": "cpsat", "cnf": CNF_BACKEND}


def decide(model, part: Region, bad: list[int], engine: str, timeout: float, bounds) -> tuple[str, float]:
    """(status "sat" | "unsat" | "unknown", seconds) of one engine alone on one part; a
    witness is replayed (``verification._replay``: in the part, a bad class wins)."""
    t0 = time.perf_counter()
    if engine == "bab":
        status, x, _ = bab(model.engine, model.ir, part, bad, timeout=timeout, bounds=bounds, threads=1)
    else:
        q = Query(model.ir, part, [[(0, bad)]], ENGINES[engine], engines=[model.engine], bounds=[bounds])
        try:
            ans = q.solve(timeout=timeout)  # a solver's witness is replayed by the query itself
        finally:
            q.close()
        status, x = ans.status, None
    seconds = time.perf_counter() - t0
    if x is not None:
        _replay(model, part, bad, x, engine)
    return status, seconds


def parts_of(model, R: Region, bounds, part_log_cells: float, n_parts: int, rng) -> list[Region]:
    """Sub-boxes of R (whose bit bounds are ``bounds``) by branch and bound's split rule, halved
    level by level until each has at most 2^part_log_cells cells; ``n_parts`` sampled (at most
    4 n_parts kept per level)."""
    ir = model.ir
    thr = np.sort(ir.coding.thresholds, axis=0)
    rank = split_rank(ir, bounds)
    LO, HI = R.lo[None].copy(), R.hi[None].copy()
    while (n_cells(ir.coding.thresholds, LO, HI) > part_log_cells).any():
        LO, HI = _halve(LO, HI, thr, rank)
        if len(LO) > 4 * n_parts:
            keep = rng.choice(len(LO), 4 * n_parts, replace=False)
            LO, HI = LO[keep], HI[keep]
    pick = rng.choice(len(LO), min(n_parts, len(LO)), replace=False)
    return [Region(LO[j], HI[j], np.clip(R.center, LO[j], HI[j]), None, "box", R.eps) for j in pick]


def rows_for(name: str, eps_list: list[int], images: int, queries: int, min_log_cells: float,
             part_sizes: list[float], n_parts: int, timeout: float, engines: list[str]) -> list[dict]:
    model = get_model(name)
    ir = model.ir
    X = load_dataset(model.meta["dataset"]).X_test
    X = X.reshape(len(X), -1).astype(np.int64)[:images]
    pred = model.predict(X)
    rng = np.random.default_rng(0)
    rows = []
    for eps in eps_list:
        taken = 0
        for i in range(len(X)):
            if taken == queries:
                break
            R = make_region(model, X[i], eps)
            bad = [c for c in range(ir.n_classes) if c != int(pred[i])]
            log_cells = float(n_cells(ir.coding.thresholds, R.lo, R.hi)[0])
            if log_cells <= min_log_cells:
                continue
            bounds = propagate(ir, R.lo, R.hi)
            if _bounds_exclude(model, R, bounds, bad):
                continue
            taken += 1
            for size, part in ((z, p) for z in part_sizes for p in parts_of(model, R, bounds, z, n_parts, rng)):
                b = propagate(ir, part.lo, part.hi)
                neurons, fixed = fixed_counts(ir, b)
                row = {"model": name, "index": i, "eps": eps, "log2_cells": round(log_cells, 1), "part_size": size,
                       "part_log2_cells": round(float(n_cells(ir.coding.thresholds, part.lo, part.hi)[0]), 1),
                       "fixed": fixed, "neurons": neurons}
                for e in engines:
                    st, s = decide(model, part, bad, e, timeout, b)
                    row[e] = {"status": st, "time_s": round(s, 4)}
                print(row, flush=True)
                rows.append(row)
    return rows


def summarize(rows: list[dict], engines: list[str], timeout: float) -> tuple[list[dict], int]:
    """Per (model, eps, part size): parts, median part cells and fixed neurons, and per engine
    the parts it decided and its median seconds (an undecided part at its timeout); and the
    disagreements."""
    out, disagree = [], 0
    for row in rows:
        verdicts = {row[e]["status"] for e in engines} - {"unknown"}
        disagree += len(verdicts) > 1
    for key in sorted({(r["model"], r["eps"], r["part_size"]) for r in rows}):
        sel = [r for r in rows if (r["model"], r["eps"], r["part_size"]) == key]
        s = {"model": key[0], "eps": key[1], "queries": len({r["index"] for r in sel}), "parts": len(sel),
             "part_log2_cells": float(np.median([r["part_log2_cells"] for r in sel])),
             "fixed": f"{int(np.median([r['fixed'] for r in sel]))}/{sel[0]['neurons']}"}
        for e in engines:
            s[f"{e}_decided"] = sum(r[e]["status"] != "unknown" for r in sel)
            s[f"{e}_median_s"] = round(float(np.median([r[e]["time_s"] if r[e]["status"] != "unknown" else timeout
                                                        for r in sel])), 3)
        out.append(s)
    return out, disagree


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="fashion-mlp-small,fashion-conv-small")
    ap.add_argument("--eps", default="3,5")
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--queries", type=int, default=3, help="queries per model and eps")
    ap.add_argument("--min-log-cells", type=float, default=34.0, help="only boxes with more than 2^this cells")
    ap.add_argument("--part-log-cells", default="24", help="parts of at most 2^this cells (a comma list: each size)")
    ap.add_argument("--parts", type=int, default=4, help="parts sampled per query")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per engine and part")
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()
    engines = args.engines.split(",")
    rows = []
    for name in args.models.split(","):
        rows += rows_for(name, [int(e) for e in args.eps.split(",")], args.images, args.queries, args.min_log_cells,
                         [float(p) for p in args.part_log_cells.split(",")], args.parts, args.timeout, engines)
    summary, disagree = summarize(rows, engines, args.timeout)
    cols = ["model", "eps", "queries", "parts", "part_log2_cells", "fixed"]
    cols += [f"{e}_{k}" for e in engines for k in ("decided", "median_s")]
    print("\n| " + " | ".join(cols) + " |\n|" + "---|" * len(cols))
    for s in summary:
        print("| " + " | ".join(str(s[c]) for c in cols) + " |")
    print(f"disagreements: {disagree}")
    if args.record:
        from records import save_record

        settings = {k: v for k, v in vars(args).items() if k != "record"}
        print("record:", save_record("cubes", {"rows": summary, "engines": engines, "disagreements": disagree,
                                               "settings": settings}, rows))


if __name__ == "__main__":
    main()
