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
