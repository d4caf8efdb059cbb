"""`bnnlogic encode`: write a robustness query for other solvers (DIMACS, OPB, WCNF, VNN-LIB)."""
from __future__ import annotations

from ..errors import UserError
from ..logic.backends import ENCODINGS
from ..model import load
from ._common import add_json_flag, emit, load_array

FORMATS = ("dimacs", "opb", "wcnf", "vnnlib")


def register(sub) -> None:
    p = sub.add_parser("encode", help="export a robustness query as DIMACS, OPB, WCNF or VNN-LIB (+ variable map)",
                       description="dimacs (CNF) and opb (one linear constraint per neuron, for pseudo-Boolean "
                                   "solvers) are satisfiable iff some raw input within eps of the given input is "
                                   "predicted outside {label}. wcnf is the minimal-perturbation problem for MaxSAT "
                                   "solvers: hard clauses = the network over the box of radius --eps (default: the "
                                   "whole domain), one soft unit clause 'eps <= e' per e < --eps; the optimum cost "
                                   "is the smallest radius with a counterexample (hard UNSAT: robust up to --eps). "
                                   "OUT.map.json maps variables to raw feature thresholds (x[f] >= t) and neurons; "
                                   "bnnlogic.logic.dimacs.decode_model turns a solver's model back into a raw "
                                   "input. vnnlib writes the property (input box in raw units, output condition "
                                   "on the integer scores, ties as the model breaks them) and, beside it, the "
                                   "model as ONNX (OUT with suffix .onnx), as VNN-COMP benchmarks come.")
    p.add_argument("model", help="model file")
    p.add_argument("--input", required=True, help="raw input (.npy)")
    p.add_argument("--eps", type=int, help="raw-unit radius (L-inf) or feature budget (L0); for wcnf the "
                                           "largest radius (default: the domain's width)")
    p.add_argument("--norm", choices=("linf", "l0"), default="linf")
    p.add_argument("--label", type=int, help="class to keep (default: the model's prediction)")
    p.add_argument("--format", choices=FORMATS, default="dimacs", help="output format (default dimacs)")
    p.add_argument("--encoding", choices=ENCODINGS, default="totalizer", help="cardinality encoding (dimacs, wcnf)")
    p.add_argument("--no-bounds", action="store_true", help="skip bound propagation (encode every neuron)")
    p.add_argument("--out", required=True, help="output file (.cnf, .opb, .wcnf or .vnnlib)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..logic import encode
    from ..logic.dimacs import write_dimacs
    from ..verification import make_region

    model = load(args.model)
    x = model.check_inputs(load_array(args.input))[0]
    label = int(model.predict(x[None])[0]) if args.label is None else args.label
    if not 0 <= label < model.ir.n_classes:
        raise UserError(f"--label {label}: the model has classes 0..{model.ir.n_classes - 1}")
    if args.format == "wcnf":
        return _wcnf(model, x, label, args)
    if args.eps is None:
        raise UserError(f"--format {args.format} needs --eps (the region's radius in raw units)")
    R = make_region(model, x, args.eps, args.norm)
    bad = [c for c in range(model.ir.n_classes) if c != label]
    d = {"out": args.out, "format": args.format, "label": label}
    if args.format == "vnnlib":
        from ..interop.vnnlib import write_vnnlib

        if R.l0 is not None:
            raise UserError("VNN-LIB states boxes: use --norm linf with --format vnnlib")
        d.update(write_vnnlib(model, R, [label], args.out))
        emit(d, args.json, f"wrote {d['out']} and the model beside it, {d['onnx']}")
        return 0
    enc = encode(model.ir, R, [[(0, bad)]], use_bounds=not args.no_bounds)
    if args.format == "opb":
        from ..interop.opb import write_opb

        size = write_opb(enc, args.out, f"bnnlogic robustness query: eps {args.eps} ({args.norm}), label {label}")
        text = f"({size['variables']} variables, {size['constraints']} constraints)"
    else:
        size = write_dimacs(enc, args.out, args.encoding)
        text = f"({size['variables']} variables, {size['clauses']} clauses)"
    d.update(map=args.out + ".map.json", **size, neurons=enc.stats["neurons"],
             fixed_by_bounds=enc.stats["fixed_by_bounds"])
    emit(d, args.json, f"wrote {args.out} {text} and {d['map']}")
    return 0


def _wcnf(model, x, label: int, args) -> int:
    from ..interop.wcnf import radius_encoding, write_wcnf

    if args.norm != "linf":
        raise UserError("--format wcnf is the minimal L-inf perturbation: use --norm linf")
    c = model.ir.coding
    max_eps = c.hi - c.lo if args.eps is None else args.eps
    if not 0 <= max_eps <= c.hi - c.lo:
        raise UserError(f"--eps must be an integer in [0, {c.hi - c.lo}] (raw feature units), got {max_eps}")
    problem = radius_encoding(model, x, max_eps, label, use_bounds=not args.no_bounds)
    size = write_wcnf(problem, args.out, args.encoding)
    d = {"out": args.out, "format": "wcnf", "label": label, "max_eps": max_eps, "map": args.out + ".map.json",
         **size, "neurons": problem.encoding.stats["neurons"],
         "fixed_by_bounds": problem.encoding.stats["fixed_by_bounds"]}
    emit(d, args.json, f"wrote {args.out} ({size['variables']} variables, {size['hard']} hard and {size['soft']} "
                       f"soft clauses: radius <= {max_eps}) and {d['map']}")
    return 0
