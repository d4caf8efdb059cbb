"""The reference CNF of a robustness query: the one formula a certificate's proof refutes.

This module shares no code with the solving path (``bnnlogic.logic``: its bound propagation,
encoder, PySAT's cardinality encodings and the solvers); it reads only the IR (``bnnlogic.ir``,
the definition of the network) and is kept short enough to audit.  For a network N, a box
``lo <= x <= hi`` of raw inputs (optionally with at most ``l0`` features off ``center``) and
a set ``bad`` of classes it builds a CNF that is satisfiable if some raw input of the region
is predicted in ``bad``:

    TRUE           variable 1, with the unit clause [1]; every constant is +-1
    input bits     b[m,f] = [x_f >= tau_mf]:  TRUE if tau_mf <= lo_f, FALSE if tau_mf > hi_f,
                   else a variable; z[m',f] -> z[m,f] for consecutive free levels m < m'
    L0 budget      changed_f  <-  x_f leaves the cell of center_f (a free threshold crossed),
                   at most l0 of them: at_least(-changed, n - l0)
    neuron         t = [sum_j a_j u_j >= k]  ->  at_least(lits, b): constants folded into b,
                   a_j = -1 taken as the literal -u_j with b raised by one
    max-pool       t = OR of the window's bits (a padded bit is FALSE)
    output         beats(c, d) = [score_c > score_d or (score_c = score_d and c < d)]
                             = [sum_j (A_c - A_d)_j u_j >= ceil((off_d - off_c + [c > d]) / scale)]
                   (a coefficient 2 is a literal listed twice)
    goal           OR_{c in bad} p_c,  p_c -> beats(c, d) for every allowed d

``at_least(lits, b)`` returns a literal equal to ``[sum(lits) >= b]``.  It folds constants
first: b <= 0 is TRUE, b > n is FALSE, b = 1 an OR gate, b = n an AND gate; so a neuron that
interval bounds over the box would fix is a constant here too, with no separate bounds code.
Otherwise it is a totalizer (Bailleux and Boufkhad), both directions: the count of each half,
merged by ``a_i and b_j -> r_{i+j}`` and ``not a_{i+1} and not b_{j+1} -> not r_{i+j+1}``,
saturated at cap = min(b, n - b + 1) (beyond b/2 it counts the false literals).

Soundness: every raw input of the region, its coding bits, its activations and the counters'
values (plus ``p_c`` for its class c) satisfy every clause but the goal's, and satisfy the goal
iff its class is in ``bad``; so UNSAT proves that no input of the region is predicted in
``bad``.  The tests check the CNF against brute-force enumeration on tiny networks.
"""
from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from ..ir import IR, Dense, MaxPool

TRUE = 1


