"""Explanations, counting and compilation on the digits model (and tiny random nets).

    python benchmarks/explain.py [--quick] [--n N] [--eps E] [--json PATH]

Per test image (robust explanations over the L-inf box of radius ``--eps``): abductive
explanations by deletion (margin order, natural order, gradient-saliency order) and
QuickXplain, a contrastive explanation, the smallest sufficient top-k of the saliency ranking;
each explanation verified independently.  Counting on eps = 1 boxes: exact (cell
enumeration, Ganak) vs ApproxMC (epsilon 0.8, delta 0.2), and whether ApproxMC falls inside its
tolerance.  Compilation: OBDD size and time for random nets of growing width.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bnnlogic.compile import TooLarge, compile_bdd  # noqa: E402
from bnnlogic.count import count  # noqa: E402
from bnnlogic.data import load_dataset  # noqa: E402
from bnnlogic.errors import UserError  # noqa: E402
from bnnlogic.explain import Explainer  # noqa: E402
from bnnlogic.fileio import write_json  # noqa: E402
from bnnlogic.logic import region  # noqa: E402
from bnnlogic.nn.saliency import saliency  # noqa: E402
from models import OUT, get_model  # noqa: E402
from tests.helpers import random_ir  # noqa: E402


def stat(v):
    v = [a for a in v if a is not None]
    return (float(np.median(v)), float(np.max(v))) if v else (None, None)


def compile_stats(rir, width: int) -> dict:
    """Compile and keep only numbers (the diagram is freed before CUDD shuts down)."""
    c = compile_bdd(rir, region.domain(rir.coding), max_nodes=2_000_000, timeout=120)
    return {"neurons": width, "variables": c.n_vars, "nodes": c.stats["nodes"],
            "compile_s": c.compile_s, "feasible": True}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="5 images, small compile sweep")
    ap.add_argument("--n", type=int, default=20, help="test images")
    ap.add_argument("--eps", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per solver call")
    ap.add_argument("--json", default=str(OUT / "explain.json"))
    args = ap.parse_args()
    n = 5 if args.quick else args.n
    model = get_model("digits-mlp")
    ir = model.ir
    data = load_dataset("digits")
    rows, algos = [], {"deletion-margin": {}, "deletion-natural": {}, "deletion-saliency": {}, "quickxplain": {}}
    for i in range(n):
        x = data.X_test[i]
        ex = Explainer(ir, x, args.eps, timeout=args.timeout)
        sal = saliency(model, x)
        orders = {"deletion-margin": None, "deletion-natural": list(range(ir.coding.n_features)),
                  "deletion-saliency": list(np.argsort(sal, kind="stable"))}
        row = {"index": i, "prediction": ex.prediction}
        for name in algos:
            try:
                e = ex.abductive("quickxplain" if name == "quickxplain" else "deletion", orders.get(name))
                row[name] = {"size": e.size, "time_s": e.time_s, "calls": e.calls, "verified": e.verified,
                             "verify_s": e.verify_s}
            except UserError as exc:
                row[name] = {"error": str(exc)}
        try:
            c = ex.contrastive()
            row["contrastive"] = {"size": None if c is None else c.size, "time_s": None if c is None else c.time_s,
                                  "verified": True if c is None else c.verified}
        except UserError as exc:
            row["contrastive"] = {"error": str(exc)}
        t0 = time.perf_counter()
        try:
            k = ex.smallest_sufficient_k(list(np.argsort(-sal, kind="stable")))
            row["saliency_topk"] = {"k": k, "time_s": time.perf_counter() - t0}
        except UserError as exc:
            row["saliency_topk"] = {"error": str(exc)}
        ex.close()
        rows.append(row)
        print({k: (v if not isinstance(v, dict) else {a: (round(b, 3) if isinstance(b, float) else b)
                                                      for a, b in v.items()}) for k, v in row.items()}, flush=True)

    # counting on eps=1 boxes: exact vs approx
    counts = []
    for i in range(n):
        x = data.X_test[i]
        R = region.linf(ir.coding, x, 1)
        bad = [c for c in range(ir.n_classes) if c != int(ir.predict(x[None])[0])]
        r = {"index": i}
        for method in ("enumerate", "ganak", "approx"):
            res = count(ir, R, bad, method)
            r[method] = {"count": res.count, "time_s": res.time_s}
        r["fraction"] = float(r["enumerate"]["count"] / R.size())
        ex_count, est = r["enumerate"]["count"], r["approx"]["count"]
        r["exact_agree"] = r["ganak"]["count"] == ex_count
        r["approx_within"] = bool(ex_count / 1.8 <= est <= ex_count * 1.8) if ex_count else est == 0
        counts.append(r)
        print({k: v for k, v in r.items()}, flush=True)

    # compilation: OBDD over the whole domain of random nets of growing width
    comp = []
    for width in ([4, 8, 16, 32] if args.quick else [4, 8, 16, 32, 64, 128]):
        rir = random_ir(0, n_features=12, hi=15, levels=3, hidden=(width,), n_classes=3)
        try:
            comp.append(compile_stats(rir, width))
        except TooLarge as exc:
            comp.append({"neurons": width, "feasible": False, "reason": str(exc)})
        print(comp[-1], flush=True)

    ok = [r[a] for r in rows for a in algos if "size" in r[a]]
    verified = [r[a]["verified"] for r in rows for a in algos if "size" in r[a]] + \
        [r["contrastive"]["verified"] for r in rows if "verified" in r["contrastive"]]
    summary = {"model": "digits-mlp", "eps": args.eps, "images": n,
               "abductive_median_s": stat([r["deletion-margin"].get("time_s") for r in rows])[0],
               "verified_fraction": float(np.mean(verified)) if verified else None,
               "explained_fraction": len(ok) / (len(rows) * len(algos)) if rows else None,
               "approx_within_tolerance_fraction": float(np.mean([r["approx_within"] for r in counts])),
               "exact_counts_agree_fraction": float(np.mean([r["exact_agree"] for r in counts]))}
    table = ["| algorithm | size median | size max | time median (s) | time max (s) | verified |",
             "|---|---:|---:|---:|---:|---:|"]
    for a in list(algos) + ["contrastive"]:
        sz = stat([r[a].get("size") for r in rows])
        tm = stat([r[a].get("time_s") for r in rows])
        ver = [r[a].get("verified") for r in rows if "verified" in r[a]]
        fmt = lambda v, p: "-" if v is None else f"{v:.{p}f}"  # noqa: E731
        table.append(f"| {a} | {fmt(sz[0], 1)} | {fmt(sz[1], 0)} | {fmt(tm[0], 3)} | {fmt(tm[1], 3)} | "
                     f"{sum(map(bool, ver))}/{len(rows)} |")
    ks = stat([r["saliency_topk"].get("k") for r in rows])
    table += ["", f"saliency top-k: smallest sufficient k median {ks[0]}, max {ks[1]}", "",
              "| counting (eps=1 box, misclassified) | time median (s) | time max (s) |", "|---|---:|---:|"]
    for m in ("enumerate", "ganak", "approx"):
        tm = stat([r[m]["time_s"] for r in counts])
        table.append(f"| {m} | {tm[0]:.3f} | {tm[1]:.3f} |")
    table += ["", f"exact methods agree: {summary['exact_counts_agree_fraction']:.2f}; ApproxMC within "
                  f"tolerance: {summary['approx_within_tolerance_fraction']:.2f}; median adversarial fraction "
                  f"{np.median([r['fraction'] for r in counts]):.3g}", "",
              "| BDD: hidden neurons | variables | nodes | compile (s) |", "|---:|---:|---:|---:|"]
    for c in comp:
        table.append(f"| {c['neurons']} | {c.get('variables', '-')} | {c.get('nodes', 'too large')} | "
                     f"{c['compile_s']:.3f} |" if c["feasible"] else f"| {c['neurons']} | - | too large | - |")
    print("\n".join(table))
    print(summary)
    write_json(args.json, {"summary": summary, "explanations": rows, "counting": counts, "compile": comp})


if __name__ == "__main__":
    main()
