"""`bnnlogic predict`: classes and exact integer scores for raw inputs."""
from __future__ import annotations

from ..model import load
from ._common import add_json_flag, emit, load_array


def register(sub) -> None:
    p = sub.add_parser("predict", help="predict classes for raw inputs in a .npy file",
                       description="Predict classes and exact integer scores. X holds raw features, "
                                   "shape (n, d) or one row (d,).")
    p.add_argument("model", help="model file")
    p.add_argument("--input", required=True, help="X.npy with raw integer features")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    model = load(args.model)
    X = model.check_inputs(load_array(args.input))
    scores = model.engine.scores(X)
    pred = scores.argmax(axis=1)
    emit({"predictions": pred.tolist(), "scores": scores.tolist()}, args.json,
         "\n".join(f"{i}: {model.classes[p]} ({p})" for i, p in enumerate(pred)))
    return 0
