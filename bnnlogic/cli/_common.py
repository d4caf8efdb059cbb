"""Helpers shared by the sub-commands: JSON output and input files."""
from __future__ import annotations

import json
import os
import sys
from typing import Any

import numpy as np

from ..errors import UserError
from ..fileio import jsonable


def emit(obj: dict[str, Any], as_json: bool, text: str | None = None) -> None:
    """Print ``obj`` as one JSON document (``--json``), else ``text`` (or key: value lines)."""
    if as_json:
        json.dump(obj, sys.stdout, indent=2, default=jsonable)
        sys.stdout.write("\n")
    else:
        print(text if text is not None else "\n".join(f"{k}: {v}" for k, v in obj.items()))


def load_array(path: str) -> np.ndarray:
    """Read an input array (.npy, or .json / .txt / .csv numbers); a bad file is a UserError."""
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such input file")
    try:
        if path.endswith(".npy"):
            return np.load(path, allow_pickle=False)
        if path.endswith(".json"):
            with open(path) as fh:
                return np.asarray(json.load(fh))
        return np.loadtxt(path, delimiter="," if path.endswith(".csv") else None, ndmin=1)
    except (ValueError, OSError, json.JSONDecodeError) as exc:
        raise UserError(f"{path}: cannot read input array ({exc}); give a .npy file of raw features") from None


def add_json_flag(p) -> None:
    p.add_argument("--json", action="store_true", help="print one JSON object (for scripts)")


EXIT_INCOMPLETE = 3  # a long command stopped at its time limit: the best result so far, marked incomplete
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM


#: seconds per query of a batch run (``--data``) when ``--timeout`` is not given
BATCH_TIMEOUT = 60.0


def add_time_flags(p, default: float, per_call: bool = True, batch: bool = False) -> None:
    """``--timeout`` for the whole command (default ``default`` s; with ``batch``, per query of a
    batch run, default ``BATCH_TIMEOUT``) and, for commands that call a solver many times,
    ``--call-timeout`` per call.  ``resolve_timeout`` fills in the default."""
    extra = f"; in batch mode seconds per query (default {BATCH_TIMEOUT:g}), a hard limit" if batch else ""
    p.add_argument("--timeout", type=float, default=None,
                   help=f"seconds for the whole command (default {default:g}); past it the best result so far is "
                        f"reported, marked \"complete\": false, exit status {EXIT_INCOMPLETE}{extra}")
    p.set_defaults(timeout_default=default)
    if per_call:
        p.add_argument("--call-timeout", type=float, default=None,
                       help="seconds per solver call (default: only the time left bounds it)")


def check_time_flags(args) -> None:
    """Refuse a non-positive limit, then fill in ``--timeout``'s default: the whole command's, or
    per query in batch mode (``args.data`` set)."""
    for flag in ("timeout", "call_timeout"):
        v = getattr(args, flag, None)
        if v is not None and v <= 0:
            raise UserError(f"--{flag.replace('_', '-')} must be positive, got {v:g}")
    if args.timeout is None:
        args.timeout = BATCH_TIMEOUT if getattr(args, "data", None) else args.timeout_default


class Progress:
    """A progress line on stderr for a long command, on a terminal and not in ``--json`` mode.
    Called with the algorithms' progress dicts (``budget.Budget.tick``): ``done`` (and
    ``total``) move the bar, ``unit`` names its steps, other keys are shown beside it.  The
    last dict is kept (``last``): how far a command got when it stopped."""

    def __init__(self, desc: str, enabled: bool) -> None:
        self.last: dict[str, Any] = {}
        self.bar = None
        if enabled:
            from tqdm import tqdm

            self.bar = tqdm(desc=desc, total=None, leave=False, dynamic_ncols=True)

    def __call__(self, info: dict[str, Any]) -> None:
        self.last = info
        if self.bar is None:
            return
        if info.get("total") is not None and self.bar.total != info["total"]:
            self.bar.total = info["total"]
        if "unit" in info:
            self.bar.unit = f" {info['unit']}"
        if "done" in info:
            self.bar.n = info["done"]
        extra = {k: v for k, v in info.items() if k not in ("done", "total", "unit")}
        if extra:
            self.bar.set_postfix(extra, refresh=False)
        self.bar.update(0)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def progress_enabled(args) -> bool:
    """Progress lines: on a terminal only, never with ``--json``."""
    return not getattr(args, "json", False) and sys.stderr.isatty()


def stop_note(stopped: str | None, timeout: float | None) -> str:
    """One line saying why a command's result is incomplete ('' when it is complete)."""
    if stopped == "time":
        return f"stopped at the time limit ({timeout:g} s, --timeout): the best result so far, not complete"
    if stopped == "interrupt":
        return "interrupted: the best result so far, not complete"
    return ""


def exit_status(stopped: str | None) -> int:
    return {None: 0, "time": EXIT_INCOMPLETE, "interrupt": EXIT_INTERRUPTED}[stopped]
