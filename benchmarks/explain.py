"""Explanations, counting and compilation on zoo models (and tiny random nets).

    python benchmarks/explain.py [--quick] [--models NAME,...] [--algos A,...] [--n N]
                                 [--eps E|none] [--timeout S] [--no-contrastive] [--no-topk]
                                 [--count/--no-count] [--count-eps E,...] [--count-methods M,...]
                                 [--compile/--no-compile] [--json PATH]

Per model (keys of ``benchmarks/models.py`` ZOO; a missing one is trained if its data set is
the embedded digits (seconds), else skipped, since the others train for minutes) and per test
image of its data set (robust explanations over the L-inf box of radius ``--eps``, or the
whole domain with ``--eps none``): abductive
explanations by deletion (margin order, natural order, gradient-saliency order) and
QuickXplain, a contrastive explanation, the smallest sufficient top-k of the saliency ranking;
each explanation verified independently.  Counting the inputs of another class than x's in
the boxes of radius ``--count-eps`` (default 1) around digits-mlp's test images: exact (cell
enumeration, Ganak) vs ApproxMC (epsilon 0.8, delta 0.2), whether the exact methods agree and
ApproxMC falls inside its tolerance (``--count-methods`` picks the methods: on eps-2 boxes
Ganak did not finish in 11 minutes and ApproxMC takes seconds to minutes).  Compilation: OBDD size and time for random nets of growing width.
Counting and compilation run by default only when ``--models`` includes digits-mlp.
Per model, one unmeasured explanation of its first test image (at most ``WARM_UP_S`` s) compiles
the kernels first.  ``--json`` summary: ``abductive_median_s`` (fastest algorithm's median search time over the
SAT-friendly nets' images, all nets if none), ``verified_fraction``,
``approx_within_tolerance_fraction``, and the same per model under ``per_model``.
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
from records import add_record_argument, save_record  # noqa: E402
from tests.helpers import random_ir  # noqa: E402


def _mean(v):
    v = [a for a in v if a is not None]
    return float(np.mean(v)) if v else None


def stat(v):
    v = [a for a in v if a is not None]
    return (float(np.median(v)), float(np.max(v))) if v else (None, None)


def compile_stats(rir, width: int) -> dict:
    """Compile and keep only numbers (the diagram is freed before CUDD shuts down)."""
    c = compile_bdd(rir, region.domain(rir.coding), max_nodes=2_000_000, timeout=120)
    return {"neurons": width, "variables": c.n_vars, "nodes": c.stats["nodes"],
            "compile_s": c.compile_s, "feasible": True}


ALGOS = ("deletion-margin", "deletion-natural", "deletion-saliency", "quickxplain")
#: seconds of the unmeasured explanation per model that compiles the kernels first
WARM_UP_S = 10.0


def explain_model(name: str, args, n: int, algos: list[str]) -> list[dict] | None:
    """Per test image of the model's data set: each abductive algorithm (verified), a
    contrastive explanation and the saliency top-k (optional); None if the model file is absent."""
    from bnnlogic.infer import Engine
    from models import MODELS, ZOO

    if not (MODELS / f"{name}.bnn").exists() and ZOO.get(name, ("",))[0] != "digits":
        print(f"skipping {name}: {MODELS / (name + '.bnn')} is missing (benchmarks/models.py --only {name} trains it)",
              flush=True)
        return None
    model = get_model(name)
    ir = model.ir
    data = load_dataset(ZOO[name][0] if name in ZOO else "digits")
    engine = Engine(ir)
    engine.warm_up()  # numba compilation is not part of any explanation's time ...
    engine.warm_up(np.uint8)  # ... nor of a check's (it feeds cells as bytes: 10 s on image 0 in a fresh checkout)
    X = data.X_test.reshape(len(data.X_test), -1)
    try:  # ... nor is the first compile of the sweep's and branch and bound's kernels: one unmeasured search
        Explainer(ir, X[0], args.eps, engine=engine, budget=WARM_UP_S).abductive(verify=False)
    except UserError:
        pass
    rows = []
    for i in range(min(n, len(X))):
        x = X[i]
        ex = Explainer(ir, x, args.eps, timeout=args.timeout, engine=engine, fast=not args.solver_only,
                       budget=args.budget)
        need_sal = "deletion-saliency" in algos or args.topk
        sal = saliency(model, x) if need_sal else None
        orders = {"deletion-margin": None, "deletion-natural": list(range(ir.coding.n_features)),
                  "deletion-saliency": list(np.argsort(sal, kind="stable")) if need_sal else None}
        row = {"model": name, "index": i, "prediction": ex.prediction}
        for a in algos:
            try:
                e = ex.abductive("quickxplain" if a == "quickxplain" else "deletion", orders.get(a))
                row[a] = {"size": e.size, "time_s": e.time_s, "calls": e.calls, "verified": e.verified,
                          "verify_s": e.verify_s, "oracle": e.oracle}
            except UserError as exc:
                row[a] = {"error": str(exc)}
        if args.contrastive:
            try:
                c = ex.contrastive()
                row["contrastive"] = {"size": None if c is None else c.size,
                                      "time_s": None if c is None else c.time_s,
                                      "verified": True if c is None else c.verified}
            except UserError as exc:
                row["contrastive"] = {"error": str(exc)}
        if args.topk:
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
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="5 images, small compile sweep")
    ap.add_argument("--models", default="digits-mlp",
                    help="comma-separated keys of benchmarks/models.py ZOO (a missing one is skipped unless it is on digits)")
    ap.add_argument("--algos", default=",".join(ALGOS), help=f"abductive algorithms among {', '.join(ALGOS)}")
    ap.add_argument("--n", type=int, default=20, help="test images per model")
    ap.add_argument("--eps", type=lambda v: None if v in ("none", "domain") else int(v), default=2,
                    help="radius of the L-inf box (raw units), or 'none' for the whole domain")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per solver call")
    ap.add_argument("--budget", type=float, default=None, help="seconds per abductive search (beyond: not explained)")
    ap.add_argument("--solver-only", action="store_true", help="no replayed witnesses / bounds before the solver")
    ap.add_argument("--contrastive", action=argparse.BooleanOptionalAction, default=True)
    ap.add_argument("--topk", action=argparse.BooleanOptionalAction, default=True,
                    help="smallest sufficient top-k of the gradient-saliency ranking")
    ap.add_argument("--count", action=argparse.BooleanOptionalAction, default=None,
                    help="counting sweep on digits-mlp (default: only when --models includes digits-mlp)")
    ap.add_argument("--count-eps", type=lambda v: [int(e) for e in v.split(",")], default=[1],
                    help="box radii of the counting sweep, comma-separated (default 1)")
    ap.add_argument("--count-methods", type=lambda v: v.split(","), default=["enumerate", "ganak", "approx"],
                    help="counting methods (enumerate, ganak, approx; default all three)")
    ap.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                    help="BDD sweep on tiny random nets (default: only when --models includes digits-mlp)")
    ap.add_argument("--json", default=str(OUT / "explain.json"))
    add_record_argument(ap)
    args = ap.parse_args()
    n = 5 if args.quick else args.n
    names = [m for m in args.models.split(",") if m]
    algos = [a for a in args.algos.split(",") if a]
    if set(algos) - set(ALGOS):
        ap.error(f"unknown algorithms {sorted(set(algos) - set(ALGOS))}")
    extras = "digits-mlp" in names
    do_count = extras if args.count is None else args.count
    do_compile = extras if args.compile is None else args.compile
    rows: list[dict] = []
    ran = []
    for name in names:
        r = explain_model(name, args, n, algos)
        if r is not None:
            rows += r
            ran.append(name)

    # counting on the eps boxes of digits-mlp (784 features do not enumerate): exact vs approx
    counts = []
    if do_count:
        ir = get_model("digits-mlp").ir
        data = load_dataset("digits")
        for e in args.count_eps:
            for i in range(n):
                x = data.X_test[i]
                R = region.linf(ir.coding, x, e)
                bad = [c for c in range(ir.n_classes) if c != int(ir.predict(x[None])[0])]
                r = {"index": i, "eps": e}
                for method in args.count_methods:
                    res = count(ir, R, bad, method)
                    r[method] = {"count": res.count, "time_s": res.time_s}
                exact = [r[m]["count"] for m in ("enumerate", "ganak") if m in r]
                if exact:
                    r["fraction"] = float(exact[0] / R.size())
                    r["exact_agree"] = len(set(exact)) == 1 if len(exact) > 1 else None
                    if "approx" in r:
                        ex_count, est = exact[0], r["approx"]["count"]
                        r["approx_within"] = bool(ex_count / 1.8 <= est <= ex_count * 1.8) if ex_count else est == 0
                counts.append(r)
                print(r, flush=True)

    # compilation: OBDD over the whole domain of random nets of growing width
    comp = []
    if do_compile:
        for width in ([4, 8, 16, 32] if args.quick else [4, 8, 16, 32, 64, 128]):
            rir = random_ir(0, n_features=12, hi=15, levels=3, hidden=(width,), n_classes=3)
            try:
                comp.append(compile_stats(rir, width))
            except TooLarge as exc:
                comp.append({"neurons": width, "feasible": False, "reason": str(exc)})
            print(comp[-1], flush=True)

    fmt = lambda v, p: "-" if v is None else f"{v:.{p}f}"  # noqa: E731
    per_model, table = {}, ["| model | algorithm | explained | size median | size max | time median (s) | time max (s) | "
                            "verify median (s) | verified |", "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name in ran:
        mr = [r for r in rows if r["model"] == name]
        per_algo = {}
        for a in algos + (["contrastive"] if args.contrastive else []):
            done = [r[a] for r in mr if "error" not in r[a]]
            sz, tm = stat([d.get("size") for d in done]), stat([d.get("time_s") for d in done])
            vs = stat([d.get("verify_s") for d in done])
            ver = [r[a].get("verified") for r in mr if "verified" in r[a]]
            per_algo[a] = {"images": len(mr), "explained": sum("error" not in r[a] for r in mr),
                           "size_median": sz[0], "size_max": sz[1], "time_median_s": tm[0], "time_max_s": tm[1],
                           "verify_median_s": vs[0], "verified": sum(map(bool, ver))}
            table.append(f"| {name} | {a} | {per_algo[a]['explained']}/{len(mr)} | {fmt(sz[0], 1)} | {fmt(sz[1], 0)} | "
                         f"{fmt(tm[0], 3)} | {fmt(tm[1], 3)} | {fmt(vs[0], 3)} | {sum(map(bool, ver))}/{len(mr)} |")
        meds = {a: v["time_median_s"] for a, v in per_algo.items() if a in algos and v["time_median_s"] is not None}
        best = min(meds, key=meds.get) if meds else None
        per_model[name] = {"algorithms": per_algo, "abductive_median_s": meds.get(best), "abductive_algorithm": best}
    friendly = [m for m in ran if "friendly" in m] or ran
    fr = [r for r in rows if r["model"] in friendly]
    fmeds = {a: stat([r[a].get("time_s") for r in fr if "size" in r[a]])[0] for a in algos}
    fmeds = {a: v for a, v in fmeds.items() if v is not None}
    fbest = min(fmeds, key=fmeds.get) if fmeds else None
    verified = [r[a]["verified"] for r in rows for a in algos if "size" in r[a]] + \
        [r["contrastive"]["verified"] for r in rows if "contrastive" in r and "verified" in r["contrastive"]]
    ok = [1 for r in rows for a in algos if "size" in r[a]]
    summary = {"models": ran, "eps": args.eps, "images": n, "algorithms": algos,
               # the fastest algorithm's median search time over the friendly nets' images (all nets if none)
               "abductive_median_s": fmeds.get(fbest), "abductive_algorithm": fbest, "abductive_models": friendly,
               "verified_fraction": float(np.mean(verified)) if verified else None,
               "explained_fraction": len(ok) / (len(rows) * len(algos)) if rows and algos else None,
               "approx_within_tolerance_fraction": _mean([r.get("approx_within") for r in counts]),
               "exact_counts_agree_fraction": _mean([r.get("exact_agree") for r in counts]),
               "per_model": per_model}
    if args.topk and rows:
        ks = stat([r["saliency_topk"].get("k") for r in rows])
        table += ["", f"saliency top-k: smallest sufficient k median {ks[0]}, max {ks[1]}"]
    if counts:
        table += ["", "| counting (digits-mlp, box, another class than x's) | eps | time median (s) | time max (s) | "
                      "non-zero counts | exact agree | ApproxMC within |", "|---|---:|---:|---:|---:|---:|---:|"]
        for e in args.count_eps:
            ce = [r for r in counts if r["eps"] == e]
            nz = [r["fraction"] > 0 for r in ce if "fraction" in r]
            for m in args.count_methods:
                tm = stat([r[m]["time_s"] for r in ce])
                agree, within = _mean([r.get("exact_agree") for r in ce]), _mean([r.get("approx_within") for r in ce])
                table.append(f"| {m} | {e} | {tm[0]:.3f} | {tm[1]:.3f} | {f'{sum(nz)}/{len(nz)}' if nz else '-'} | "
                             f"{fmt(agree, 2)} | {fmt(within, 2)} |")
        fr_ = [r["fraction"] for r in counts if "fraction" in r]
        if fr_:
            table += ["", f"fraction of the box in another class: median {np.median(fr_):.3g}, max {max(fr_):.3g}"]
    if comp:
        table += ["", "| BDD: hidden neurons | variables | nodes | compile (s) |", "|---:|---:|---:|---:|"]
        for c in comp:
            table.append(f"| {c['neurons']} | {c.get('variables', '-')} | {c.get('nodes', 'too large')} | "
                         f"{c['compile_s']:.3f} |" if c["feasible"] else f"| {c['neurons']} | - | too large | - |")
    print("\n".join(table))
    print({k: v for k, v in summary.items() if k != "per_model"})
    write_json(args.json, {"summary": summary, "explanations": rows, "counting": counts, "compile": comp})
    if args.record:
        region = "domain" if args.eps is None else f"eps{args.eps}"
        name = "explain-quick" if args.quick else "explain-" + "+".join(sorted(ran)) + f"-{region}"
        print("record:", save_record(name, summary, rows, counting=counts, compile=comp))


if __name__ == "__main__":
    main()
