"""The hard tail on ordinary BNNs: the default portfolio, its one-core mode and each engine alone.

    python benchmarks/hard.py [--models fashion-mlp-small,fashion-conv-small,fashion-mlp-large-eev]
        [--images 100] [--eps 1,3,5,10,20] [--timeout 60] [--configs default,one-core]
        [--one-core-images N] [--engine-images 30] [--radius 20] [--memory 20] [--quick] [--record]

Models (``benchmarks/models.py``): the zoo's plainly trained mlp-small and conv-small and a
net trained with the EEV work's recipe (mlp-large, BinMask ternary weights, 11 input levels).
For each model, the first N test images (true labels) and each eps (raw pixel units), one
query at a time:

    default    ``verify_region(backend="auto")`` on every core of this machine (the racing
               portfolio's 2-core schedule on 2 cores)
    one-core   the same with ``cores=1`` (the one-core schedule)
    exact, cpsat, cnf, bab
               one engine alone for the whole timeout (no attack, no portfolio), on the first
               ``--engine-images`` images: the per-engine solve times the schedules are chosen from

Unmeasured work first pays the kernels' compilation (once per checkout: numba caches it) and the
solvers' start-up: the engine's kernels, then a query on the next image at the smallest and the
largest eps (``warm_up``).  Per (model, config, eps): robust / counterexample / unknown, median and mean seconds, the
largest overrun of the timeout; a cumulative solved-vs-time plot per model (``--plot``);
``--radius K``: ``robustness_radius`` of the first K images (both sides proven? decisions, time);
``--memory K``: peak memory of ``bnnlogic verify --data ... --jobs 1`` over the first K images
at eps 5 (a subprocess, the user's path: its largest process's RSS and its whole process tree's
summed PSS; alone, ``--configs '' --engines '' --radius 0``, it is recorded as ``hard-memory``);
``--ladder K``: the decision ladder by hand (eps 1, 2, ... until the first counterexample or
unknown, ``--timeout`` each) on K of the radius images, against the radius search (radii
without verdict rows are recorded as ``hard-radius``; verdict rows of other models than the three
as ``hard-<models>``).  Disagreements between configs (one
robust, another a counterexample) are counted: there must be none.  Per-query rows stream to
``benchmarks/out/hard/<model>.<config>.jsonl``, each with the git revision that ran it (a rerun
resumes from the rows of the current revision and runs the others again), the summary to
``benchmarks/out/hard.json`` and, with ``--record``, a record under ``benchmarks/records/hard/``.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bnnlogic.attack import attack  # noqa: E402
from bnnlogic.batch import read_done  # noqa: E402
from bnnlogic.data import load_dataset  # noqa: E402
from bnnlogic.fileio import write_json  # noqa: E402
from bnnlogic.logic.sweep import n_cells  # noqa: E402
from bnnlogic.verification import make_region, robustness_radius, verify_region  # noqa: E402
from models import MODELS, OUT, get_model  # noqa: E402
from records import revision  # noqa: E402

MODELS_DEFAULT = "fashion-mlp-small,fashion-conv-small,fashion-mlp-large-eev"
CONFIGS = {  # name -> verify_region keyword arguments
    "default": dict(backend="auto"),
    "one-core": dict(backend="auto", cores=1),
    "exact": dict(backend="exact", use_attack=False),
    "cpsat": dict(backend="cpsat", use_attack=False),
    "cnf": dict(backend="cnf:glucose4:kmtotalizer", use_attack=False),
    "bab": dict(backend="bab", use_attack=False),
    "attack": dict(),  # the attack alone, ATTACK_S seconds (never proves)
}
ENGINES = ("exact", "cpsat", "cnf", "bab", "attack")
ATTACK_S = 1.0


def warm_up(model, x: np.ndarray, label: int, eps_list: list[int], timeout: float) -> None:
    """Compile (or load from numba's cache) what the rows would otherwise pay for on first use:
    the engine's serial and parallel kernels (the attack scores large batches on the parallel
    one: compiled on an eps-20 query of a fresh checkout, it held seven queries of the EEV-recipe
    net 1.2 s each, 0.02-0.06 s warm), then one query at the smallest and the largest eps (the
    sweep's and the bounds' kernels, the solvers' start-up)."""
    model.engine.warm_up()
    for eps in sorted({min(eps_list), max(eps_list)}):
        verify_region(model, make_region(model, x, eps), [label], label, timeout=min(timeout, 10.0))


def run_config(name: str, model, X, y, images: int, eps_list: list[int], config: str, timeout: float) -> list[dict]:
    """Every (image, eps) of one config, resumable: rows stream to a JSONL file; rows an earlier
    revision of the code made are run again (a record's rows all come from its revision)."""
    path = OUT / "hard" / f"{name}.{config}.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    rev = revision(short=True)
    done = {(r["index"], r["eps"]): r for r in read_done(path) if r.get("rev") == rev}
    with open(path, "a") as fh:
        for i in range(images):
            for eps in eps_list:
                if (i, eps) in done:
                    continue
                R = make_region(model, X[i], eps)
                cells = round(float(n_cells(model.ir.coding.thresholds, R.lo, R.hi)[0]), 1)
                if config == "attack":
                    t0 = time.perf_counter()
                    adv = attack(model.engine, model.ir, R, [c for c in range(model.ir.n_classes) if c != y[i]],
                                 timeout=ATTACK_S)
                    rec = {"model": name, "config": config, "rev": rev, "index": i, "eps": eps, "log2_cells": cells,
                           "status": "unknown" if adv is None else "counterexample", "backend": "attack",
                           "time_s": round(time.perf_counter() - t0, 6)}
                else:
                    r = verify_region(model, R, [int(y[i])], int(y[i]), timeout=timeout, **CONFIGS[config])
                    rec = {"model": name, "config": config, "rev": rev, "index": i, "eps": eps, "status": r.status,
                           "time_s": round(r.time_s, 6), "backend": r.backend, "found_by": r.found_by,
                           "engines": r.stats.get("engines"), "fixed": r.stats.get("fixed_by_bounds"),
                           "neurons": r.stats.get("neurons"), "log2_cells": cells}
                fh.write(json.dumps(rec) + "\n")
                fh.flush()
                done[(i, eps)] = rec
            print(f"\r{name} {config}: image {i + 1}/{images}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return [done[(i, e)] for i in range(images) for e in eps_list]


def summary(recs: list[dict], timeout: float) -> list[dict]:
    rows = []
    for key in sorted({(r["model"], r["config"], r["eps"]) for r in recs},
                      key=lambda k: (k[0], list(CONFIGS).index(k[1]), k[2])):
        rs = [r for r in recs if (r["model"], r["config"], r["eps"]) == key]
        t = [r["time_s"] for r in rs]
        rows.append({"model": key[0], "config": key[1], "eps": key[2], "n": len(rs),
                     **{s: sum(r["status"] == s for r in rs) for s in ("robust", "counterexample", "unknown")},
                     "median_time_s": statistics.median(t), "mean_time_s": statistics.fmean(t),
                     "max_overrun_s": max([r["time_s"] - timeout for r in rs if r["status"] == "unknown"], default=None)})
    return rows


def disagreements(recs: list[dict]) -> list[dict]:
    by_q: dict[tuple, dict[str, str]] = {}
    for r in recs:
        by_q.setdefault((r["model"], r["index"], r["eps"]), {})[r["config"]] = r["status"]
    return [{"model": q[0], "index": q[1], "eps": q[2], "statuses": st} for q, st in by_q.items()
            if {"robust", "counterexample"} <= set(st.values())]


RESUMABLE = {"exact"}  # a later step of a lane continues this engine's search


def simulate(times: dict[str, float], log_cells: float, schedule, deadline: float) -> float | None:
    """When ``schedule`` (``portfolio.SCHEDULES`` form: lanes of (engine, seconds | None))
    decides a query whose engines alone take ``times[engine]`` seconds (absent: not decided
    within the engine run's timeout), each lane on its own core; None if not by ``deadline``.
    Exact resumes across steps (``RESUMABLE``); the others start afresh; branch and bound runs
    only where ``portfolio.bab_fits`` on the threads a race gives it (every core where a lane
    yields to it, else one; its engine rows ran on every core, as beside a lane that yields),
    a hunt (the attack) only where ``portfolio.hunt_fits``.
    The per-engine rows do not show branch and bound's progress, so a
    yield reads as branch and bound staying on course (``portfolio.bab_on_course``) to the end,
    and each lane's Exact steps as one Exact alone: two lanes sharing the bad classes
    (``portfolio.Race.solve_by_class``) are not simulated."""
    from bnnlogic.portfolio import bab_fits, hunt_fits

    best = None
    threads = len(schedule) if any(e == "yield" for lane in schedule for e, _ in lane) else 1
    for lane in schedule:
        t, spent = 0.0, {}
        for engine, seconds in lane:
            limit = deadline - t if seconds is None else min(seconds, deadline - t)
            if limit <= 0:
                break
            if engine == "bab" and not bab_fits(log_cells, limit, threads=threads):
                continue
            if engine == "hunt":  # the attack, on a big box
                if not hunt_fits(log_cells):
                    continue
                engine = "attack"
            if engine == "yield":  # the lane ends where branch and bound runs in another lane (on course)
                if any(e == "bab" and bab_fits(log_cells, deadline, threads=threads)
                       for other in schedule if other is not lane for e, _ in other):
                    break
                continue
            need = times.get(engine)
            if need is not None:
                need -= spent.get(engine, 0.0) if engine in RESUMABLE else 0.0
                if need <= limit:
                    best = t + need if best is None else min(best, t + need)
                    break
            spent[engine] = spent.get(engine, 0.0) + limit
            t += limit
    return best


def tune(recs: list[dict], deadline: float) -> list[dict]:
    """Every candidate schedule (``candidates()``) simulated on the queries whose engines were all
    measured alone: decided, unknown, mean seconds (an unknown counts as the deadline)."""
    by_q: dict[tuple, dict] = {}
    for r in recs:
        if r["config"] in ENGINES:
            q = by_q.setdefault((r["model"], r["index"], r["eps"]), {"cells": r["log2_cells"], "t": {}})
            if r["status"] != "unknown":
                q["t"][r["config"]] = r["time_s"]
    rows = []
    for name, sched in candidates().items():
        got = [simulate(q["t"], q["cells"], sched, deadline) for q in by_q.values()]
        rows.append({"schedule": name, "cores": len(sched), "queries": len(got),
                     "unknown": sum(g is None for g in got),
                     "mean_s": statistics.fmean([deadline if g is None else g for g in got]) if got else None})
    return rows


def candidates() -> dict:
    """The schedules ``--tune`` compares (the portfolio's own are "2-core" and "1-core")."""
    from bnnlogic.portfolio import SCHEDULES

    return {
        "2-core": SCHEDULES[2], "1-core": SCHEDULES[1],
        "2: exact | attack, cpsat": ((("exact", None),), (("attack", 0.1), ("cpsat", None))),
        "2: exact | attack, bab, exact": ((("exact", None),), (("attack", 0.1), ("bab", None))),
        "2: bab | attack, exact": ((("bab", None),), (("attack", 0.1), ("exact", None))),
        "2: exact | cpsat (no attack, no bab)": ((("exact", None),), (("cpsat", None),)),
        "2: exact | attack, bab, attack 2, cpsat": ((("exact", None),), (("attack", 0.1), ("bab", None),
                                                                          ("attack", 2.0), ("cpsat", None))),
        "2: exact | attack 2, bab, cpsat": ((("exact", None),), (("attack", 2.0), ("bab", None), ("cpsat", None))),
        "1: attack, exact": ((("attack", 0.1), ("exact", None)),),
        "1: attack, bab 10, exact": ((("attack", 0.1), ("bab", 10.0), ("exact", None)),),
        "1: attack, bab 10, attack 1, exact": ((("attack", 0.1), ("bab", 10.0), ("attack", 1.0), ("exact", None)),),
        "1: attack, bab 10, exact 10, cpsat 5, exact": ((("attack", 0.1), ("bab", 10.0), ("exact", 10.0),
                                                         ("cpsat", 5.0), ("exact", None)),),
        "1: attack, exact 2, bab 30, cpsat 5, exact": ((("attack", 0.1), ("exact", 2.0), ("bab", 30.0),
                                                        ("cpsat", 5.0), ("exact", None)),),
    }


def fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def radius_rows(name: str, model, X, y, images: int, timeout: float) -> list[dict]:
    """``robustness_radius`` of the first ``images`` images, after one unmeasured search on the
    next image (compiled kernels and solver start-up paid before the first row, as for the
    ladder that follows)."""
    robustness_radius(model, X[images], label=int(y[images]), timeout=min(timeout, 10.0))
    rows = []
    for i in range(images):
        r = robustness_radius(model, X[i], label=int(y[i]), timeout=timeout)
        rows.append({"model": name, "index": i, "radius_robust": r.radius_robust,
                     "radius_counterexample": r.radius_counterexample, "complete": r.complete,
                     "open_reason": r.open_reason, "decisions": r.solver_calls, "time_s": round(r.time_s, 3),
                     "probes": r.probes})
        print(f"\r{name} radius: image {i + 1}/{images}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return rows


def ladder_rows(name: str, model, X, y, images: int, timeout: float, cap: float) -> list[dict]:
    """The decision ladder by hand: ``verify_region`` (default settings) at eps = 1, 2, ...,
    ``timeout`` seconds each, until the first counterexample (both sides of the radius proven)
    or the first unknown (the interval stays open), or ``cap`` seconds in all; a misclassified
    image is complete at once (as in ``robustness_radius``)."""
    rows = []
    for i in range(images):
        label, t0 = int(y[i]), time.perf_counter()
        robust, cex, steps, reason = 0, None, 0, "time"
        if int(model.predict(X[i][None])[0]) != label:
            robust, cex, reason = None, 0, None
        eps = 1
        while cex is None and eps <= model.ir.coding.hi - model.ir.coding.lo:
            left = cap - (time.perf_counter() - t0)
            if left <= 0:
                break
            r = verify_region(model, make_region(model, X[i], eps), [label], label, timeout=min(timeout, left))
            steps += 1
            if r.status == "robust":
                robust, eps = eps, eps + 1
            elif r.status == "counterexample":
                cex, reason = eps, None
            else:
                break
        rows.append({"model": name, "index": i, "radius_robust": robust, "radius_counterexample": cex,
                     "complete": cex is not None, "open_reason": reason, "decisions": steps,
                     "time_s": round(time.perf_counter() - t0, 3)})
        print(f"\r{name} ladder: image {i + 1}/{images}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    return rows


def against_ladder(radii: list[dict], ladders: list[dict]) -> dict:
    """Per model: images where the radius search's bracket is at least as tight as the ladder's
    (robust side >= the ladder's, counterexample side proven wherever the ladder's is and no
    larger), how many of those took at most the ladder's time, and how many of the others
    (the ladder tighter) had the ladder take longer than the search; the most seconds the search
    took beyond the ladder on one image."""
    out: dict[str, dict] = {}
    lad = {(r["model"], r["index"]): r for r in ladders}
    for r in radii:
        l_ = lad.get((r["model"], r["index"]))
        if l_ is None:
            continue
        o = out.setdefault(r["model"], {"images": 0, "ladder_complete": 0, "search_complete": 0,
                                        "as_tight": 0, "as_tight_and_no_slower": 0, "tighter_ladder_took_longer": 0,
                                        "max_excess_s": 0.0, "ladder_median_s": [], "search_median_s": []})
        tight = ((r["radius_robust"] or 0) >= (l_["radius_robust"] or 0)
                 and (l_["radius_counterexample"] is None
                      or (r["radius_counterexample"] is not None
                          and r["radius_counterexample"] <= l_["radius_counterexample"])))
        o["images"] += 1
        o["ladder_complete"] += l_["complete"]
        o["search_complete"] += r["complete"]
        o["as_tight"] += tight
        o["as_tight_and_no_slower"] += tight and r["time_s"] <= l_["time_s"]
        o["max_excess_s"] = max(o["max_excess_s"], round(r["time_s"] - l_["time_s"], 3))
        o["tighter_ladder_took_longer"] += not tight and l_["time_s"] > r["time_s"]
        o["ladder_median_s"].append(l_["time_s"])
        o["search_median_s"].append(r["time_s"])
    for o in out.values():
        o["ladder_median_s"] = round(statistics.median(o["ladder_median_s"]), 3)
        o["search_median_s"] = round(statistics.median(o["search_median_s"]), 3)
    return out


def _children() -> dict[int, list[int]]:
    """Every process's children, from /proc/<pid>/stat (Linux)."""
    kids: dict[int, list[int]] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            kids.setdefault(ppid, []).append(int(d.name))
    return kids


def _kb(pid: int, key: str) -> int:
    """One ``key:`` line of /proc/<pid>/smaps_rollup, in KiB (0 if the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def tree_memory(cmd: list[str], every: float = 0.05) -> tuple[float, float, int]:
    """Run ``cmd``: (peak RSS of its largest process, from the kernel's ``ru_maxrss`` of a
    wrapper's children; peak summed PSS of its whole process tree, sampled every ``every`` s;
    the most processes seen at once).  MB.  PSS splits each shared page among the processes
    that map it, so the sum counts forked solver servers' copy-on-write pages once (a sum of
    RSS would count them once per process)."""
    code = ("import resource, subprocess, sys; p = subprocess.run(sys.argv[1:]); "
            "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); sys.exit(p.returncode)")
    proc = subprocess.Popen([sys.executable, "-c", code, *cmd], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                            text=True)
    tree = most = 0
    while proc.poll() is None:
        kids = _children()
        pids, i = list(kids.get(proc.pid, [])), 0  # the command and its descendants, not the wrapper
        while i < len(pids):
            pids += kids.get(pids[i], [])
            i += 1
        tree = max(tree, sum(_kb(p, "Pss") for p in pids))
        most = max(most, len(pids))
        time.sleep(every)
    out = proc.stdout.read()
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, cmd)
    return round(int(out.split()[-1]) / 1024, 1), round(tree / 1024, 1), most


def peak_memory(name: str, images: int, eps: int, timeout: float) -> dict:
    """Peak memory of ``bnnlogic verify --data ... --jobs 1`` on the first ``images`` images:
    ``peak_rss_mb`` of its largest process, ``peak_tree_pss_mb`` of all its processes together
    (the command, its pool worker, forked solver servers; ``tree_memory``)."""
    model_path = MODELS / f"{name}.bnn"
    data = get_model(name).meta["dataset"]
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "bnnlogic", "verify", str(model_path), "--data", data, "--indices",
               f"0:{images}", "--eps", str(eps), "--jobs", "1", "--timeout", str(timeout), "--out",
               str(Path(tmp) / "r.jsonl"), "--json"]
        t0 = time.perf_counter()
        big, tree, most = tree_memory(cmd)
        return {"model": name, "images": images, "eps": eps, "peak_rss_mb": big, "peak_tree_pss_mb": tree,
                "processes": most, "wall_s": round(time.perf_counter() - t0, 1)}


def plot(recs: list[dict], path: Path, timeout: float) -> None:
    """Cumulative solved (robust + counterexample) against time, per model and config."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = sorted({r["model"] for r in recs})
    fig, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 4), squeeze=False)
    for ax, m in zip(axes[0], models):
        for cfg in [c for c in CONFIGS if any(r["config"] == c and r["model"] == m for r in recs)]:
            t = sorted(r["time_s"] for r in recs if r["model"] == m and r["config"] == cfg and r["status"] != "unknown")
            ax.step(t, np.arange(1, len(t) + 1), where="post", label=cfg)
        ax.set_xscale("log")
        ax.set_xlim(1e-3, timeout)
        ax.set_xlabel("seconds per query")
        ax.set_ylabel("queries decided")
        ax.set_title(m)
        ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default=MODELS_DEFAULT)
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--eps", default="1,3,5,10,20")
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--configs", default="default,one-core", help="portfolio configs over --images images")
    ap.add_argument("--one-core-images", type=int, default=None, help="images of the one-core config (default: --images)")
    ap.add_argument("--engines", default=",".join(ENGINES), help="engines alone over --engine-images images")
    ap.add_argument("--engine-images", type=int, default=30)
    ap.add_argument("--radius", type=int, default=20, help="robustness radius of this many images")
    ap.add_argument("--radius-timeout", type=float, default=300)
    ap.add_argument("--ladder", type=int, default=0,
                    help="also the decision ladder by hand (eps 1, 2, ..., --timeout each) on this many of the "
                         "--radius images, compared with the radius search")
    ap.add_argument("--memory", type=int, default=20, help="peak memory of a --jobs 1 batch over this many images")
    ap.add_argument("--plot", default=str(OUT / "hard.png"))
    ap.add_argument("--quick", action="store_true", help="fashion-mlp-small, 5 images, eps 3,5, 10 s, 3 radii")
    ap.add_argument("--record", action="store_true", help="write a record under benchmarks/records/hard/")
    ap.add_argument("--tune", action="store_true", help="simulate candidate schedules on the engines' rows "
                                                        "(benchmarks/out/hard/*.<engine>.jsonl) and stop")
    args = ap.parse_args()
    if args.quick:
        args.models, args.images, args.eps, args.timeout, args.engine_images, args.radius, args.memory = \
            "fashion-mlp-small", 5, "3,5", 10.0, 3, 3, 0
        args.radius_timeout = 30.0
    eps_list = [int(e) for e in args.eps.split(",")]
    if args.tune:
        rows = [json.loads(line) for f in sorted((OUT / "hard").glob("*.jsonl")) for line in f.open()
                if f.name.split(".")[0] in args.models.split(",")]
        table = tune(rows, args.timeout)
        print("| schedule | cores | queries | unknown | mean s |\n|---|---:|---:|---:|---:|")
        for r in table:
            print(f"| {r['schedule']} | {r['cores']} | {r['queries']} | {r['unknown']} | {fmt(r['mean_s'])} |")
        dis = disagreements(rows)  # every engine and config measured on these models, every timeout
        queries = len({(r["model"], r["index"], r["eps"]) for r in rows})
        print(f"disagreements between engines and configs: {len(dis)} over {queries} queries ({len(rows)} runs)")
        write_json(OUT / "hard-tune.json", table)
        if args.record:
            from records import save_record

            print("record:", save_record("schedules", {"deadline_s": args.timeout, "disagreements": dis,
                                                       "queries_compared": queries, "runs_compared": len(rows)}, table))
        return
    recs, radii, ladders, memory, t0 = [], [], [], [], time.perf_counter()
    for name in args.models.split(","):
        model = get_model(name)
        data = load_dataset(model.meta["dataset"])
        X, y = data.X_test.reshape(len(data.X_test), -1).astype(np.int64), data.y_test
        if args.configs or args.engines:  # compiled kernels and solver start-up paid before the first row
            warm_up(model, X[args.images], int(y[args.images]), eps_list, args.timeout)
        for cfg in [c for c in args.configs.split(",") if c]:
            n = args.one_core_images if cfg == "one-core" and args.one_core_images is not None else args.images
            recs += run_config(name, model, X, y, n, eps_list, cfg, args.timeout)
        for eng in [e for e in args.engines.split(",") if e]:
            recs += run_config(name, model, X, y, args.engine_images, eps_list, eng, args.timeout)
        if args.radius:
            radii += radius_rows(name, model, X, y, args.radius, args.radius_timeout)
        if args.ladder:
            ladders += ladder_rows(name, model, X, y, min(args.ladder, args.radius), args.timeout,
                                   10 * args.timeout)
        if args.memory:
            memory.append(peak_memory(name, args.memory, 5, args.timeout))
    rows, dis = summary(recs, args.timeout), disagreements(recs)
    lines = ["| model | config | eps | n | robust | cex | unknown | median s | mean s | max overrun s |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['model']} | {r['config']} | {r['eps']} | {r['n']} | {r['robust']} | {r['counterexample']} | "
              f"{r['unknown']} | {r['median_time_s']:.3f} | {r['mean_time_s']:.3f} | {fmt(r['max_overrun_s'])} |"
              for r in rows]
    rad_summary = {}
    for m in sorted({r["model"] for r in radii}):
        rr = [r for r in radii if r["model"] == m]
        rad_summary[m] = {"images": len(rr), "complete": sum(r["complete"] for r in rr),
                          "counterexample_side": sum(r["radius_counterexample"] is not None for r in rr),
                          "median_s": statistics.median(r["time_s"] for r in rr),
                          "decisions_median": statistics.median(r["decisions"] for r in rr)}
    lines += ["", "radius: " + "; ".join(f"{m}: {v['complete']}/{v['images']} both sides proven, "
                                          f"{v['counterexample_side']} with a counterexample side, median "
                                          f"{v['median_s']:.1f} s" for m, v in rad_summary.items())]
    ladder = against_ladder(radii, ladders)
    lines += [f"ladder by hand ({m}): search as tight {v['as_tight']}/{v['images']}, and no slower "
              f"{v['as_tight_and_no_slower']} (at most {v['max_excess_s']} s beyond it); ladder tighter but longer {v['tighter_ladder_took_longer']}; complete ladder {v['ladder_complete']} / search {v['search_complete']}; "
              f"median {v['ladder_median_s']:.1f} / {v['search_median_s']:.1f} s" for m, v in ladder.items()]
    lines += ["memory (--jobs 1 batch, eps 5; largest process RSS / whole tree PSS): " + "; ".join(
        f"{m['model']} {m['peak_rss_mb']} / {m['peak_tree_pss_mb']} MB" for m in memory)]
    lines += [f"disagreements between configs: {len(dis)}; wall time {time.perf_counter() - t0:.0f} s"]
    print("\n".join(lines))
    if recs and args.plot:
        plot(recs, Path(args.plot), args.timeout)
    summary_out = {"rows": rows, "radius": rad_summary, "ladder": ladder, "memory": memory, "disagreements": dis,
                   "settings": {k: v for k, v in vars(args).items()}}
    write_json(OUT / ("hard-quick.json" if args.quick else "hard.json"), summary_out | {"queries": recs, "radii": radii,
                                                                                   "ladders": ladders})
    if args.record:
        from records import save_record

        # a radius-only or memory-only run is its own record, so the newest "hard" keeps its verdict rows;
        # so is a run on other models than the three (e.g. 100 images of one net: "hard-fashion-mlp-large-eev")
        # ... and a run without the default config is a side record of its models' runs
        # ("hard-fashion-mlp-small-fashion-conv-small-one-core": the one-core schedule re-run alone)
        kind = "hard" if recs else "hard-radius" if radii else "hard-memory"
        if recs and args.models != MODELS_DEFAULT:
            kind += "-" + args.models.replace(",", "-")
        configs = [c for c in args.configs.split(",") if c]
        if recs and configs and "default" not in configs:
            kind += "-" + "-".join(configs)
        print("record:", save_record(kind, summary_out, recs, radii=radii,
                                     **({"ladders": ladders} if ladders else {})))


if __name__ == "__main__":
    main()
