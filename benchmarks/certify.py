"""Certificates of robust verdicts: certified fraction, proof sizes, check vs solve time.

    python benchmarks/certify.py [--models fashion-mlp-small-friendly,fashion-mlp-small] [--images 20]
        [--eps 1,3,5] [--timeout 20] [--cert-timeout 300] [--backends auto] [--record]

For each model (the verification benchmark's small nets, ``benchmarks/models.py``), the first
N test images (true labels) and each eps: ``verify_region`` with each backend, and for every
robust verdict ``certify.make_certificate`` (bounds, whole-query DRAT proof, or a case split;
see bnnlogic/certify.py) followed by the independent check (``bnnlogic.trusted.check``).
Prints per model / backend / source of the verdict (bounds, bab, exact, ...): robust verdicts,
certified, the leaves (B bounds, E enumerated, P proved), median proof bytes, and the median
solve, prove and check times with check / solve.  ``--record`` saves a JSON record
(benchmarks/records/certify/).
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bnnlogic.certify import make_certificate  # noqa: E402
from bnnlogic.data import load_dataset  # noqa: E402
from bnnlogic.trusted.check import drat_checker  # noqa: E402
from bnnlogic.verification import make_region, verify_region  # noqa: E402
from models import get_model  # noqa: E402
from records import save_record  # noqa: E402


def run(name: str, images: int, eps_list: list[int], backends: list[str], timeout: float, cert_timeout: float,
        out: Path) -> list[dict]:
    model = get_model(name)
    data = load_dataset(model.meta["dataset"])
    X = data.X_test.reshape(len(data.X_test), -1).astype(np.int64)
    rows = []
    for i in range(images):
        y = int(data.y_test[i])
        for eps in eps_list:
            R = make_region(model, X[i], eps)
            for backend in backends:
                r = verify_region(model, R, [y], y, backend, timeout)
                row = {"model": name, "index": i, "eps": eps, "backend": backend, "source": r.backend,
                       "status": r.status, "solve_s": r.time_s}
                if r.status == "robust":
                    t0 = time.perf_counter()
                    c = make_certificate(model, R, [y], out / f"{name}-{i}-{eps}-{backend.replace(':', '_')}.cert.zip",
                                         verdict={"backend": r.backend}, timeout=cert_timeout)
                    row.update(cert=c.status, leaves=c.leaves, proof_bytes=c.proof_bytes, cnf_clauses=c.cnf_clauses,
                               prove_s=c.prove_s, check_s=c.check_s, cert_wall_s=time.perf_counter() - t0)
                rows.append(row)
                print(row, file=sys.stderr, flush=True)
    return rows


def _med(v):
    v = [x for x in v if x is not None]
    return statistics.median(v) if v else None


def summarize(rows: list[dict]) -> list[dict]:
    out = []
    for key in sorted({(r["model"], r["backend"], r["source"]) for r in rows if r["status"] == "robust"}):
        rs = [r for r in rows if (r["model"], r["backend"], r["source"]) == key and r["status"] == "robust"]
        ok = [r for r in rs if r["cert"] == "certified"]
        out.append({"model": key[0], "backend": key[1], "source": key[2], "robust": len(rs), "certified": len(ok),
                    "fraction": len(ok) / len(rs),
                    "leaves": {k: sum(r["leaves"].get(k, 0) for r in rs) for k in ("B", "E", "P", "split")},
                    "median_proof_bytes": _med([r["proof_bytes"] for r in ok]),
                    "max_proof_bytes": max((r["proof_bytes"] for r in ok), default=None),
                    "median_solve_s": _med([r["solve_s"] for r in rs]), "median_prove_s": _med([r["prove_s"] for r in rs]),
                    "median_check_s": _med([r["check_s"] for r in ok]),
                    "median_check_over_solve": _med([r["check_s"] / max(r["solve_s"], 1e-6) for r in ok])})
    return out


def table(summary: list[dict]) -> str:
    head = ("| model | backend | source | robust | certified | leaves B/E/P/split | median proof bytes | "
            "median solve s | median prove s | median check s | check/solve |\n|---|---|---|---:|---:|---|---:|---:|---:|---:|---:|\n")
    f = lambda v, d=3: "-" if v is None else f"{v:.{d}f}"  # noqa: E731
    return head + "".join(
        f"| {s['model']} | {s['backend']} | {s['source']} | {s['robust']} | {s['certified']} | "
        f"{'/'.join(str(s['leaves'][k]) for k in ('B', 'E', 'P', 'split'))} | "
        f"{'-' if s['median_proof_bytes'] is None else int(s['median_proof_bytes']):,} | {f(s['median_solve_s'])} | "
        f"{f(s['median_prove_s'])} | {f(s['median_check_s'])} | {f(s['median_check_over_solve'], 1)} |\n"
        for s in summary)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="fashion-mlp-small-friendly,fashion-mlp-small")
    ap.add_argument("--images", type=int, default=20)
    ap.add_argument("--eps", default="1,3,5")
    ap.add_argument("--backends", default="auto", help="comma list of verify backends")
    ap.add_argument("--timeout", type=float, default=20, help="seconds per verification")
    ap.add_argument("--cert-timeout", type=float, default=300, help="seconds to make one certificate")
    ap.add_argument("--keep", help="folder to keep the certificates in (default: a temporary one)")
    ap.add_argument("--record", action="store_true", help="save a JSON record under benchmarks/records/certify/")
    args = ap.parse_args()
    drat_checker()  # the Rust engine, when installed, is what the timings use
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.keep or tmp)
        out.mkdir(parents=True, exist_ok=True)
        rows = [r for m in args.models.split(",") for r in run(m, args.images, [int(e) for e in args.eps.split(",")],
                                                                args.backends.split(","), args.timeout,
                                                                args.cert_timeout, out)]
    summary = summarize(rows)
    print(table(summary))
    robust = sum(s["robust"] for s in summary)
    total = {"robust": robust, "certified": sum(s["certified"] for s in summary),
             "fraction": sum(s["certified"] for s in summary) / robust if robust else None,
             "dratify_native": drat_checker().native_available()}
    print(total)
    if args.record:
        print("record:", save_record("certify", {"total": total, "rows": summary}, rows))


if __name__ == "__main__":
    main()
