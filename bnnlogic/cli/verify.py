"""`bnnlogic verify`: prove robustness (or a property) of a model, or find a counterexample."""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError
from ..ir import TIES
from ..logic import BACKENDS
from ..model import load
from ._batch import add_batch_args, batch_data, emit_summary, engine_kwargs, out_folder, parse_eps
from ._common import add_json_flag, emit, load_array

CEX_DIR = "bnnlogic-cex"  # single-query counterexamples, unless --cex-dir says otherwise
CERT_DIR = "bnnlogic-certs"  # single-query certificates, unless --cert-dir says otherwise


def register(sub) -> None:
    p = sub.add_parser(
        "verify", help="prove robustness around inputs, or find replayed counterexamples",
        description="Three modes. (1) one input: --input x.npy --eps E [--norm linf|l0] [--target T | "
                    "--property p.json]; (2) the robustness radius: --input x.npy --min-eps; (3) a batch over a "
                    "data set: --data NAME --indices 0:100 --eps 1,3,5 --out results.jsonl (resumable; on worker "
                    "processes with --jobs N, or on Ray with --ray / --ray-address ADDR; see docs/ray.md). "
                    "eps is in raw feature units (pixels 0..255). 'robust' only ever comes from a solver's "
                    "UNSAT; every counterexample is replayed through the inference engine.")
    p.add_argument("model", help="model file")
    p.add_argument("--input", help="raw input (.npy): one row of raw features")
    p.add_argument("--label", type=int, help="class to keep (default: the model's prediction)")
    p.add_argument("--eps", default="1", help="raw-unit radius (L-inf) or number of features (L0); "
                                              "a comma list in batch mode")
    p.add_argument("--norm", choices=("linf", "l0"), default="linf")
    p.add_argument("--target", type=int, help="prove the model never predicts this class")
    p.add_argument("--property", help="property file (JSON, see bnnlogic.verification.load_property)")
    p.add_argument("--vnnlib", metavar="PROP", help="a VNN-LIB property (1.0 as in VNN-COMP, or 2.0): X = raw "
                                                   "features, Y = the integer scores (bnnlogic.interop.vnnlib)")
    p.add_argument("--equivalent", metavar="MODEL2", help="prove MODEL2 predicts the same class on the region "
                                                          "(the whole domain without --input)")
    p.add_argument("--min-eps", action="store_true", help="compute the robustness radius")
    p.add_argument("--max-eps", type=int, help="largest eps the radius search considers")
    p.add_argument("--split", type=int, default=1, metavar="N",
                   help="split each query's box into up to N sub-boxes verified as separate tasks (one hard "
                        "query on every worker; robust iff every part is); with --input, the workers are "
                        "--jobs / --ray as in batch mode")
    p.add_argument("--backend", default="auto",
                   help="auto (default: bounds, then a racing portfolio of the engines below on the available "
                        f"cores), bab (branch and bound alone), or one solver: {', '.join(BACKENDS)}")
    p.add_argument("--timeout", type=float, help="seconds per query (default: none; 60 in batch mode)")
    p.add_argument("--no-attack", action="store_true", help="skip the attack, go to the solver directly")
    p.add_argument("--ties", choices=TIES, default="low",
                   help="low: the model's own argmax (a tie goes to the lowest class); adversarial: an input "
                        "where a wrong class ties the best score is a counterexample (the usual rule of "
                        "verification benchmarks)")
    p.add_argument("--cex-dir", default=None, help="where counterexamples go (.npy and .png; default "
                                                   "bnnlogic-cex, or <out>.cex in batch mode)")
    p.add_argument("--certify", action="store_true", help="back every robust verdict with a certificate "
                   "(a zip of the claim, a case split and DRAT proofs) that `bnnlogic check CERT` re-checks")
    p.add_argument("--cert-dir", help="where certificates go (default bnnlogic-certs, or <out>.certs in batch mode)")
    p.add_argument("--cert-timeout", type=float, default=600, help="seconds to make one certificate (default 600; "
                   "then the verdict stays robust but uncertified)")
    p.add_argument("--cross-check", action="store_true", help="re-decide every query with a backend of another "
                   "kind; a disagreement is an error, both answers saved")
    add_batch_args(p, "verify")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    model = load(args.model)
    if args.ties != "low" and args.equivalent:
        raise UserError("--ties adversarial applies to robustness queries and batches, not to --equivalent")
    if args.data:
        return _run_batch(model, args)
    x = model.check_inputs(load_array(args.input))[0] if args.input else None
    if args.vnnlib:
        return _run_vnnlib(model, x, args)
    if args.equivalent:
        return _run_equivalence(model, x, args)
    if x is None:
        raise UserError("give --input x.npy (one input), or --data NAME for a batch")
    if args.min_eps:
        from ..verification import robustness_radius

        r = robustness_radius(model, x, args.label, args.max_eps, args.backend, args.timeout, ties=args.ties)
        why = {"time": " (open interval: the time limit ran out)",
               "misclassified": " (the input itself is not predicted as the label)"}.get(r.open_reason, "")
        d = r.to_dict()
        d.pop("counterexample")
        d["counterexample"] = _save_cex(model, x, r.counterexample, args.cex_dir or CEX_DIR, "radius", r.label) \
            if r.counterexample is not None else None
        emit(d, args.json, f"robustness radius of the input (label {r.label}): robust up to eps "
                           f"{r.radius_robust}, counterexample at eps {r.radius_counterexample}{why}; "
                           f"{r.solver_calls} decisions in {r.time_s:.3f} s")
        return 0
    eps = parse_eps(args.eps)
    if len(eps) != 1:
        raise UserError("one --eps value for a single input (comma lists are for batch mode)")
    from ..certify import check_verdict
    from ..crosscheck import Disagreement
    from ..verification import load_property, make_region, verify, verify_region

    if (args.certify or args.cross_check) and (args.split > 1 or args.ties != "low"):
        raise UserError("--certify and --cross-check take whole queries with the model's own tie rule: "
                        "drop --split and --ties")
    cert = Path(args.cert_dir or CERT_DIR) / f"certificate_{'property' if args.property else f'eps{eps[0]}'}.cert.zip"
    checks = dict(certify=cert if args.certify else None, cross_check=args.cross_check, cert_timeout=args.cert_timeout)
    try:
        if args.split > 1:
            r = _verify_split(model, x, eps[0], args)
        else:
            if args.property:
                R, allowed = load_property(args.property, model, x)
                label = int(model.predict(x[None])[0]) if args.label is None else args.label
                r = verify_region(model, R, allowed, label, args.backend, args.timeout, not args.no_attack,
                                  ties=args.ties)
            else:
                R = make_region(model, x, eps[0], args.norm)
                r = verify(model, x, eps[0], args.label, args.norm, args.target, None, None, args.backend,
                           args.timeout, not args.no_attack, args.ties)
            check_verdict(model, R, r, timeout=args.timeout, save_dir=args.cex_dir or CEX_DIR,
                          tag="property" if args.property else f"eps{eps[0]}", **checks)
    except Disagreement as e:
        raise UserError(str(e)) from None
    d = r.to_dict()
    d["counterexample"] = _save_cex(model, x, r.counterexample, args.cex_dir or CEX_DIR, f"eps{r.eps}", r.adv_label) \
        if r.counterexample is not None else None
    text = f"{r.status} at eps {r.eps} (label {r.label}) in {r.time_s:.3f} s [{r.backend}]"
    if r.status == "counterexample":
        text += f": predicted {r.adv_label}, found by {r.found_by}, saved to {d['counterexample']}"
    if "classes_open" in r.stats:
        text += f"; classes still open: {', '.join(map(str, r.stats['classes_open'])) or 'none'}"
    if "bab_estimate_s" in r.stats:
        text += "; " + _estimate_text(r.stats)
    if r.certificate is not None:
        c = r.certificate
        text += (f"; certificate {c['path']} (checked in {c['check_s']:.3f} s)" if c["status"] == "certified"
                 else f"; no certificate ({c['reason']})")
    if r.cross_check is not None:
        text += f"; cross-check by {r.cross_check['backend']}: {r.cross_check['status']}"
    emit(d, args.json, text)
    return 0


