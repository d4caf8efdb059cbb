"""Verification-friendly training presets, side by side (training side of issue 7).

    python benchmarks/presets.py [--data fashion-mnist] [--arch mlp-small] [--epochs 5] [--json PATH]

trains one model per preset (``bnnlogic.nn.presets``) and prints test accuracy, non-zero
coefficients of the IR, the stable-neuron fraction at eps 5 and 10 over the first 1,000
test images (interval bounds through the trained network, ``nn.regularizers.stable_fraction``)
and training seconds per epoch.  Models are saved to ``benchmarks/out/presets/``.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bnnlogic.data import load_dataset  # noqa: E402
from bnnlogic.fileio import write_json  # noqa: E402
from bnnlogic.summary import summarize  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"


def main() -> None:
    from bnnlogic.nn import BNN, NetConfig, train
    from bnnlogic.nn.presets import PRESETS
    from bnnlogic.nn.regularizers import stable_fraction

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="fashion-mnist")
    ap.add_argument("--arch", default="mlp-small")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--presets", nargs="*", default=list(PRESETS))
    ap.add_argument("--json", default=str(OUT / "presets.json"))
    args = ap.parse_args()
    data = load_dataset(args.data)
    X = data.X_test[:1000]
    rows = []
    for name in args.presets:
        model = train(data, args.arch, epochs=args.epochs, preset=name, progress=False)
        model.save(OUT / "presets" / f"{args.data}-{args.arch}-{name}.bnn")
        net = BNN.from_state(NetConfig.from_json(model.meta["net"]), model.torch_state)
        s = summarize(model)
        rows.append({"preset": name, "data": args.data, "arch": model.meta["arch"], "epochs": args.epochs,
                     "accuracy": model.meta["test_accuracy"], "ir_agreement": model.meta["ir_agreement"],
                     "nonzero": s["nonzero"], "parameters": s["parameters"],
                     "stable_fraction": {str(e): stable_fraction(net, X, e) for e in (5, 10)},
                     "seconds_per_epoch": model.meta["training"]["seconds_per_epoch"],
                     "settings": model.meta["preset_settings"]})
        r = rows[-1]
        print(f"{name}: accuracy {r['accuracy']:.4f}, nonzero {r['nonzero']}/{r['parameters']}, "
              f"stable {r['stable_fraction']}", flush=True)
    table = ["| preset | test accuracy | IR agreement | non-zero | stable @eps5 | stable @eps10 | s/epoch |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    table += [f"| {r['preset']} | {r['accuracy']:.4f} | {r['ir_agreement']:.4f} | {r['nonzero']} | "
              f"{r['stable_fraction']['5']:.3f} | {r['stable_fraction']['10']:.3f} | {r['seconds_per_epoch']:.1f} |"
              for r in rows]
    print("\n".join(table))
    write_json(args.json, rows)


if __name__ == "__main__":
    main()
