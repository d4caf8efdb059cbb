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

Time.  With a ``Budget`` (``limit``) a count stops at its deadline, or on an interrupt, and
returns what it knows, marked ``complete=False``: enumeration the bounds
``count_at_least`` (hits among the cells visited) and ``count_at_most`` (plus every raw input
of the cells not visited); ganak and approx, which cannot be interrupted inside the solver,
run in a forked child process that is killed at the deadline (bounds 0 and the region's size).
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import time
from dataclasses import dataclass
from fractions import Fraction
from typing import Sequence

import numpy as np

from .budget import Budget, Stopped, interruption
from .errors import UserError
from .ir import IR
from .logic import Region, encode, to_cnf
from .logic.formula import TRUE

ENUM_CELLS = 1 << 16
ENUM_BLOCK = 1 << 16  # cells per engine pass of the enumeration (and per progress step)
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
    complete: bool = True  # False: stopped early (``stopped``); ``count`` is then None
    stopped: str | None = None  # "time" | "interrupt"
    count_at_least: int | None = None  # an incomplete count's exact bounds
    count_at_most: int | None = None

    @property
    def fraction(self) -> float | None:
        return None if self.count is None else float(Fraction(self.count, self.total))

    @property
    def exact(self) -> bool:
        return self.method != "approx"

    def to_json(self) -> dict:
        d = {"count": self.count, "total": self.total, "fraction": self.fraction, "classes": self.classes,
             "method": self.method, "exact": self.exact, "time_s": round(self.time_s, 6),
             "complete": self.complete, "stopped": self.stopped}
        if not self.complete:
            d.update(count_at_least=self.count_at_least, count_at_most=self.count_at_most)
        elif not self.exact:
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


def count_enumerate(ir: IR, R: Region, classes: Sequence[int], max_cells: int = 1 << 22,
                    limit: Budget | None = None) -> int:
    """Raw inputs of R predicted in ``classes``, by one engine pass per block of threshold cells.
    With ``limit``, a stop raises ``PartialCount`` with the bounds known so far."""
    from .infer import Engine

    feats, reps, widths = _cells(ir, R)
    n = int(np.prod([len(r) for r in reps], dtype=object))
    if n > max_cells:
        raise UserError(f"{n} cells are too many to enumerate (limit {max_cells}); use --method ganak or approx")
    engine = Engine(ir)
    base = R.lo.copy()
    total = seen = 0  # raw inputs (per unit of the other features) predicted in classes / visited
    factor = _other_factor(R, feats)
    idx = np.indices([len(r) for r in reps]).reshape(len(reps), -1).T if reps else np.zeros((1, 0), int)
    block = ENUM_BLOCK
    try:
        for s in range(0, len(idx), block):
            if limit is not None:
                limit.tick(done=s, total=len(idx), unit="cells")
            chunk = idx[s: s + block]
            X = np.repeat(base[None], len(chunk), axis=0)
            W = np.ones((len(chunk), len(feats)), dtype=object)
            for i, f in enumerate(feats):
                X[:, f] = reps[i][chunk[:, i]]
                W[:, i] = widths[i][chunk[:, i]].astype(object)
            hit = np.isin(engine.predict(X), list(classes))
            sizes = [int(np.prod(w)) for w in W] if len(feats) else [1] * len(chunk)
            total += sum(z for z, h in zip(sizes, hit) if h)
            seen += sum(sizes)
    except (Stopped, KeyboardInterrupt, RuntimeError) as exc:
        lower = total * factor
        raise PartialCount(_reason(exc), lower, lower + R.size() - seen * factor) from None
    return total * factor


class PartialCount(Exception):
    """A count stopped early (``reason``: "time" | "interrupt") with exact bounds on the count."""

    def __init__(self, reason: str, at_least: int, at_most: int) -> None:
        super().__init__(reason)
        self.reason, self.at_least, self.at_most = reason, at_least, at_most


def _reason(exc: BaseException) -> str:
    """"time" or "interrupt" for a stop; re-raises anything else."""
    if isinstance(exc, Stopped):
        return exc.reason
    if interruption(exc):
        return "interrupt"
    raise exc


def _child(conn, fn, args) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides; it kills this process
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    conn.send(fn(*args))
    conn.close()
    os._exit(0)


def _in_child(fn, args: tuple, limit: Budget, what: str):
    """``fn(*args)`` in a forked process, killed at ``limit``'s deadline or on an interrupt
    (the solvers' C++ loops cannot be stopped from Python); progress: elapsed seconds."""
    ctx = mp.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)
    p = ctx.Process(target=_child, args=(send, fn, args), daemon=True)
    p.start()
    send.close()
    try:
        while not recv.poll(0.25 if limit.remaining() is None else min(0.25, limit.remaining() + 0.01)):
            if not p.is_alive() and not recv.poll(0):
                raise RuntimeError(f"the {what} process ended without an answer (exit code {p.exitcode})")
            limit.tick(elapsed=round(limit.elapsed(), 1), unit=f"s of {what}")
        return recv.recv()
    finally:
        if p.is_alive():
            p.kill()
        p.join()
        recv.close()


