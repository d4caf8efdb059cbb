"""Do tighter-than-interval bounds pay on plain nets?  Nodes of branch and bound proven safe by
interval bounds against a linear relaxation (back-substitution, CROWN-style).

    python benchmarks/bounds.py [--models fashion-mlp-small,fashion-mlp-large-eev] [--images 20]
                                [--eps 5] [--depths 0,4,8,12,16,20] [--nodes 16] [--record]

Queries: each model's first --images test images at each eps whose box reaches the race
(neither the interval bounds nor the small-box sweep decide it: ``verification.SWEEP_FIRST``).
Nodes: the sub-boxes branch and bound makes (``logic.bab._halve``, its own split order) at each
depth, --nodes of them sampled per depth; each node's reference class is its probe's (the box
center clipped into it), as in ``logic.bab``.

A node is *safe* when no other class can beat the reference anywhere in it:

    interval   ``logic.bab.safe_nodes`` on ``logic.bounds.propagate`` (what bab prunes with)
    linear     safe by interval bounds, or else by this: every hidden neuron t = [s >= k] with pre-activation s in [L, U] (integers) is
               bounded by lines, a t <= s-line through (L, 0), (k, 1) or t <= 1, and
               t >= s-line through (k - 1, 0), (U, 1) or t >= 0 (whichever the adaptive rule
               picks: the line when its side of k is the wider one);
               the score difference sum_j D_j t_j is bounded above by substituting these lines
               back to the input bits, layer by layer (each layer's [L, U] from the same
               back-substitution, intersected with the interval ones), then maximised over the
               bit box; floats, so a margin within 1e-6 counts as not safe

Dense (MLP) models only.  Each row: model, eps, depth, nodes sampled, safe by each, ms per node.
The linear relaxation lives here and not in ``bnnlogic``: it is the measurement that decided not
to build it (see docs/benchmarks/hard.md).  ``--record`` writes ``benchmarks/records/bounds/``.
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bnnlogic.data import load_dataset  # noqa: E402
from bnnlogic.ir import IR, Dense  # noqa: E402
from bnnlogic.logic.bab import _halve, safe_nodes, split_rank  # noqa: E402
from bnnlogic.logic.bounds import _sum_bounds, propagate  # noqa: E402
from bnnlogic.logic.sweep import n_cells  # noqa: E402
from bnnlogic.verification import SWEEP_FIRST, _bounds_exclude, make_region  # noqa: E402
from models import get_model  # noqa: E402


def relax(L: np.ndarray, U: np.ndarray, k: np.ndarray) -> tuple[np.ndarray, ...]:
    """Lines ``al s + bl <= [s >= k] <= au s + bu`` valid for integer s in [L, U] (fixed neurons:
    slopes 0, offsets their value)."""
    on, off = L >= k, U < k
    free = ~(on | off)
    au, al = np.zeros(len(k)), np.zeros(len(k))
    bu, bl = on.astype(float), on.astype(float)
    Lf, Uf, kf = L[free].astype(float), U[free].astype(float), k[free].astype(float)
    up, lo = (kf - Lf) > (Uf - kf), (Uf - kf + 1) < (kf - Lf)  # adaptive: the line on the wider side
    su, sl = 1 / (kf - Lf), 1 / (Uf - kf + 1)
    au[free], bu[free] = np.where(up, su, 0), np.where(up, -Lf * su, 1)
    al[free], bl[free] = np.where(lo, sl, 0), np.where(lo, -(kf - 1) * sl, 0)
    return au, bu, al, bl


def back_substitute(As: list[np.ndarray], rel: list, Lam: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Upper bounds of ``Lam @ t_top`` (rows: objectives over the top layer's outputs) over the
    bit box [lo, hi], through the layers' relaxations ``rel`` (bottom first)."""
    const = np.zeros(len(Lam))
    for A, (au, bu, al, bl) in zip(As[::-1], rel[::-1]):
        pos = Lam > 0
        const += np.where(pos, Lam * bu, Lam * bl).sum(axis=1)
        Lam = np.where(pos, Lam * au, Lam * al) @ A
    return const + np.where(Lam > 0, Lam * hi, Lam * lo).sum(axis=1)


def linear_safe(ir: IR, As: list[np.ndarray], lo: np.ndarray, hi: np.ndarray, ref: int, bad: list[int]) -> bool:
    """The linear relaxation proves that no class in ``bad`` beats ``ref`` on the bit box
    [lo, hi] (uint8); ``As``: the hidden layers' weights as floats.  The first layer's [L, U]
    are its exact interval sums (``logic.bounds._sum_bounds``)."""
    flo, fhi = lo.astype(float), hi.astype(float)
    rel: list = []
    for i, (A, layer) in enumerate(zip(As, ir.layers)):
        if i == 0:
            L, U = (b[0] for b in _sum_bounds(layer, lo[None], hi[None]))
        else:
            U = np.floor(back_substitute(As[:i], rel, A, flo, fhi) + 1e-6)
            L = -np.floor(back_substitute(As[:i], rel, -A, flo, fhi) + 1e-6)
        rel.append(relax(L, U, layer.k))
    out = ir.output
    D = np.array([out.A[c] - out.A[ref] for c in bad if c != ref], dtype=float)
    beat = np.array([out.beat_bound(c, ref) for c in bad if c != ref])
    return bool((np.floor(back_substitute(As, rel, D, flo, fhi) + 1e-6) < beat).all())


