"""Batch queries: many (input, eps) questions about one model, one JSON line each, resumable.

What a query is and where it runs are kept apart.  A *task* says what one query computes and
which record fields identify it (its key):

    verify   ``run_query``                               key (index, eps)
    explain  ``bnnlogic.batch_queries.explain_query``    key (index, eps, kind)
    count    ``bnnlogic.batch_queries.count_query``      key (index, eps, target)

An *executor* (``bnnlogic.executors``) runs the queries: in this process (``jobs=0``), on
``jobs`` local worker processes, or on Ray (``ray=True``: a local Ray started on demand;
``ray_address``: a running cluster).  The results file is the same in every mode: each
finished query is appended at once (flushed and fsynced), so a killed run loses at most the
queries in flight; a rerun reads the file, drops a torn last line, and skips every key already
there; a run holds an exclusive lock on the results file (``fileio.locked_append``), so a
second run on the same file is refused.  A query the executor could not finish (its hard time limit ran out, or its worker
process died twice) is recorded with status ``unknown`` and a ``reason``.  A verify query
races its engines on the cores left to its worker (``executors.cores_per_call``: every core in
this process, ``cpu_count // jobs`` (at least one) on the pool, the one CPU a task holds on Ray).

Every record has ``task``, its key fields, ``status`` and ``time_s`` (seconds, measured where
the query ran).  verify records (``run_query``) also have ``label`` (the data set's),
``backend``, ``encoding``, ``stats`` and, for a counterexample, ``adv_label``, ``found_by`` and
``counterexample`` (the saved ``.npy``, a ``.png`` beside it for images; None without a folder);
an ``unknown`` from the racing portfolio has ``classes_open``, the bad classes it left open, and
``bab_estimate_s``, roughly what branch and bound alone would need (``Race.bab_estimate``).
"""
from __future__ import annotations

import json
import os
import statistics
from collections import Counter
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

import numpy as np

from .errors import UserError
from .executors import Call, Executor, Outcome, cores_per_call, make_executor
from .fileio import jsonable, locked_append
from .model import Model, load

#: record fields that identify a query, per task (besides ``task`` itself)
KEYS = {"verify": ("index", "eps"), "explain": ("index", "eps", "kind"), "count": ("index", "eps", "target")}
#: the statuses of each task, in table order
STATUSES = {"verify": ("robust", "counterexample", "unknown"), "explain": ("explained", "robust", "unknown"),
            "count": ("counted", "unknown")}
#: a query may run this much past its own time limit before its worker is stopped:
#: ``max(GRACE_S, timeout * GRACE_FACTOR)`` (encoding, the independent checks, a slow solver exit)
GRACE_S, GRACE_FACTOR = 10.0, 0.5


def hard_limit(timeout: float | None, extra: float | None = None) -> float | None:
    """The hard limit of a query with a time limit of ``timeout`` seconds (None: none), plus
    ``extra`` seconds of work after the verdict (a certificate)."""
    if timeout is None:
        return None
    return timeout + max(GRACE_S, GRACE_FACTOR * timeout) + (extra or 0.0)


def key_of(rec: dict) -> tuple:
    """The record's task and key fields (records without ``task`` are verify's)."""
    task = rec.get("task", "verify")
    return (task,) + tuple(rec.get(k) for k in KEYS[task])


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


