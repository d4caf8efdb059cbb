"""Model counting: how many raw inputs of a box region a BNN assigns to a set of classes.

Counts are over raw inputs, not input bits: a coding bit ``[x_f >= t]`` that is free on
``[lo_f, hi_f]`` stands for ``hi_f - t + 1`` raw values when true and ``t - lo_f`` when false.

    enumerate   one representative per cell of the coding thresholds (the product over features
                of their threshold intervals), weighted by the cell's raw size; exact, small cells
    ganak       exact projected model counting (pyganak) of the encoding plus, per feature with
                free thresholds, ``n_f = bitlen(hi_f - lo_f)`` bits ``v_f = x_f - lo_f`` with
                ``v_f <= hi_f - lo_f`` and ``z[f,t] <=> v_f >= t - lo_f`` (comparators with a
                constant, Tseitin gates); projected on the v bits, every model is one raw input,
                so the unweighted count is the raw count, an exact Python integer
    bdd         the compiled OBDD (``bnnlogic.compile``), exact
    approx      ApproxMC (pyapproxmc) on the same CNF and projection: with probability at least
                1 - delta, count / (1 + epsilon) <= estimate <= (1 + epsilon) * count
    exact       enumerate when there are at most ``ENUM_CELLS`` cells, else ganak

The goal literal is only an implication in the encoding, but every neuron is an equivalence,
so an assignment of the v bits extends to a model iff its input reaches the goal: the
projected count is exact.  Features with no free threshold multiply the count by their width.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

import numpy as np

from .errors import UserError
from .ir import IR
from .logic import Region, encode, to_cnf
from .logic.formula import TRUE

ENUM_CELLS = 1 << 16
METHODS = ("exact", "enumerate", "ganak", "bdd", "approx")


@dataclass
class CountResult:
    count: int  # raw inputs of the region predicted in ``classes`` (an estimate for approx)
    total: int  # raw inputs of the region
    classes: list[int]
    method: str
    time_s: float
    epsilon: float | None = None
    delta: float | None = None

    @property
    def fraction(self) -> float:
        return float(Fraction(self.count, self.total))

    @property
    def exact(self) -> bool:
        return self.method != "approx"

    def to_json(self) -> dict:
        d = {"count": self.count, "total": self.total, "fraction": self.fraction, "classes": self.classes,
             "method": self.method, "exact": self.exact, "time_s": round(self.time_s, 6)}
        if not self.exact:
            d.update(epsilon=self.epsilon, delta=self.delta,
                     lower=int(self.count / (1 + self.epsilon)), upper=int(self.count * (1 + self.epsilon)) + 1)
        return d


def _cells(ir: IR, R: Region) -> tuple[list[int], list[np.ndarray], list[np.ndarray]]:
    """Features with free thresholds, each with its cells' representatives and widths."""
    thr, free = ir.coding.thresholds, ir.coding.free(R.lo, R.hi)
    feats, reps, widths = [], [], []
    for f in range(ir.coding.n_features):
        ts = np.unique(thr[free[:, f], f])
        if len(ts):
            starts = np.concatenate([[R.lo[f]], ts])
            feats.append(f)
            reps.append(starts)
            widths.append(np.diff(np.concatenate([starts, [R.hi[f] + 1]])))
    return feats, reps, widths


def n_cells(ir: IR, R: Region) -> int:
    return int(np.prod([len(r) for r in _cells(ir, R)[1]], dtype=object))


def _other_factor(R: Region, feats: Sequence[int]) -> int:
    w = np.delete(R.hi - R.lo + 1, list(feats))
    return int(np.prod(w.astype(object))) if w.size else 1


def count_enumerate(ir: IR, R: Region, classes: Sequence[int], max_cells: int = 1 << 22) -> int:
    from .infer import Engine

    feats, reps, widths = _cells(ir, R)
    n = int(np.prod([len(r) for r in reps], dtype=object))
    if n > max_cells:
        raise UserError(f"{n} cells are too many to enumerate (limit {max_cells}); use --method ganak or approx")
    engine = Engine(ir)
    base = R.lo.copy()
    total = 0
    idx = np.indices([len(r) for r in reps]).reshape(len(reps), -1).T if reps else np.zeros((1, 0), int)
    for s in range(0, len(idx), 1 << 16):
        chunk = idx[s: s + (1 << 16)]
        X = np.repeat(base[None], len(chunk), axis=0)
        W = np.ones((len(chunk), len(feats)), dtype=object)
        for i, f in enumerate(feats):
            X[:, f] = reps[i][chunk[:, i]]
            W[:, i] = widths[i][chunk[:, i]].astype(object)
        hit = np.isin(engine.predict(X), list(classes))
        total += int(sum(int(np.prod(w)) for w in W[hit])) if len(feats) else int(hit.sum())
    return total * _other_factor(R, feats)


