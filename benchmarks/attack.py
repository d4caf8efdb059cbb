"""Attack benchmark: how many of the counterexamples that exist does the attack find, how fast.

    python benchmarks/attack.py [--models ...] [--images N] [--eps 1,3,5,10,20]
                                [--truth-timeout 60] [--budgets 0.1,0.5] [--record]

Queries: each zoo model (``models.get_model``), its first N test images with their true
labels, each eps (L-infinity, raw pixel units), bad = every other class.

Ground truth: ``verify_region(..., backend=--truth-backend, use_attack=False)`` with a
generous timeout, cached one JSON line per query in ``benchmarks/out/attack_truth.jsonl``
(written as it goes; a rerun skips what is there, so a killed run resumes).  Misclassified
images are their own counterexample; they are counted apart and left out of the rates.

Attacks on every query: ``old`` = ``bnnlogic/attack.py`` as of revision ``--baseline-rev``
(random corners + 20 greedy single-feature moves, no time budget), and the current
``bnnlogic.attack.attack`` with each ``--budgets`` time budget (seconds).  Every returned
input is replayed (in the region, predicted in a bad class); a hit on a query the solver
proved robust is a bug and fails the run.

Prints per model / eps / attack: truth counts (robust, counterexample, unknown), hits on the
solver's counterexamples (the hit rate), hits where the solver timed out, and the attack's
median / mean time on hits and on the others (the price it costs on a robust query).
``--record`` writes ``benchmarks/records/attack/<date>-<rev>.json``.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bnnlogic.attack import attack  # noqa: E402
from bnnlogic.data import load_dataset  # noqa: E402
from bnnlogic.verification import make_region, verify_region  # noqa: E402
from models import OUT, get_model  # noqa: E402
from records import ROOT, save_record  # noqa: E402

TRUTH = OUT / "attack_truth.jsonl"
BASELINE_REV = "cc0f5e4"  # the attack before issue 22: 64 random corners, 20 greedy single-feature moves


def baseline_attack(rev: str):
    """``attack`` from ``bnnlogic/attack.py`` at git revision ``rev`` (loaded as a module)."""
    src = subprocess.run(["git", "show", f"{rev}:bnnlogic/attack.py"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    mod = types.ModuleType("bnnlogic._attack_baseline")
    mod.__package__ = "bnnlogic"
    exec(compile(src, f"bnnlogic/attack.py@{rev}", "exec"), mod.__dict__)
    return mod.attack


def load_truth(path: Path) -> dict[tuple, dict]:
    out = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                r = json.loads(line)
            except ValueError:  # a line cut by a kill
                continue
            out[(r["model"], r["index"], r["eps"])] = r
    return out


def truth(name: str, model, X, y, images: int, eps_list: list[int], backend: str, timeout: float,
          cache: dict[tuple, dict], path: Path) -> None:
    """Solve every query not yet in ``cache`` (or unknown there at a shorter timeout); append."""
    pred = model.predict(X[:images])
    for i in range(images):
        for eps in eps_list:
            old = cache.get((name, i, eps))
            if old is not None and (old["status"] != "unknown" or old["timeout"] >= timeout):
                continue
            if pred[i] != y[i]:
                rec = {"status": "misclassified", "time_s": 0.0, "found_by": None}
            else:
                R = make_region(model, X[i], eps)
                r = verify_region(model, R, [int(y[i])], int(y[i]), backend=backend, timeout=timeout,
                                  use_attack=False)
                rec = {"status": r.status, "time_s": round(r.time_s, 4), "found_by": r.found_by}
            rec = {"model": name, "index": i, "eps": eps, "backend": backend, "timeout": timeout, **rec}
            cache[(name, i, eps)] = rec
            with open(path, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
            print(f"\rtruth {name} image {i + 1}/{images} eps {eps}: {rec['status']:14s} {rec['time_s']:.2f} s",
                  end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)


def run_attacks(name: str, model, X, y, images: int, eps_list: list[int], attacks: dict, cache: dict) -> list[dict]:
    rows = []
    pred = model.predict(X[:images])
    model.engine.warm_up()
    for i in range(images):
        for eps in eps_list:
            t = cache[(name, i, eps)]["status"]
            R = make_region(model, X[i], eps)
            bad = [c for c in range(model.ir.n_classes) if c != y[i]]
            for a, fn in attacks.items():
                if pred[i] != y[i]:
                    continue
                t0 = time.perf_counter()
                x = fn(model.engine, model.ir, R, bad)
                dt = time.perf_counter() - t0
                if x is not None:
                    if not (R.contains(x[None])[0] and int(model.predict(x[None])[0]) in bad):
                        raise RuntimeError(f"{a} returned a non-counterexample on {name} image {i} eps {eps}")
                    if t == "robust":
                        raise RuntimeError(f"{a} found a counterexample where {name} image {i} eps {eps} is robust")
                rows.append({"model": name, "index": i, "eps": eps, "attack": a, "truth": t, "hit": x is not None,
                             "time_s": round(dt, 5),
                             "changed": None if x is None else int(np.count_nonzero(x != X[i]))})
            print(f"\rattack {name} image {i + 1}/{images}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return rows


def _stat(f, v):
    return round(f(v), 4) if v else None


def summarize(rows: list[dict], cache: dict, eps_of: dict[str, list[int]], images: int) -> list[dict]:
    out = []
    for m, eps_list in eps_of.items():
        for eps in eps_list:
            tr = [cache[(m, i, eps)]["status"] for i in range(images)]
            for a in sorted({r["attack"] for r in rows}, key=lambda s: (s != "old", s)):
                rs = [r for r in rows if (r["model"], r["eps"], r["attack"]) == (m, eps, a)]
                hit = [r for r in rs if r["hit"]]
                miss = [r for r in rs if not r["hit"]]
                n_cex = tr.count("counterexample")
                hit_cex = sum(r["truth"] == "counterexample" for r in hit)
                out.append({"model": m, "eps": eps, "attack": a, "robust": tr.count("robust"),
                            "counterexample": n_cex, "unknown": tr.count("unknown"),
                            "misclassified": tr.count("misclassified"), "hits_on_cex": hit_cex,
                            "hit_rate": round(hit_cex / n_cex, 3) if n_cex else None,
                            "hits_on_unknown": sum(r["truth"] == "unknown" for r in hit),
                            "median_time_hit_s": _stat(statistics.median, [r["time_s"] for r in hit]),
                            "mean_time_hit_s": _stat(statistics.fmean, [r["time_s"] for r in hit]),
                            "median_time_miss_s": _stat(statistics.median, [r["time_s"] for r in miss]),
                            "median_changed": _stat(statistics.median, [r["changed"] for r in hit])})
    return out


def fmt(x):
    return "-" if x is None else str(x)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="fashion-mlp-small,fashion-conv-small,digits-mlp")
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--eps", default="1,3,5,10,20")
    ap.add_argument("--truth-backend", default="auto", help="verify_region backend for the ground truth")
    ap.add_argument("--truth-timeout", type=float, default=60.0, help="seconds per ground-truth query")
    ap.add_argument("--truth-file", default=str(TRUTH), help="ground-truth cache (JSON lines, resumable)")
    ap.add_argument("--budgets", default="0.1,0.5", help="time budgets (s) of the current attack")
    ap.add_argument("--baseline-rev", default=BASELINE_REV, help="git revision of the old attack ('' to skip)")
    ap.add_argument("--truth-only", action="store_true", help="only fill the ground-truth cache")
    ap.add_argument("--record", action="store_true", help="write a JSON record under benchmarks/records/attack/")
    args = ap.parse_args()
    eps_list = [int(e) for e in args.eps.split(",")]
    names = args.models.split(",")
    attacks = {"old": baseline_attack(args.baseline_rev)} if args.baseline_rev else {}
    for b in (float(s) for s in args.budgets.split(",") if s):
        attacks[f"new@{b:g}s"] = (lambda b: lambda e, ir, R, bad: attack(e, ir, R, bad, timeout=b))(b)
    path = Path(args.truth_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    cache, rows, t0, eps_of = load_truth(path), [], time.perf_counter(), {}
    for name in names:
        model = get_model(name)
        c = model.ir.coding
        eps_of[name] = [e for e in eps_list if e <= c.hi - c.lo]  # digits: features 0..16
        data = load_dataset(model.meta["dataset"])
        X = data.X_test.reshape(len(data.X_test), -1).astype(np.int64)
        truth(name, model, X, data.y_test, args.images, eps_of[name], args.truth_backend, args.truth_timeout, cache,
              path)
        if args.truth_only:
            continue
        rows += run_attacks(name, model, X, data.y_test, args.images, eps_of[name], attacks, cache)
    if args.truth_only:
        return
    table = summarize(rows, cache, eps_of, args.images)
    lines = ["| model | eps | attack | robust | cex | unknown | misclassified | hits on cex | hit rate | hits on unknown "
             "| median s (hit) | mean s (hit) | median s (miss) | median changed |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['model']} | {r['eps']} | {r['attack']} | {r['robust']} | {r['counterexample']} | {r['unknown']} | "
              f"{r['misclassified']} | {r['hits_on_cex']} | {fmt(r['hit_rate'])} | {r['hits_on_unknown']} | "
              f"{fmt(r['median_time_hit_s'])} | {fmt(r['mean_time_hit_s'])} | {fmt(r['median_time_miss_s'])} | "
              f"{fmt(r['median_changed'])} |" for r in table]
    print("\n".join(lines))
    print(f"wall time {time.perf_counter() - t0:.0f} s")
    if args.record:
        truth_rows = [cache[(m, i, e)] for m, es in eps_of.items() for i in range(args.images) for e in es]
        print("record:", save_record("attack", {"rows": table}, rows, truth=truth_rows))


if __name__ == "__main__":
    main()
