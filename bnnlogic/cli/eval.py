"""`bnnlogic eval`: accuracy and IR agreement on a data split."""
from __future__ import annotations

from ..data import NAMES
from ..evaluate import evaluate
from ..model import load
from ._common import add_json_flag, emit


def register(sub) -> None:
    p = sub.add_parser("eval", help="accuracy of a model and its agreement with the trained network",
                       description="Run the model (bit-packed engine) on a data split; report accuracy and "
                                   "ir_agreement, the fraction of inputs where the IR predicts what the "
                                   "trained torch network predicts.")
    p.add_argument("model", help="model file")
    p.add_argument("--data", choices=NAMES, help="data set (default: the model's own)")
    p.add_argument("--data-dir", help="folder with the data set's IDX files")
    p.add_argument("--split", default="test", choices=("train", "test"))
    p.add_argument("--no-agreement", action="store_true", help="skip the torch comparison")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    res = evaluate(load(args.model), args.data, args.split, args.data_dir, agreement=not args.no_agreement)
    agree = "n/a" if res["ir_agreement"] is None else f"{res['ir_agreement']:.4f}"
    emit(res, args.json, f"{res['data']} {res['split']}: accuracy {res['accuracy']:.4f} on {res['n']} inputs, "
                         f"IR agreement {agree}, inference {1e3 * res['seconds']:.2f} ms "
                         f"(+ {res['compile_seconds']:.2f} s compiling or loading the engine, once per process)")
    return 0
