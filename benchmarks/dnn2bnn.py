"""From a float network to BNNs: distillation and exact compilation of K-bit networks.

    python benchmarks/dnn2bnn.py [--quick] [--json PATH]

1. trains a float ReLU MLP (``--dnn-arch``, default mlp:256,128 = 784-256-128-10) on
   Fashion-MNIST (``--quick``: digits, mlp:64,32), exports it as ``.pt`` and ``.onnx`` and
   checks both files load back to the same predictions;
2. distils it into BNNs (``--bnn-arch``, default: ``same`` shape as the float network, and
   mlp-small = 784-200-100-100-100-10) from the ``.pt`` file: BNN accuracy and fidelity
   (agreement with the float network) on the test split, with and without initialisation
   from the float weights where any layer's shape matches;
3. quantizes the ``.onnx`` network to K bits for each ``--bits`` K and compiles it exactly:
   neurons and weights of the IR, accuracy, agreement of the K-bit net with the float
   network, and agreement of the compiled IR with the K-bit reference on the whole test
   split (must be 1.0; also checked with the IR's reference semantics on a sample).

Prints two markdown tables and writes JSON (default benchmarks/out/dnn2bnn.json).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bnnlogic.data import load_dataset  # noqa: E402
from bnnlogic.errors import UserError  # noqa: E402
from bnnlogic.fileio import write_json, write_text  # noqa: E402
from bnnlogic.nn.distill import distill  # noqa: E402
from bnnlogic.nn.floatnet import export_onnx, float_predict, load_float, save_float, train_float  # noqa: E402
from bnnlogic.quant import compile_quant, estimate_size, ir_scores_blas, ir_size, quantize  # noqa: E402
from bnnlogic.quant.compile import MAX_COEFFICIENTS  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="digits, small networks (about a minute)")
    ap.add_argument("--data", default=None)
    ap.add_argument("--dnn-arch", default=None)
    ap.add_argument("--dnn-epochs", type=int, default=None)
    ap.add_argument("--bnn-arch", nargs="*", default=["same", "mlp-small"])
    ap.add_argument("--distill-epochs", type=int, default=None)
    ap.add_argument("--bits", type=int, nargs="*", default=[1, 2, 3, 4])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    q = args.quick
    data_name = args.data or ("digits" if q else "fashion-mnist")
    dnn_arch = args.dnn_arch or ("mlp:64,32" if q else "mlp:256,128")
    dnn_epochs = args.dnn_epochs or (30 if q else 10)
    distill_epochs = args.distill_epochs or (20 if q else 10)
    tag = f"{data_name}-{dnn_arch.replace(':', '').replace(',', '-')}"
    out_dir = OUT / "dnn2bnn"
    out_dir.mkdir(parents=True, exist_ok=True)
    data = load_dataset(data_name)
    X, y = data.X_test, data.y_test
    res: dict = {"data": data_name, "split": data.split, "test_n": int(len(y)), "dnn_arch": dnn_arch,
                 "dnn_epochs": dnn_epochs, "seed": args.seed, "command": " ".join(sys.argv)}

    t0 = time.perf_counter()
    dnn = train_float(data, dnn_arch, epochs=dnn_epochs, seed=args.seed, lr=3e-3)
    res["dnn_train_seconds"] = time.perf_counter() - t0
    pt, onnx_path = out_dir / f"{tag}.pt", out_dir / f"{tag}.onnx"
    save_float(dnn, data.feature_shape, pt)
    export_onnx(dnn, onnx_path)
    dnn_pred = float_predict(dnn, X)
    res["dnn_accuracy"] = float((dnn_pred == y).mean())
    res["pt_onnx_same_predictions"] = bool(
        np.array_equal(float_predict(load_float(pt), X), dnn_pred)
        and np.array_equal(float_predict(load_float(onnx_path, data.feature_shape), X), dnn_pred))
    print(f"float {dnn.describe()}: accuracy {res['dnn_accuracy']:.4f}; .pt/.onnx reload identical: "
          f"{res['pt_onnx_same_predictions']}", flush=True)

    res["distill"] = []
    teacher = load_float(pt, data.feature_shape)
    for arch in args.bnn_arch:
        for init in (True, False):  # without initialisation only where it changed anything
            t0 = time.perf_counter()
            model = distill(teacher, data, arch, epochs=distill_epochs, seed=args.seed, init=init)
            m = model.meta
            row = {"bnn_arch": m["arch"], "init_layers": m["distill"]["init_layers"], "epochs": distill_epochs,
                   "accuracy": m["test_accuracy"], "fidelity": m["fidelity"], "dnn_accuracy": m["dnn_test_accuracy"],
                   "seconds": time.perf_counter() - t0}
            res["distill"].append(row)
            print(row, flush=True)
            if not init or not row["init_layers"]:
                break
            model.save(out_dir / f"{tag}-{arch.replace(':', '')}.bnn")

    res["exact"] = []
    net = load_float(onnx_path, data.feature_shape)
    rng = np.random.default_rng(0)
    calib = data.X_train[np.sort(rng.permutation(len(data.X_train))[:10000])]
    Xf = X.reshape(len(X), -1).astype(np.int64)
    for bits in args.bits:
        t0 = time.perf_counter()
        qn = quantize(net, bits, calib, data.lo, data.hi)
        q_pred = qn.predict(X)
        row = {"bits": bits, "weight_levels": qn.info["weight_levels"], "activation_levels": qn.info["activation_levels"],
               "quant_accuracy": float((q_pred == y).mean()), "quant_vs_dnn": float((q_pred == dnn_pred).mean())}
        try:
            ir = compile_quant(qn)
        except UserError:
            row.update({"compiled": False, **estimate_size(qn), "limit": MAX_COEFFICIENTS})
            res["exact"].append(row)
            print(row, flush=True)
            continue
        t1 = time.perf_counter()
        ir_pred = np.argmax(ir_scores_blas(ir, Xf), axis=1)
        sample = rng.choice(len(X), size=min(50, len(X)), replace=False)
        row.update({"compiled": True, **ir_size(ir), "ir_vs_quant": float((ir_pred == q_pred).mean()),
                    "ir_reference_semantics_sample_agree": bool(np.array_equal(ir.predict(Xf[sample]), q_pred[sample])),
                    "ir_eval_seconds": time.perf_counter() - t1, "seconds": time.perf_counter() - t0})
        res["exact"].append(row)
        print(row, flush=True)

    t1 = ["| BNN (distilled) | layers initialised from the DNN | epochs | BNN accuracy | DNN accuracy | fidelity |",
          "|---|---|---:|---:|---:|---:|"]
    t1 += [f"| {r['bnn_arch']} | {r['init_layers']} | {r['epochs']} | {r['accuracy']:.4f} | "
           f"{r['dnn_accuracy']:.4f} | {r['fidelity']:.4f} |" for r in res["distill"]]
    t2 = ["| K | weights | activations | K-bit accuracy | K-bit vs DNN | IR neurons | IR weights (non-zero) | IR vs K-bit |",
          "|---:|---|---|---:|---:|---:|---:|---:|"]
    for r in res["exact"]:
        size = (f"{r['neurons']:,} | {r['entries']:,} ({r['nonzeros']:,}) | {r['ir_vs_quant']:.4f}" if r["compiled"]
                else f"{r['neurons']:,} | {r['entries']:,} (over the {MAX_COEFFICIENTS:,} limit) | not built")
        t2.append(f"| {r['bits']} | ±{r['weight_levels']} | 0..{r['activation_levels']} | {r['quant_accuracy']:.4f} | "
                  f"{r['quant_vs_dnn']:.4f} | {size} |")
    head = (f"{data_name}, float {dnn.describe()} ({dnn_epochs} epochs): test accuracy {res['dnn_accuracy']:.4f} "
            f"on {len(y)} test inputs")
    text = "\n".join([head, "", *t1, "", *t2]) + "\n"
    print(text)
    write_json(args.json or OUT / f"dnn2bnn-{data_name}.json", res)
    write_text(out_dir / f"{tag}.md", text)


if __name__ == "__main__":
    main()
