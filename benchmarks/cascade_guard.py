"""How far do unseen inputs overshoot a cascade's calibration?  A k-fold study of the guard.

    python benchmarks/cascade_guard.py --dnn benchmarks/out/dnn2bnn/fashion-mnist-mlp256-128.pt \
        --data fashion-mnist --positive 9 [--arch mlp:100 --epochs 5 --folds 5] [--json PATH]

A ``--shared`` cascade (``bnnlogic.cascade``) says yes iff m > a and no iff m <= b on one BNN's
integer margin m, with (a, b) the tightest thresholds safe on the training split labelled by the
DNN, widened by a guard (g_lower, g_upper).  This script measures the guard unseen inputs need:

1. the cascade's BNN trained on the whole training split (as ``cascade build --shared``), its
   margins on the training and test splits;
2. for each of ``--folds`` folds of the training split, a BNN trained on the other folds, its
   thresholds calibrated there, and the overshoot of the held-out fold's margins past them
   (``cascade.holdout_guard``): what that many unseen inputs needed;
3. per guard (0, each fold's, the largest over the folds): coverage and disagreements with the
   DNN of the whole-split cascade on the test split.

Guards are also given in margin steps (2 x the output scale: the margin's resolution).  Prints a
markdown table and writes JSON (default benchmarks/out/cascade_guard.json).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bnnlogic.cascade import NO, YES, holdout_guard, margin, thresholds  # noqa: E402
from bnnlogic.data import load_dataset  # noqa: E402
from bnnlogic.fileio import write_json  # noqa: E402
from bnnlogic.nn.cascade_train import binary_dataset, train_side  # noqa: E402
from bnnlogic.nn.floatnet import float_predict, load_float  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"


def outcome(m: np.ndarray, t: np.ndarray, a: int, b: int) -> dict:
    """Coverage and disagreements of "yes iff m > a, no iff m <= b" against the DNN's t."""
    yes, no = m > a, m <= b
    return {"coverage": float((yes | no).mean()), "false_yes": int((yes & (t == NO)).sum()),
            "false_no": int((no & (t == YES)).sum())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dnn", required=True, help="the float network (.pt or .onnx)")
    ap.add_argument("--data", required=True)
    ap.add_argument("--positive", type=int, required=True)
    ap.add_argument("--arch", default="mlp:100")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=str(OUT / "cascade_guard.json"))
    args = ap.parse_args()

    data = load_dataset(args.data)
    dnn = load_float(args.dnn)
    target = (float_predict(dnn, data.X_train) == args.positive).astype(np.int64)
    t_test = (float_predict(dnn, data.X_test) == args.positive).astype(np.int64)

    def bnn(rows: np.ndarray):
        task = binary_dataset(data, args.positive, target, rows)
        return train_side(task, "lower", args.arch, args.epochs, 1.0, args.seed, progress=False)

    n = len(target)
    final = bnn(np.arange(n))
    step = 2 * final.ir.output.scale
    m_train, m_test = margin(final, data.X_train), margin(final, data.X_test)
    a, b = thresholds(m_train, target)

    folds = np.array_split(np.random.default_rng(args.seed).permutation(n), args.folds)
    guards: list[tuple[str, tuple[int, int]]] = [("0", (0, 0))]
    for k, hold in enumerate(folds):
        hold = np.sort(hold)
        rows = np.setdiff1d(np.arange(n), hold)
        m = margin(bnn(rows), data.X_train)
        guards.append((f"fold {k} ({len(hold)} held out)", holdout_guard(*thresholds(m[rows], target[rows]),
                                                                          m[hold], target[hold])))
        print(f"fold {k}: guard {guards[-1][1]}", flush=True)
    fold_guards = [g for _, g in guards[1:]]
    guards.append(("largest over the folds", (max(g[0] for g in fold_guards), max(g[1] for g in fold_guards))))

    rows_out = []
    print(f"\n{args.data}, class {args.positive}, {args.arch}, {args.epochs} epochs, margin step {step}; "
          f"test: {len(t_test)} inputs\n")
    print("| guard | lower (steps) | upper (steps) | test coverage | test false yes | test false no |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (gl, gu) in guards:
        r = {"guard": name, "g_lower": gl, "g_upper": gu, **outcome(m_test, t_test, a + gl, b - gu)}
        rows_out.append(r)
        print(f"| {name} | {gl / step:g} | {gu / step:g} | {r['coverage']:.4f} | {r['false_yes']} | {r['false_no']} |")
    write_json(args.json, {"data": args.data, "positive": args.positive, "arch": args.arch, "epochs": args.epochs,
                           "folds": args.folds, "step": int(step), "rows": rows_out})


if __name__ == "__main__":
    main()
