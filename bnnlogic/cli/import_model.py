"""`bnnlogic import`: a BNN trained elsewhere (PyTorch, TorchScript, QONNX / Brevitas) as an exact model file."""
from __future__ import annotations

from ..data import NAMES
from ..errors import UserError
from ..interop import READERS, import_model
from ..interop.mapping import load_mapping
from ._common import add_json_flag, emit


def register(sub) -> None:
    p = sub.add_parser(
        "import", help="import a BNN trained elsewhere (PyTorch state dict / TorchScript, QONNX from Brevitas)",
        description="Read a BNN trained in another tool and write its exact integer form (a .bnn model file). "
                    "Reports the agreement of the import with the source's own float32 inference on a data set's "
                    "test split (--data) or on random raw inputs, and names every neuron that float32 rounding "
                    "may decide either way in the source itself (ambiguous_neurons). A state dict does not say "
                    "strides, padding, pooling or how raw inputs become bits: give them in a --mapping JSON file "
                    "(format in docs/import.md).")
    p.add_argument("source", help="the source file (.pt / .pth state dict or TorchScript, .onnx QONNX)")
    p.add_argument("--out", required=True, help="model file to write (.bnn)")
    p.add_argument("--kind", choices=sorted(READERS), help="the source's kind (default: detected from the file)")
    p.add_argument("--mapping", help="JSON: which tensor is which layer, input shape / domain / binarization")
    p.add_argument("--data", choices=NAMES, help="data set whose test split measures agreement (and gives the "
                                                  "raw input shape and domain)")
    p.add_argument("--data-dir", help="folder with the data set's IDX files")
    p.add_argument("--input-shape", help="raw input shape, e.g. 1,28,28 (without --data or a mapping's input.shape)")
    p.add_argument("--domain", help="raw feature domain lo,hi (default 0,255)")
    p.add_argument("--divide", type=float, help="the source's input is raw / DIVIDE (default: hi, e.g. 255)")
    p.add_argument("--random", type=int, default=2000, help="random raw inputs for the agreement without --data")
    p.add_argument("--seed", type=int, default=0)
    add_json_flag(p)
    p.set_defaults(func=run)


def _ints(spec: str | None, what: str, n: int | None = None) -> tuple[int, ...] | None:
    if spec is None:
        return None
    try:
        out = tuple(int(v) for v in spec.split(","))
    except ValueError:
        raise UserError(f"{what} {spec!r}: give comma-separated integers") from None
    if n is not None and len(out) != n:
        raise UserError(f"{what} {spec!r}: give {n} integers")
    return out


def run(args) -> int:
    mapping = load_mapping(args.mapping)
    if args.divide is not None:
        mapping.setdefault("input", {})["divide"] = args.divide
    res = import_model(args.source, mapping, args.kind, args.data, args.data_dir,
                       _ints(args.input_shape, "--input-shape"), _ints(args.domain, "--domain", 2), args.random,
                       args.seed)
    res.model.save(args.out)
    r = dict(res.report, out=args.out)
    amb = r["ambiguous_neurons"]
    agree = "n/a" if r["agreement"] is None else f"{r['agreement']:.4f}"
    text = (f"imported {r['kind']} ({', '.join(r['layers'])} -> {r['n_classes']} classes) to {args.out} in "
            f"{r['seconds']['total']:.2f} s; agreement with the source {agree} on {r['agreement_data']}; "
            f"{len(amb)} ambiguous neuron(s)")
    if amb:
        text += ": " + ", ".join(f"layer {a['layer']} " + (f"neuron {a['neuron']}" if "neuron" in a else f"classes {a['classes']}")
                                 for a in amb[:10]) + (" ..." if len(amb) > 10 else "")
    emit(r, args.json, text)
    return 0
