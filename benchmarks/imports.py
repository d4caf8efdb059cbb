"""How long ``bnnlogic import`` takes, and its agreement with the source, on BNNs trained elsewhere.

    python benchmarks/imports.py [--data digits] [--epochs 10] [--repeat 3] [--quick] [--record]

Sources (trained here first, the tests' networks in ``tests/sources.py``): a hand-written
PyTorch BNN with padded convolutions (BN + sign on the pixels, conv 3x3 p1, conv 3x3 s2 p1 +
bias, max-pool, dense, output Linear + bias), saved as a state dict (+ mapping) and as
TorchScript; and the same shape in Brevitas (binary and ternary weight quantizers, sign
activations), imported as a module (exported to QONNX inside) and from its QONNX file.  For each
source: the agreement of the import with the source's own float32 inference on the data set's
whole test split, the ambiguous neurons, the Python API's phases (read: the source and its
parsing, incl. Brevitas' export; fold: the exact IR; total: with the agreement run) as the best of
``--repeat`` runs, and the wall time of the CLI command (``python -m bnnlogic import``, a fresh
process: torch / onnx imports and the engine's compile included).  Prints a table; ``--record``
writes benchmarks/records/imports/.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

import bnnlogic  # noqa: E402
from bnnlogic.data import load_dataset  # noqa: E402
from benchmarks.records import save_record  # noqa: E402
from tests.sources import TORCH_MAPPING, BrevitasBNN, TorchBNN, accuracy, train_source  # noqa: E402


def _cli_seconds(argv: list[str]) -> float:
    """Wall seconds of ``python -m bnnlogic import ...`` in a fresh process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "bnnlogic", "import", *argv], check=True, env=env, cwd=ROOT,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default="digits", help="data set to train on and measure agreement with (test split)")
    ap.add_argument("--data-dir")
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--repeat", type=int, default=3, help="API runs per source (best reported)")
    ap.add_argument("--quick", action="store_true", help="2 epochs, 1 repetition")
    ap.add_argument("--record", action="store_true", help="write a record under benchmarks/records/imports/")
    args = ap.parse_args()
    epochs, repeat = (2, 1) if args.quick else (args.epochs, args.repeat)
    data = load_dataset(args.data, args.data_dir)
    c, hw = data.feature_shape[0], data.feature_shape[-1]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        tnet = train_source(TorchBNN(c, hw, len(data.classes)), data, epochs)
        t_train = time.perf_counter() - t0
        torch.save(tnet.state_dict(), tmp / "torch.pt")
        (tmp / "mapping.json").write_text(json.dumps(TORCH_MAPPING))
        torch.jit.script(tnet).save(tmp / "torchscript.pt")
        t0 = time.perf_counter()
        bnet = train_source(BrevitasBNN(c, hw, len(data.classes)), data, epochs)
        b_train = time.perf_counter() - t0
        from brevitas.export import export_qonnx

        export_qonnx(bnet, torch.zeros((1,) + tuple(data.feature_shape)), export_path=str(tmp / "brevitas.onnx"))
        data_args = ["--data", args.data] + (["--data-dir", args.data_dir] if args.data_dir else [])
        sources = [  # name, API source, mapping, CLI argv (None: a module object, API only), source accuracy
            ("pytorch state dict + mapping", tmp / "torch.pt", TORCH_MAPPING,
             [str(tmp / "torch.pt"), "--mapping", str(tmp / "mapping.json")], accuracy(tnet, data), t_train),
            ("pytorch TorchScript", tmp / "torchscript.pt", None, [str(tmp / "torchscript.pt")], accuracy(tnet, data),
             t_train),
            ("brevitas module (via QONNX export)", bnet, None, None, accuracy(bnet, data), b_train),
            ("brevitas QONNX file", tmp / "brevitas.onnx", None, [str(tmp / "brevitas.onnx")], accuracy(bnet, data),
             b_train),
        ]
        for name, src, mapping, argv, acc, train_s in sources:
            runs = [bnnlogic.import_model(src, mapping, data=args.data, data_dir=args.data_dir) for _ in range(repeat)]
            best = {k: min(r.report["seconds"][k] for r in runs) for k in ("read", "fold", "total")}
            r = runs[0]
            cli = _cli_seconds(argv + ["--out", str(tmp / "m.bnn")] + data_args) if argv else None
            rows.append({"source": name, "kind": r.report["kind"], "data": r.report["agreement_data"],
                         "n": r.report["agreement_n"], "agreement": r.agreement,
                         "ambiguous_neurons": len(r.ambiguous_neurons), "layers": r.report["layers"],
                         "read_s": best["read"], "fold_s": best["fold"], "api_total_s": best["total"],
                         "cli_wall_s": None if cli is None else round(cli, 3), "source_accuracy": acc,
                         "source_train_s": round(train_s, 2), "epochs": epochs})
    head = "| source | kind | test inputs | agreement | ambiguous | read s | fold s | API total s | CLI wall s | source acc |"
    print(head)
    print("|" + "---|" * (head.count("|") - 1))
    for r in rows:
        cli = "-" if r["cli_wall_s"] is None else f"{r['cli_wall_s']:.2f}"
        print(f"| {r['source']} | {r['kind']} | {r['n']} ({r['data']}) | {r['agreement']:.4f} | {r['ambiguous_neurons']} | "
              f"{r['read_s']:.3f} | {r['fold_s']:.3f} | {r['api_total_s']:.3f} | {cli} | {r['source_accuracy']:.3f} |")
    print(f"\n{os.cpu_count()} cores, 1-min load average {os.getloadavg()[0]:.2f} at the end (shared machine); "
          f"sources trained {epochs} epochs; API times best of {repeat}.")
    if args.record:
        summary = {"data": args.data, "epochs": epochs, "min_agreement": min(r["agreement"] for r in rows),
                   "api_total_s": {r["source"]: r["api_total_s"] for r in rows},
                   "cli_wall_s": {r["source"]: r["cli_wall_s"] for r in rows}}
        print("record:", save_record("imports", summary, rows))


if __name__ == "__main__":
    main()