def _ganak(n_vars: int, clauses: list, proj: list[int]) -> int:
    import pyganak

    c = pyganak.Counter()
    c.new_vars(n_vars)
    c.add_clauses(clauses)
    c.set_sampling_set(proj)
    return int(c.count())


def _approxmc(clauses: list, proj: list[int], seed: int, epsilon: float, delta: float) -> tuple[int, int]:
    import pyapproxmc

    c = pyapproxmc.Counter(seed=seed, epsilon=epsilon, delta=delta)
    c.add_clauses(clauses)
    cells, hashes = c.count(proj)
    return int(cells), int(hashes)


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
          delta: float = 0.2, seed: int = 1, limit: Budget | None = None) -> CountResult:
    """Raw inputs of the box region ``R`` that ``ir`` predicts in ``classes``.  ``limit``: a
    ``Budget``; past it (or on an interrupt) the result is incomplete (see the module docstring)."""
    if R.l0 is not None:
        raise UserError("counting takes box regions (linf or domain), not L0 balls")
    if method not in METHODS:
        raise UserError(f"unknown counting method {method!r}; choose {', '.join(METHODS)}")
    classes = sorted(set(int(c) for c in classes))
    t0 = time.perf_counter()
    if method == "exact":
        method = "enumerate" if n_cells(ir, R) <= ENUM_CELLS else "ganak"
    approx = method == "approx"
    try:
        n = _count(ir, R, classes, method, epsilon, delta, seed, limit)
    except PartialCount as p:
        return CountResult(None, R.size(), classes, method, time.perf_counter() - t0, epsilon if approx else None,
                           delta if approx else None, False, p.reason, p.at_least, p.at_most)
    return CountResult(n, R.size(), classes, method, time.perf_counter() - t0,
                       epsilon if approx else None, delta if approx else None)


def _count(ir: IR, R: Region, classes: list[int], method: str, epsilon: float, delta: float, seed: int,
           limit: Budget | None) -> int:
    if method == "enumerate":
        return count_enumerate(ir, R, classes, limit=limit)
    try:
        if method == "bdd":
            from .compile import compile_bdd

            return compile_bdd(ir, R, limit=limit).count(classes)
        clauses, n_vars, proj, factor = raw_cnf(ir, R, classes)
        if not proj:  # nothing free: one cell
            return count_enumerate(ir, R, classes, limit=limit)
        if method == "ganak":
            args = (n_vars, clauses, proj)
            n = _ganak(*args) if limit is None else _in_child(_ganak, args, limit, "Ganak")
            return n * factor
        used = set(abs(l) for cl in clauses for l in cl)
        unused = sum(1 for v in proj if v not in used)  # ApproxMC only knows variables it saw
        args = (clauses, [v for v in proj if v in used], seed, epsilon, delta)
        cells, hashes = _approxmc(*args) if limit is None else _in_child(_approxmc, args, limit, "ApproxMC")
        n = cells * (1 << (hashes + unused)) * factor
        return min(n, R.size())  # clamping to the region's size only moves the estimate nearer the truth
    except (Stopped, KeyboardInterrupt, RuntimeError) as exc:
        raise PartialCount(_reason(exc), 0, R.size()) from None
