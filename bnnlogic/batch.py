"""Batch verification: many (input, eps) queries, one JSON line each, resumable.

Each finished query is appended to the results file at once (flushed and fsynced), so a
killed run loses at most the queries in flight; a rerun reads the file, drops a torn last
line, and skips every (index, eps) already there.  A run holds an exclusive lock on the
results file (``fileio.locked_append``): a second run on the same file is refused.  Queries run in ``jobs`` worker processes,
each loading the model once.
"""
from __future__ import annotations

import json
import multiprocessing as mp
import os
import statistics
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np

from .fileio import locked_append
from .model import Model, load

_WORKER: dict[str, Any] = {}


def read_done(path: str | os.PathLike) -> list[dict]:
    """Results already in ``path``; a torn (unterminated) last line is cut off the file."""
    p = Path(path)
    if not p.exists():
        return []
    raw = p.read_bytes()
    if raw and not raw.endswith(b"\n"):
        raw = raw[: raw.rfind(b"\n") + 1]
        with open(p, "r+b") as fh:
            fh.truncate(len(raw))
    return [json.loads(line) for line in raw.decode().splitlines() if line.strip()]


def _init(model_path: str, settings: dict) -> None:
    _WORKER["model"] = load(model_path)
    _WORKER["settings"] = settings


def run_query(model: Model, index: int, x: np.ndarray, label: int, eps: int, backend: str,
              timeout: float | None, norm: str, cex_dir: str | None, cert_dir: str | None = None,
              cross_check: bool = False, cert_timeout: float | None = None) -> dict:
    """One query as a result record (the batch file's line format); with ``cert_dir`` a robust
    verdict's certificate goes to ``<cert_dir>/idx<i>_eps<e>.cert.zip`` (``bnnlogic.certify``)."""
    from .certify import check_verdict
    from .crosscheck import Disagreement
    from .verification import make_region, save_counterexample, verify_region

    R = make_region(model, x, eps, norm)
    r = verify_region(model, R, [label], label, backend, timeout)
    error = None
    try:
        check_verdict(model, R, r, None if not cert_dir else Path(cert_dir) / f"idx{index}_eps{eps}.cert.zip",
                      cross_check, timeout, cert_timeout, cex_dir, f"idx{index}_eps{eps}")
    except Disagreement as e:
        error, r.cross_check = str(e), e.check.to_dict()
    rec = {"index": int(index), "eps": int(eps), "status": r.status, "time_s": round(r.time_s, 6),
           "label": int(label), "backend": r.backend, "encoding": r.encoding,
           "stats": {k: r.stats.get(k) for k in ("variables", "clauses", "neurons", "fixed_by_bounds")}}
    for key, value in (("certificate", r.certificate), ("cross_check", r.cross_check), ("error", error)):
        if value is not None:
            rec[key] = value
    if r.status == "counterexample":
        rec["adv_label"] = r.adv_label
        rec["found_by"] = r.found_by
        rec["counterexample"] = None if not cex_dir else save_counterexample(
            model, x, r.counterexample, Path(cex_dir) / f"idx{index}_eps{eps}",
            f"#{index} eps {eps}: {label} -> {r.adv_label}")
    return rec


def _work(task: tuple[int, np.ndarray, int, int]) -> dict:
    index, x, label, eps = task
    s = _WORKER["settings"]
    return run_query(_WORKER["model"], index, x, label, eps, s["backend"], s["timeout"], s["norm"], s["cex_dir"],
                     s["cert_dir"], s["cross_check"], s["cert_timeout"])


def run_batch(model_path: str, X: np.ndarray, y: np.ndarray, indices: Sequence[int], eps_list: Sequence[int],
              out: str, jobs: int = 1, timeout: float | None = 60, backend: str = "auto", norm: str = "linf",
              cex_dir: str | None = None, progress: bool = True, cert_dir: str | None = None,
              cross_check: bool = False, cert_timeout: float | None = None) -> list[dict]:
    """Run every (index, eps) not yet in ``out``; returns all records of ``out``."""
    settings = dict(backend=backend, timeout=timeout, norm=norm, cex_dir=cex_dir, cert_dir=cert_dir,
                    cross_check=cross_check, cert_timeout=cert_timeout)
    with locked_append(out) as fh:  # a second run on the same file is refused
        done = read_done(out)
        seen = {(r["index"], r["eps"]) for r in done}
        tasks = [(int(i), X[i], int(y[i]), int(e)) for i in indices for e in eps_list if (int(i), int(e)) not in seen]
        for rec in _progress(_results(model_path, settings, tasks, jobs), len(tasks), progress):
            fh.write(json.dumps(rec) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
            done.append(rec)
    return done


def _results(model_path: str, settings: dict, tasks: list, jobs: int) -> Iterable[dict]:
    if jobs <= 1:
        _init(model_path, settings)
        yield from map(_work, tasks)
        return
    with mp.get_context("spawn").Pool(jobs, _init, (model_path, settings)) as pool:
        yield from pool.imap_unordered(_work, tasks)


def _progress(it: Iterable[dict], total: int, show: bool) -> Iterable[dict]:
    if not show:
        yield from it
        return
    from tqdm import tqdm

    counts = {"robust": 0, "counterexample": 0, "unknown": 0}
    with tqdm(total=total, desc="verify", unit="query") as bar:
        for rec in it:
            counts[rec["status"]] += 1
            bar.set_postfix(counts)
            bar.update()
            yield rec


def summarize(records: Sequence[dict]) -> list[dict]:
    """Per eps: counts of each status, median and mean time."""
    rows = []
    for eps in sorted({r["eps"] for r in records}):
        rs = [r for r in records if r["eps"] == eps]
        t = [r["time_s"] for r in rs]
        rows.append({"eps": eps, "n": len(rs),
                     **{s: sum(r["status"] == s for r in rs) for s in ("robust", "counterexample", "unknown")},
                     "median_time_s": statistics.median(t), "mean_time_s": statistics.fmean(t)})
    return rows


def table(rows: Sequence[dict]) -> str:
    """Markdown table of ``summarize`` rows."""
    head = "| eps | n | robust | counterexample | unknown | median s | mean s |\n|---|---|---|---|---|---|---|\n"
    return head + "".join(f"| {r['eps']} | {r['n']} | {r['robust']} | {r['counterexample']} | {r['unknown']} | "
                          f"{r['median_time_s']:.3f} | {r['mean_time_s']:.3f} |\n" for r in rows)