def _save_cex(model, x, adv, cex_dir: str, tag: str, adv_label) -> str:
    from ..verification import save_counterexample

    return save_counterexample(model, x, adv, Path(cex_dir) / f"counterexample_{tag}", f"predicted {adv_label}")


def _run_vnnlib(model, x, args) -> int:
    from ..interop.vnnlib import verify_vnnlib

    r = verify_vnnlib(model, args.vnnlib, args.backend, args.timeout, not args.no_attack)
    d = r.to_dict()
    d["counterexample"] = _save_cex(model, r.counterexample if x is None else x, r.counterexample,
                                    args.cex_dir or CEX_DIR, "vnnlib", r.adv_label) \
        if r.counterexample is not None else None
    answer = {"robust": "unsat: the property holds", "counterexample": "sat"}.get(r.status, "unknown")
    text = f"{r.status} ({answer}) for {args.vnnlib} in {r.time_s:.3f} s [{r.backend}]"
    if r.status == "counterexample":
        text += f": predicted {r.adv_label}, saved to {d['counterexample']}"
    emit(d, args.json, text)
    return 0


def _run_equivalence(model, x, args) -> int:
    from ..verification import equivalent, make_region

    other = load(args.equivalent)
    R = None if x is None else make_region(model, x, parse_eps(args.eps)[0], args.norm)
    r = equivalent(model, other, R, args.backend, args.timeout)
    d = {"status": r.status, "time_s": r.time_s, "predictions": r.predictions, "stats": r.stats,
         "witness": None if r.witness is None else r.witness.tolist()}
    emit(d, args.json, f"{r.status} in {r.time_s:.3f} s" +
         (f": on the witness the models predict {r.predictions}" if r.witness is not None else ""))
    return 0


