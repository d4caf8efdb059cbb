"""`bnnlogic cascade build|eval`: two BNNs (lower/upper) in front of a float network for "class C vs rest"."""
from __future__ import annotations

import os

from ..data import NAMES, load_dataset
from ..errors import UserError
from ._common import add_json_flag, emit


def register(sub) -> None:
    p = sub.add_parser("cascade", help="two-BNN bounding cascade in front of a float network (yes/no task)",
                       description="A lower BNN says yes only when confident, an upper BNN says no only when "
                                   "confident; the cascade answers from them and falls back to the float network "
                                   "otherwise. The pair's consistency (never lower=yes while upper=no) is proved "
                                   "over the whole input domain by a SAT miter.")
    cs = p.add_subparsers(dest="cascade_cmd", metavar="{build,eval}")
    cs.required = True

    b = cs.add_parser("build", help="train, calibrate and prove a cascade; write a folder")
    b.add_argument("network", help="float network: .pt (bnnlogic-floatnet) or .onnx")
    b.add_argument("--data", required=True, choices=NAMES)
    b.add_argument("--data-dir", help="folder with the data set's IDX files")
    b.add_argument("--positive", required=True, help="the 'yes' class: an index or a class name")
    b.add_argument("--out", required=True, help="cascade folder to write")
    b.add_argument("--arch", default="mlp:100", help="architecture of both BNNs (default mlp:100)")
    b.add_argument("--coding", default="levels:3")
    b.add_argument("--epochs", type=int, default=10)
    b.add_argument("--weight", type=float, default=4.0,
                   help="asymmetric loss weight: cost of a false yes (lower) / false no (upper); default 4")
    b.add_argument("--shared", action="store_true",
                   help="one BNN, two calibrated thresholds: consistent by construction (no --weight)")
    b.add_argument("--holdout", type=float, default=0.5,
                   help="fraction of the training split held out from training to calibrate the thresholds on "
                        "(default 0.5): bounds the disagreements with the DNN on new inputs from the same "
                        "distribution (split conformal: P(false yes) <= 1/(held-out DNN-no inputs + 1), likewise "
                        "for no); 0 trains and calibrates on all of it (exact there, no bound on new inputs)")
    b.add_argument("--ensemble", type=int, default=1,
                   help="each BNN is the score sum of this many BNNs trained with consecutive seeds, as one exact "
                        "network (dense --arch only; default 1): steadier thresholds, more coverage, K times the work")
    b.add_argument("--guard", type=int, default=0,
                   help="integer margin units the calibration keeps to spare on each side (more: fewer inputs "
                        "decided; default 0)")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--input-scale", type=float, default=1.0,
                   help="the network expects raw features times this (e.g. 0.00392 for pixels/255)")
    b.add_argument("--timeout", type=float, default=60.0, help="time limit of the consistency proof (s)")
    add_json_flag(b)
    b.set_defaults(func=run_build)

    e = cs.add_parser("eval", help="coverage, fidelity, accuracy, speed-up and the consistency verdict")
    e.add_argument("cascade", help="cascade folder (from `bnnlogic cascade build`)")
    e.add_argument("--data", required=True, choices=NAMES)
    e.add_argument("--data-dir")
    e.add_argument("--prove", action="store_true", help="re-run the consistency proof instead of reading it")
    e.add_argument("--timeout", type=float, default=60.0, help="time limit of a re-run consistency proof (s)")
    e.add_argument("--region-eps", type=int, default=1, help="eps of the region checks (raw units; default 1)")
    e.add_argument("--region-n", type=int, default=5, help="test inputs whose eps-box is checked (0: none)")
    e.add_argument("--region-timeout", type=float, default=10.0, help="time limit per region proof (s)")
    add_json_flag(e)
    e.set_defaults(func=run_eval)


def _positive(value: str, classes: list[str]) -> int:
    if value.lstrip("-").isdigit():
        c = int(value)
        if not 0 <= c < len(classes):
            raise UserError(f"--positive {c}: the data set has classes 0..{len(classes) - 1}")
        return c
    names = [c.lower() for c in classes]
    if value.lower() not in names:
        raise UserError(f"--positive {value!r}: not a class; give an index 0..{len(classes) - 1} or one of "
                        + ", ".join(classes))
    return names.index(value.lower())


