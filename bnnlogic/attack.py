"""Cheap counterexample search inside a region, run before any solver.

Only features whose box crosses a coding threshold can change a bit, so the search moves
those only, each to a representative value per threshold interval (the box ends and the
thresholds inside it).  Random restarts at such corners, then greedy coordinate moves that
maximise the margin ``max_{c in bad} score_c - max_{c not in bad} score_c`` (integer scores
of the engine).  Whatever it returns is a candidate: the caller replays it.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .ir import IR, in_classes
from .logic.region import Region


def _choices(ir: IR, R: Region) -> dict[int, np.ndarray]:
    """Active feature -> its representative raw values inside the box."""
    thr = ir.coding.thresholds
    free = ir.coding.free(R.lo, R.hi)
    out = {}
    for f in np.nonzero(free.any(axis=0))[0]:
        vals = np.unique(np.concatenate([[R.lo[f], R.hi[f]], thr[free[:, f], f]]))
        out[int(f)] = vals.astype(np.int64)
    return out


def _margin(scores: np.ndarray, bad: np.ndarray) -> np.ndarray:
    return scores[:, bad].max(axis=1) - np.where(bad, np.iinfo(np.int64).min, scores).max(axis=1)


def attack(engine, ir: IR, R: Region, bad_classes: Sequence[int], seed: int = 0,
           restarts: int = 64, steps: int = 20, ties: str = "low") -> np.ndarray | None:
    """A raw input of R predicted in ``bad_classes`` (a tie read by the rule ``ties``,
    ``ir.in_classes``), or None if the search finds none."""
    bad = np.zeros(ir.n_classes, dtype=bool)
    bad[list(bad_classes)] = True
    center = R.center if R.center is not None else R.lo
    choices = _choices(ir, R)

    def found(X):
        hit = np.nonzero(in_classes(engine.scores(X), bad, ties))[0]
        return X[hit[0]] if len(hit) else None

    if not choices or not bad.any():
        return found(center[None].copy())
    feats = np.array(sorted(choices))
    budget = R.l0 if R.l0 is not None else len(feats)
    rng = np.random.default_rng(seed)
    starts = np.repeat(center[None], restarts, axis=0)
    for r in range(1, restarts):
        fs = feats if budget >= len(feats) else rng.choice(feats, size=budget, replace=False)
        for f in fs:
            starts[r, f] = rng.choice(choices[f])
    if (x := found(starts)) is not None:
        return x
    x = center.copy()
    changed: set[int] = set()
    for _ in range(min(steps, budget)):
        cand = [(f, v) for f in feats if (f in changed or len(changed) < budget)
                for v in choices[f] if v != x[f]]
        if not cand:
            return None
        X = np.repeat(x[None], len(cand), axis=0)
        for i, (f, v) in enumerate(cand):
            X[i, f] = v
        if (hit := found(X)) is not None:
            return hit
        best = int(np.argmax(_margin(engine.scores(X), bad)))
        x = X[best]
        changed.add(cand[best][0])
    return None
