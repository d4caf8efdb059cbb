"""The standard models every benchmark uses, trained once and cached.

    python benchmarks/models.py [--only NAME ...] [--json PATH]

trains (or loads from ``benchmarks/out/models/``) each model below and prints a table of
test accuracy, IR agreement and training time per epoch.  Other benchmarks call
``get_model(name)``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bnnlogic import load  # noqa: E402
from bnnlogic.data import load_dataset  # noqa: E402
from bnnlogic.evaluate import evaluate  # noqa: E402
from bnnlogic.fileio import write_json, write_text  # noqa: E402
from records import add_record_argument, save_record  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"
MODELS = OUT / "models"

# name -> (data set, architecture, training keyword arguments)
ZOO: dict[str, tuple[str, str, dict]] = {
    "digits-mlp": ("digits", "mlp:100", {"epochs": 40}),
    # whole-domain explanations (benchmarks/hard.py --explain): plain and verification-friendly
    "digits-mlp64-32": ("digits", "mlp:64,32", {"epochs": 10}),
    "digits-mlp64-32-friendly": ("digits", "mlp:64,32", {"epochs": 10, "preset": "stablesign-sparse"}),
    "digits-mlp200-100": ("digits", "mlp:200,100", {"epochs": 20}),
    "digits-mlp200-100-friendly": ("digits", "mlp:200,100", {"epochs": 20, "preset": "stablesign-sparse"}),
    "fashion-mlp-small": ("fashion-mnist", "mlp-small", {"epochs": 10}),
    "fashion-mlp-small-friendly": ("fashion-mnist", "mlp-small", {"epochs": 5, "preset": "stablesign-l1-ternary"}),
    "fashion-mlp-large": ("fashion-mnist", "mlp-large", {"epochs": 10}),
    "fashion-mlp-large-friendly": ("fashion-mnist", "mlp-large", {"epochs": 5, "preset": "stablesign-sparse"}),
    "fashion-conv-small": ("fashion-mnist", "conv-small", {"epochs": 10}),
    # the EEV work's plain recipe (Jia & Rinard 2020, its MnistMLP task): ternary weights with a
    # learned mask (BinMask) pruned by a decay of 1e-5, inputs quantized to 11 levels (step 0.1), Adam
    "fashion-mlp-large-eev": ("fashion-mnist", "mlp-large", {"epochs": 20, "coding": "quantized:11",
                                                             "quant": {"mode": "binmask", "decay": 1e-5}}),
    "fashion-conv": ("fashion-mnist", "cnn:c32k3,p2,c64k3,p2,d256", {"epochs": 25}),
    "mnist-mlp-small": ("mnist", "mlp-small", {"epochs": 20}),
    "mnist-mlp-large": ("mnist", "mlp-large", {"epochs": 20}),
}


def get_model(name: str, retrain: bool = False):
    """Load ``benchmarks/out/models/<name>.bnn``, training it first if absent."""
    path = MODELS / f"{name}.bnn"
    if path.exists() and not retrain:
        return load(path)
    from bnnlogic.nn import train

    data_name, arch, kw = ZOO[name]
    model = train(load_dataset(data_name), arch, **kw)
    model.meta["zoo_name"] = name
    model.save(path)
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", nargs="*", default=list(ZOO), help="model names")
    ap.add_argument("--retrain", action="store_true")
    ap.add_argument("--json", default=str(OUT / "models.json"))
    add_record_argument(ap)
    args = ap.parse_args()
    rows = []
    for name in args.only:
        t0 = time.perf_counter()
        trained_now = args.retrain or not (MODELS / f"{name}.bnn").exists()
        model = get_model(name, args.retrain)
        res = evaluate(model)
        tr = model.meta["training"]
        rows.append({"model": name, "data": res["data"], "split": res["data_split"], "arch": model.meta["arch"],
                     "epochs": tr["epochs"], "accuracy": res["accuracy"], "n": res["n"],
                     "ir_agreement": res["ir_agreement"], "seconds_per_epoch": tr["seconds_per_epoch"],
                     "eval_seconds": res["seconds"], "wall_seconds": time.perf_counter() - t0,
                     "trained_in_this_run": trained_now, "preset": model.meta.get("preset")})
        print(json.dumps(rows[-1]), flush=True)
    table = ["| model | data | arch | epochs | test accuracy | n | IR agreement | s/epoch |",
             "|---|---|---|---:|---:|---:|---:|---:|"]
    table += [f"| {r['model']} | {r['data']} | {r['arch']} | {r['epochs']} | {r['accuracy']:.4f} | {r['n']} | "
              f"{r['ir_agreement']:.4f} | {r['seconds_per_epoch']:.1f} |" for r in rows]
    print("\n".join(table))
    os.makedirs(OUT, exist_ok=True)
    write_json(args.json, rows)
    write_text(OUT / "models.md", "\n".join(table) + "\n")
    if args.record:
        print("record:", save_record("models", {r["model"]: {k: r[k] for k in ("data", "arch", "epochs", "accuracy", "n",
                                                                                "ir_agreement", "seconds_per_epoch")}
                                                for r in rows}, rows))


if __name__ == "__main__":
    main()
