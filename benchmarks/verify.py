"""Robustness verification benchmark: naive baseline vs bnnlogic's default vs each backend.

    python benchmarks/verify.py [--quick] [--json PATH] [--record]

For each model (the SAT-friendly BNN work's 5-layer FC nets "small" 784-200-100-100-100-10
and "large" 784-500-300-200-100-10 on Fashion-MNIST and on the MNIST split, and conv-small on
Fashion-MNIST), the first N test images (true labels) and each eps (raw pixel units), in ONE
run:

    naive     the original work's encoding: every neuron as sequential-counter CNF, no bound
              propagation, no attack, Glucose (PySAT); skipped for queries whose sequential
              counters would exceed NAIVE_MAX_CLAUSES clauses (the large and conv nets' CNFs
              of 75M-116M clauses do not fit in memory here)
    default   bnnlogic verify: attack, bounds, the auto backend
    <backend> bounds, no attack, that backend (to compare solvers on the same queries)

Prints per model/config/eps: robust / counterexample / unknown, median and mean time,
median #variables and #clauses, median log2 of the box's threshold cells (the sweep's work);
writes benchmarks/out/verify.md and JSON with
``speedup_median_vs_naive``, ``unknown_eps_le5`` and ``disagreements``; with ``--record``, a
record ``verify-<data sets>`` (``verify-quick`` for ``--quick``) holding every query as a row
(the docs plot solved-vs-time curves from them).
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bnnlogic import load  # noqa: E402
from bnnlogic.data import load_dataset  # noqa: E402
from bnnlogic.fileio import write_json, write_text  # noqa: E402
from bnnlogic.logic.sweep import n_cells  # noqa: E402
from bnnlogic.logic import encode  # noqa: E402
from bnnlogic.verification import make_region, verify_region  # noqa: E402
from models import OUT, get_model  # noqa: E402
from records import add_record_argument, save_record  # noqa: E402

CONFIGS = {  # name -> verify_region keyword arguments
    "naive": dict(backend="cnf:glucose4:seqcounter", use_attack=False, use_bounds=False),
    "default": dict(backend="auto"),
}
SOLVERS = ("cnf:glucose4:seqcounter", "cnf:glucose4:totalizer", "cnf:glucose4:sortnetwrk",
           "cnf:glucose4:cardnetwrk", "cnf:glucose4:mtotalizer", "cnf:glucose4:kmtotalizer",
           "native:minicard", "native:gluecard4", "cpsat", "exact")


NAIVE_MAX_CLAUSES = 20_000_000  # fashion-mlp-small: 6M clauses, 1.1 GB; conv-small: 116M, > 24 GB


def naive_clauses(model, R, bad: list[int]) -> int:
    """Estimated clauses of the naive CNF of a query: a sequential counter for ``sum of n
    literals >= b`` has about 2 b' (n - b') clauses per direction, b' = min(b, n - b)."""
    total = 0
    for card in encode(model.ir, R, [[(0, bad)]], use_bounds=False).formula.cards:
        n, b = len(card.lits), min(card.bound, len(card.lits) - card.bound)
        total += (4 if card.both else 2) * max(b, 0) * (n - max(b, 0))
    return total