def run_query(model: Model, index: int, x: np.ndarray, label: int, eps: int, backend: str,
              timeout: float | None, norm: str, cex_dir: str | None, cores: int | None = None,
              cert_dir: str | None = None, cross_check: bool = False, cert_timeout: float | None = None,
              ties: str = "low") -> dict:
    """One query as a result record (the batch file's line format); with ``cert_dir`` a robust
    verdict's certificate goes to ``<cert_dir>/idx<i>_eps<e>.cert.zip`` (``bnnlogic.certify``),
    with ``cross_check`` another kind of backend re-decides it (a disagreement: ``error``);
    ``ties``: as in ``verification.verify`` (recorded when not the model's own rule)."""
    from .certify import check_verdict
    from .crosscheck import Disagreement
    from .verification import make_region, save_counterexample, verify_region

    R = make_region(model, x, eps, norm)
    r = verify_region(model, R, [label], label, backend, timeout, cores=cores, ties=ties)
    error = None
    try:
        check_verdict(model, R, r, None if not cert_dir else Path(cert_dir) / f"idx{index}_eps{eps}.cert.zip",
                      cross_check, timeout, cert_timeout, cex_dir, f"idx{index}_eps{eps}")
    except Disagreement as e:
        error, r.cross_check = str(e), e.check.to_dict()
    rec = {"index": int(index), "eps": int(eps), "status": r.status, "time_s": round(r.time_s, 6),
           "label": int(label), "backend": r.backend, "encoding": r.encoding,
           "stats": {k: r.stats.get(k) for k in ("variables", "clauses", "neurons", "fixed_by_bounds")}}
    for key, value in (("certificate", r.certificate), ("cross_check", r.cross_check), ("error", error),
                       ("ties", None if ties == "low" else ties), ("classes_open", r.stats.get("classes_open")),
                       ("bab_estimate_s", r.stats.get("bab_estimate_s"))):
        if value is not None:
            rec[key] = value
    if r.status == "counterexample":
        rec["adv_label"] = r.adv_label
        rec["found_by"] = r.found_by
        rec["counterexample"] = None if not cex_dir else save_counterexample(
            model, x, r.counterexample, Path(cex_dir) / f"idx{index}_eps{eps}",
            f"#{index} eps {eps}: {label} -> {r.adv_label}")
    return rec


class Query:
    """One record's worth of work: ``base`` (the record's task, its key fields and whatever
    a failure record should carry) and the calls that answer it (one; several when split,
    see ``bnnlogic.split.SplitQuery``)."""

    def __init__(self, base: dict, fn: Callable[..., dict], args: Sequence[Any], limit: float | None = None,
                 files_arg: int | None = None) -> None:
        self.base = base
        self.key = key_of(base)
        self.calls = [Call(self.key, fn, tuple(args), limit, files_arg)]

    def take(self, o: Outcome) -> dict | None:
        """The record, once the query is decided (its other calls are then cancelled)."""
        if o.failure is not None:
            return {**self.base, "status": "unknown", "time_s": round(o.seconds, 6), "reason": o.failure}
        return {**self.base, **o.value}


def run_queries(task: str, queries: Sequence[Query], out: str | os.PathLike, model: Model, jobs: int | None = None,
                ray: bool = False, ray_address: str | None = None, progress: bool = True,
                executor: Executor | None = None) -> list[dict]:
    """Run every query whose key is not yet in ``out`` on the executor ``make_executor(model,
    jobs, ray, ray_address)`` (started only if there is work; or on ``executor``, made for
    ``model`` and left open), appending each record as it comes; returns all records of ``out``.
    The results file is locked for the whole run (``fileio.locked_append``)."""
    with locked_append(out) as fh:  # a second run on the same file is refused
        done = read_done(out)
        other = {r.get("task", "verify") for r in done} - {task}
        if other:
            raise UserError(f"{out} holds {', '.join(sorted(other))} results; write {task} results to another --out file")
        seen = {key_of(r) for r in done}
        todo: dict[tuple, Query] = {}
        for q in queries:
            if q.key not in seen:
                todo.setdefault(q.key, q)
        if todo:
            _run_todo(task, todo, fh, done, model, jobs, ray, ray_address, progress, executor)
    return done