class CNF:
    """Clauses over variables 1..n_vars, with constants folded as clauses are added."""

    def __init__(self) -> None:
        self.n_vars = 1
        self.clauses: list[list[int]] = [[TRUE]]
        self.bits: np.ndarray | None = None  # literals of the coding bits (M, d), set by query_cnf

    def var(self) -> int:
        self.n_vars += 1
        return self.n_vars

    def clause(self, lits: Sequence[int]) -> None:
        """Add OR(lits); a TRUE literal drops it, FALSE literals are left out."""
        if TRUE not in lits:
            self.clauses.append([int(l) for l in lits if l != -TRUE])

    def any(self, lits: Sequence[int]) -> int:
        """A literal equal to OR(lits)."""
        lits = [l for l in lits if l != -TRUE]
        if TRUE in lits or not lits:
            return TRUE if lits else -TRUE
        if len(lits) == 1:
            return lits[0]
        t = self.var()
        self.clause([-t] + lits)
        for l in lits:
            self.clause([t, -l])
        return t

    def at_least(self, lits: Sequence[int], b: int) -> int:
        """A literal equal to [sum(lits) >= b] (see the module docstring)."""
        b -= sum(1 for l in lits if l == TRUE)
        lits = [l for l in lits if abs(l) != TRUE]
        n = len(lits)
        if b <= 0 or b > n:
            return TRUE if b <= 0 else -TRUE
        if b == 1:
            return self.any(lits)
        if b == n:
            return -self.any([-l for l in lits])
        if b > n - b + 1:  # count the false literals instead: sum(lits) >= b iff not sum(-lits) >= n-b+1
            return -self.at_least([-l for l in lits], n - b + 1)
        return self.count(lits, b)[b - 1]

    def count(self, lits: Sequence[int], cap: int) -> list[int]:
        """Totalizer outputs ``r[j-1] = [sum(lits) >= j]`` for j = 1..min(n, cap), the count
        ``>= cap`` saturated: ``r = merge(count(left half), count(right half))``."""
        if len(lits) == 1:
            return [lits[0]]
        A, B = self.count(lits[: len(lits) // 2], cap), self.count(lits[len(lits) // 2:], cap)
        r = [self.var() for _ in range(min(len(lits), cap))]
        get = lambda v, k: TRUE if k == 0 else v[k - 1] if k <= len(v) else -TRUE  # noqa: E731
        for i in range(len(A) + 1):
            for j in range(len(B) + 1):
                if i + j >= 1:  # a_i and b_j  ->  r_{i+j}  (saturated at cap)
                    self.clause([-get(A, i), -get(B, j), r[min(i + j, len(r)) - 1]])
                if i + j + 1 <= len(r):  # not a_{i+1} and not b_{j+1}  ->  not r_{i+j+1}
                    self.clause([get(A, i + 1), get(B, j + 1), -r[i + j]])
        return r

    def dimacs(self) -> str:
        """The formula as DIMACS text (deterministic: the same query gives the same bytes)."""
        body = "".join(" ".join(map(str, c)) + " 0\n" for c in self.clauses)
        return f"p cnf {self.n_vars} {len(self.clauses)}\n" + body


def sha256(data: str | bytes) -> str:
    return hashlib.sha256(data.encode() if isinstance(data, str) else data).hexdigest()


def _input_bits(F: CNF, ir: IR, lo: np.ndarray, hi: np.ndarray, center: np.ndarray | None,
                l0: int | None) -> np.ndarray:
    """Literals of the coding bits (M, d), with the thermometer chains and the L0 budget."""
    thr = ir.coding.thresholds
    bits = np.where(thr <= lo[None], TRUE, -TRUE).astype(np.int64)
    changed = []
    for f in range(thr.shape[1]):
        free = [m for m in range(thr.shape[0]) if lo[f] < thr[m, f] <= hi[f]]
        for m in free:
            bits[m, f] = F.var()
        for m, m2 in zip(free, free[1:]):
            F.clause([-bits[m2, f], bits[m, f]])
        if l0 is not None and free:
            ch = F.var()
            for m in free:  # crossing a threshold the center meets (is below) changes the feature
                F.clause([ch, bits[m, f]] if center[f] >= thr[m, f] else [ch, -bits[m, f]])
            changed.append(ch)
    if l0 is not None:
        F.clause([F.at_least([-c for c in changed], len(changed) - l0)])
    return bits


def _fields(layer, u: np.ndarray, fill: int) -> np.ndarray:
    """Receptive fields of a conv or pool layer over a batch (n, C, H, W): (n, C, Ho, Wo, kh, kw);
    a conv layer with ``padding`` sees its input padded with ``fill`` (a FALSE bit)."""
    size = (layer.size, layer.size) if isinstance(layer, MaxPool) else layer.A.shape[2:]
    pad = getattr(layer, "padding", 0)
    if pad:
        u = np.pad(u, ((0, 0), (0, 0), (pad, pad), (pad, pad)), constant_values=fill)
    win = np.lib.stride_tricks.sliding_window_view(u, size, axis=(2, 3))
    return win[:, :, :: layer.stride, :: layer.stride]


def _rows(layer, u: np.ndarray, fill: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A threshold layer over a batch of inputs u (n, *in_shape) as rows: weights (r, fan),
    inputs (n, r, fan) and thresholds (r,), neuron r = the flat output index (filter-major)."""
    if isinstance(layer, Dense):
        A = layer.A.astype(np.int64)
        return A, np.broadcast_to(u.reshape(len(u), 1, -1), (len(u),) + A.shape), layer.k.astype(np.int64)
    win = _fields(layer, u, fill)  # (n, C_in, Ho, Wo, kh, kw)
    n, c_out, positions = len(u), len(layer.A), win.shape[2] * win.shape[3]
    fields = win.transpose(0, 2, 3, 1, 4, 5).reshape(n, positions, -1)  # channel-major, as A[o]
    A = np.repeat(layer.A.reshape(c_out, -1).astype(np.int64), positions, axis=0)
    k = np.broadcast_to(layer.k.reshape(c_out, -1), (c_out, positions)).reshape(-1).astype(np.int64)
    return A, np.tile(fields, (1, c_out, 1)), k


def _sums(layer, W: np.ndarray, u: np.ndarray) -> np.ndarray:
    """``sum_j W_ij u_j`` of every neuron of a dense (n, r) or conv (n, C_out, Ho, Wo) layer
    with weights W (shaped as ``layer.A``) over a batch of 0/1 inputs u (exact int64)."""
    W = W.astype(np.int64)
    if isinstance(layer, Dense):
        return u.reshape(len(u), -1) @ W.T
    return np.einsum("nchwij,ocij->nohw", _fields(layer, u, 0), W)


def bit_bounds(ir: IR, lo: np.ndarray, hi: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
    """Interval bounds of every bit over raw boxes ``lo <= x <= hi`` (n, d): per layer (input
    bits first) a pair (lo, hi) of 0/1 arrays (n, *shape).  A bit is [x_f >= tau], monotone in
    x_f; a neuron [sum a_j u_j >= k] is at least [S_min >= k] and at most [S_max >= k] with
    S_min = sum_{a>0} a lo_j + sum_{a<0} a hi_j (S_max the other way); a max-pool is the OR of
    its window, monotone.  Exact int64 sums (|S| <= fan-in)."""
    c = ir.coding
    enc = lambda x: (np.asarray(x, np.int64).reshape(len(x), 1, -1) >= c.thresholds[None]).astype(np.int64)  # noqa: E731
    b_lo, b_hi = (enc(x).reshape((len(x),) + c.bit_shape) for x in (lo, hi))
    out = [(b_lo, b_hi)]
    for layer in ir.layers:
        if isinstance(layer, MaxPool):
            b_lo, b_hi = (_fields(layer, b, 0).max(axis=(4, 5)) for b in (b_lo, b_hi))
        else:
            pos, neg = np.maximum(layer.A, 0), np.minimum(layer.A, 0)
            s_min = _sums(layer, pos, b_lo) + _sums(layer, neg, b_hi)
            s_max = _sums(layer, pos, b_hi) + _sums(layer, neg, b_lo)
            k = layer.k if isinstance(layer, Dense) or layer.k.ndim == 3 else layer.k.reshape(-1, 1, 1)
            b_lo, b_hi = (s_min >= k).astype(np.int64), (s_max >= k).astype(np.int64)
        out.append((b_lo, b_hi))
    return out


def beat_bound(ir: IR, c: int, d: int) -> int:
    """c is preferred to d iff ``sum_j (A_c - A_d)_j u_j >= beat_bound``: the scores'
    ``scale * S + off_c > off_d`` (or equal with c < d) is ``scale * S >= off_d - off_c + [c > d]``."""
    o = ir.output
    num = int(o.offset[d]) - int(o.offset[c]) + (1 if c > d else 0)
    return -((-num) // int(o.scale))  # ceil(num / scale)


def bounds_exclude(ir: IR, lo: np.ndarray, hi: np.ndarray, bad: Sequence[int]) -> np.ndarray:
    """Boxes (n,) whose interval bounds alone prove that no class in ``bad`` is ever predicted:
    for every c in bad some allowed d has ``max sum_j (A_c - A_d)_j u_j < beat_bound(c, d)``
    over the last hidden layer's bit box, so c never beats d."""
    u_lo, u_hi = (b.reshape(len(b), -1) for b in bit_bounds(ir, lo, hi)[-1])
    good = [d for d in range(ir.n_classes) if d not in set(bad)]
    A = ir.output.A.astype(np.int64)
    closed = np.ones(len(u_lo), dtype=bool)
    for c in bad:
        never = np.zeros(len(u_lo), dtype=bool)
        for d in good:
            D = A[c] - A[d]
            never |= (np.maximum(D, 0) * u_hi + np.minimum(D, 0) * u_lo).sum(axis=1) < beat_bound(ir, c, d)
        closed &= never
    return closed


def _input_bits(F: CNF, ir: IR, lo: np.ndarray, hi: np.ndarray, center: np.ndarray | None,
                l0: int | None) -> np.ndarray:
    """Literals of the coding bits (M, d), with the thermometer chains and the L0 budget."""
    thr = ir.coding.thresholds
    bits = np.where(thr <= lo[None], TRUE, -TRUE).astype(np.int64)
    changed = []
    for f in np.nonzero(((thr > lo[None]) & (thr <= hi[None])).any(axis=0))[0]:
        free = [m for m in range(thr.shape[0]) if lo[f] < thr[m, f] <= hi[f]]
        for m in free:
            bits[m, f] = F.var()
        for m, m2 in zip(free, free[1:]):
            F.clause([-bits[m2, f], bits[m, f]])
        if l0 is not None:
            ch = F.var()
            for m in free:  # crossing a threshold the center meets (or not) changes the feature
                F.clause([ch, bits[m, f]] if center[f] >= thr[m, f] else [ch, -bits[m, f]])
            changed.append(ch)
    if l0 is not None:
        F.clause([F.at_least([-c for c in changed], len(changed) - l0)])
    return bits


def query_cnf(ir: IR, lo: np.ndarray, hi: np.ndarray, bad: Sequence[int], center: np.ndarray | None = None,
              l0: int | None = None) -> CNF:
    """The reference CNF: satisfiable iff some raw input x with ``lo <= x <= hi`` (and at most
    ``l0`` features off ``center``) is predicted in ``bad`` (see the module docstring).  A
    neuron fixed by ``bit_bounds`` is its constant (``at_least`` would fold it to the same)."""
    lo, hi = np.asarray(lo, dtype=np.int64), np.asarray(hi, dtype=np.int64)
    F = CNF()
    F.bits = _input_bits(F, ir, lo, hi, center, l0)
    u = F.bits.reshape((1,) + ir.coding.bit_shape)
    for layer, (b_lo, b_hi) in zip(ir.layers, bit_bounds(ir, lo[None], hi[None])[1:]):
        out = np.where(b_lo == 1, TRUE, -TRUE).reshape(-1)
        free = np.nonzero((b_lo != b_hi).reshape(-1))[0]
        if isinstance(layer, MaxPool):
            win = _fields(layer, u, -TRUE).reshape(-1, layer.size ** 2)  # rows in (c, y, x) order
            for r in free:
                out[r] = F.any(win[r].tolist())
        elif len(free):
            A, U, k = _rows(layer, u, -TRUE)
            for r in free:
                nz = A[r] != 0
                out[r] = F.at_least(np.where(A[r, nz] > 0, U[0, r, nz], -U[0, r, nz]).tolist(),
                                    int(k[r]) + int(np.count_nonzero(A[r] < 0)))
        u = out.reshape(b_lo.shape)
    u = u.reshape(-1)
    bad = sorted(set(int(c) for c in bad))
    good = [d for d in range(ir.n_classes) if d not in bad]
    A = ir.output.A.astype(np.int64)
    goal = []
    for c in bad:
        conds = []
        for d in good:
            D = A[c] - A[d]
            lits = np.repeat(np.where(D > 0, u, -u), np.abs(D)).tolist()  # coefficient 2: listed twice
            conds.append(F.at_least(lits, beat_bound(ir, c, d) + int(np.abs(D[D < 0]).sum())))
        if -TRUE in conds:
            continue
        p = F.var()
        for b in conds:
            F.clause([-p, b])
        goal.append(p)
    F.clause(goal)
    return F
