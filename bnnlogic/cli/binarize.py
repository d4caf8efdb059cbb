"""`bnnlogic binarize`: a user's float network -> a BNN, by distillation or exact compilation."""
from __future__ import annotations

import os

from ..data import NAMES, load_dataset
from ..errors import UserError
from ._common import add_json_flag, emit


def register(sub) -> None:
    p = sub.add_parser("binarize", help="turn a float network (.pt/.onnx) into a BNN model file",
                       description="Distil a float network into a BNN (initialised from its weights, trained to "
                                   "imitate its output distribution; --alpha < 1 mixes in the labels) and report "
                                   "accuracy and fidelity (agreement with the float network) on the test split. "
                                   "With --exact-bits K, "
                                   "instead quantize the network to K-bit weights and activations and compile it "
                                   "exactly into threshold neurons: the model predicts what the K-bit network "
                                   "predicts on every input.")
    p.add_argument("network", help="float network: .pt (bnnlogic-floatnet: spec + state dict) or .onnx")
    p.add_argument("--data", required=True, choices=NAMES, help="data set")
    p.add_argument("--data-dir", help="folder with the data set's IDX files")
    p.add_argument("--arch", default="same", help="BNN architecture spec, or 'same' (the float network's shape)")
    p.add_argument("--coding", default="levels:3",
                   help="BNN input coding (distillation; default levels:3); more levels (e.g. levels:15) give "
                        "higher fidelity at a wider first layer")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--temperature", type=float, default=1.0, help="distillation temperature T (default 1)")
    p.add_argument("--alpha", type=float, default=1.0,
                   help="weight of the distillation term, the rest is cross-entropy on the labels (default 1: "
                        "pure imitation of the float network)")
    p.add_argument("--no-init", action="store_true", help="do not initialise the BNN from the float weights")
    p.add_argument("--input-scale", type=float, default=1.0,
                   help="the network expects raw features times this (e.g. 0.00392 for pixels/255)")
    p.add_argument("--exact-bits", type=int, metavar="K",
                   help="exact compilation of the K-bit quantized network (K = 1..8) instead of distillation")
    p.add_argument("--percentile", type=float, default=99.9,
                   help="activation range calibration percentile for --exact-bits (default 99.9)")
    p.add_argument("--out", required=True, help="model file to write")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    if args.exact_bits is not None and not 1 <= args.exact_bits <= 8:
        raise UserError(f"--exact-bits must be an integer from 1 to 8, got {args.exact_bits}")
    if args.epochs < 1:
        raise UserError("--epochs must be at least 1")
    if not os.path.isfile(args.network):
        raise UserError(f"{args.network}: no such network file (give a .pt or .onnx file)")
    data = load_dataset(args.data, args.data_dir)
    from ..nn.floatnet import load_float

    dnn = load_float(args.network, data.feature_shape, args.input_scale)
    if args.exact_bits is not None:
        model = exact_model(dnn, data, args.exact_bits, args.percentile)
    else:
        from ..nn.distill import distill

        model = distill(dnn, data, args.arch, args.epochs, args.seed, args.coding, args.temperature, args.alpha,
                        args.lr, init=not args.no_init, progress=not args.json)
    model.meta["source"] = os.path.basename(args.network)
    model.save(args.out)
    m = model.meta
    out = {"model": args.out, "data": m["dataset"], "arch": m["arch"], "accuracy": m["test_accuracy"],
           "dnn_accuracy": m["dnn_test_accuracy"], "fidelity": m["fidelity"], "n": m["test_n"]}
    if args.exact_bits is not None:
        out.update({"bits": args.exact_bits, "quant_agreement": m["ir_agreement"], **m["size"]})
        text = (f"saved {args.out}: exact {args.exact_bits}-bit compilation, {m['size']['neurons']} neurons, "
                f"agreement with the {args.exact_bits}-bit network {m['ir_agreement']:.4f}, accuracy "
                f"{out['accuracy']:.4f} (float {out['dnn_accuracy']:.4f}), fidelity {out['fidelity']:.4f}")
    else:
        text = (f"saved {args.out}: BNN {m['arch']} accuracy {out['accuracy']:.4f} (float {out['dnn_accuracy']:.4f}), "
                f"fidelity {out['fidelity']:.4f} on {out['n']} test inputs")
    emit(out, args.json, text)
    return 0


def exact_model(dnn, data, bits: int, percentile: float = 99.9, n_calib: int = 10000):
    """Quantize ``dnn`` to ``bits`` bits, compile it exactly, measure it on the test split."""
    import numpy as np

    from ..model import Model
    from ..nn.floatnet import float_predict
    from ..quant import compile_quant, ir_scores_blas, ir_size, quantize

    rng = np.random.default_rng(0)
    calib = data.X_train[np.sort(rng.permutation(len(data.X_train))[:n_calib])]
    q = quantize(dnn, bits, calib, data.lo, data.hi, percentile=percentile)
    ir = compile_quant(q)
    X, y = data.X_test, data.y_test
    q_pred = q.predict(X)
    ir_pred = np.argmax(ir_scores_blas(ir, X.reshape(len(X), -1).astype(np.int64)), axis=1)
    dnn_pred = float_predict(dnn, X)
    meta = {"dataset": data.name, "split": data.split, "classes": data.classes,
            "arch": f"exact-{bits}bit({dnn.describe()})", "exact_bits": bits,
            "quant": dict(q.info),
            "test_accuracy": float((ir_pred == y).mean()), "test_n": int(len(y)),
            "ir_agreement": float((ir_pred == q_pred).mean()),
            "fidelity": float((ir_pred == dnn_pred).mean()),
            "dnn_test_accuracy": float((dnn_pred == y).mean()), "size": ir_size(ir)}
    return Model(ir, meta)
