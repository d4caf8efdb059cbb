"""`bnnlogic count`: how many raw inputs of a region a class gets (exact, or ApproxMC)."""
from __future__ import annotations

from ..errors import UserError
from ..model import load
from ._batch import add_batch_args, batch_data, emit_summary, engine_kwargs, parse_eps
from ._common import (add_json_flag, add_time_flags, check_time_flags, emit, exit_status, load_array,
                      progress_enabled, stop_note, Progress)

TIMEOUT = 300.0  # seconds for the whole command by default


def register(sub) -> None:
    p = sub.add_parser("count", help="count the raw inputs of a region per class, or the misclassified ones",
                       description="Count raw inputs of the L-inf box around x (or the whole domain without "
                                   "--input) that the model predicts as --class, or that it misclassifies "
                                   "(predicts other than --label, default: its prediction on x). Exact "
                                   "(enumeration, Ganak, BDD) or approximate with ApproxMC's (epsilon, delta) "
                                   "guarantee. At --timeout (or Ctrl-C) it reports the bounds known so far "
                                   "(count_at_least, count_at_most), marked incomplete. Batch mode: --data NAME "
                                   "--indices 0:100 --eps 1,2 --out res.jsonl counts the box around every row "
                                   "(misclassified: not its true label; resumable; --jobs N or --ray, as in verify).")
    p.add_argument("model", help="model file")
    p.add_argument("--input", default=None, help="x.npy: the centre of the region (one raw input)")
    p.add_argument("--eps", default=None, help="box radius in raw units (needs --input; a comma list in batch mode)")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--class", dest="cls", type=int, default=None, help="count inputs predicted as this class")
    g.add_argument("--misclassified", action="store_true", help="count inputs not predicted as --label")
    p.add_argument("--label", type=int, default=None, help="true class for --misclassified (default: prediction on x)")
    m = p.add_mutually_exclusive_group()
    m.add_argument("--method", choices=("exact", "enumerate", "ganak", "bdd", "approx"), default="exact")
    m.add_argument("--exact", dest="method", action="store_const", const="exact")
    m.add_argument("--approx", dest="method", action="store_const", const="approx")
    p.add_argument("--epsilon", type=float, default=0.8, help="ApproxMC tolerance (default 0.8)")
    p.add_argument("--delta", type=float, default=0.2, help="ApproxMC confidence 1-delta (default 0.2)")
    p.add_argument("--seed", type=int, default=1)
    add_time_flags(p, TIMEOUT, per_call=False, batch=True)
    add_batch_args(p, "count")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..budget import Budget
    from ..count import count
    from ..logic import region

    check_time_flags(args)
    model = load(args.model)
    if args.data:
        return _run_batch(model, args)
    ir = model.ir
    eps = None if args.eps is None else parse_eps(args.eps)
    if eps is not None and len(eps) != 1:
        raise UserError("one --eps value for a single region (comma lists are for batch mode)")
    args.eps = None if eps is None else eps[0]
    x = None
    if args.input is not None:
        X = model.check_inputs(load_array(args.input))
        if len(X) != 1:
            raise UserError(f"{args.input} holds {len(X)} inputs; count takes one region centre")
        x = X[0]
    if args.eps is not None and x is None:
        raise UserError("--eps needs --input (the centre of the box)")
    R = region.domain(ir.coding) if args.eps is None else region.linf(ir.coding, x, args.eps)
    if args.cls is not None:
        if not 0 <= args.cls < ir.n_classes:
            raise UserError(f"--class must be in 0..{ir.n_classes - 1}")
        classes, what = [args.cls], f"class {args.cls}"
    else:
        label = args.label if args.label is not None else (int(ir.predict(x[None])[0]) if x is not None else None)
        if label is None or not 0 <= label < ir.n_classes:
            raise UserError("--misclassified needs --label (0..n_classes-1) or --input")
        classes, what = [c for c in range(ir.n_classes) if c != label], f"not {label}"
    if not (args.epsilon > 0 and 0 < args.delta < 1):
        raise UserError("ApproxMC needs --epsilon > 0 and 0 < --delta < 1")
    with Progress("count", progress_enabled(args)) as progress:
        res = count(ir, R, classes, args.method, args.epsilon, args.delta, args.seed,
                    limit=Budget(args.timeout, progress=progress))
    out = res.to_json()
    out["region"] = "domain" if args.eps is None else f"linf eps={args.eps}"
    if not res.complete:
        emit(out, args.json, f"between {res.count_at_least} and {res.count_at_most} of {res.total} raw inputs are "
                             f"{what} ({res.method}, {res.time_s:.3f} s); {stop_note(res.stopped, args.timeout)}")
        return exit_status(res.stopped)
    approx = "" if res.exact else f" (ApproxMC, within x{1 + res.epsilon} with prob. >= {1 - res.delta})"
    emit(out, args.json, f"{res.count} of {res.total} raw inputs ({res.fraction:.6g}) are {what}{approx}; "
                         f"{res.method}, {res.time_s:.3f} s")
    return 0


def _run_batch(model, args) -> int:
    from ..batch_queries import run_count_batch

    if args.input is not None or args.label is not None:
        raise UserError("batch mode counts around the data set's rows, with their true labels: drop --input / --label")
    if args.eps is None:
        raise UserError("batch mode needs --eps (a comma list of box radii)")
    X, y, idx = batch_data(model, args)
    eps = parse_eps(args.eps)
    target = "misclassified" if args.cls is None else args.cls
    recs = run_count_batch(args.model, X, y, idx, eps, args.out, target, args.method, args.epsilon, args.delta,
                           args.seed, args.timeout, progress=not args.json,
                           **engine_kwargs(args))
    emit_summary(recs, {("count", i, e, target) for i in idx for e in eps}, args)
    return 0
