"""One static HTML page for a batch run: ``bnnlogic report RESULTS.jsonl --out report.html``.

The page (``write_report``; ``render`` gives the HTML) shows, for the records of a results file
of ``bnnlogic.batch`` (verify, explain or count):

    summary        queries, the count of each status, total and median time
    per eps        a table of the status counts (explain: median size; count: median fraction)
                   and the same as stacked bars
    time           cumulative decided queries against time, per eps and in all, on a log time
                   axis (the cactus-style plot of verification competitions: the curve at t is
                   the number of queries a time limit of t would have decided)
    slowest        the slowest queries
    pictures       the counterexamples (verify) or explanations (explain) saved beside the
                   results, embedded as PNG data URIs (at most ``MAX_PICTURES``)

Everything is inside the one file: plots are matplotlib PNGs (Agg canvas, no pyplot) as data URIs, no script,
no external resource.  The file is written atomically.
"""
from __future__ import annotations

import base64
import html
import io
import json
import os
import statistics
from collections import Counter
from pathlib import Path
from typing import Sequence

from .batch import STATUSES
from .errors import UserError
from .fileio import write_text

MAX_PICTURES = 48
SLOWEST = 10
#: statuses that answer the query (the rest: unknown)
DECIDED = {"verify": ("robust", "counterexample"), "explain": ("explained", "robust"), "count": ("counted",)}
COLORS = {"robust": "#2e7d32", "counterexample": "#c62828", "unknown": "#9e9e9e", "explained": "#1565c0",
          "counted": "#1565c0"}


def load_records(path: str | os.PathLike) -> list[dict]:
    """The records of a results file (a torn last line, from a run killed while writing it,
    is ignored; the file is not changed)."""
    p = Path(path)
    if not p.is_file():
        raise UserError(f"{path}: no such results file (a batch run writes one: "
                        f"`bnnlogic verify|explain|count --data ... --out`)")
    lines = p.read_text().splitlines()
    recs = []
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            if n == len(lines):  # torn
                break
            raise UserError(f"{path}:{n}: not a JSON line; is this a results file of a batch run?") from None
        if not isinstance(rec, dict) or not {"status", "eps", "time_s"} <= set(rec):
            raise UserError(f"{path}:{n}: not a batch record (needs status, eps, time_s)")
        recs.append(rec)
    if not recs:
        raise UserError(f"{path}: no records yet")
    return recs


def _eps_label(e) -> str:
    return "domain" if e is None else str(e)


def _eps_order(records: Sequence[dict]) -> list:
    return sorted({r["eps"] for r in records}, key=lambda e: (e is not None, e))


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _plots(records: Sequence[dict], task: str, statuses: list[str]) -> tuple[str, str]:
    """(stacked bars of statuses per eps, cumulative decided vs time) as data URIs."""
    from matplotlib.figure import Figure  # drawn by the Agg canvas; pyplot's state is left alone

    eps = _eps_order(records)
    fig = Figure(figsize=(6, 3.2))
    ax = fig.add_subplot()
    bottom = [0] * len(eps)
    for s in statuses:
        h = [sum(r["status"] == s and r["eps"] == e for r in records) for e in eps]
        ax.bar([_eps_label(e) for e in eps], h, bottom=bottom, label=s, color=COLORS.get(s, "#6a1b9a"))
        bottom = [b + v for b, v in zip(bottom, h)]
    ax.set_xlabel("eps")
    ax.set_ylabel("queries")
    ax.legend(frameon=False, fontsize=8, loc="upper left", bbox_to_anchor=(1, 1))
    bars = _png(fig)

    fig = Figure(figsize=(6, 3.6))
    ax = fig.add_subplot()
    decided = [r for r in records if r["status"] in DECIDED[task]]
    floor = min([r["time_s"] for r in decided if r["time_s"] > 0] or [1e-3])
    groups = [(f"eps {_eps_label(e)}", [r for r in decided if r["eps"] == e]) for e in eps] if len(eps) > 1 else []
    for name, rs in groups + [("all", decided)]:
        t = sorted(max(r["time_s"], floor) for r in rs)
        if t:
            ax.step([floor] + t, [0] + list(range(1, len(t) + 1)), where="post", label=f"{name} ({len(t)})",
                    lw=2.5 if name == "all" else 1.2)
    ax.set_xscale("log")
    ax.set_xlabel("time per query (s)")
    ax.set_ylabel("queries decided within that time")
    ax.legend(frameon=False, fontsize=8)
    ax.grid(alpha=0.3)
    return bars, _png(fig)


def _picture(rec: dict, task: str, base: Path) -> Path | None:
    """The PNG a record points at (verify: beside its counterexample .npy), if it exists."""
    ref = rec.get("counterexample") if task == "verify" else rec.get("picture")
    if not isinstance(ref, str):
        return None
    p = Path(ref)
    p = p.with_suffix(".png") if p.suffix == ".npy" else p
    for cand in ([p] if p.is_absolute() else [Path.cwd() / p, base / p]):
        if cand.is_file():
            return cand
    return None


def _cell(v) -> str:
    return html.escape("" if v is None else f"{v:.4g}" if isinstance(v, float) else str(v))


