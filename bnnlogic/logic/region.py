"""Input regions over raw integer features.

A region is a box ``lo_f <= x_f <= hi_f`` (per raw feature f, inside the coding's domain),
optionally with an L0 budget: at most ``l0`` features may leave their ``center`` value.

    L-infinity ball   lo = max(x - eps, dom_lo), hi = min(x + eps, dom_hi) on the mask, x elsewhere
    L0 ball           lo = dom_lo, hi = dom_hi on the mask, plus  #{f : x_f != center_f} <= k
    box               any lo <= hi inside the domain (the whole domain included)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import UserError
from ..ir import InputCoding


@dataclass(frozen=True)
class Region:
    """A set of raw inputs: a box, optionally with an L0 budget around ``center``."""

    lo: np.ndarray  # int64 (d,)
    hi: np.ndarray  # int64 (d,)
    center: np.ndarray | None = None  # int64 (d,): the input the region is built around
    l0: int | None = None  # at most this many features differ from center
    norm: str = "box"
    eps: int | None = None

    @property
    def n_features(self) -> int:
        return int(self.lo.shape[0])

    def contains(self, X: np.ndarray) -> np.ndarray:
        """Membership of raw inputs X (n, d) -> bool (n,)."""
        X = np.asarray(X).reshape(-1, self.n_features)
        ok = np.all((X >= self.lo) & (X <= self.hi), axis=1)
        if self.l0 is not None:
            ok &= np.count_nonzero(X != self.center, axis=1) <= self.l0
        return ok

    def size(self) -> int:
        """Number of raw inputs in the region (exact Python integer)."""
        widths = [int(w) for w in self.hi - self.lo + 1]
        if self.l0 is None:
            return int(np.prod([w for w in widths], dtype=object))
        # sum over subsets of changed features: coefficient of t^j, j <= l0, in prod(1 + (w-1) t)
        poly = [1]
        for w in widths:
            if w > 1:
                poly = [a + (w - 1) * b for a, b in zip(poly + [0], [0] + poly)][: self.l0 + 1]
        return int(sum(poly))


def _check_center(coding: InputCoding, x: np.ndarray) -> np.ndarray:
    x = np.asarray(x)
    if x.size != coding.n_features:
        raise UserError(f"input has {x.size} values; the model takes {coding.n_features} raw features")
    if x.dtype.kind == "f" and not np.all(x == np.round(x)):
        raise UserError("input holds non-integer values; give raw integer features")
    x = x.reshape(-1).astype(np.int64)
    if x.min() < coding.lo or x.max() > coding.hi:
        raise UserError(f"input values outside the feature domain [{coding.lo}, {coding.hi}]")
    return x


def _mask(coding: InputCoding, mask: np.ndarray | None) -> np.ndarray:
    if mask is None:
        return np.ones(coding.n_features, dtype=bool)
    mask = np.asarray(mask).reshape(-1).astype(bool)
    if mask.size != coding.n_features:
        raise UserError(f"mask has {mask.size} entries; the model has {coding.n_features} features")
    return mask


def linf(coding: InputCoding, x: np.ndarray, eps: int, mask: np.ndarray | None = None) -> Region:
    """``|x'_f - x_f| <= eps`` on the masked features (raw units), clipped to the domain."""
    span = coding.hi - coding.lo
    if not float(eps).is_integer() or not 0 <= eps <= span:
        raise UserError(f"eps must be an integer in [0, {span}] (raw feature units), got {eps}")
    x = _check_center(coding, x)
    m = _mask(coding, mask)
    e = np.where(m, int(eps), 0)
    return Region(np.maximum(x - e, coding.lo), np.minimum(x + e, coding.hi), x, None, "linf", int(eps))


def l0(coding: InputCoding, x: np.ndarray, k: int, mask: np.ndarray | None = None) -> Region:
    """At most ``k`` masked features changed, each to any value of the domain."""
    if not float(k).is_integer() or not 0 <= k <= coding.n_features:
        raise UserError(f"the L0 budget must be an integer in [0, {coding.n_features}], got {k}")
    x = _check_center(coding, x)
    m = _mask(coding, mask)
    lo = np.where(m, coding.lo, x)
    hi = np.where(m, coding.hi, x)
    return Region(lo.astype(np.int64), hi.astype(np.int64), x, int(k), "l0", int(k))


def box(coding: InputCoding, lo: np.ndarray | int | None = None, hi: np.ndarray | int | None = None) -> Region:
    """A box inside the domain; with no bounds, the whole input domain."""
    d = coding.n_features
    lo = np.broadcast_to(np.asarray(coding.lo if lo is None else lo, dtype=np.int64), (d,)).copy()
    hi = np.broadcast_to(np.asarray(coding.hi if hi is None else hi, dtype=np.int64), (d,)).copy()
    if np.any(lo > hi) or lo.min() < coding.lo or hi.max() > coding.hi:
        raise UserError(f"box bounds must satisfy {coding.lo} <= lo <= hi <= {coding.hi}")
    return Region(lo, hi, None, None, "box", None)


def domain(coding: InputCoding) -> Region:
    """Every raw input the model accepts."""
    return box(coding)
