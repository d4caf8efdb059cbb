"""`bnnlogic train`: train a BNN and save its exact integer form."""
from __future__ import annotations

from ..data import NAMES, load_dataset
from ..spec import ALIASES, parse_arch
from ._common import add_json_flag, emit


def register(sub) -> None:
    p = sub.add_parser("train", help="train a BNN and save it as one model file",
                       description="Train a binarized network on a data set and save its exact integer "
                                   "form (IR) with the trained parameters. Prints test accuracy and the "
                                   "IR's agreement with the trained network (always 1.0).")
    p.add_argument("--data", required=True, choices=NAMES, help="data set")
    p.add_argument("--data-dir", help="folder with the data set's IDX files")
    p.add_argument("--arch", default="mlp:100,100",
                   help=f"architecture spec, e.g. mlp:500,300,200,100, cnn:c16k4s2,c32k4s2,d100, or {', '.join(ALIASES)}")
    p.add_argument("--coding", default="levels:3",
                   help="input coding: threshold:T | thermometer:T1,T2,.. | levels:M (default levels:3) | "
                        "quantized:N (the EEV work's input quantizer: N values, first-layer weights shared by a "
                        "feature's levels)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--lr", type=float, default=1e-2)
    p.add_argument("--scale", action="store_true", help="XNOR-Net per-channel scale alpha = mean|W|")
    p.add_argument("--stochastic", action="store_true", help="stochastic binarization of activations in training")
    p.add_argument("--ternary", type=float, metavar="PCT",
                   help="ternary weights: zero band = this percentile of |w| per layer (e.g. 40)")
    p.add_argument("--binmask", type=float, metavar="DECAY",
                   help="ternary weights with the EEV work's learned mask (BinMask): weight sign(w) [m >= 0], masks "
                        "pushed towards pruning by DECAY (e.g. 1e-5)")
    p.add_argument("--weight-decay", type=float, default=0.0, help="Adam's L2 weight decay (default 0)")
    p.add_argument("--preset", help="verification-friendly training: plain | ternary | l1-ternary | "
                                    "stablesign-ternary | stablesign-l1-ternary | stablesign-sparse (fewest "
                                    "coefficients at the plain net's accuracy; stored in the model's metadata)")
    p.add_argument("--stable-eps", type=float, metavar="E",
                   help="StableSign's eps in raw feature units (stablesign presets; default: 2%% of the data's "
                        "range, at least 1: 5 on pixels 0..255, 1 on digits 0..16)")
    p.add_argument("--init", metavar="NET",
                   help="start from a pretrained full-precision network (.pt from bnnlogic.nn.floatnet or .onnx) "
                        "where shapes match: --arch with its hidden sizes (the first layer is tiled over the "
                        "coding's levels); the recipe of the SAT-friendly BNN work")
    p.add_argument("--out", required=True, help="model file to write (e.g. model.bnn)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    parse_arch(args.arch)  # fail fast on a bad spec, before importing torch
    if args.epochs < 1:
        from ..errors import UserError
        raise UserError("--epochs must be at least 1")
    from ..nn import train
    from ..nn.presets import get_preset

    if args.preset is not None or args.stable_eps is not None:
        get_preset(args.preset or "plain", args.stable_eps)  # fail fast, before loading data
    if (args.preset is not None) + (args.ternary is not None) + (args.binmask is not None) > 1:
        from ..errors import UserError
        raise UserError("--preset, --ternary and --binmask each set the weights; use one of them")
    data = load_dataset(args.data, args.data_dir)
    dnn = None
    if args.init is not None:
        from ..nn.floatnet import load_float
        dnn = load_float(args.init, data.feature_shape)

    quant = {"mode": "ternary", "percentile": args.ternary} if args.ternary is not None else \
        {"mode": "binmask", "decay": args.binmask} if args.binmask is not None else None
    model = train(data, args.arch, epochs=args.epochs, seed=args.seed, coding=args.coding, quant=quant,
                  scale=args.scale, stochastic=args.stochastic, batch_size=args.batch_size, lr=args.lr,
                  init_from=dnn, preset=args.preset, stable_eps=args.stable_eps, weight_decay=args.weight_decay)
    model.save(args.out)
    m = model.meta
    out = {"model": args.out, "data": m["dataset"], "split": m["split"], "arch": m["arch"],
           "accuracy": m["test_accuracy"], "n": m["test_n"], "ir_agreement": m["ir_agreement"],
           "seconds_per_epoch": m["training"]["seconds_per_epoch"], "preset": m["preset"],
           "init_from_layers": m["init_from_layers"]}
    emit(out, args.json, f"saved {args.out}: test accuracy {out['accuracy']:.4f} on {out['n']} inputs, "
                         f"IR agreement {out['ir_agreement']:.4f}, {out['seconds_per_epoch']:.2f} s/epoch")
    return 0