def _table(head: Sequence[str], rows: Sequence[Sequence], attrs: Sequence[str] = (), tid: str = "") -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join(f"<tr{attrs[i] if attrs else ''}>" + "".join(f"<td>{_cell(v)}</td>" for v in row) + "</tr>"
                   for i, row in enumerate(rows))
    return f'<table{f" id={tid!r}" if tid else ""}><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def render(records: Sequence[dict], title: str = "bnnlogic batch report", base: str | os.PathLike = ".") -> str:
    """The report page of ``records`` (one task's); pictures are looked up relative to the
    current folder, then to ``base`` (the results file's folder)."""
    task = records[0].get("task", "verify")
    counts = Counter(r["status"] for r in records)
    statuses = [s for s in STATUSES.get(task, ()) if counts[s]] + sorted(set(counts) - set(STATUSES.get(task, ())))
    times = [r["time_s"] for r in records]
    bars, cactus = _plots(records, task, statuses)

    extra = {"explain": ("median size", "size"), "count": ("median fraction", "fraction")}.get(task)
    head = ["eps", "queries", *statuses] + ([extra[0]] if extra else []) + ["median s", "max s"]
    rows, attrs = [], []
    for e in _eps_order(records):
        rs = [r for r in records if r["eps"] == e]
        row = [_eps_label(e), len(rs), *(sum(r["status"] == s for r in rs) for s in statuses)]
        if extra:
            vals = [r[extra[1]] for r in rs if r.get(extra[1]) is not None]
            row.append(statistics.median(vals) if vals else None)
        rows.append(row + [statistics.median(r["time_s"] for r in rs), max(r["time_s"] for r in rs)])
        attrs.append(f' data-eps="{html.escape(_eps_label(e))}"')
    per_eps = _table(head, rows, attrs, "per-eps")

    key = [k for k in ("index", "eps", "kind", "target") if any(k in r for r in records)]
    slow = sorted(records, key=lambda r: -r["time_s"])[:SLOWEST]
    how = "backend" if task == "verify" else "method"
    reason = ["reason"] if any(r.get("reason") for r in slow) else []
    slowest = _table(key + ["status", "time s", how] + reason,
                     [[r.get(k) if k != "eps" else _eps_label(r["eps"]) for k in key]
                      + [r["status"], r["time_s"], r.get(how)] + [r.get("reason")] * len(reason) for r in slow],
                     tid="slowest")

    in_order = sorted(records, key=lambda r: (r.get("index", 0), r["eps"] is not None, r["eps"] or 0))
    pics = [(r, p) for r in in_order if (p := _picture(r, task, Path(base))) is not None]
    figs = "".join(
        f'<figure><img alt="picture of query {html.escape(str(r.get("index")))}" src="data:image/png;base64,'
        f'{base64.b64encode(p.read_bytes()).decode()}"><figcaption>#{html.escape(str(r.get("index")))} eps '
        f'{html.escape(_eps_label(r["eps"]))}: {html.escape(_caption(r, task))}</figcaption></figure>'
        for r, p in pics[:MAX_PICTURES])
    what = {"verify": "counterexamples", "explain": "explanations (features outlined in red)"}.get(task)
    pictures = ("" if what is None else
                f'<h2>Pictures</h2><p id="pictures-note">{len(pics)} {what} with a picture'
                f'{f", the first {MAX_PICTURES} shown" if len(pics) > MAX_PICTURES else ""}.</p>'
                f'<div class="pictures">{figs}</div>')

    summary = "".join(f'<li><span class="status {html.escape(s)}">{html.escape(s)}</span> '
                      f'<b id="count-{html.escape(s)}">{counts[s]}</b></li>' for s in statuses)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<link rel="icon" href="data:,">
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 60em; color: #222; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1.5em; }}
td, th {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }}
th {{ background: #f3f3f3; }}
.status {{ display: inline-block; min-width: 9em; }}
{"".join(f".{s} {{ color: {c}; }}" for s, c in COLORS.items())}
.pictures {{ display: flex; flex-wrap: wrap; gap: 1em; }}
figure {{ margin: 0; max-width: 18em; }} figure img {{ max-width: 100%; }} figcaption {{ font-size: 0.85em; }}
img.plot {{ max-width: 100%; }}
</style></head>
<body>
<h1>{html.escape(title)}</h1>
<p>{html.escape(task)} results: <b id="total">{len(records)}</b> queries,
{sum(times):.1f} s of query time in all, median {statistics.median(times):.3f} s.</p>
<ul id="summary">{summary}</ul>
<h2>Verdicts per eps</h2>
{per_eps}
<img class="plot" alt="statuses per eps" src="{bars}">
<h2>Time</h2>
<p>Queries decided ({", ".join(DECIDED[task])}) within a given time per query, as verification
competitions plot them (log time axis).</p>
<img class="plot" alt="cumulative decided queries against time" src="{cactus}">
<h2>Slowest queries</h2>
{slowest}
{pictures}
</body></html>
"""


def _caption(rec: dict, task: str) -> str:
    if task == "verify":
        return f"{rec.get('label')} -> {rec.get('adv_label')} ({rec.get('found_by')})"
    return f"{rec.get('kind')}: {rec.get('size')} features, prediction {rec.get('prediction')}"


def write_report(results: str | os.PathLike, out: str | os.PathLike, title: str | None = None) -> dict:
    """Write the report page of the results file ``results`` to ``out`` (atomically); returns
    a summary: the task, the number of records and the count of each status."""
    recs = load_records(results)
    tasks = {r.get("task", "verify") for r in recs}
    if len(tasks) > 1 or not tasks <= set(STATUSES):
        raise UserError(f"{results}: records of tasks {sorted(map(str, tasks))}; a report covers one batch task")
    write_text(out, render(recs, title or f"bnnlogic report: {Path(results).name}", Path(results).resolve().parent))
    return {"task": tasks.pop(), "records": len(recs), "statuses": dict(Counter(r["status"] for r in recs)),
            "out": str(out)}
