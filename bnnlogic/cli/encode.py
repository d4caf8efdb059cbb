"""`bnnlogic encode`: write a robustness query as DIMACS CNF plus a variable map."""
from __future__ import annotations

from ..logic import encode
from ..logic.backends import ENCODINGS
from ..logic.dimacs import write_dimacs
from ..model import load
from ._common import add_json_flag, emit, load_array


def register(sub) -> None:
    p = sub.add_parser("encode", help="export a robustness query as DIMACS CNF (+ JSON variable map)",
                       description="The CNF is satisfiable iff some raw input within eps of the given input "
                                   "is predicted outside {label}. OUT.map.json maps variables to raw feature "
                                   "thresholds (x[f] >= t) and neurons; bnnlogic.logic.dimacs.decode_model "
                                   "turns a solver's model back into a raw input.")
    p.add_argument("model", help="model file")
    p.add_argument("--input", required=True, help="raw input (.npy)")
    p.add_argument("--eps", type=int, required=True, help="raw-unit radius (L-inf) or feature budget (L0)")
    p.add_argument("--norm", choices=("linf", "l0"), default="linf")
    p.add_argument("--label", type=int, help="class to keep (default: the model's prediction)")
    p.add_argument("--encoding", choices=ENCODINGS, default="totalizer", help="cardinality encoding")
    p.add_argument("--no-bounds", action="store_true", help="skip bound propagation (encode every neuron)")
    p.add_argument("--out", required=True, help="output .cnf file")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..verification import make_region

    model = load(args.model)
    x = model.check_inputs(load_array(args.input))[0]
    label = int(model.predict(x[None])[0]) if args.label is None else args.label
    R = make_region(model, x, args.eps, args.norm)
    bad = [c for c in range(model.ir.n_classes) if c != label]
    enc = encode(model.ir, R, [[(0, bad)]], use_bounds=not args.no_bounds)
    size = write_dimacs(enc, args.out, args.encoding)
    d = {"out": args.out, "map": args.out + ".map.json", "label": label, **size,
         "neurons": enc.stats["neurons"], "fixed_by_bounds": enc.stats["fixed_by_bounds"]}
    emit(d, args.json, f"wrote {args.out} ({size['variables']} variables, {size['clauses']} clauses) "
                       f"and {d['map']}")
    return 0
