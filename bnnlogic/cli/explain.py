"""`bnnlogic explain`: formal (abductive / contrastive / minimum) explanations of one decision."""
from __future__ import annotations

import numpy as np

from ..errors import UserError
from ..model import load
from ._batch import add_batch_args, batch_data, emit_summary, engine_kwargs, out_folder, parse_eps
from ._common import (add_json_flag, add_time_flags, check_time_flags, emit, exit_status, load_array,
                      progress_enabled, stop_note, Progress)

TIMEOUT = 300.0  # seconds for the whole command by default


def register(sub) -> None:
    p = sub.add_parser("explain", help="which input features provably suffice for a decision",
                       description="Explain the model's decision on one raw input: an abductive explanation is "
                                   "a subset-minimal set of features whose values alone force the prediction "
                                   "(over the whole domain, or the eps-box with --eps); a contrastive one a "
                                   "subset-minimal set whose change alone can flip it (with a witness); minimum "
                                   "is a smallest abductive one (MaxSAT, small inputs). Every result is "
                                   "re-checked by an independent solver call. On a terminal a progress line "
                                   "shows the checks made and the smallest sufficient set so far; at --timeout "
                                   "(or Ctrl-C) the best result so far is reported, marked incomplete. Batch "
                                   "mode: --data NAME --indices 0:100 [--eps 1,3] --out res.jsonl explains every "
                                   "row (resumable; --jobs N or --ray, as in verify).")
    p.add_argument("model", help="model file")
    p.add_argument("--input", help="x.npy: one raw input (or a batch: --index picks a row)")
    p.add_argument("--index", type=int, default=0, help="row of a batch input (default 0)")
    p.add_argument("--eps", default=None, help="explain over the L-inf box of this radius (raw units; a comma "
                                               "list in batch mode; default: the whole input domain)")
    p.add_argument("--kind", choices=("abductive", "contrastive", "minimum"), default="abductive")
    p.add_argument("--method", choices=("deletion", "quickxplain"), default="deletion")
    p.add_argument("--all", type=int, default=None, metavar="N",
                   help="enumerate up to N explanations of --kind (hitting-set duality)")
    add_time_flags(p, TIMEOUT, batch=True)
    p.add_argument("--png", default=None, help="draw the input with the explanation's pixels marked")
    p.add_argument("--png-dir", default=None, help="batch mode: folder of the pictures (default <out>.pictures)")
    add_batch_args(p, "explain")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..budget import Budget
    from ..explain import Explainer

    check_time_flags(args)
    if args.all is not None and args.kind == "minimum":
        raise UserError("--all enumerates abductive or contrastive explanations, not minimum ones")
    model = load(args.model)
    if args.data:
        return _run_batch(model, args)
    if not args.input:
        raise UserError("give --input x.npy (one input), or --data NAME for a batch")
    eps = None if args.eps is None else parse_eps(args.eps)
    if eps is not None and len(eps) != 1:
        raise UserError("one --eps value for a single input (comma lists are for batch mode)")
    args.eps = None if eps is None else eps[0]
    X = model.check_inputs(load_array(args.input))
    if not 0 <= args.index < len(X):
        raise UserError(f"--index {args.index} is outside the {len(X)} inputs of {args.input}")
    x = X[args.index]
    with Progress("explain", progress_enabled(args)) as progress:
        limit = Budget(args.timeout, args.call_timeout, progress)
        ex = Explainer(model.ir, x, args.eps, timeout=args.call_timeout, limit=limit)
        try:
            if args.all is not None:
                found = ex.enumerate(args.all, args.kind)[args.kind]
            elif args.kind == "contrastive":
                e = ex.contrastive()
                found = [] if e is None else [e]
            else:
                found = [ex.minimum() if args.kind == "minimum" else ex.abductive(args.method)]
        finally:
            ex.close()
    stopped = ex.stopped
    note = stop_note(stopped, args.timeout)
    region = "domain" if args.eps is None else f"linf eps={args.eps}"
    if args.kind == "contrastive" and args.all is None and not found:
        robust = stopped is None
        emit({"kind": "contrastive", "features": None, "size": None, "prediction": ex.prediction,
              "robust": robust if robust else None, "verified": True if robust else None, "complete": robust,
              "stopped": stopped, "region": region},
             args.json, f"no contrastive explanation: every input of the region is predicted {ex.prediction}" if robust
             else f"no contrastive explanation found before the stop; {note}")
        return exit_status(stopped)
    if args.png and found:
        from ..explain import save_explanation_png

        e = found[0]
        save_explanation_png(args.png, model.ir.coding, x, e.features,
                             f"{e.kind}: {e.size} px, class {model.classes[e.prediction]}")
    out = found[0].to_json() if args.all is None else {"kind": args.kind, "explanations": [e.to_json() for e in found],
                                                        "count": len(found), "complete": stopped is None,
                                                        "stopped": stopped}
    out.update(region=region, n_features=model.ir.coding.n_features)
    lines = [f"{e.kind} explanation of prediction {model.classes[e.prediction]}: {e.size} features "
             f"{e.features} ({e.time_s:.3f} s, verified: {e.verified})"
             + ("" if e.complete else " [best so far: sufficient, maybe not minimal]" if e.kind == "abductive"
                else " [best so far: maybe not minimal]") for e in found]
    emit(out, args.json, "\n".join(lines + ([note] if note else [])))
    if stopped is not None:
        return exit_status(stopped)
    return 0 if all(e.verified for e in found) else 1


def _run_batch(model, args) -> int:
    from ..batch_queries import run_explain_batch

    if args.all is not None:
        raise UserError("--all enumerates explanations of one input; batch mode finds one per query")
    X, y, idx = batch_data(model, args)
    eps = [None] if args.eps is None else parse_eps(args.eps)
    recs = run_explain_batch(args.model, X, y, idx, eps, args.out, args.kind, args.method,
                             args.timeout, out_folder(args, args.png_dir, ".pictures"),
                             progress=not args.json, **engine_kwargs(args))
    wanted = {("explain", i, e, args.kind) for i in idx for e in eps}
    emit_summary(recs, wanted, args)
    return 0 if all(r.get("verified") is not False for r in recs if r["task"] == "explain") else 1
