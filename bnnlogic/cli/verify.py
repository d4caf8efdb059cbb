"""`bnnlogic verify`: prove robustness (or a property) of a model, or find a counterexample."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data import NAMES
from ..errors import UserError
from ..logic import BACKENDS
from ..model import load
from ._common import add_json_flag, emit, load_array

CEX_DIR = "bnnlogic-cex"  # single-query counterexamples, unless --cex-dir says otherwise
CERT_DIR = "bnnlogic-certs"  # single-query certificates, unless --cert-dir says otherwise


def register(sub) -> None:
    p = sub.add_parser(
        "verify", help="prove robustness around inputs, or find replayed counterexamples",
        description="Three modes. (1) one input: --input x.npy --eps E [--norm linf|l0] [--target T | "
                    "--property p.json]; (2) the robustness radius: --input x.npy --min-eps; (3) a batch over a "
                    "data set: --data NAME --indices 0:100 --eps 1,3,5 --out results.jsonl (resumable). "
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
    p.add_argument("--equivalent", metavar="MODEL2", help="prove MODEL2 predicts the same class on the region "
                                                          "(the whole domain without --input)")
    p.add_argument("--min-eps", action="store_true", help="compute the robustness radius")
    p.add_argument("--max-eps", type=int, help="largest eps the radius search considers")
    p.add_argument("--data", choices=NAMES, help="batch mode: data set (test split)")
    p.add_argument("--data-dir", help="folder with the data set's IDX files")
    p.add_argument("--indices", default="0:10", help="batch mode: test indices, a:b or a comma list")
    p.add_argument("--out", help="batch mode: results file (JSON lines, resumable)")
    p.add_argument("--jobs", type=int, default=1, help="batch mode: worker processes")
    p.add_argument("--backend", default="auto", help=f"solver: auto or one of {', '.join(BACKENDS)}")
    p.add_argument("--timeout", type=float, help="seconds per query (default: none; 60 in batch mode)")
    p.add_argument("--no-attack", action="store_true", help="skip the attack, go to the solver directly")
    p.add_argument("--cex-dir", default=None, help="where counterexamples go (.npy and .png; default "
                                                   "bnnlogic-cex, or <out>.cex in batch mode)")
    p.add_argument("--certify", action="store_true", help="back every robust verdict with a certificate "
                   "(a zip of the claim, a case split and DRAT proofs) that `bnnlogic check CERT` re-checks")
    p.add_argument("--cert-dir", help="where certificates go (default bnnlogic-certs, or <out>.certs in batch mode)")
    p.add_argument("--cert-timeout", type=float, default=600, help="seconds to make one certificate (default 600; "
                   "then the verdict stays robust but uncertified)")
    p.add_argument("--cross-check", action="store_true", help="re-decide every query with a backend of another "
                   "kind; a disagreement is an error, both answers saved")
    add_json_flag(p)
    p.set_defaults(func=run)


def _indices(spec: str, n: int) -> list[int]:
    try:
        if ":" in spec:
            a, b = spec.split(":")
            idx = list(range(int(a or 0), min(int(b or n), n)))
        else:
            idx = [int(i) for i in spec.split(",")]
    except ValueError:
        raise UserError(f"--indices {spec!r}: use a:b or a comma list of integers") from None
    if not idx or min(idx) < 0 or max(idx) >= n:
        raise UserError(f"--indices {spec!r}: indices must lie in 0..{n - 1}")
    return idx


def _eps_list(spec: str) -> list[int]:
    try:
        return [int(e) for e in spec.split(",")]
    except ValueError:
        raise UserError(f"--eps {spec!r}: give integers in raw units, e.g. 1,3,5") from None


def run(args) -> int:
    model = load(args.model)
    if args.data:
        return _run_batch(model, args)
    x = model.check_inputs(load_array(args.input))[0] if args.input else None
    if args.equivalent:
        return _run_equivalence(model, x, args)
    if x is None:
        raise UserError("give --input x.npy (one input), or --data NAME for a batch")
    if args.min_eps:
        from ..verification import robustness_radius

        r = robustness_radius(model, x, args.label, args.max_eps, args.backend, args.timeout)
        d = r.to_dict()
        d.pop("counterexample")
        d["counterexample"] = _save_cex(model, x, r.counterexample, args.cex_dir or CEX_DIR, "radius", r.label) \
            if r.counterexample is not None else None
        emit(d, args.json, f"robustness radius of the input (label {r.label}): robust up to eps "
                           f"{r.radius_robust}, counterexample at eps {r.radius_counterexample}"
                           f"{'' if r.complete else ' (open interval: time limit)'}; {r.time_s:.3f} s")
        return 0
    eps = _eps_list(args.eps)
    if len(eps) != 1:
        raise UserError("one --eps value for a single input (comma lists are for batch mode)")
    from ..certify import check_verdict
    from ..crosscheck import Disagreement
    from ..verification import load_property, make_region, verify, verify_region

    cert = Path(args.cert_dir or CERT_DIR) / f"certificate_{'property' if args.property else f'eps{eps[0]}'}.cert.zip"
    checks = dict(certify=cert if args.certify else None, cross_check=args.cross_check, cert_timeout=args.cert_timeout)
    save = dict(save_dir=args.cex_dir or CEX_DIR, tag=f"eps{eps[0]}")
    try:
        if args.property:
            R, allowed = load_property(args.property, model, x)
            label = int(model.predict(x[None])[0]) if args.label is None else args.label
            r = verify_region(model, R, allowed, label, args.backend, args.timeout, not args.no_attack)
            check_verdict(model, R, r, timeout=args.timeout, **checks, **save)
        else:
            r = verify(model, x, eps[0], args.label, args.norm, args.target, None, None, args.backend,
                       args.timeout, not args.no_attack)
            check_verdict(model, make_region(model, x, eps[0], args.norm), r, timeout=args.timeout, **checks, **save)
    except Disagreement as e:
        raise UserError(str(e)) from None
    d = r.to_dict()
    d["counterexample"] = _save_cex(model, x, r.counterexample, args.cex_dir or CEX_DIR, f"eps{r.eps}", r.adv_label) \
        if r.counterexample is not None else None
    text = f"{r.status} at eps {r.eps} (label {r.label}) in {r.time_s:.3f} s [{r.backend}]"
    if r.status == "counterexample":
        text += f": predicted {r.adv_label}, found by {r.found_by}, saved to {d['counterexample']}"
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


def _run_equivalence(model, x, args) -> int:
    from ..verification import equivalent, make_region

    other = load(args.equivalent)
    R = None if x is None else make_region(model, x, _eps_list(args.eps)[0], args.norm)
    r = equivalent(model, other, R, args.backend, args.timeout)
    d = {"status": r.status, "time_s": r.time_s, "predictions": r.predictions, "stats": r.stats,
         "witness": None if r.witness is None else r.witness.tolist()}
    emit(d, args.json, f"{r.status} in {r.time_s:.3f} s" +
         (f": on the witness the models predict {r.predictions}" if r.witness is not None else ""))
    return 0


def _run_batch(model, args) -> int:
    from ..batch import run_batch, summarize, table
    from ..data import load_dataset

    if not args.out:
        raise UserError("batch mode needs --out results.jsonl")
    data = load_dataset(args.data, args.data_dir)
    X = data.X_test.reshape(len(data.X_test), -1).astype(np.int64)
    model.check_inputs(X[:1])
    idx = _indices(args.indices, len(X))
    stem = str(Path(args.out).with_suffix(""))
    recs = run_batch(args.model, X, data.y_test, idx, _eps_list(args.eps), args.out, args.jobs,
                     60 if args.timeout is None else args.timeout, args.backend, args.norm,
                     args.cex_dir or stem + ".cex", progress=not args.json,
                     cert_dir=(args.cert_dir or stem + ".certs") if args.certify else None,
                     cross_check=args.cross_check, cert_timeout=args.cert_timeout)
    wanted = {(i, e) for i in idx for e in _eps_list(args.eps)}
    rows = summarize([r for r in recs if (r["index"], r["eps"]) in wanted])
    errors = [r for r in recs if (r["index"], r["eps"]) in wanted and r.get("error")]
    emit({"summary": rows, "out": args.out, "errors": len(errors)}, args.json, table(rows) + f"\nresults: {args.out}"
         + "".join(f"\nerror: #{r['index']} eps {r['eps']}: {r['error']}" for r in errors))
    return 1 if errors else 0
