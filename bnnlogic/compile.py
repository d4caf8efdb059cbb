"""Knowledge compilation: "prediction = c" as an OBDD (CUDD through ``dd``) over a box of raw inputs.

Variables.  Each raw feature f whose coding has a threshold inside ``(lo_f, hi_f]`` gets
``n_f = bitlen(hi_f - lo_f)`` BDD variables holding ``v_f = x_f - lo_f`` in binary (MSB first,
features in index order, no reordering).  ``valid = AND_f [v_f <= hi_f - lo_f]``.  Every other
feature cannot change any input bit, so it only multiplies counts by its width.  Then:

    input bit [x_f >= tau]            [v_f >= tau - lo_f]   (a comparator with a constant)
    neuron [sum_j a_j u_j >= k]       "at least b of the literals" by the dynamic programme
                                      (a conv's padded inputs are FALSE)
                                      T(i, b) = ite(l_i, T(i+1, b-1), T(i+1, b)), memoised
    max-pool                          OR of the inputs
    beats(c, d), pred = c             as in ``bnnlogic.logic.encoding`` (exact integer argmax, ties low)

Neurons fixed over the box by ``bounds.propagate`` are constants.  Models of ``valid & pred_c``
are exactly the raw inputs of the box predicted c (one per value of the bits), so the count
is a plain model count, done exactly with Python integers over the diagram.  Explanations are
cofactor checks: fixing S entails the prediction iff ``valid & ~pred_y`` restricted to x's
bits on S is FALSE.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from .budget import Budget
from .errors import UserError
from .ir import IR, Dense, MaxPool
from .logic.bounds import propagate
from .logic.encoding import _gather
from .logic.region import Region


class TooLarge(UserError):
    """The diagram outgrew its node budget or time limit."""


@dataclass
class Compiled:
    ir: IR
    region: Region
    bdd: object
    bits: dict[int, list[str]]  # feature -> its value variables, MSB first
    valid: object
    pred: list  # pred[c]: BDD of "prediction = c" (not yet conjoined with valid)
    compile_s: float
    n_vars: int
    stats: dict = field(default_factory=dict)

    @property
    def free_factor(self) -> int:
        """Raw values of the features without variables (they cannot change the prediction)."""
        w = [int(h - l + 1) for f, (l, h) in enumerate(zip(self.region.lo, self.region.hi)) if f not in self.bits]
        return int(np.prod(w, dtype=object)) if w else 1

    def nodes(self, c: int | None = None) -> int:
        """Nodes of one class's diagram, or of all of them and the validity constraint, shared
        (``dd.cudd.count_nodes``: canonical for the fixed variable order)."""
        from dd import cudd

        return cudd.count_nodes(self.pred + [self.valid]) if c is None else len(self.pred[c])

    def count(self, classes: Sequence[int]) -> int:
        """Raw inputs of the region predicted in ``classes`` (exact)."""
        u = self.bdd.false
        for c in set(int(c) for c in classes):
            u = u | self.pred[c]
        return model_count(self.bdd, u & self.valid, self.n_vars) * self.free_factor

    def _assign(self, x: np.ndarray, S: Sequence[int]) -> dict[str, bool]:
        out = {}
        for f in S:
            if f in self.bits:
                names = self.bits[f]
                v = int(x[f] - self.region.lo[f])
                out.update({n: bool((v >> (len(names) - 1 - i)) & 1) for i, n in enumerate(names)})
        return out

    def entails(self, x: np.ndarray, S: Sequence[int]) -> bool:
        """Fixing the features S to x's values forces x's prediction on the region."""
        y = int(self.ir.predict(np.asarray(x)[None])[0])
        bad = self.valid & ~self.pred[y]
        return self.bdd.let(self._assign(x, S), bad) == self.bdd.false

    def abductive(self, x: np.ndarray, order: Sequence[int] | None = None) -> list[int]:
        """A subset-minimal AXp by deletion (cofactor checks instead of solver calls)."""
        x = np.asarray(x).reshape(-1)
        keep = set(self.bits)
        for f in (order if order is not None else sorted(self.bits)):
            if f in keep and self.entails(x, keep - {f}):
                keep.discard(f)
        return sorted(keep)


def model_count(bdd, u, n_vars: int) -> int:
    """Satisfying assignments of ``u`` over variables at levels 0..n_vars-1, as a Python int
    (CUDD's own count is a double).  Complemented edges are followed explicitly."""
    memo: dict[int, int] = {}

    def level(v) -> int:
        return n_vars if v == bdd.true or v == bdd.false else v.level

    def c(v) -> int:
        if v == bdd.true:
            return 1
        if v == bdd.false:
            return 0
        key = int(v)
        if key not in memo:
            lo, hi = v.low, v.high
            if v.negated:
                lo, hi = ~lo, ~hi
            lv = v.level
            memo[key] = (c(lo) << (level(lo) - lv - 1)) + (c(hi) << (level(hi) - lv - 1))
        return memo[key]

    return c(u) << level(u)


def _at_least(bdd, lits: list, b: int):
    """BDD of ``sum(lits) >= b`` (lits are BDDs; repeats allowed)."""
    n = len(lits)
    memo: dict[tuple[int, int], object] = {}

    def T(i: int, need: int):
        if need <= 0:
            return bdd.true
        if need > n - i:
            return bdd.false
        key = (i, need)
        if key not in memo:
            memo[key] = bdd.ite(lits[i], T(i + 1, need - 1), T(i + 1, need))
        return memo[key]

    g = T(0, b)
    memo.clear()  # T's self-reference is a cycle: its diagrams must not wait for (or outlive) the manager
    return g


def _signed_threshold(bdd, coef: np.ndarray, u: list, k: int):
    """``sum_j coef_j u_j >= k`` for small integer coefficients: -u_j = ~u_j - 1."""
    lits, bound = [], int(k)
    for j in np.nonzero(coef)[0]:
        a = int(coef[j])
        lits += [u[j] if a > 0 else ~u[j]] * abs(a)
        if a < 0:
            bound += -a
    return _at_least(bdd, lits, bound)


def compile_bdd(ir: IR, R: Region, max_nodes: int = 2_000_000, timeout: float | None = None,
                limit: Budget | None = None) -> Compiled:
    """Compile every class of ``ir`` over the box ``R``; ``TooLarge`` past ``max_nodes`` or
    ``timeout``.  ``limit``: a ``Budget`` that receives progress (layer, neurons compiled, nodes)
    after every neuron and raises ``budget.Stopped`` at its deadline (no partial diagram is
    returned: the caller reports how far it got)."""
    from dd import cudd

    if R.l0 is not None:
        raise UserError("compilation takes box regions (linf or domain), not L0 balls")
    t0 = time.perf_counter()
    bdd = cudd.BDD()
    bdd.configure(reordering=False)
    c = ir.coding
    free = c.free(R.lo, R.hi)
    bits: dict[int, list[str]] = {}
    for f in range(c.n_features):
        if free[:, f].any():
            n = max(1, int(R.hi[f] - R.lo[f]).bit_length())
            bits[f] = [f"x{f}_{i}" for i in range(n)]
            bdd.declare(*bits[f])
    n_vars = sum(len(b) for b in bits.values())

    def ge(f: int, const: int):
        """[v_f >= const] from the least significant bit up."""
        names = bits[f]
        if const <= 0:
            return bdd.true
        if const >= 1 << len(names):
            return bdd.false
        g = bdd.true
        for i, name in enumerate(reversed(names)):
            v = bdd.var(name)
            g = (v & g) if (const >> i) & 1 else (v | g)
        return g

    valid = bdd.true
    for f in bits:
        valid &= ~ge(f, int(R.hi[f] - R.lo[f]) + 1)

    done = [0]  # neurons (and output comparisons) compiled

    def check(layer: int):
        done[0] += 1
        if limit is not None:
            limit.tick(layer=layer, done=done[0], total=n_neurons, nodes=len(bdd), unit="neurons")
        if len(bdd) > max_nodes:
            raise TooLarge(f"the BDD exceeds {max_nodes} nodes; compile a smaller region (e.g. --eps) or net")
        if timeout is not None and time.perf_counter() - t0 > timeout:
            raise TooLarge(f"compilation exceeds {timeout} s")

    u = []
    for m in range(c.n_levels):
        for f in range(c.n_features):
            t = int(c.thresholds[m, f])
            u.append(bdd.true if t <= R.lo[f] else bdd.false if t > R.hi[f] else ge(f, t - int(R.lo[f])))
    bnds = propagate(ir, R.lo, R.hi)
    shapes = ir.shapes()
    n_neurons = sum(int(np.count_nonzero(b[0] != b[1])) for b in bnds[1:len(ir.layers) + 1]) \
        + ir.n_classes * (ir.n_classes - 1)
    for li, layer in enumerate(ir.layers):
        lo, hi = (b[0].reshape(-1) for b in bnds[li + 1])
        out = [bdd.true if v else bdd.false for v in lo]
        G = None if isinstance(layer, Dense) else _gather(layer, shapes[li])
        u_pad = u + [bdd.false]  # a conv's padded positions read the constant 0 bit
        k = None if isinstance(layer, MaxPool) else layer.flat_k(shapes[li])
        for i in np.nonzero(lo != hi)[0]:
            if isinstance(layer, MaxPool):
                g = bdd.false
                for j in G[i]:
                    g |= u[j]
            elif isinstance(layer, Dense):
                g = _signed_threshold(bdd, layer.A[i], u, int(k[i]))
            else:
                o, p = divmod(int(i), G.shape[0])
                g = _signed_threshold(bdd, layer.A[o].reshape(-1), [u_pad[j] for j in G[p]], int(k[i]))
            out[i] = g
            check(li + 1)
        u = out
    o = ir.output
    beats = {}
    for a in range(ir.n_classes):
        for b in range(ir.n_classes):
            if a != b:
                D = o.A[a].astype(np.int64) - o.A[b].astype(np.int64)
                beats[a, b] = _signed_threshold(bdd, D, u, int(o.beat_bound(a, b)))
                check(len(ir.layers) + 1)
    pred = []
    for a in range(ir.n_classes):
        g = bdd.true
        for b in range(ir.n_classes):
            if a != b:
                g &= beats[a, b]
        pred.append(g)
    dt = time.perf_counter() - t0
    comp = Compiled(ir, R, bdd, bits, valid, pred, dt, n_vars)
    # manager_nodes: everything CUDD holds, garbage not yet collected included
    comp.stats = {"variables": n_vars, "nodes": comp.nodes(), "manager_nodes": len(bdd),
                  "class_nodes": [comp.nodes(c) for c in range(ir.n_classes)],
                  "compile_s": round(dt, 6), "neurons": int(sum(np.prod(s) for s in shapes[1:]))}
    return comp
