"""Attack benchmark: how many of the counterexamples that exist does the attack find, how fast.

    python benchmarks/attack.py [--models ...] [--images N] [--eps 1,3,5,10,20] [--norm linf]
                                [--truth-timeout 60] [--budgets 0.1,0.5] [--record]

Queries: each zoo model (``models.get_model``), its first N test images with their true
labels, each eps (L-infinity in raw pixel units, or ``--norm l0``: features changed; eps
beyond a model's feature range is skipped), bad = every other class.

Ground truth: ``verify_region(..., backend=--truth-backend, use_attack=False)`` with a
generous timeout, cached one JSON line per query in ``benchmarks/out/attack_truth.jsonl``
(written as it goes; a rerun skips what is there, so a killed run resumes; ``--truth-only``
just fills it).  Misclassified images are their own counterexample and left out.

Attacks on every query: ``old`` = ``bnnlogic/attack.py`` as of revision ``--baseline-rev``
(64 random corners + 20 greedy single-feature moves, no time budget) and the current
``bnnlogic.attack.attack`` with each time budget of ``--budgets`` (seconds).  Every returned
input is replayed (in the region, predicted bad); a hit where the solver proved robustness
stops the run (a bug).

Per model / eps / attack: the solver's counts (robust, counterexample, unknown); *known*
counterexamples = the solver's, those implied by a counterexample at a smaller eps of the
same image, and any attack's hit (all replayed); hits on the solver's counterexamples (the
hit rate against the solver) and on the known ones; the attack's median / mean time on hits
and its median time on misses (its price on a robust query).  ``--record`` writes
``benchmarks/records/attack-<norm>-<models>/<date>-<rev>.json``.
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
BASELINE_REV = "cc0f5e4"  # the attack before issue 22


def baseline_attack(rev: str):
    """``attack`` from ``bnnlogic/attack.py`` at git revision ``rev`` (loaded as a module)."""
    src = subprocess.run(["git", "show", f"{rev}:bnnlogic/attack.py"], cwd=ROOT, capture_output=True, text=True,
                         check=True).stdout
    mod = types.ModuleType("bnnlogic._attack_baseline")
    mod.__package__ = "bnnlogic"
    exec(compile(src, f"bnnlogic/attack.py@{rev}", "exec"), mod.__dict__)
    return mod.attack


def load_truth(path: Path) -> dict[tuple, dict]:
    """(model, norm, index, eps) -> the last record of that query in the cache."""
    out = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                r = json.loads(line)
            except ValueError:  # a line cut by a kill
                continue
            out[(r["model"], r.get("norm", "linf"), r["index"], r["eps"])] = r
    return out


def truth(name: str, model, X, y, images: int, eps_list: list[int], norm: str, backend: str, timeout: float,
          cache: dict[tuple, dict], path: Path) -> None:
    """Solve every query not in ``cache`` (or unknown there after a shorter timeout); append."""
    pred = model.predict(X[:images])
    for i in range(images):
        for eps in eps_list:
            old = cache.get((name, norm, i, eps))
            if old is not None and (old["status"] != "unknown" or old["timeout"] >= timeout):
                continue
            if pred[i] != y[i]:
                rec = {"status": "misclassified", "time_s": 0.0, "found_by": None}
            else:
                r = verify_region(model, make_region(model, X[i], eps, norm), [int(y[i])], int(y[i]),
                                  backend=backend, timeout=timeout, use_attack=False)
                rec = {"status": r.status, "time_s": round(r.time_s, 4), "found_by": r.found_by}
            rec = {"model": name, "norm": norm, "index": i, "eps": eps, "backend": backend, "timeout": timeout,
                   **rec}
            cache[(name, norm, i, eps)] = rec
            with open(path, "a") as fh:
                fh.write(json.dumps(rec) + "\n")
            print(f"\rtruth {name} image {i + 1}/{images} eps {eps}: {rec['status']:14s} {rec['time_s']:.2f} s",
                  end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)


def run_attacks(name: str, model, X, y, images: int, eps_list: list[int], norm: str, attacks: dict,
                cache: dict) -> list[dict]:
    rows = []
    pred = model.predict(X[:images])
    model.engine.warm_up()
    for i in np.nonzero(pred == y[:images])[0]:
        for eps in eps_list:
            t = cache[(name, norm, int(i), eps)]["status"]
            R = make_region(model, X[i], eps, norm)
            bad = [c for c in range(model.ir.n_classes) if c != y[i]]
            for a, fn in attacks.items():
                t0 = time.perf_counter()
                x = fn(model.engine, model.ir, R, bad)
                dt = time.perf_counter() - t0
                if x is not None:
                    if not (R.contains(x[None])[0] and int(model.predict(x[None])[0]) in bad):
                        raise RuntimeError(f"{a} returned a non-counterexample on {name} image {i} eps {eps}")
                    if t == "robust":
                        raise RuntimeError(f"{a} found a counterexample where {name} image {i} eps {eps} is robust")
                rows.append({"model": name, "norm": norm, "index": int(i), "eps": eps, "attack": a, "truth": t,
                             "hit": x is not None, "time_s": round(dt, 5),
                             "changed": None if x is None else int(np.count_nonzero(x != X[i]))})
            print(f"\rattack {name} image {i + 1}/{images}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return rows


def known_counterexamples(rows: list[dict], cache: dict, norm: str) -> set[tuple]:
    """(model, index, eps) with a replayed counterexample: the solver's, any attack's, and
    every larger eps of the same image (its region contains the smaller one's)."""
    found = {(k[0], k[2], k[3]) for k, r in cache.items() if k[1] == norm and r["status"] == "counterexample"}
    found |= {(r["model"], r["index"], r["eps"]) for r in rows if r["hit"]}
    eps_all = sorted({r["eps"] for r in rows})
    return {(m, i, e) for m, i, e0 in found for e in eps_all if e >= e0}


def _stat(f, v):
    return round(f(v), 4) if v else None


def summarize(rows: list[dict], cache: dict, norm: str) -> list[dict]:
    known = known_counterexamples(rows, cache, norm)
    out = []
    for m, eps in sorted({(r["model"], r["eps"]) for r in rows}, key=lambda k: (k[0], k[1])):
        qs = sorted({r["index"] for r in rows if (r["model"], r["eps"]) == (m, eps)})
        tr = [cache[(m, norm, i, eps)]["status"] for i in qs]
        n_known = sum((m, i, eps) in known for i in qs)
        for a in sorted({r["attack"] for r in rows}, key=lambda s: (s != "old", s)):
            rs = [r for r in rows if (r["model"], r["eps"], r["attack"]) == (m, eps, a)]
            hit = [r for r in rs if r["hit"]]
            miss = [r for r in rs if not r["hit"]]
            n_cex, hit_cex = tr.count("counterexample"), sum(r["truth"] == "counterexample" for r in hit)
            out.append({"model": m, "norm": norm, "eps": eps, "attack": a, "queries": len(qs),
                        "robust": tr.count("robust"), "counterexample": n_cex, "unknown": tr.count("unknown"),
                        "known_counterexamples": n_known, "hits": len(hit), "hits_on_solver_cex": hit_cex,
                        "hit_rate_solver": round(hit_cex / n_cex, 3) if n_cex else None,
                        "hit_rate_known": round(len(hit) / n_known, 3) if n_known else None,
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
    ap.add_argument("--norm", default="linf", choices=["linf", "l0"])
    ap.add_argument("--truth-backend", default="auto", help="verify_region backend for the ground truth")
    ap.add_argument("--truth-timeout", type=float, default=60.0, help="seconds per ground-truth query")
    ap.add_argument("--truth-file", default=str(TRUTH), help="ground-truth cache (JSON lines, resumable)")
    ap.add_argument("--truth-only", action="store_true", help="only fill the ground-truth cache")
    ap.add_argument("--budgets", default="0.1,0.5", help="time budgets (s) of the current attack")
    ap.add_argument("--baseline-rev", default=BASELINE_REV, help="git revision of the old attack ('' to skip)")
    ap.add_argument("--record", action="store_true", help="write a JSON record under benchmarks/records/attack-<norm>-<models>/")
    args = ap.parse_args()
    eps_list = [int(e) for e in args.eps.split(",")]
    attacks = {"old": baseline_attack(args.baseline_rev)} if args.baseline_rev else {}
    for b in (float(s) for s in args.budgets.split(",") if s):
        attacks[f"new@{b:g}s"] = (lambda b: lambda e, ir, R, bad: attack(e, ir, R, bad, timeout=b))(b)
    path = Path(args.truth_file)
    path.parent.mkdir(parents=True, exist_ok=True)
    cache, rows, t0, eps_of = load_truth(path), [], time.perf_counter(), {}
    for name in args.models.split(","):
        model = get_model(name)
        c = model.ir.coding
        span = c.hi - c.lo if args.norm == "linf" else c.n_features
        eps_of[name] = [e for e in eps_list if e <= span]  # digits: features 0..16
        data = load_dataset(model.meta["dataset"])
        X = data.X_test.reshape(len(data.X_test), -1).astype(np.int64)
        truth(name, model, X, data.y_test, args.images, eps_of[name], args.norm, args.truth_backend,
              args.truth_timeout, cache, path)
        if not args.truth_only:
            rows += run_attacks(name, model, X, data.y_test, args.images, eps_of[name], args.norm, attacks, cache)
    if args.truth_only:
        return
    table = summarize(rows, cache, args.norm)
    lines = ["| model | eps | attack | robust | cex | unknown | known cex | hits | on solver cex | rate (solver) "
             "| rate (known) | median s (hit) | mean s (hit) | median s (miss) | median changed |",
             "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['model']} | {r['eps']} | {r['attack']} | {r['robust']} | {r['counterexample']} | {r['unknown']} | "
              f"{r['known_counterexamples']} | {r['hits']} | {r['hits_on_solver_cex']} | {fmt(r['hit_rate_solver'])} | "
              f"{fmt(r['hit_rate_known'])} | {fmt(r['median_time_hit_s'])} | {fmt(r['mean_time_hit_s'])} | "
              f"{fmt(r['median_time_miss_s'])} | {fmt(r['median_changed'])} |" for r in table]
    print("\n".join(lines))
    print(f"norm {args.norm}; wall time {time.perf_counter() - t0:.0f} s")
    if args.record:
        truth_rows = [cache[(m, args.norm, i, e)] for m, es in eps_of.items() for i in range(args.images) for e in es]
        name = f"attack-{args.norm}-" + "+".join(sorted(args.models.split(",")))
        print("record:", save_record(name, {"rows": table}, rows, truth=truth_rows))


if __name__ == "__main__":
    main()
