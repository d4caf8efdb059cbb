"""`bnnlogic check CERT`: re-check a robustness certificate with the small trust base."""
from __future__ import annotations

from ._common import add_json_flag, emit


def register(sub) -> None:
    p = sub.add_parser(
        "check", help="check a certificate written by `verify --certify`",
        description="Re-derives the certified query from the model file (its SHA-256 must match) and the "
                    "region, re-encodes every proof leaf's CNF, compares it with the formula the proof was made "
                    "for, and runs the independent DRAT checker dratify; bounds and enumeration leaves are "
                    "re-checked by bnnlogic.trusted. Exit 0: valid; 1: the certificate does not prove its claim.")
    p.add_argument("cert", help="certificate file (.cert.zip)")
    p.add_argument("--model", help="the model file (default: the path stored in the certificate, relative to it)")
    p.add_argument("--engine", choices=("auto", "python", "native"), default="auto",
                   help="dratify's checker: its Rust engine when installed (auto), or the pure-Python one")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..trusted.check import check

    r = check(args.cert, args.model, args.engine)
    leaves = ", ".join(f"{n} {k}" for k, n in r.leaves.items() if n)
    text = (f"valid: {r.claim}\n{leaves} leaves; {r.proof_bytes} proof bytes over {r.cnf_clauses} clauses; "
            f"checked in {r.check_s:.3f} s ({r.engine or 'no'} DRAT engine)" if r.valid
            else f"INVALID: {r.reason}")
    emit(r.to_dict(), args.json, text)
    return 0 if r.valid else 1
