"""Batch verification past one process: the same queries on 1 and 2 workers, local pool vs Ray.

    python benchmarks/scale.py [--model digits-mlp] [--data digits] [--indices 0:120] [--eps 1,2]
                               [--timeout 10] [--workers 1,2] [--engines pool,ray] [--noop 400]
                               [--hard 32:2] [--parts 8] [--hard-timeout 120] [--cores N]
                               [--tag NAME] [--record] [--json PATH]

Three tables, every configuration on a fresh executor whose workers have been started and
warmed up (one real query each: imports, the model, the engine's compiled code) before the
clock starts, so that the times are the queries' own:

    batch   the --indices x --eps verify queries (``batch.run_batch``, --timeout per query):
            wall seconds, queries per second, speedup over 1 worker of the same engine, the
            verdict counts, and the start-up seconds (executor and warm-up, not in the wall time)
    noop    --noop calls that do nothing: the round trip of one call, i.e. what the engine
            itself costs per query (Ray's overhead = Ray's round trip minus the pool's)
    split   the hard query --hard INDEX:EPS whole on 1 worker, then split into --parts
            sub-boxes (``bnnlogic.split``) on each engine and worker count

Each query races its engines on the cores its executor gives it (``executors.cores_per_call``:
every core for one pool worker, one per worker for two, one on Ray); ``--cores N`` gives every
configuration the same N, which separates the engines' own cost from the racing's.

The summary says whether pool and Ray gave identical verdicts (``verdict_differences``: the
queries whose status differs between any two configurations; a query that hit its time limit
in one and not in another counts) and Ray's per-query overhead in milliseconds.  With
``--record`` the run is saved by ``benchmarks/records.py`` (the record keeps the load average:
timings on a shared machine are noisy).  Models come from ``benchmarks/models.py`` (digits-mlp
trains in seconds).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bnnlogic.batch import run_batch, run_query  # noqa: E402
from bnnlogic.cli._batch import parse_eps, parse_indices  # noqa: E402
from bnnlogic.data import load_dataset  # noqa: E402
from bnnlogic.executors import Call, make_executor  # noqa: E402
from bnnlogic.fileio import write_json  # noqa: E402
from bnnlogic.split import verify_split  # noqa: E402
from bnnlogic.verification import make_region  # noqa: E402
from models import MODELS, get_model  # noqa: E402


def noop(model, i):
    """A call that does nothing: its round trip is the engine's own cost."""
    return i


