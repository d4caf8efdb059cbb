"""The declarative mapping of an import (a dict or a JSON file) and the raw -> source input step.

See ``bnnlogic.nn.importer`` for the full format.  Torch-free: every reader uses these."""
from __future__ import annotations

import json
import os

import numpy as np

from ..errors import UserError


def load_mapping(mapping: str | os.PathLike | dict | None) -> dict:
    """A mapping as a dict: given, read from a JSON file, or empty."""
    if mapping is None or isinstance(mapping, dict):
        return dict(mapping or {})
    try:
        with open(mapping) as fh:
            out = json.load(fh)
    except FileNotFoundError:
        raise UserError(f"mapping file {mapping} not found") from None
    except ValueError as exc:
        raise UserError(f"mapping file {mapping}: not JSON ({exc})") from None
    if not isinstance(out, dict):
        raise UserError(f"mapping file {mapping}: expected a JSON object with input / layers / output")
    return out


def input_spec(mapping: dict, feature_shape=None, domain=None) -> tuple[dict, tuple[int, ...], int, int]:
    """The mapping's input section, the raw feature shape and domain [lo, hi] (arguments override
    the mapping's ``input.shape`` / ``input.domain``; the domain defaults to pixels, 0..255)."""
    spec = mapping.get("input", {})
    if not isinstance(spec, dict):
        raise UserError("the mapping's input must be an object (shape, domain, divide, binarize, bn)")
    shape = feature_shape or spec.get("shape")
    if not shape:
        raise UserError("the raw input shape is unknown: give --input-shape (e.g. 1,28,28), input.shape in the "
                        "mapping, or --data NAME")
    try:
        lo, hi = domain or spec.get("domain", (0, 255))
        shape = tuple(int(v) for v in shape)
    except (TypeError, ValueError):
        raise UserError("input.shape must be a list of integers and input.domain [lo, hi]") from None
    if int(lo) >= int(hi) or min(shape) < 1:
        raise UserError(f"bad raw input: shape {shape}, domain [{lo}, {hi}]")
    return dict(spec), shape, int(lo), int(hi)


def raw_input(spec: dict, feature_shape: tuple[int, ...], hi: int):
    """raw (n, d) integers -> the source's float32 input (n, *feature_shape): ``raw / divide``
    (default: hi, e.g. pixels / 255 as torchvision's ToTensor) or ``raw * scale``."""
    if "scale" in spec:
        s = np.float32(spec["scale"])
        return lambda raw: np.asarray(raw, np.float32).reshape((-1,) + feature_shape) * s
    div = np.float32(spec.get("divide", hi))
    if div == 0:
        raise UserError("input.divide must not be 0")
    return lambda raw: np.asarray(raw, np.float32).reshape((-1,) + feature_shape) / div
