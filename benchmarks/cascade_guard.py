"""How far do unseen inputs overshoot a cascade's calibration?  Guards and split calibration.

    python benchmarks/cascade_guard.py --dnn benchmarks/out/dnn2bnn/fashion-mnist-mlp256-128.pt \
        --data fashion-mnist --positive 9 [--arch mlp:100 --coding levels:3 --epochs 5] \
        [--folds 5 --splits 5 --ensemble 1] [--json PATH]

A ``--shared`` cascade (``bnnlogic.cascade``) says yes iff m > a and no iff m <= b on one BNN's
integer margin m, with (a, b) the tightest thresholds safe on calibration inputs labelled by the
DNN, widened by a guard (g_lower, g_upper).  Part one (``--folds`` K, 0 skips it) measures the
guard unseen inputs need when the BNN is calibrated on its own training inputs
(``cascade build --holdout 0``):

1. the cascade's BNN trained on the whole training split, its margins on the training and test
   splits;
2. for each of K folds of the training split, a BNN trained on the other folds, its thresholds
   calibrated there, and the overshoot of the held-out fold's margins past them
   (``holdout_guard``): what that many unseen inputs needed;
3. per guard (0, each fold's, the largest over the folds): coverage and disagreements with the
   DNN of the whole-split cascade on the test split.

Part two (``--splits`` S, 0 skips it) measures split calibration (``cascade build``'s default,
``--holdout 0.5``): for seeds 0..S-1, a BNN trained on a random half of the training split and
calibrated on the other half; test coverage, disagreements with the DNN, and the split-conformal
bound on their expected number (``cascade.guarantee``).

Guards are also given in margin steps (2 x the output scale: the margin's resolution).  Prints
markdown tables and writes JSON (default benchmarks/out/cascade_guard.json).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bnnlogic.cascade import NO, YES, expected_disagreements, guarantee, margin, split, thresholds  # noqa: E402
from bnnlogic.data import load_dataset  # noqa: E402
from bnnlogic.ensemble import ensemble  # noqa: E402
from bnnlogic.fileio import write_json  # noqa: E402
from bnnlogic.nn.cascade_train import binary_dataset, train_side  # noqa: E402
from bnnlogic.nn.floatnet import float_predict, load_float  # noqa: E402
from records import add_record_argument, save_record  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"


def holdout_guard(a: int, b: int, m_hold: np.ndarray, t_hold: np.ndarray) -> tuple[int, int]:
    """The guard (g_lower, g_upper) that thresholds a (lower yes iff m > a) and b (upper no iff
    m <= b), calibrated on other inputs, needed to stay safe on the held-out margins m_hold:
    g_lower = max(0, max m_hold_no - a), g_upper = max(0, b + 1 - min m_hold_yes)."""
    no, yes = m_hold[t_hold == NO], m_hold[t_hold == YES]
    return (max(0, int(no.max()) - a) if no.size else 0, max(0, b + 1 - int(yes.min())) if yes.size else 0)


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
    ap.add_argument("--coding", default="levels:3", help="the BNN's input coding")
    ap.add_argument("--ensemble", type=int, default=1, help="part two: BNNs summed per cascade (seeds s*K .. s*K+K-1)")
    ap.add_argument("--folds", type=int, default=5, help="part one: folds of the guard study (0: skip)")
    ap.add_argument("--splits", type=int, default=5, help="part two: seeds of the split-calibration study (0: skip)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=str(OUT / "cascade_guard.json"))
    add_record_argument(ap)
    args = ap.parse_args()

    data = load_dataset(args.data)
    dnn = load_float(args.dnn)
    target = (float_predict(dnn, data.X_train) == args.positive).astype(np.int64)
    t_test = (float_predict(dnn, data.X_test) == args.positive).astype(np.int64)

    def bnn(rows: np.ndarray, seed: int = args.seed):
        task = binary_dataset(data, args.positive, target, rows)
        return train_side(task, "lower", args.arch, args.epochs, 1.0, seed, args.coding, progress=False)

    n = len(target)
    out = {"data": args.data, "positive": args.positive, "arch": args.arch, "coding": args.coding,
           "epochs": args.epochs,
           "folds": args.folds, "splits": args.splits, "ensemble": args.ensemble}
    print(f"{args.data}, class {args.positive}, {args.arch}, {args.coding}, {args.epochs} epochs; "
          f"test: {len(t_test)} inputs")
    if args.folds:
        out.update(guard_study(data, target, t_test, bnn, n, args.folds, args.seed))
    if args.splits:
        out["split_rows"] = split_study(data, target, t_test, bnn, n, args.splits, args.ensemble)
    write_json(args.json, out)
    if args.record:
        rows = [{"study": "guard", **r} for r in out.get("rows", [])] + \
               [{"study": "split", **r} for r in out.get("split_rows", [])]
        summary = {k: v for k, v in out.items() if k not in ("rows", "split_rows")}
        print("record:", save_record(f"cascade-{args.data}-class{args.positive}", summary, rows))


def guard_study(data, target, t_test, bnn, n: int, n_folds: int, seed: int) -> dict:
    """Part one: the guard K folds of unseen inputs needed, applied to the whole-split cascade."""
    final = bnn(np.arange(n))
    step = 2 * final.ir.output.scale
    m_test = margin(final, data.X_test)
    a, b = thresholds(margin(final, data.X_train), target)

    folds = np.array_split(np.random.default_rng(seed).permutation(n), n_folds)
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
    print(f"\ncalibrated on the training inputs, margin step {step}\n")
    print("| guard | lower (steps) | upper (steps) | test coverage | test false yes | test false no |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, (gl, gu) in guards:
        r = {"guard": name, "g_lower": gl, "g_upper": gu, **outcome(m_test, t_test, a + gl, b - gu)}
        rows_out.append(r)
        print(f"| {name} | {gl / step:g} | {gu / step:g} | {r['coverage']:.4f} | {r['false_yes']} | {r['false_no']} |")
    return {"step": int(step), "rows": rows_out}


def split_study(data, target, t_test, bnn, n: int, n_splits: int, k: int = 1) -> list[dict]:
    """Part two: split calibration (train on half, calibrate on the other half) for seeds 0..S-1;
    with k > 1 the BNN is the score sum of k BNNs (``bnnlogic.ensemble``)."""
    rows_out = []
    print(f"\nsplit calibration (trained on half of the training split, calibrated on the other half), "
          f"{k} BNN(s) summed\n")
    print("| seed | test coverage | decided yes / no | test false yes | test false no "
          "| expected disagreements at most |")
    print("|---:|---:|---:|---:|---:|---:|")
    for seed in range(n_splits):
        rows, hold = split(n, 0.5, seed)
        m = bnn(rows, seed) if k == 1 else ensemble([bnn(rows, seed * k + i) for i in range(k)])
        a, b = thresholds(margin(m, data.X_train[hold]), target[hold])
        m_test = margin(m, data.X_test)
        g = guarantee(target[hold])
        r = {"seed": seed, **outcome(m_test, t_test, a, b), "decided_yes": int((m_test > a).sum()),
             "decided_no": int((m_test <= b).sum()), "guarantee": g,
             "expected_disagreements_at_most": expected_disagreements(g, t_test)}
        rows_out.append(r)
        print(f"| {seed} | {r['coverage']:.4f} | {r['decided_yes']} / {r['decided_no']} | {r['false_yes']} | "
              f"{r['false_no']} | {r['expected_disagreements_at_most']:.2f} |", flush=True)
    return rows_out


if __name__ == "__main__":
    main()
