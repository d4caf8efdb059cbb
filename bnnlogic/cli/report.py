"""`bnnlogic report`: one static HTML page for a batch run's results file."""
from __future__ import annotations

from ._common import add_json_flag, emit


def register(sub) -> None:
    p = sub.add_parser("report", help="an HTML page of a batch run: verdicts per eps, times, pictures",
                       description="Render the results file of a batch run (verify, explain or count with --data "
                                   "... --out RESULTS.jsonl) as one self-contained HTML page: the status counts "
                                   "per eps (table and plot), cumulative decided queries against time, the "
                                   "slowest queries, and the counterexample / explanation pictures saved beside "
                                   "the results. No server: open the file in a browser.")
    p.add_argument("results", help="results file (JSON lines) of a batch run")
    p.add_argument("--out", default=None, help="HTML file to write (default: RESULTS with .html)")
    p.add_argument("--title", default=None, help="page title (default: from the results file's name)")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from ..report import write_report

    out = args.out or str(Path(args.results).with_suffix(".html"))
    s = write_report(args.results, out, args.title)
    counts = ", ".join(f"{k} {v}" for k, v in s["statuses"].items())
    emit(s, args.json, f"{s['task']} report of {s['records']} queries ({counts}): {out}")
    return 0