def run_build(args) -> int:
    from ..cascade import consistent

    if args.epochs < 1:
        raise UserError("--epochs must be at least 1")
    if args.ensemble < 1:
        raise UserError(f"--ensemble {args.ensemble}: give a number of BNNs >= 1")
    if args.guard < 0:
        raise UserError(f"--guard {args.guard}: give a non-negative integer")
    if not 0 <= args.holdout < 1:
        raise UserError(f"--holdout {args.holdout}: give a fraction in [0, 1), e.g. 0.5")
    if not os.path.isfile(args.network):
        raise UserError(f"{args.network}: no such network file (give a .pt or .onnx file)")
    data = load_dataset(args.data, args.data_dir)
    positive = _positive(args.positive, data.classes)
    from ..nn.cascade_train import build_cascade
    from ..nn.floatnet import load_float

    dnn = load_float(args.network, data.feature_shape, args.input_scale)
    c = build_cascade(dnn, data, positive, args.arch, args.epochs, args.weight, args.seed, args.coding,
                      dnn_path=args.network, input_scale=args.input_scale, shared=args.shared,
                      guard=args.guard, holdout=args.holdout, ensemble=args.ensemble,
                      progress=not args.json)
    c.meta["consistency"] = consistent(c, args.timeout)
    c.save(args.out)
    v, g = c.meta["consistency"], c.meta.get("guarantee")
    out = {"cascade": args.out, "data": data.name, "positive": positive, "positive_name": data.classes[positive],
           "arch": args.arch, "lower_shift": c.lower.meta["calibration"]["offset_shift"],
           "upper_shift": c.upper.meta["calibration"]["offset_shift"],
           "guard": [c.lower.meta["calibration"]["guard"], c.upper.meta["calibration"]["guard"]],
           "consistent": v["status"],
           "consistency": v, "guarantee": g}
    bound = (f"; on new inputs like the {g['calibrated_on']} held-out ones: P(false yes) <= {g['false_yes_rate']:.2g}, "
             f"P(false no) <= {g['false_no_rate']:.2g}" if g else "")
    emit(out, args.json, f"saved {args.out}: {data.classes[positive]!r} vs rest, BNNs {args.arch}; "
                         f"consistency over the whole input domain: {v['status']} ({v['time_s']:.1f} s){bound}")
    return 0


def run_eval(args) -> int:
    import numpy as np

    from ..cascade import Cascade, consistent, evaluate, region_decided

    if args.region_n < 0 or args.region_eps < 0:
        raise UserError("--region-n and --region-eps must be non-negative")
    c = Cascade.load(args.cascade)
    data = load_dataset(args.data, args.data_dir)
    if c.meta.get("dataset") not in (None, data.name):
        raise UserError(f"{args.cascade} was built for {c.meta['dataset']!r}, not {data.name!r}")
    res = evaluate(c, data.X_test, data.y_test)
    v = consistent(c, args.timeout) if args.prove or "consistency" not in c.meta else c.meta["consistency"]
    res.update({"consistent": v["status"], "consistency": v, "cascade": args.cascade, "data": data.name,
                "positive_name": c.meta.get("positive_name")})
    if args.region_n:
        idx = np.linspace(0, len(data.X_test) - 1, args.region_n).astype(int)
        res["region_decided"] = {"eps": args.region_eps, "inputs": idx.tolist(),
                                 "answers": [region_decided(c, data.X_test[i], args.region_eps, args.region_timeout)
                                             for i in idx]}
    text = (f"{res['positive_name']!r} vs rest on {res['n']} test inputs: coverage {res['coverage']:.4f}, "
            f"fidelity {res['fidelity'] if res['fidelity'] is None else round(res['fidelity'], 4)}, accuracy "
            f"{res['accuracy']:.4f} (DNN {res['dnn_accuracy']:.4f}), speed-up {res['speedup']:.2f}x, "
            f"consistent: {v['status']}")
    if "guarantee" in res:
        text += (f"\ndisagreements with the DNN: {res['disagreements']} (expected at most "
                 f"{res['guarantee']['expected_disagreements_at_most']:.2f} on inputs drawn like the calibration ones)")
    if "region_decided" in res:
        text += f"\nregions (eps {args.region_eps}): " + ", ".join(res["region_decided"]["answers"])
    emit(res, args.json, text)
    return 0