def _run_todo(task: str, todo: dict[tuple, Query], fh, done: list[dict], model: Model, jobs: int | None, ray: bool,
              ray_address: str | None, progress: bool, executor: Executor | None) -> None:
    """Run ``todo`` on its executor, appending (flushed, fsynced) each record to ``fh`` and ``done``."""
    engine = make_executor(model, jobs, ray, ray_address) if executor is None else nullcontext(executor)
    with engine as ex:
        desc = f"{task} ({ex.name} x{ex.slots})"
        for rec in _progress(_records(ex, list(todo.values())), len(todo), desc, progress):
            fh.write(json.dumps(rec, default=jsonable) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
            done.append(rec)


def _records(ex: Executor, queries: list[Query]) -> Iterator[dict]:
    """Each query's record as soon as it is decided; its remaining calls are cancelled."""
    owner = {c.id: q for q in queries for c in q.calls}
    for o in ex.run(c for q in queries for c in q.calls):
        q = owner[o.call.id]
        rec = q.take(o)
        if rec is not None:
            ex.cancel(c.id for c in q.calls)
            yield rec


def _progress(records: Iterable[dict], total: int, desc: str, show: bool) -> Iterator[dict]:
    """done / total, rate and ETA (tqdm), with the count of each status."""
    if not show:
        yield from records
        return
    from tqdm import tqdm

    counts: Counter = Counter()
    with tqdm(total=total, desc=desc, unit="query") as bar:
        for rec in records:
            counts[rec["status"]] += 1
            bar.set_postfix(counts, refresh=False)
            bar.update()
            yield rec


def row(X: np.ndarray, i: int) -> np.ndarray:
    """Row ``i`` of a batch's inputs as int64: a query's center (the table may keep the data
    set's compact dtype, uint8 pixels, and eps arithmetic must not wrap around)."""
    return np.asarray(X[i], dtype=np.int64)


def run_batch(model_path: str, X: np.ndarray, y: np.ndarray, indices: Sequence[int], eps_list: Sequence[int],
              out: str, jobs: int | None = None, timeout: float | None = 60, backend: str = "auto", norm: str = "linf",
              cex_dir: str | None = None, progress: bool = True, *, ray: bool = False,
              ray_address: str | None = None, split: int = 1, executor: Executor | None = None,
              cert_dir: str | None = None, cross_check: bool = False, cert_timeout: float | None = None,
              ties: str = "low") -> list[dict]:
    """Verify every (index, eps) not yet in ``out``; returns all records of ``out``.

    ``jobs``: worker processes (0: this process); ``ray`` / ``ray_address``: Ray instead
    (``bnnlogic.executors.make_executor``), or an open ``executor`` made for this model.
    ``split > 1``: each L-infinity query runs as up to ``split`` sub-box tasks
    (``bnnlogic.split``), so one hard query can use every worker.  ``cert_dir`` /
    ``cross_check`` / ``cert_timeout``: as in ``run_query`` (certificates are written where the
    query runs: this machine, or a disk the Ray nodes share)."""
    if split > 1 and (cert_dir or cross_check or ties != "low"):
        raise UserError("--certify, --cross-check and --ties take whole queries; drop --split")
    if split > 1 and norm != "linf":
        raise UserError("split queries are L-infinity boxes; use --norm linf with --split")
    model = load(model_path)
    cores = executor.cores if executor is not None else cores_per_call(jobs, ray, ray_address)
    queries: list[Query] = []
    for i in indices:
        for e in eps_list:
            i, e, label = int(i), int(e), int(y[i])
            base = {"task": "verify", "index": i, "eps": e, "label": label, "backend": backend,
                    "encoding": None, "stats": {}}
            if split > 1:
                from .split import SplitQuery

                queries.append(SplitQuery(base, model, row(X, i), e, split, backend, timeout, cex_dir, cores))
            else:
                queries.append(Query(base, run_query, (i, row(X, i), label, e, backend, timeout, norm, cex_dir, cores,
                                                       cert_dir, cross_check, cert_timeout, ties),
                                     hard_limit(timeout, cert_timeout if cert_dir else None), files_arg=7))
    return run_queries("verify", queries, out, model, jobs, ray, ray_address, progress, executor)


def summarize(records: Sequence[dict]) -> list[dict]:
    """Per eps: counts of each status (the task's, then any other), median and mean time."""
    task = records[0].get("task", "verify") if records else "verify"
    seen = {r["status"] for r in records}
    statuses = list(STATUSES[task]) + sorted(seen - set(STATUSES[task]))
    rows = []
    for eps in sorted({r["eps"] for r in records}, key=lambda e: (e is not None, e)):
        rs = [r for r in records if r["eps"] == eps]
        t = [r["time_s"] for r in rs]
        rows.append({"eps": eps, "n": len(rs), **{s: sum(r["status"] == s for r in rs) for s in statuses},
                     "median_time_s": statistics.median(t), "mean_time_s": statistics.fmean(t)})
    return rows


def table(rows: Sequence[dict]) -> str:
    """Markdown table of ``summarize`` rows."""
    if not rows:
        return "(no results)\n"
    statuses = [k for k in rows[0] if k not in ("eps", "n", "median_time_s", "mean_time_s")]
    head = (f"| eps | n | {' | '.join(statuses)} | median s | mean s |\n"
            f"|---|---|{'---|' * len(statuses)}---|---|\n")
    return head + "".join(
        f"| {'domain' if r['eps'] is None else r['eps']} | {r['n']} | {' | '.join(str(r[s]) for s in statuses)} | "
        f"{r['median_time_s']:.3f} | {r['mean_time_s']:.3f} |\n" for r in rows)
