"""Batch mode shared by verify, explain and count: data set rows, indices, eps lists, where
the queries run (local worker processes or Ray), and the summary printed at the end."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data import NAMES
from ..errors import UserError
from ._common import emit


def add_batch_args(p, what: str) -> None:
    """The batch-mode options (``--data`` switches a command to batch mode)."""
    g = p.add_argument_group("batch mode (--data): one JSON line per query, resumable")
    g.add_argument("--data", choices=NAMES, help=f"{what} every --indices row of this data set's test split")
    g.add_argument("--data-dir", help="folder with the data set's IDX files")
    g.add_argument("--indices", default="0:10", help="test indices, a:b or a comma list (default 0:10)")
    g.add_argument("--out", help="results file (JSON lines; a rerun skips the queries already in it)")
    g.add_argument("--jobs", type=int, default=None,
                   help="worker processes (default 1; 0: in this process, no hard time limit); with Ray: "
                        "the local Ray's CPUs, or the queries in flight on a cluster (default: all its CPUs)")
    g.add_argument("--ray", action="store_true", help="run the queries on a local Ray started for this run")
    g.add_argument("--ray-address", metavar="ADDR",
                   help="run the queries on the running Ray cluster at ADDR (host:port of its head, or 'auto')")


def parse_indices(spec: str, n: int) -> list[int]:
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


def parse_eps(spec: str) -> list[int]:
    try:
        return [int(e) for e in spec.split(",")]
    except ValueError:
        raise UserError(f"--eps {spec!r}: give integers in raw units, e.g. 1,3,5") from None


def batch_data(model, args) -> tuple[np.ndarray, np.ndarray, list[int]]:
    """The test split's raw rows (n, d), labels and the chosen indices; checks --out."""
    from ..data import load_dataset

    if not args.out:
        raise UserError("batch mode needs --out results.jsonl")
    data = load_dataset(args.data, args.data_dir)
    # the data set's own dtype (uint8 pixels: 8x less than int64); a query takes its row as int64
    X = model.check_inputs(data.X_test.reshape(len(data.X_test), -1), dtype=None)
    return X, data.y_test, parse_indices(args.indices, len(X))


def out_folder(args, given: str | None, suffix: str) -> str:
    """A folder for a batch's pictures: ``given``, else ``<out without extension><suffix>``."""
    return given or str(Path(args.out).with_suffix("")) + suffix


def engine_kwargs(args) -> dict:
    return {"jobs": args.jobs, "ray": args.ray, "ray_address": args.ray_address}


def emit_summary(records: list[dict], wanted: set[tuple], args) -> int:
    """The per-eps table of the records of this run's queries (``wanted``: their keys), with the
    records that carry an ``error`` (a cross-check disagreement); returns the exit status (1 if
    there is one)."""
    from ..batch import key_of, summarize, table

    mine = [r for r in records if key_of(r) in wanted]
    errors = [r for r in mine if r.get("error")]
    emit({"summary": summarize(mine), "out": args.out, "errors": len(errors)}, args.json,
         table(summarize(mine)) + f"\nresults: {args.out}"
         + "".join(f"\nerror: #{r['index']} eps {r['eps']}: {r['error']}" for r in errors))
    return 1 if errors else 0
