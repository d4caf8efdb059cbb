"""`bnnlogic info`: layers, parameters, non-zero coefficients, storage, input coding."""
from __future__ import annotations

from ..model import load
from ..summary import summarize
from ._common import add_json_flag, emit


def register(sub) -> None:
    p = sub.add_parser("info", help="describe a model: layers, weights, storage, input coding")
    p.add_argument("model", help="model file")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    model = load(args.model)
    s = summarize(model)
    lines = [f"{args.model}: {s['arch']} on {s['dataset']}",
             f"input: {s['input']['feature_shape']} in {s['input']['domain']}, {s['input']['levels']} level(s) "
             f"-> {s['input']['bits']} bits, thresholds {s['input']['thresholds']}"]
    for layer in s["layers"]:
        extra = f"{layer['neurons']} neurons, {layer['nonzero']}/{layer['weights']} non-zero" if "weights" in layer else ""
        lines.append(f"  {layer['kind']:8s} {layer['in_shape']} -> {layer['out_shape']}  {extra}")
        if "filters" in layer:
            f = layer["filters"]
            lines.append(f"           filters: {f['distinct']} distinct of {f['total']} (of {f['possible']} possible), "
                         f"{f['negated_pairs']} negation pairs -> {f['distinct_up_to_sign']} up to sign")
    lines.append(f"parameters {s['parameters']}, non-zero {s['nonzero']}; storage {s['storage_bytes']} bytes "
                 f"vs float32 {s['float32_bytes']} bytes ({s['compression']:.1f}x)")
    emit(s, args.json, "\n".join(lines))
    return 0
