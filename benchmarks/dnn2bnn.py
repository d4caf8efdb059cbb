"""From a float network to BNNs: distillation and exact compilation of K-bit networks.

    python benchmarks/dnn2bnn.py [--quick] [--json PATH]

1. trains a float ReLU MLP (``--dnn-arch``, default mlp:256,128 = 784-256-128-10) on
   Fashion-MNIST (``--quick``: digits, mlp:64,32), exports it as ``.pt`` and ``.onnx`` and
   checks both files load back to the same predictions;
2. distils it into BNNs (``--bnn-arch``, default: ``same`` shape as the float network, and
   mlp-small = 784-200-100-100-100-10; input coding ``--distill-coding``, default levels:3)
   from the ``.pt`` file: BNN accuracy and fidelity
   (agreement with the float network) on the test split, with and without initialisation
   from the float weights where any layer's shape matches;
3. quantizes the ``.onnx`` network to K bits for each ``--bits`` K and compiles it exactly:
   neurons and weights of the IR, accuracy, agreement of the K-bit net with the float
   network, and agreement of the compiled IR with the K-bit reference on the whole test
   split (must be 1.0; also checked with the IR's reference semantics on a sample), and the
   seconds the numba engine takes for the test split (its scores must equal the IR's);
4. builds a two-BNN cascade in front of the float network for each ``--cascade-positive`` class
   (``bnnlogic.nn.cascade_train.build_cascade``, as ``bnnlogic cascade build --shared``: one BNN,
   the score sum of ``--cascade-ensemble`` (default 3) BNNs ``--cascade-arch``, trained on half
   of the training split, calibrated on the other half),
   proves its consistency over the whole input domain and evaluates it on the test split
   (``bnnlogic.cascade.evaluate``): coverage, fidelity on the decided inputs, disagreements and
   their split-conformal bound, accuracy, measured speed-up over the float network alone;
5. trains a small float CNN (``--cnn-arch``, default cnn:c8k4s2,p2,c16k3 = conv 8 4x4 stride 2,
   ReLU, max-pool 2, conv 16 3x3, ReLU, linear; ``--quick``: cnn:c8k3,p2,c16k2), exports it
   the same way and runs steps 3 and 4 on it (no distillation).

``--nets mlp`` or ``--nets cnn`` runs one of the two.  Prints markdown tables and writes JSON
(default benchmarks/out/dnn2bnn-<data>.json).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bnnlogic.cascade import consistent, evaluate  # noqa: E402
from bnnlogic.data import load_dataset  # noqa: E402
from bnnlogic.errors import UserError  # noqa: E402
from bnnlogic.fileio import write_json, write_text  # noqa: E402
from bnnlogic.infer import Engine  # noqa: E402
from bnnlogic.nn.cascade_train import build_cascade  # noqa: E402
from bnnlogic.nn.distill import distill  # noqa: E402
from bnnlogic.nn.floatnet import export_onnx, float_predict, load_float, save_float, train_float  # noqa: E402
from bnnlogic.quant import compile_quant, estimate_size, ir_scores_blas, ir_size, quantize  # noqa: E402
from bnnlogic.quant.compile import MAX_COEFFICIENTS  # noqa: E402
from records import add_record_argument, save_record  # noqa: E402

OUT = Path(__file__).resolve().parent / "out"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="digits, small networks (about a minute)")
    ap.add_argument("--data", default=None)
    ap.add_argument("--dnn-arch", default=None)
    ap.add_argument("--dnn-epochs", type=int, default=None)
    ap.add_argument("--bnn-arch", nargs="*", default=["same", "mlp-small"])
    ap.add_argument("--distill-epochs", type=int, default=None)
    ap.add_argument("--distill-coding", default="levels:3", help="the distilled BNNs' input coding")
    ap.add_argument("--bits", type=int, nargs="*", default=[1, 2, 3, 4])
    ap.add_argument("--nets", nargs="*", choices=["mlp", "cnn"], default=["mlp", "cnn"])
    ap.add_argument("--cnn-arch", default=None)
    ap.add_argument("--cnn-epochs", type=int, default=None)
    ap.add_argument("--cascade-positive", type=int, nargs="*", default=[9], help="classes of the cascades (none: skip)")
    ap.add_argument("--cascade-arch", default="mlp:100")
    ap.add_argument("--cascade-coding", default="levels:3")
    ap.add_argument("--cascade-ensemble", type=int, default=3, help="BNNs summed into the cascade's one BNN")
    ap.add_argument("--cascade-epochs", type=int, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", default=None)
    add_record_argument(ap)
    args = ap.parse_args()
    q = args.quick
    data_name = args.data or ("digits" if q else "fashion-mnist")
    dnn_arch = args.dnn_arch or ("mlp:64,32" if q else "mlp:256,128")
    cnn_arch = args.cnn_arch or ("cnn:c8k3,p2,c16k2" if q else "cnn:c8k4s2,p2,c16k3")
    dnn_epochs = args.dnn_epochs or (30 if q else 10)
    cnn_epochs = args.cnn_epochs or (30 if q else 5)
    distill_epochs = args.distill_epochs or (20 if q else 10)
    cascade_epochs = args.cascade_epochs or (20 if q else 5)
    out_dir = OUT / "dnn2bnn"
    out_dir.mkdir(parents=True, exist_ok=True)
    data = load_dataset(data_name)
    X, y = data.X_test, data.y_test
    res: dict = {"data": data_name, "split": data.split, "test_n": int(len(y)), "seed": args.seed,
                 "command": " ".join(sys.argv)}
    rng = np.random.default_rng(0)
    calib = data.X_train[np.sort(rng.permutation(len(data.X_train))[:10000])]
    texts = []
    for kind in args.nets:
        arch, epochs = (dnn_arch, dnn_epochs) if kind == "mlp" else (cnn_arch, cnn_epochs)
        tag = f"{data_name}-{arch.replace(':', '').replace(',', '-')}"
        r = res[kind] = {"arch": arch, "epochs": epochs}
        dnn, dnn_pred, pt, onnx_path = train_export(data, arch, epochs, args.seed, out_dir / tag, r)
        lines = [f"{data_name}, float {dnn.describe()} ({epochs} epochs): test accuracy {r['dnn_accuracy']:.4f} "
                 f"on {len(y)} test inputs", ""]
        if kind == "mlp":
            r["distill"] = distill_rows(load_float(pt, data.feature_shape), data, args.bnn_arch, distill_epochs,
                                        args.seed, out_dir, tag, args.distill_coding)
            lines += distill_table(r["distill"]) + [""]
        net = load_float(onnx_path, data.feature_shape)
        r["exact"] = [exact_row(net, data, bits, calib, dnn_pred, rng) for bits in args.bits]
        lines += exact_table(r["exact"])
        if args.cascade_positive:
            dnn = load_float(pt, data.feature_shape)
            r["cascade"] = [cascade_row(dnn, data, c, args.cascade_arch, args.cascade_coding, cascade_epochs,
                                       args.cascade_ensemble, args.seed)
                            for c in args.cascade_positive]
            lines += [""] + cascade_table(r["cascade"])
        text = "\n".join(lines) + "\n"
        write_text(out_dir / f"{tag}.md", text)
        texts.append(text)
    print("\n".join(texts))
    write_json(args.json or OUT / f"dnn2bnn-{data_name}.json", res)
    if args.record:
        rows = [{"net": kind, "part": part, **row} for kind in args.nets for part in ("distill", "exact", "cascade")
                for row in res[kind].get(part, [])]
        summary = {kind: {k: v for k, v in res[kind].items() if k not in ("distill", "exact", "cascade")}
                   for kind in args.nets} | {"data": data_name, "split": data.split, "test_n": int(len(y))}
        print("record:", save_record(f"dnn2bnn-{data_name}", summary, rows))


def train_export(data, arch: str, epochs: int, seed: int, stem: Path, r: dict):
    """Train the float network, save it as .pt and .onnx, check both reload to the same predictions."""
    t0 = time.perf_counter()
    dnn = train_float(data, arch, epochs=epochs, seed=seed, lr=3e-3)
    r["dnn_train_seconds"] = time.perf_counter() - t0
    pt, onnx_path = stem.with_suffix(".pt"), stem.with_suffix(".onnx")
    save_float(dnn, data.feature_shape, pt)
    export_onnx(dnn, onnx_path)
    X = data.X_test
    dnn_pred = float_predict(dnn, X)
    r["dnn_accuracy"] = float((dnn_pred == data.y_test).mean())
    r["pt_onnx_same_predictions"] = bool(
        np.array_equal(float_predict(load_float(pt), X), dnn_pred)
        and np.array_equal(float_predict(load_float(onnx_path, data.feature_shape), X), dnn_pred))
    print(f"float {dnn.describe()}: accuracy {r['dnn_accuracy']:.4f}; .pt/.onnx reload identical: "
          f"{r['pt_onnx_same_predictions']}", flush=True)
    return dnn, dnn_pred, pt, onnx_path


def distill_rows(teacher, data, archs, epochs: int, seed: int, out_dir: Path, tag: str, coding: str) -> list:
    rows = []
    for arch in archs:
        for init in (True, False):  # without initialisation only where it changed anything
            t0 = time.perf_counter()
            model = distill(teacher, data, arch, epochs=epochs, seed=seed, coding=coding, init=init)
            m = model.meta
            row = {"bnn_arch": m["arch"], "coding": coding, "init_layers": m["distill"]["init_layers"],
                   "epochs": epochs, "accuracy": m["test_accuracy"], "fidelity": m["fidelity"],
                   "dnn_accuracy": m["dnn_test_accuracy"], "seconds": time.perf_counter() - t0}
            rows.append(row)
            print(row, flush=True)
            if not init or not row["init_layers"]:
                break
            model.save(out_dir / f"{tag}-{arch.replace(':', '')}.bnn")
    return rows


def cascade_row(dnn, data, positive: int, arch: str, coding: str, epochs: int, k: int, seed: int) -> dict:
    """A --shared, split-calibrated cascade for ``positive`` vs rest: consistency proof, test metrics."""
    t0 = time.perf_counter()
    c = build_cascade(dnn, data, positive, arch, epochs, seed=seed, coding=coding, shared=True, holdout=0.5,
                      ensemble=k, progress=False)
    build_s = time.perf_counter() - t0
    v = consistent(c, timeout=60)
    row = {"positive": positive, "positive_name": data.classes[positive], "arch": arch, "coding": coding,
           "epochs": epochs, "ensemble": k,
           "build_seconds": build_s, "consistent": v["status"], "consistency_seconds": v["time_s"],
           **evaluate(c, data.X_test, data.y_test)}
    print({key: row[key] for key in ("positive", "coverage", "disagreements", "speedup", "consistent")}, flush=True)
    return row


def cascade_table(rows: list) -> list[str]:
    out = ["| positive class | BNN | coverage | decided yes / no | fidelity on decided "
           "| disagreements (expected at most) | accuracy (DNN) | consistent | speed-up |",
           "|---|---|---:|---:|---:|---:|---:|---|---:|"]
    for r in rows:
        name = "" if r["positive_name"] == str(r["positive"]) else " " + r["positive_name"]
        out.append(f"| {r['positive']}{name} | {r['ensemble']} x {r['arch']}, {r['coding']}, {r['epochs']} ep "
                   f"| {r['coverage']:.4f} | "
                   f"{r['decided_yes']} / {r['decided_no']} | {r['fidelity']:.4f} | {r['disagreements']} "
                   f"({r['guarantee']['expected_disagreements_at_most']:.2f}) | {r['accuracy']:.4f} "
                   f"({r['dnn_accuracy']:.4f}) | {r['consistent']}, {r['consistency_seconds']:.1f} s | "
                   f"{r['speedup']:.2f}x |")
    return out


def exact_row(net, data, bits: int, calib, dnn_pred, rng) -> dict:
    """Quantize to ``bits``, compile exactly, compare on the whole test split."""
    X, y = data.X_test, data.y_test
    Xf = X.reshape(len(X), -1).astype(np.int64)
    t0 = time.perf_counter()
    qn = quantize(net, bits, calib, data.lo, data.hi)
    q_scores = qn.scores(X)
    q_pred = np.argmax(q_scores, axis=1)
    row = {"bits": bits, "weight_levels": qn.info["weight_levels"], "activation_levels": qn.info["activation_levels"],
           "quant_accuracy": float((q_pred == y).mean()), "quant_vs_dnn": float((q_pred == dnn_pred).mean())}
    try:
        ir = compile_quant(qn)
    except UserError:
        row.update({"compiled": False, **estimate_size(qn), "limit": MAX_COEFFICIENTS})
        print(row, flush=True)
        return row
    row["compile_seconds"] = time.perf_counter() - t0
    t1 = time.perf_counter()
    ir_scores = ir_scores_blas(ir, Xf)
    ir_pred = np.argmax(ir_scores, axis=1)
    row["ir_eval_seconds"] = time.perf_counter() - t1
    row.update({"compiled": True, **ir_size(ir), "ir_vs_quant": float((ir_pred == q_pred).mean()),
                "ir_scores_equal_quant": bool(np.array_equal(ir_scores, q_scores))})
    # the IR's reference semantics (numpy einsum for conv: slow) on up to 50 test inputs, ~20 s at most
    sample, agree, t1 = rng.choice(len(X), size=min(50, len(X)), replace=False), True, time.perf_counter()
    for n, i in enumerate(sample, 1):
        agree &= bool(np.array_equal(ir.scores(Xf[i:i + 1]), q_scores[i:i + 1]))
        if time.perf_counter() - t1 > 20:
            break
    row.update({"ir_reference_semantics_sample_agree": agree, "ir_reference_semantics_sample_n": n})
    engine = Engine(ir)
    row["engine_warmup_seconds"] = engine.warm_up()
    t1 = time.perf_counter()
    e_scores = engine.scores(X)
    row["engine_seconds"] = time.perf_counter() - t1
    row["engine_scores_equal_ir"] = bool(np.array_equal(e_scores, ir_scores))
    row["seconds"] = time.perf_counter() - t0
    print(row, flush=True)
    return row


def distill_table(rows: list) -> list[str]:
    t = ["| BNN (distilled) | input coding | layers initialised from the DNN | epochs | BNN accuracy | DNN accuracy "
         "| fidelity |", "|---|---|---|---:|---:|---:|---:|"]
    return t + [f"| {r['bnn_arch']} | {r['coding']} | {r['init_layers']} | {r['epochs']} | {r['accuracy']:.4f} | "
                f"{r['dnn_accuracy']:.4f} | {r['fidelity']:.4f} |" for r in rows]


def exact_table(rows: list) -> list[str]:
    t = ["| K | weights | activations | K-bit accuracy | K-bit vs DNN | IR neurons | IR connections (non-zero) "
         "| IR weights stored | IR vs K-bit | engine s / test split |",
         "|---:|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        size = (f"{r['neurons']:,} | {r['entries']:,} ({r['nonzeros']:,}) | {r['stored']:,} | {r['ir_vs_quant']:.4f} | "
                f"{r['engine_seconds']:.2f}" if r["compiled"]
                else f"{r['neurons']:,} | {r['entries']:,} | {r['stored']:,} (over the {MAX_COEFFICIENTS:,} limit) "
                     "| not built | -")
        t.append(f"| {r['bits']} | ±{r['weight_levels']} | 0..{r['activation_levels']} | {r['quant_accuracy']:.4f} | "
                 f"{r['quant_vs_dnn']:.4f} | {size} |")
    return t


if __name__ == "__main__":
    main()
