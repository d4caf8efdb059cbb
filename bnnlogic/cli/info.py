"""`bnnlogic info`: layers, parameters, non-zero coefficients, storage, input coding."""
from __future__ import annotations

from ..model import load
from ..summary import summarize
from ._common import add_json_flag, emit


def register(sub) -> None:
    p = sub.add_parser("info", help="describe a model: layers, weights, storage, input coding")
    p.add_argument("model", help="model file")
    p.add_argument("--eps", type=int, help="also report how verification-friendly the model is at this eps "
                                           "(raw units): stable-neuron fraction and CNF size of robustness "
                                           "queries around test inputs")
    p.add_argument("--n", type=int, default=100, help="test inputs for --eps (CNF size: the first 10)")
    p.add_argument("--data-dir", help="folder with the data set's IDX files")
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
    s.update(stable_fraction=None, clauses=None)
    if args.eps is not None:
        from ..data import load_dataset
        from ..summary import verification_profile

        X = load_dataset(model.meta.get("dataset", "digits"), args.data_dir).X_test[: args.n]
        v = verification_profile(model, X.reshape(len(X), -1), args.eps)
        s.update(v)
        lines.append(f"at eps {args.eps} over {v['inputs']} test inputs: {100 * v['stable_fraction']:.1f}% of "
                     f"hidden neurons stable; robustness query {v['variables']} variables, {v['clauses']} clauses "
                     f"(median, totalizer CNF)")
    emit(s, args.json, "\n".join(lines))
    return 0
