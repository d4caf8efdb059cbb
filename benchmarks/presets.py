"""Verification-friendly training presets, side by side.

    python benchmarks/presets.py [--data fashion-mnist] [--arch mlp-small] [--epochs 5] [--eps E]
                                 [--json PATH] [--record]
    python benchmarks/presets.py --data digits --arch mlp:200,100 --epochs 20 --record   # ~10 min

trains one model per preset (``bnnlogic.nn.presets``; StableSign's eps at its default, scaled
to the data's range) and prints per preset: test accuracy, non-zero coefficients of the IR,
the stable-neuron fraction at eps E and 2E over the first 1,000 test images (interval bounds
through the IR, ``logic.stable_fraction``), the median CNF size of the eps-E robustness query
over the first 10 test images (totalizer, ``summary.verification_profile``) and training
seconds per epoch; against ``plain`` (when trained): how many times fewer coefficients and
clauses, the accuracy change in points, and whether the targets hold (>= 10x coefficients,
>= 30x clauses, accuracy within 1 point).  E defaults to ``presets.default_stable_eps`` of the
data (5 on pixels 0..255, 1 on digits 0..16).  Models are saved to ``benchmarks/out/presets/``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bnnlogic.data import load_dataset  # noqa: E402
from bnnlogic.fileio import write_json  # noqa: E402
from bnnlogic.summary import summarize, verification_profile  # noqa: E402
from records import add_record_argument, save_record  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
TARGETS = {"coefficients_cut": 10.0, "clauses_cut": 30.0, "accuracy_points": -1.0}


def against_plain(r: dict, plain: dict) -> dict:
    """Coefficient and clause cuts (x fewer) and the accuracy change (points) against plain."""
    out = {"coefficients_cut": plain["nonzero"] / max(r["nonzero"], 1),
           "clauses_cut": plain["clauses"] / max(r["clauses"], 1),
           "accuracy_points": 100 * (r["accuracy"] - plain["accuracy"])}
    out["meets_targets"] = all(out[k] >= v for k, v in TARGETS.items())
    return out


def main() -> None:
    import numpy as np

    from bnnlogic.logic import stable_fraction
    from bnnlogic.nn import train
    from bnnlogic.nn.presets import PRESETS, default_stable_eps

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--arch", default="mlp-small")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--presets", nargs="*", default=list(PRESETS))
    ap.add_argument("--eps", type=int, default=None,
                    help="eps (raw units) of the stable fractions and the CNF size (default: the data's StableSign default)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None, help="default benchmarks/out/presets-<data>.json")
    add_record_argument(ap)
    args = ap.parse_args()
    data = load_dataset(args.data)
    eps = args.eps or default_stable_eps(data.lo, data.hi)
    X = data.X_test[:1000].reshape(min(1000, len(data.X_test)), -1).astype(np.int64)
    rows = []
    for name in args.presets:
        model = train(data, args.arch, epochs=args.epochs, seed=args.seed, preset=name, progress=False)
        model.save(OUT / "presets" / f"{args.data}-{args.arch.replace(':', '').replace(',', '-')}-{name}.bnn")
        c, s = model.ir.coding, summarize(model)
        prof = verification_profile(model, X[:10], eps)
        stable = {str(e): stable_fraction(model.ir, np.maximum(X - e, c.lo), np.minimum(X + e, c.hi))
                  for e in (eps, 2 * eps)}
        rows.append({"preset": name, "data": args.data, "arch": model.meta["arch"], "epochs": args.epochs,
                     "accuracy": model.meta["test_accuracy"], "test_n": model.meta["test_n"],
                     "ir_agreement": model.meta["ir_agreement"], "nonzero": s["nonzero"], "parameters": s["parameters"],
                     "eps": eps, "stable_fraction": stable, "clauses": prof["clauses"], "variables": prof["variables"],
                     "seconds_per_epoch": model.meta["training"]["seconds_per_epoch"],
                     "settings": model.meta["preset_settings"]})
        r = rows[-1]
        print(f"{name}: accuracy {r['accuracy']:.4f}, nonzero {r['nonzero']}/{r['parameters']}, "
              f"clauses {r['clauses']}, stable {r['stable_fraction']}", flush=True)
    plain = next((r for r in rows if r["preset"] == "plain"), None)
    if plain is not None:
        for r in rows:
            if r is not plain:
                r["vs_plain"] = against_plain(r, plain)
    table = [f"| preset | accuracy | non-zero | clauses @eps{eps} | stable @eps{eps} | stable @eps{2 * eps} | "
             "coefficients cut | clauses cut | accuracy points | targets | s/epoch |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        v = r.get("vs_plain")
        cmp = (f"{v['coefficients_cut']:.1f}x | {v['clauses_cut']:.1f}x | {v['accuracy_points']:+.2f} | "
               f"{'met' if v['meets_targets'] else 'missed'}") if v else "- | - | - | -"
        table.append(f"| {r['preset']} | {r['accuracy']:.4f} | {r['nonzero']:,} | {r['clauses']:,} | "
                     f"{r['stable_fraction'][str(eps)]:.3f} | {r['stable_fraction'][str(2 * eps)]:.3f} | {cmp} | "
                     f"{r['seconds_per_epoch']:.1f} |")
    print("\n".join(table))
    write_json(args.json or OUT / f"presets-{args.data}.json", rows)
    if args.record:
        summary = {"data": args.data, "arch": args.arch, "epochs": args.epochs, "eps": eps,
                   "presets": {r["preset"]: {k: r[k] for k in ("accuracy", "nonzero", "clauses")} | r.get("vs_plain", {})
                               for r in rows}}
        print("record:", save_record(f"presets-{args.data}", summary, rows))


if __name__ == "__main__":
    main()
