"""The hard tail with a longer budget: what the queries the default leaves ``unknown`` take.

    python benchmarks/tail.py [--models fashion-mlp-small,fashion-conv-small] [--eps 3,5]
        [--per-model 4] [--timeout 60] [--long 600] [--record]

For each model, the queries the newest ``hard*`` record's default config (2 cores, 60 s) left
``unknown`` at the given eps, smallest box (threshold cells) first, ``--per-model`` of them:
each is run again with the default settings at ``--timeout`` (what the user sees: the
``unknown``'s estimate of what branch and bound alone would need, ``Race.bab_estimate``), then,
if still open, at ``--long`` seconds.  Per query: its box (log2 cells), the estimate, and the
long run's verdict and time; the table says how far beyond the budget the tail lies and how good
the estimate printed with an ``unknown`` is.  Rows stream to ``benchmarks/out/tail.jsonl`` (a
rerun resumes from the rows of the current revision), the record goes to
``benchmarks/records/tail/``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bnnlogic.batch import read_done  # noqa: E402
from bnnlogic.data import load_dataset  # noqa: E402
from bnnlogic.verification import make_region, verify_region  # noqa: E402
from hard import warm_up  # noqa: E402
from models import OUT, get_model  # noqa: E402
from records import RECORDS, add_record_argument, revision, save_record  # noqa: E402
from render import tail_tables  # noqa: E402


def open_queries(model: str, eps: list[int]) -> list[dict]:
    """The rows the newest ``hard*`` record with default rows of ``model`` left unknown at ``eps``,
    smallest box first."""
    best: tuple[str, list[dict]] = ("", [])
    for path in RECORDS.glob("hard*/*.json"):
        rows = [r for r in json.loads(path.read_text()).get("rows", [])
                if r.get("model") == model and r.get("config") == "default"]
        if rows and path.name > best[0]:
            best = (path.name, rows)
    return sorted((r for r in best[1] if r["status"] == "unknown" and r["eps"] in eps),
                  key=lambda r: (r["log2_cells"], r["index"], r["eps"]))


def add_open_query_arguments(ap, eps: str, per_model: int) -> None:
    """``--models``, ``--eps``, ``--per-model``: which of the default's open queries to take
    (``open_queries``, the first ``--per-model`` per model)."""
    ap.add_argument("--models", default="fashion-mlp-small,fashion-conv-small")
    ap.add_argument("--eps", default=eps)
    ap.add_argument("--per-model", type=int, default=per_model, help="open queries per model, smallest boxes first")


def run(model_name: str, rows: list[dict], timeout: float, long: float, out: Path) -> list[dict]:
    """Each query at ``timeout``, then at ``long`` if still open; resumable (``out``, this revision)."""
    rev = revision(short=True)
    done = {(r["model"], r["index"], r["eps"]): r for r in read_done(out) if r.get("rev") == rev}
    todo = [r for r in rows if (model_name, r["index"], r["eps"]) not in done]
    if not todo:
        return [done[(model_name, r["index"], r["eps"])] for r in rows]
    model = get_model(model_name)
    data = load_dataset(model.meta["dataset"])
    X = data.X_test.reshape(len(data.X_test), -1).astype(np.int64)
    y = data.y_test.astype(int)
    warm_up(model, X[len(X) - 1], int(y[-1]), [min(r["eps"] for r in rows), max(r["eps"] for r in rows)], timeout)
    with open(out, "a") as fh:
        for q in todo:
            i, eps = q["index"], q["eps"]
            R = make_region(model, X[i], eps)
            short = verify_region(model, R, [int(y[i])], int(y[i]), timeout=timeout)
            rec = {"model": model_name, "rev": rev, "index": i, "eps": eps, "log2_cells": q["log2_cells"],
                   "short_status": short.status, "short_time_s": round(short.time_s, 3),
                   "estimate_s": short.stats.get("bab_estimate_s"), "bab_decided": short.stats.get("bab_decided")}
            r = short if short.status != "unknown" else verify_region(model, R, [int(y[i])], int(y[i]), timeout=long)
            rec.update(status=r.status, time_s=round(r.time_s, 3), backend=r.backend, found_by=r.found_by)
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
            done[(model_name, i, eps)] = rec
            print(f"{model_name} image {i} eps {eps} (2^{q['log2_cells']:.0f} cells): estimate "
                  f"{rec['estimate_s']} s; {rec['status']} in {rec['time_s']} s", file=sys.stderr, flush=True)
    return [done[(model_name, r["index"], r["eps"])] for r in rows]


def summary(rows: list[dict], long: float) -> list[dict]:
    """Per model: queries, decided within ``long`` (robust / counterexample), the decided ones'
    times against the estimates printed with their ``unknown``."""
    out = []
    for m in sorted({r["model"] for r in rows}):
        rs = [r for r in rows if r["model"] == m]
        dec = [r for r in rs if r["status"] != "unknown"]
        ratio = [r["time_s"] / r["estimate_s"] for r in dec if r.get("estimate_s")]
        out.append({"model": m, "n": len(rs), "robust": sum(r["status"] == "robust" for r in rs),
                    "counterexample": sum(r["status"] == "counterexample" for r in rs),
                    "unknown": len(rs) - len(dec), "long_s": long,
                    "time_over_estimate": [round(float(x), 2) for x in sorted(ratio)]})
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_open_query_arguments(ap, "3,5", 4)
    ap.add_argument("--timeout", type=float, default=60, help="the budget the hard record used")
    ap.add_argument("--long", type=float, default=600, help="the longer budget")
    add_record_argument(ap)
    a = ap.parse_args(argv)
    eps = [int(e) for e in a.eps.split(",")]
    out = OUT / "tail.jsonl"
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for m in a.models.split(","):
        qs = open_queries(m, eps)[: a.per_model]
        if not qs:
            print(f"{m}: no hard record with open default queries at eps {a.eps}", file=sys.stderr)
            continue
        rows += run(m, qs, a.timeout, a.long, out)
    summ = {"models": summary(rows, a.long), "timeout": a.timeout, "long": a.long}
    print("\n".join(tail_tables({"summary": summ, "rows": rows})))
    if a.record:
        print("record:", save_record("tail", summ, rows, argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())
