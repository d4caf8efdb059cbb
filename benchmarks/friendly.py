"""Verification-friendly training, measured: one row per preset and net.

    python benchmarks/friendly.py [--nets small,large] [--presets plain,...] [--epochs 5]
                                  [--images 100] [--eps 1,3,5,10,15,25] [--timeout 60] [--json PATH]
                                  [--record]
    python benchmarks/friendly.py --model plain=a.bnn --model friendly=b.bnn ...   (given models)

Per row: non-zero coefficients, test accuracy, % stable neurons at eps 5 and 10 (interval
bounds over the first 1,000 test images), #variables and #clauses of the robustness query
(median over 10 images, totalizer CNF), and per eps the verification results of
``bnnlogic verify`` (backend auto) over the first N test images: solved %, median and mean
time, unknowns.  Models are trained with ``bnnlogic.nn.train(..., preset=...)`` and cached in
benchmarks/out/friendly/.  Prints a table and writes JSON (one object per preset and net with
``nonzero``, ``accuracy``, ``stable_fraction``, ``clauses``, ``median_time_s``, ``unknown``);
with ``--record``, a record ``friendly-<data>``.  The stable fractions are at the data's
StableSign eps E and 2E (``presets.default_stable_eps``: 5 and 10 on pixels, 1 and 2 on digits).
"""
from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bnnlogic import load  # noqa: E402
from bnnlogic.data import load_dataset  # noqa: E402
from bnnlogic.fileio import write_json, write_text  # noqa: E402
from bnnlogic.logic import stable_fraction  # noqa: E402
from bnnlogic.nn.presets import PRESETS, default_stable_eps  # noqa: E402
from bnnlogic.summary import summarize, verification_profile  # noqa: E402
from models import OUT  # noqa: E402
from records import add_record_argument, save_record  # noqa: E402
from verify import CONFIGS, run_model  # noqa: E402

NETS = {"small": "mlp-small", "large": "mlp-large"}


def get(data_name: str, net: str, preset: str, epochs: int):
    path = OUT / "friendly" / f"{data_name}-{net}-{preset}-{epochs}ep.bnn"
    if path.exists():
        return load(path)
    from bnnlogic.nn import train

    model = train(load_dataset(data_name), NETS[net], epochs=epochs, preset=preset)
    model.save(path)
    return model


def row(name: str, model, images: int, eps_list: list[int], timeout: float) -> dict:
    data = load_dataset(model.meta["dataset"])
    X = data.X_test.reshape(len(data.X_test), -1).astype(np.int64)
    c = model.ir.coding
    e0 = default_stable_eps(c.lo, c.hi)
    stable = {e: stable_fraction(model.ir, np.maximum(X[:1000] - e, c.lo), np.minimum(X[:1000] + e, c.hi))
              for e in (e0, 2 * e0)}
    prof = verification_profile(model, X[:10], e0)
    recs = run_model(name, model, images, eps_list, {"default": CONFIGS["default"]}, timeout, 0)
    per_eps = {}
    for e in eps_list:
        rs = [r for r in recs if r["eps"] == e]
        t = [r["time_s"] for r in rs]
        per_eps[str(e)] = {"solved": sum(r["status"] != "unknown" for r in rs) / len(rs),
                           "median_time_s": statistics.median(t), "mean_time_s": statistics.fmean(t),
                           "unknown": sum(r["status"] == "unknown" for r in rs)}
    return {"model": name, "preset": model.meta.get("preset", "plain"), "nonzero": summarize(model)["nonzero"],
        "accuracy": float(np.mean(model.predict(X) == data.y_test)), "stable_fraction": stable,
        "variables": prof["variables"], "clauses": prof["clauses"], "verify": per_eps,
        "median_time_s": {e: v["median_time_s"] for e, v in per_eps.items()},
        "unknown": {e: v["unknown"] for e, v in per_eps.items()}}


def seconds(t: float) -> str:
    """Three significant digits below 1 s (sub-millisecond medians stay readable)."""
    return f"{t:.3g}" if t < 1 else f"{t:.3f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", default=[], help="name=path of a trained model (repeatable)")
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--nets", default="small,large")
    ap.add_argument("--presets", default=",".join(PRESETS))
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--images", type=int, default=100)
    ap.add_argument("--eps", default="1,3,5,10,15,25")
    ap.add_argument("--timeout", type=float, default=60)
    ap.add_argument("--json", default=str(OUT / "friendly.json"))
    add_record_argument(ap)
    args = ap.parse_args()
    eps_list = [int(e) for e in args.eps.split(",")]
    if args.model:
        models = [(s.split("=", 1)[0], load(s.split("=", 1)[1])) for s in args.model]
    else:
        models = [(f"{n}/{p}", get(args.data, n, p, args.epochs))
                  for n in args.nets.split(",") for p in args.presets.split(",")]
    rows = [row(name, m, args.images, eps_list, args.timeout) for name, m in models]
    e0 = next(iter(rows[0]["stable_fraction"])) if rows else 5
    head = (f"| model | non-zero | accuracy | stable @{e0} | stable @{2 * e0} | vars | clauses | "
            + " | ".join(f"eps {e}: solved / median s / unknown" for e in eps_list) + " |")
    lines = [head, "|---" * (7 + len(eps_list)) + "|"]
    for r in rows:
        cells = [f"{100 * v['solved']:.0f}% / {seconds(v['median_time_s'])} / {v['unknown']}" for v in r["verify"].values()]
        s1, s2 = r["stable_fraction"].values()
        lines.append(f"| {r['model']} | {r['nonzero']:,} | {r['accuracy']:.4f} | {100 * s1:.1f}% | "
                     f"{100 * s2:.1f}% | {r['variables']:,} | {r['clauses']:,} | "
                     + " | ".join(cells) + " |")
    print("\n".join(lines))
    write_text(OUT / "friendly.md", "\n".join(lines) + "\n")
    write_json(args.json, rows)
    if args.record:
        data = sorted({m.meta.get("dataset", "unknown") for _, m in models})
        print("record:", save_record("friendly-" + "+".join(data), {"eps": eps_list, "timeout": args.timeout,
                                                                  "images": args.images, "models": rows}, rows))


if __name__ == "__main__":
    main()