def rows_for(name: str, images: int, eps_list: list[int], depths: list[int], n_nodes: int) -> list[dict]:
    model = get_model(name)
    ir = model.ir
    if not all(isinstance(layer, Dense) for layer in ir.layers):
        raise SystemExit(f"{name}: dense (MLP) models only")
    As = [layer.A.astype(float) for layer in ir.layers]
    data = load_dataset(model.meta["dataset"])
    X, y = data.X_test.reshape(len(data.X_test), -1).astype(np.int64), data.y_test
    thr = np.sort(ir.coding.thresholds, axis=0)
    rng = np.random.default_rng(0)
    rows = []
    for eps in eps_list:
        for i in range(images):
            label = int(y[i])
            R = make_region(model, X[i], eps)
            bad = [c for c in range(ir.n_classes) if c != label]
            b = propagate(ir, R.lo, R.hi)
            log_cells = n_cells(ir.coding.thresholds, R.lo, R.hi)[0]
            if _bounds_exclude(model, R, b, bad) or log_cells <= SWEEP_FIRST:
                continue
            mask = np.zeros(ir.n_classes, bool)
            mask[bad] = True
            rank = split_rank(ir, b)
            LO, HI = R.lo[None].copy(), R.hi[None].copy()
            for depth in range(max(depths) + 1):
                if depth in depths and len(LO):
                    pick = rng.choice(len(LO), min(len(LO), n_nodes), replace=False)
                    lo, hi = LO[pick], HI[pick]
                    ref = np.argmax(model.engine.scores(np.clip(R.center[None], lo, hi)), axis=1)
                    blo, bhi = propagate(ir, lo, hi)[-1]
                    s_int = safe_nodes(ir, blo, bhi, ref, mask)
                    t0 = time.perf_counter()
                    s_lin = []
                    for j in range(len(lo)):
                        ulo, uhi = (ir.coding.encode(v[None]).reshape(-1) for v in (lo[j], hi[j]))
                        s_lin.append(s_int[j] or linear_safe(ir, As, ulo, uhi, int(ref[j]), bad))
                    rows.append({"model": name, "index": i, "eps": eps, "log2_cells": round(float(log_cells), 1),
                                 "depth": depth, "nodes": len(lo), "safe_interval": int(s_int.sum()),
                                 "safe_linear": int(np.sum(s_lin)),
                                 "linear_ms_per_node": round(1000 * (time.perf_counter() - t0) / len(lo), 2)})
                    print(rows[-1], flush=True)
                split = n_cells(ir.coding.thresholds, LO, HI) > 0  # leaves (one cell) are not split
                if not split.any():
                    break
                LO, HI = _halve(LO[split], HI[split], thr, rank)
                if len(LO) > 4 * n_nodes:
                    keep = rng.choice(len(LO), 4 * n_nodes, replace=False)
                    LO, HI = LO[keep], HI[keep]
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="fashion-mlp-small,fashion-mlp-large-eev")
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--eps", default="5")
    ap.add_argument("--depths", default="0,4,8,12,16,20")
    ap.add_argument("--nodes", type=int, default=16, help="nodes sampled per depth")
    ap.add_argument("--record", action="store_true")
    args = ap.parse_args()
    depths = [int(d) for d in args.depths.split(",")]
    rows = []
    for name in args.models.split(","):
        rows += rows_for(name, args.images, [int(e) for e in args.eps.split(",")], depths, args.nodes)
    summary = {}
    print("\n| model | eps | depth | queries | nodes | safe: interval | safe: linear | linear ms/node |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for key in sorted({(r["model"], r["eps"], r["depth"]) for r in rows}):
        sel = [r for r in rows if (r["model"], r["eps"], r["depth"]) == key]
        s = {"queries": len(sel), "nodes": sum(r["nodes"] for r in sel),
             "safe_interval": sum(r["safe_interval"] for r in sel), "safe_linear": sum(r["safe_linear"] for r in sel),
             "linear_ms_per_node": round(float(np.mean([r["linear_ms_per_node"] for r in sel])), 2)}
        summary["/".join(map(str, key))] = s
        print(f"| {key[0]} | {key[1]} | {key[2]} | {s['queries']} | {s['nodes']} | {s['safe_interval']} | "
              f"{s['safe_linear']} | {s['linear_ms_per_node']} |")
    if args.record:
        from records import save_record

        print("record:", save_record("bounds", summary, rows))


if __name__ == "__main__":
    main()