def started(model, engine: str, workers: int, x: np.ndarray, label: int, cores: int | None):
    """A fresh executor (``cores`` per query if given) with every worker warmed up by one real
    query; (executor, seconds)."""
    t0 = time.perf_counter()
    ex = make_executor(model, workers, ray=engine == "ray", cores=cores)
    list(ex.run([Call(("warm", j), run_query, (0, x, label, 1, "auto", 30, "linf", None)) for j in range(2 * workers)]))
    return ex, time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="digits-mlp", help="a benchmarks/models.py name")
    ap.add_argument("--data", default="digits")
    ap.add_argument("--indices", default="0:120")
    ap.add_argument("--eps", default="1,2")
    ap.add_argument("--timeout", type=float, default=10.0, help="seconds per batch query")
    ap.add_argument("--workers", default="1,2")
    ap.add_argument("--engines", default="pool,ray")
    ap.add_argument("--noop", type=int, default=400, help="calls of the overhead measurement (0: skip)")
    ap.add_argument("--hard", default="32:2", help="INDEX:EPS of the hard query to split ('none': skip)")
    ap.add_argument("--parts", type=int, default=8)
    ap.add_argument("--hard-timeout", type=float, default=120.0, help="seconds per part of the hard query")
    ap.add_argument("--cores", type=int, default=None, help="cores per query in every configuration "
                                                             "(default: each executor's own share)")
    ap.add_argument("--tag", default=None, help="record name suffix: scale-TAG (e.g. 'uniform' for a batch of many "
                                                 "similar queries, no time-out tail)")
    ap.add_argument("--record", action="store_true", help="save a record (benchmarks/records/scale/)")
    ap.add_argument("--json", default=None, help="also write the rows and summary to this file")
    args = ap.parse_args()

    model = get_model(args.model)
    model_path = str(MODELS / f"{args.model}.bnn")
    data = load_dataset(args.data)
    X = data.X_test.reshape(len(data.X_test), -1).astype(np.int64)
    y = data.y_test
    idx, eps = parse_indices(args.indices, len(X)), parse_eps(args.eps)
    workers = [int(w) for w in args.workers.split(",")]
    engines = args.engines.split(",")
    n = len(idx) * len(eps)
    rows, verdicts, tmp = [], {}, Path(tempfile.mkdtemp(prefix="bnnlogic-scale-"))
    print(f"{args.model}: {n} queries ({len(idx)} images x eps {eps}), timeout {args.timeout} s", flush=True)

    for engine in engines:
        base = None
        for w in workers:
            ex, startup = started(model, engine, w, X[idx[0]], int(y[idx[0]]), args.cores)
            with ex:
                t0 = time.perf_counter()
                recs = run_batch(model_path, X, y, idx, eps, str(tmp / f"{engine}{w}.jsonl"), timeout=args.timeout,
                                 progress=False, executor=ex)
                wall = time.perf_counter() - t0
                over = None
                if args.noop:
                    t1 = time.perf_counter()
                    list(ex.run([Call(("noop", j), noop, (j,)) for j in range(args.noop)]))
                    over = (time.perf_counter() - t1) / args.noop
            base = base or wall
            verdicts[(engine, w)] = {(r["index"], r["eps"]): r["status"] for r in recs}
            counts = {s: sum(r["status"] == s for r in recs) for s in ("robust", "counterexample", "unknown")}
            rows.append({"table": "batch", "engine": engine, "workers": w, "queries": n, "wall_s": round(wall, 3),
                         "queries_per_s": round(n / wall, 3), "speedup": round(base / wall, 3),
                         "startup_s": round(startup, 3), **counts,
                         "query_time_s": round(sum(r["time_s"] for r in recs), 3)})
            if over is not None:
                rows.append({"table": "noop", "engine": engine, "workers": w, "calls": args.noop,
                             "round_trip_ms": round(1000 * over, 3)})
            print(rows[-2] if over is not None else rows[-1], flush=True)
            if over is not None:
                print(rows[-1], flush=True)

    if args.hard != "none":
        hi, he = (int(v) for v in args.hard.split(":"))
        label = int(y[hi])
        R = make_region(model, X[hi], he)
        ex, _ = started(model, engines[0], 1, X[idx[0]], int(y[idx[0]]), args.cores)
        with ex:
            t0 = time.perf_counter()
            whole = next(iter(ex.run([Call("whole", run_query, (hi, X[hi], label, he, "auto", args.hard_timeout,
                                                                 "linf", None, ex.cores))]))).value
            rows.append({"table": "split", "engine": engines[0], "workers": 1, "parts": 1, "status": whole["status"],
                         "wall_s": round(time.perf_counter() - t0, 3), "query": f"{hi}:{he}"})
            print(rows[-1], flush=True)
        for engine in engines:
            for w in workers:
                ex, _ = started(model, engine, w, X[idx[0]], int(y[idx[0]]), args.cores)
                with ex:
                    t0 = time.perf_counter()
                    r = verify_split(model, R, [label], label, args.parts, ex, timeout=args.hard_timeout)
                    rows.append({"table": "split", "engine": engine, "workers": w, "parts": r.stats["parts"],
                                 "status": r.status, "wall_s": round(time.perf_counter() - t0, 3),
                                 "part_time_s": r.stats["part_time_s"], "query": f"{hi}:{he}"})
                print(rows[-1], flush=True)

    keys = set().union(*(set(v) for v in verdicts.values())) if verdicts else set()
    differ = sorted(k for k in keys if len({v.get(k) for v in verdicts.values()}) > 1)
    noop_ms = {(r["engine"], r["workers"]): r["round_trip_ms"] for r in rows if r["table"] == "noop"}
    wmax = max(workers)
    summary = {"model": args.model, "queries": n, "timeout_s": args.timeout, "cores": args.cores,
               "verdict_differences": len(differ), "differing_queries": [list(k) for k in differ[:20]],
               "ray_overhead_ms": (round(noop_ms[("ray", wmax)] - noop_ms[("pool", wmax)], 3)
                                   if ("ray", wmax) in noop_ms and ("pool", wmax) in noop_ms else None),
               "throughput": {f"{r['engine']}x{r['workers']}": r["queries_per_s"] for r in rows if r["table"] == "batch"},
               "speedup": {f"{r['engine']}x{r['workers']}": r["speedup"] for r in rows if r["table"] == "batch"},
               "split": {f"{r['engine']}x{r['workers']}/{r['parts']}": r["wall_s"] for r in rows if r["table"] == "split"}}

    print("\n| engine | workers | queries | wall s | queries/s | speedup | robust | cex | unknown | start-up s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in (r for r in rows if r["table"] == "batch"):
        print(f"| {r['engine']} | {r['workers']} | {r['queries']} | {r['wall_s']:.1f} | {r['queries_per_s']:.2f} | "
              f"{r['speedup']:.2f} | {r['robust']} | {r['counterexample']} | {r['unknown']} | {r['startup_s']:.1f} |")
    if noop_ms:
        print("\n| engine | workers | round trip per call, ms |\n|---|---:|---:|")
        for (e, w), ms in noop_ms.items():
            print(f"| {e} | {w} | {ms:.2f} |")
    split_rows = [r for r in rows if r["table"] == "split"]
    if split_rows:
        print(f"\n| hard query {split_rows[0]['query']} | workers | parts | verdict | wall s |\n|---|---:|---:|---|---:|")
        for r in split_rows:
            print(f"| {r['engine']} | {r['workers']} | {r['parts']} | {r['status']} | {r['wall_s']:.2f} |")
    print(f"\nverdicts identical across configurations: {not differ} ({len(differ)} differ); "
          f"Ray's overhead per query: {summary['ray_overhead_ms']} ms")
    if args.json:
        write_json(args.json, {"summary": summary, "rows": rows})
    if args.record:
        from records import save_record

        name = "scale" + (f"-cores{args.cores}" if args.cores else "") + (f"-{args.tag}" if args.tag else "")
        print("record:", save_record(name, summary, rows))


if __name__ == "__main__":
    main()