def run_model(name: str, model, images: int, eps_list: list[int], configs: dict, timeout: float,
              naive_images: int) -> list[dict]:
    data = load_dataset(model.meta["dataset"])
    X = data.X_test.reshape(len(data.X_test), -1).astype(np.int64)
    recs = []
    for i in range(images):
        for eps in eps_list:
            R = make_region(model, X[i], eps)
            cells = round(float(n_cells(model.ir.coding.thresholds, R.lo, R.hi)[0]), 1)
            bad = [c for c in range(model.ir.n_classes) if c != data.y_test[i]]
            for cfg, kw in configs.items():
                if cfg == "naive" and (i >= naive_images or naive_clauses(model, R, bad) > NAIVE_MAX_CLAUSES):
                    continue
                r = verify_region(model, R, [int(data.y_test[i])], int(data.y_test[i]), timeout=timeout, **kw)
                recs.append({"model": name, "config": cfg, "index": i, "eps": eps, "status": r.status,
                             "time_s": r.time_s, "variables": r.stats.get("variables"),
                             "clauses": r.stats.get("clauses"), "fixed": r.stats.get("fixed_by_bounds"),
                             "neurons": r.stats.get("neurons"), "log2_cells": cells})
            print(f"\r{name} image {i + 1}/{images}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return recs


def disagreements(recs: list[dict]) -> list[dict]:
    """Queries on which one config says robust and another counterexample (must be none)."""
    by_q: dict[tuple, dict[str, str]] = {}
    for r in recs:
        by_q.setdefault((r["model"], r["index"], r["eps"]), {})[r["config"]] = r["status"]
    out = []
    for q, st in by_q.items():
        if {"robust", "counterexample"} <= set(st.values()):
            out.append({"model": q[0], "index": q[1], "eps": q[2], "statuses": st})
    return out


def _med(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None


def summary(recs: list[dict]) -> list[dict]:
    rows = []
    keys = sorted({(r["model"], r["config"], r["eps"]) for r in recs}, key=lambda k: (k[0], k[1] != "naive",
                                                                                       k[1] != "default", k[1], k[2]))
    for m, c, e in keys:
        rs = [r for r in recs if (r["model"], r["config"], r["eps"]) == (m, c, e)]
        t = [r["time_s"] for r in rs]
        rows.append({"model": m, "config": c, "eps": e, "n": len(rs),
                     **{s: sum(r["status"] == s for r in rs) for s in ("robust", "counterexample", "unknown")},
                     "median_time_s": statistics.median(t), "mean_time_s": statistics.fmean(t),
                     "median_variables": _med([r["variables"] for r in rs]),
                     "median_clauses": _med([r["clauses"] for r in rs]),
                     "median_log2_cells": _med([r["log2_cells"] for r in rs])})
    return rows


def speedups(recs: list[dict]) -> dict[str, float]:
    """Per model: median over queries solved by both of naive time / default time; the
    naive time of an unknown counts as the timeout (so the ratio is a lower bound)."""
    out = {}
    for m in sorted({r["model"] for r in recs}):
        naive = {(r["index"], r["eps"]): r["time_s"] for r in recs if r["model"] == m and r["config"] == "naive"}
        dflt = {(r["index"], r["eps"]): r["time_s"] for r in recs if r["model"] == m and r["config"] == "default"}
        common = sorted(set(naive) & set(dflt))
        if common:
            out[m] = statistics.median([naive[q] for q in common]) / statistics.median([dflt[q] for q in common])
    return out


def fmt(x, nd=3):
    return "-" if x is None else (f"{x:.{nd}f}" if isinstance(x, float) else str(x))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="10 images, the small Fashion nets (friendly and plain), "
                                                         "eps 1,3, 10 s timeout")
    ap.add_argument("--models", default="fashion-mlp-small-friendly,fashion-mlp-small,fashion-mlp-large,"
                                        "mnist-mlp-small,mnist-mlp-large,fashion-conv-small")
    ap.add_argument("--model-file", help="use this model file instead of the zoo (name: its file name)")
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--naive-images", type=int, default=20, help="images for the (slow) naive baseline")
    ap.add_argument("--eps", default="1,3,5,10,15,25")
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--solvers", default="small", help="'small' (every backend on the first model only), "
                                                        "'all' (every model), or 'none'")
    ap.add_argument("--solver-images", type=int, default=20)
    ap.add_argument("--json", default=str(OUT / "verify.json"))
    add_record_argument(ap)
    args = ap.parse_args()
    if args.quick:
        args.models, args.images, args.naive_images, args.eps, args.solver_images, args.timeout = \
            "fashion-mlp-small-friendly,fashion-mlp-small", 10, 2, "1,3", 2, 10.0
    eps_list = [int(e) for e in args.eps.split(",")]
    models = ([(Path(args.model_file).stem, load(args.model_file))] if args.model_file
              else [(n, get_model(n)) for n in args.models.split(",")])
    recs, t0 = [], time.perf_counter()
    for k, (name, model) in enumerate(models):
        recs += run_model(name, model, args.images, eps_list, CONFIGS, args.timeout, args.naive_images)
        write_json(args.json + ".partial", {"records": recs})  # a crash later keeps the models done
        if args.solvers == "all" or (args.solvers == "small" and k == 0):
            recs += run_model(name, model, args.solver_images, eps_list, {s: dict(backend=s, use_attack=False)
                                                                          for s in SOLVERS}, args.timeout, 0)
    rows, dis, sp = summary(recs), disagreements(recs), speedups(recs)
    unknown_le5 = sum(r["unknown"] for r in rows if r["config"] == "default" and r["eps"] <= 5)
    lines = ["| model | config | eps | n | robust | cex | unknown | median s | mean s | median vars | median clauses "
             "| median log2 cells |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['model']} | {r['config']} | {r['eps']} | {r['n']} | {r['robust']} | {r['counterexample']} | "
              f"{r['unknown']} | {fmt(r['median_time_s'])} | {fmt(r['mean_time_s'])} | {fmt(r['median_variables'])} | "
              f"{fmt(r['median_clauses'])} | {fmt(r['median_log2_cells'], 1)} |" for r in rows]
    lines += ["", "speedup of the default over naive (median time, same queries): " +
              ", ".join(f"{m} {v:.1f}x" for m, v in sp.items()),
              f"unknown at eps <= 5 (default): {unknown_le5}; backend disagreements: {len(dis)}; "
              f"wall time {time.perf_counter() - t0:.0f} s"]
    print("\n".join(lines))
    write_text(OUT / ("verify-quick.md" if args.quick else "verify.md"), "\n".join(lines) + "\n")
    result = {"speedup_median_vs_naive": min(sp.values()) if sp else None,
              "speedup_median_vs_naive_per_model": sp, "unknown_eps_le5": unknown_le5,
              "disagreements": dis, "rows": rows, "settings": vars(args)}
    write_json(args.json, result)
    if args.record:
        data = sorted({m.meta.get("dataset", "unknown") for _, m in models})
        models_meta = {n: {"dataset": m.meta.get("dataset"), "arch": m.meta.get("arch"), "preset": m.meta.get("preset"),
                           "test_accuracy": m.meta.get("test_accuracy")} for n, m in models}
        print("record:", save_record("verify-quick" if args.quick else "verify-" + "+".join(data),
                                     result | {"models": models_meta, "wall_seconds": time.perf_counter() - t0},
                                     recs))


if __name__ == "__main__":
    main()
