"""Benchmark records: every number in the docs has a JSON record and a command behind it.

A benchmark run with ``--record`` calls ``save_record`` once at the end::

    benchmarks/records/<benchmark>/<UTC date>T<time>Z-<git short rev>.json

    {"benchmark": "hard", "schema": 1,
     "command": "python benchmarks/hard.py --images 100 --record",   # exactly as run
     "git_revision": "<full sha>", "git_dirty": false,
     "date": "2026-12-04T16:07:10Z",
     "machine": {"cpu": "...", "cores": 2, "memory_gb": 23.4, "load_avg_1m_start": 0.1,
                 "python": "3.11.7", "packages": {"numpy": "...", ...}},
     "summary": {...},        # the headline numbers a docs table shows
     "rows": [...]}           # raw per-query / per-configuration rows

Earlier runs stay in the folder (the history); the docs render the newest record of each
benchmark (``latest``).  Without ``--record`` a benchmark writes nothing under ``records/``.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import platform
import shlex
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bnnlogic.fileio import write_json  # noqa: E402

RECORDS = Path(__file__).resolve().parent / "records"
ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("numpy", "numba", "torch", "python-sat", "ortools", "exact", "pyapproxmc", "pyganak", "dd", "onnx",
            "onnxruntime", "vnnlib")
_LOAD_AT_IMPORT = os.getloadavg()[0] if hasattr(os, "getloadavg") else None


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


def revision(short: bool = False) -> str:
    """The git revision of HEAD (8 hex digits if ``short``); "" outside a git checkout."""
    return _git("rev-parse", *(["--short=8"] if short else []), "HEAD")


def machine() -> dict[str, Any]:
    """What the numbers were measured on: CPU model, cores, memory, load, Python, packages."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        kb = next(int(l.split()[1]) for l in Path("/proc/meminfo").read_text().splitlines() if l.startswith("MemTotal"))
        mem = round(kb / 2**20, 1)
    except (OSError, StopIteration):
        pass
    pkgs = {}
    for p in PACKAGES:
        try:
            pkgs[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gb": mem, "load_avg_1m_start": _LOAD_AT_IMPORT,
            "load_avg_1m_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
            "python": platform.python_version(), "platform": platform.platform(), "packages": pkgs}


def command(argv: list[str] | None = None) -> str:
    """The command line of this run, as a user would type it from the repository root."""
    argv = list(sys.argv if argv is None else argv)
    script = Path(argv[0]).resolve()
    try:
        argv[0] = str(script.relative_to(ROOT))
    except ValueError:
        pass
    return "python " + shlex.join(argv)


def save_record(benchmark: str, summary: dict[str, Any], rows: list[Any], argv: list[str] | None = None,
                **extra: Any) -> Path:
    """Write this run's record (see the module docstring) atomically; returns its path."""
    now = _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0)
    rev = revision()
    rec = {"benchmark": benchmark, "schema": 1, "command": command(argv), "git_revision": rev,
           "git_dirty": bool(_git("status", "--porcelain", "--untracked-files=no")),
           "date": now.strftime("%Y-%m-%dT%H:%M:%SZ"), "machine": machine(), "summary": summary, "rows": rows,
           **extra}
    path = RECORDS / benchmark / f"{now.strftime('%Y%m%dT%H%M%SZ')}-{rev[:8] or 'norev'}.json"
    write_json(path, rec)
    return path


def history(benchmark: str) -> list[dict[str, Any]]:
    """Every record of ``benchmark``, oldest first."""
    folder = RECORDS / benchmark
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []


def latest(benchmark: str) -> dict[str, Any] | None:
    """The newest record of ``benchmark`` (None if it was never recorded)."""
    h = history(benchmark)
    return h[-1] if h else None


def add_record_argument(ap) -> None:
    """The ``--record`` flag every benchmark takes (argparse)."""
    ap.add_argument("--record", action="store_true",
                    help=f"also write this run's JSON record under {RECORDS.relative_to(ROOT)}/<benchmark>/ "
                         "(command, git revision, machine, date, summary, raw rows); the docs render the newest")