def _run_batch(model, args) -> int:
    from ..batch import run_batch

    X, y, idx = batch_data(model, args)
    eps = parse_eps(args.eps)
    recs = run_batch(args.model, X, y, idx, eps, args.out, timeout=60 if args.timeout is None else args.timeout,
                     backend=args.backend, norm=args.norm, cex_dir=out_folder(args, args.cex_dir, ".cex"),
                     progress=not args.json, split=args.split,
                     cert_dir=out_folder(args, args.cert_dir, ".certs") if args.certify else None,
                     cross_check=args.cross_check, cert_timeout=args.cert_timeout, ties=args.ties,
                     **engine_kwargs(args))
    return emit_summary(recs, {("verify", i, e) for i in idx for e in eps}, args)


def _verify_split(model, x, eps: int, args):
    """One query split into --split sub-boxes on the --jobs / --ray workers."""
    from ..executors import make_executor
    from ..split import verify_split
    from ..verification import make_region

    if args.norm != "linf" or args.property or args.target is not None:
        raise UserError("--split splits L-infinity robustness queries (no --norm l0, --property or --target)")
    label = int(model.predict(x[None])[0]) if args.label is None else args.label
    with make_executor(model, **engine_kwargs(args)) as ex:
        return verify_split(model, make_region(model, x, eps), [label], label, args.split, ex, args.backend,
                            args.timeout)


def _estimate_text(stats: dict) -> str:
    """What an ``unknown`` from the race would take (``Race.bab_estimate``), as one clause."""
    est, share = stats["bab_estimate_s"], stats["bab_decided"]
    took = f"{est / 3600:.1f} h" if est >= 3600 else f"{est / 60:.0f} min" if est >= 120 else f"{est:.0f} s"
    how = f"about {took} at the pace it kept here ({share:.1%} decided)" if share > 0 else \
        f"at least about {took} by its price per cell"
    return (f"2^{stats['log2_cells']:.0f} threshold cells: branch and bound alone would need {how}; "
            f"raise --timeout, or --split N over --jobs/--ray workers")
