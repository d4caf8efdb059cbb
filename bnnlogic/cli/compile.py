"""`bnnlogic compile`: the model as one OBDD per class over a region's input bits."""
from __future__ import annotations

from ..errors import UserError
from ..model import load
from ._common import (add_json_flag, add_time_flags, check_time_flags, emit, exit_status, load_array,
                      progress_enabled, stop_note, Progress)


def register(sub) -> None:
    p = sub.add_parser("compile", help="compile 'prediction = c' to BDDs; sizes, times and class counts",
                       description="Knowledge compilation for small BNNs: one OBDD per class over the binary "
                                   "value bits of the raw features, on the whole domain or the L-inf box "
                                   "around --input. Reports compile time, diagram sizes and the exact number "
                                   "of raw inputs per class; stops at --max-nodes (an error) or --timeout (how far "
                                   "it got, marked incomplete).")
    p.add_argument("model", help="model file")
    p.add_argument("--input", default=None, help="x.npy: centre of the box (with --eps)")
    p.add_argument("--eps", type=int, default=None, help="box radius in raw units")
    p.add_argument("--max-nodes", type=int, default=2_000_000)
    add_time_flags(p, 300.0, per_call=False)
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..budget import Budget, Stopped, interruption
    from ..compile import compile_bdd
    from ..logic import region

    check_time_flags(args)
    model = load(args.model)
    ir = model.ir
    if (args.eps is None) != (args.input is None):
        raise UserError("give both --input and --eps (a box), or neither (the whole domain)")
    if args.eps is None:
        R = region.domain(ir.coding)
    else:
        X = model.check_inputs(load_array(args.input))
        R = region.linf(ir.coding, X[0], args.eps)
    region_name = "domain" if args.eps is None else f"linf eps={args.eps}"
    with Progress("compile", progress_enabled(args)) as progress:
        try:
            comp = compile_bdd(ir, R, args.max_nodes, limit=Budget(args.timeout, progress=progress))
        except (Stopped, KeyboardInterrupt, RuntimeError) as exc:
            if not (isinstance(exc, Stopped) or interruption(exc)):
                raise
            stopped = exc.reason if isinstance(exc, Stopped) else "interrupt"
            got = progress.last  # how far it got: layer, neurons compiled of the total, nodes
            out = {"complete": False, "stopped": stopped, "layer": got.get("layer"), "neurons_done": got.get("done"),
                   "neurons_total": got.get("total"), "manager_nodes": got.get("nodes"), "region": region_name}
            emit(out, args.json, f"compiled {got.get('done', 0)} of {got.get('total', '?')} neurons (layer "
                                 f"{got.get('layer', '?')}, {got.get('nodes', '?')} nodes); "
                                 f"{stop_note(stopped, args.timeout)}")
            return exit_status(stopped)
    counts = [comp.count([c]) for c in range(ir.n_classes)]
    out = dict(comp.stats, counts=counts, total=R.size(), region=region_name, complete=True, stopped=None)
    emit(out, args.json, f"compiled {ir.n_classes} classes in {comp.compile_s:.3f} s: {comp.stats['nodes']} nodes "
                         f"over {comp.n_vars} variables; raw inputs per class: {counts}")
    return 0