def _ge(bits: list[int], const: int, top: int, clauses: list[list[int]]) -> tuple[int, int]:
    """A literal equal to ``value(bits) >= const`` (bits MSB first), with Tseitin gates."""
    if const <= 0:
        return TRUE, top
    if const >= 1 << len(bits):
        return -TRUE, top
    g = TRUE
    for i, v in enumerate(reversed(bits)):
        if (const >> i) & 1:  # g = v AND g
            if g == TRUE:
                g = v
                continue
            top += 1
            clauses += [[-top, v], [-top, g], [top, -v, -g]]
        else:  # g = v OR g
            if g == TRUE:
                continue
            top += 1
            clauses += [[top, -v], [top, -g], [-top, v, g]]
        g = top
    return g, top


def raw_cnf(ir: IR, R: Region, classes: Sequence[int]) -> tuple[list[list[int]], int, list[int], int]:
    """CNF whose models projected on ``proj`` are the raw inputs of R predicted in ``classes``
    (the features without free thresholds excluded: multiply by ``factor``).
    Returns (clauses, n_vars, proj, factor)."""
    enc = encode(ir, R, [[(0, list(classes))]])
    clauses, top = to_cnf(enc.formula)
    inp, proj = enc.inputs, []
    for f in sorted(inp.vars):
        width = int(R.hi[f] - R.lo[f]) + 1
        bits = list(range(top + 1, top + 1 + max(1, (width - 1).bit_length())))
        top = bits[-1]
        proj += bits
        for t, z in zip(inp.thresholds[f], inp.vars[f]):
            g, top = _ge(bits, int(t - R.lo[f]), top, clauses)
            clauses += [[-int(z), g], [int(z), -g]]
        g, top = _ge(bits, width, top, clauses)
        clauses.append([-g])
    return clauses, top, proj, _other_factor(R, sorted(inp.vars))


def count(ir: IR, R: Region, classes: Sequence[int], method: str = "exact", epsilon: float = 0.8,
          delta: float = 0.2, seed: int = 1) -> CountResult:
    """Raw inputs of the box region ``R`` that ``ir`` predicts in ``classes``."""
    if R.l0 is not None:
        raise UserError("counting takes box regions (linf or domain), not L0 balls")
    if method not in METHODS:
        raise UserError(f"unknown counting method {method!r}; choose {', '.join(METHODS)}")
    classes = sorted(set(int(c) for c in classes))
    t0 = time.perf_counter()
    if method == "exact":
        method = "enumerate" if n_cells(ir, R) <= ENUM_CELLS else "ganak"
    if method == "enumerate":
        n = count_enumerate(ir, R, classes)
    elif method == "bdd":
        from .compile import compile_bdd

        n = compile_bdd(ir, R).count(classes)
    else:
        clauses, n_vars, proj, factor = raw_cnf(ir, R, classes)
        if not proj:  # nothing free: one cell
            n = count_enumerate(ir, R, classes)
        elif method == "ganak":
            import pyganak

            c = pyganak.Counter()
            c.new_vars(n_vars)
            c.add_clauses(clauses)
            c.set_sampling_set(proj)
            n = int(c.count()) * factor
        else:
            import pyapproxmc

            used = set(abs(l) for cl in clauses for l in cl)
            unused = sum(1 for v in proj if v not in used)  # ApproxMC only knows variables it saw
            c = pyapproxmc.Counter(seed=seed, epsilon=epsilon, delta=delta)
            c.add_clauses(clauses)
            cells, hashes = c.count([v for v in proj if v in used])
            n = int(cells) * (1 << (int(hashes) + unused)) * factor
            n = min(n, R.size())  # clamping to the region's size only moves the estimate nearer the truth
    approx = method == "approx"
    return CountResult(n, R.size(), classes, method, time.perf_counter() - t0,
                       epsilon if approx else None, delta if approx else None)
