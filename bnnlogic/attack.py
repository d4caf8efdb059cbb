"""Cheap counterexample search inside a region, run before any solver.

Question: some raw input x of the region R predicted in ``bad``?  ``attack`` returns such an
x or None; None proves nothing, and the caller replays whatever it returns.

Search space (``Space``).  Only the coding's thresholds matter, so a free feature f is reduced
to its *level* ``L_f = #{m : x_f >= tau_mf}``, an integer in ``[L(lo_f), L(hi_f)]`` over R's
box; features with one level are fixed.  Each level has one representative raw value, the
one of R closest to R's center, so an L0 region's budget counts the features whose level
moved.  The free input bits are ``b[m, f] = [L_f > m]`` for the levels m in between.

The network over R (``Relaxed``).  Interval bounds over R's box fix most neurons; what is
left is a smaller integer network over the free bits: every layer keeps only its *live*
neurons (``lo < 0 <= hi`` for the margin ``s = sum_j a_j u_j - k``, the neuron fires iff
``s >= 0``), the fixed ones folded into the thresholds of the layer above and the output
offsets.  Dense layers are float32 arrays, convolutions sparse matrices, max-pools index
gathers over margins (the OR of bits is the threshold of the max of margins).  Its forward
pass is exact (integer sums below 2^24); its backward pass is straight-through with a
window, ``dt/ds = 1 / (1 + ((s + 1/2) / w)^2)``, ``w = 1 + WIDTH (hi - lo)``, so the neurons
closest to flipping carry the gradient.

Search (``attack``), four stages; the first candidate predicted in ``bad`` wins:

0. *single moves*: every input that moves one feature of the center to another level,
   exact (L0 budgets of one are searched completely); for an L0 region, then greedily from
   the best of them, up to its budget (the old attack's greedy steps).
1. *patterns*, when at most ``PATTERN_BITS`` first-layer neurons are live (small boxes):
   every pattern of them goes through the layers above, which yields the set P of bad
   patterns exactly.  If P is empty no input of R is bad and the attack stops at once;
   else a tabu search over single level moves minimises ``min_{p in P} sum_i viol_i(p_i)``,
   the distance of the input's first-layer margins s to the nearest bad pattern
   (``viol_i(1) = max(0, -s_i)``, ``viol_i(0) = max(0, s_i + 1)``); zero is a counterexample.
   It finds the rare counterexamples of small boxes that gradients miss.
2. *gradient*: a batch of candidates, each aiming at one bad class (the bad classes ranked
   by the center's scores, round robin: a multi-targeted attack) with the objective
   ``score_t - max_{g good} score_g``, takes steps on latent real levels z (the level is
   ``round(z)``): ``z += STEP * grad / max|grad|``, projected on the box and, for L0, on the
   budget (the features whose latent level moved least go back).  The gradient of ``z_f`` is
   that of the level boundary nearest to it.  A candidate whose objective has not improved
   for ``PATIENCE`` steps restarts: at a random point of the box (L-infinity) or at the
   center (L0), or (``PERTURB`` of the restarts) at the best candidate so far with
   ``PERTURB_FRAC`` of its features drawn anew.
3. *local search*: tabu search over single level moves, every neighbour scored exactly,
   ranked by the same objective and, where it ties (the last hidden layer unchanged), by a
   smooth form of it (``_local_search``).  It walks through the plateaus where the
   gradient restarts: of the queries the 2-core default left unknown at 2edf371, 15-20 s
   of it alone hit on fashion conv-small 5 of 18 at eps 5, 4 of 16 at eps 10 and 5 of 12
   at eps 20 (30 s of the old attack there: 3, all among the 5), on mlp-small 1 of 17 at
   eps 10 and 1 of 3 at eps 20, none at eps 3 (9 + 9) or mlp-small's eps 5 (12).

Stages 0 and 1 get ``PATTERN_SHARE`` of the budget (each gives up when its measured pace
cannot finish in time), stage 2 ``GRADIENT_SHARE`` of what is left, stage 3 the rest.  The
search stops at the first hit or at the time budget ``timeout`` (seconds,
``DEFAULT_TIMEOUT``); building the network over R comes first and is not interrupted
(milliseconds; tens of them for an L0 region on a 7840-bit input).  Measured by
``benchmarks/attack.py``.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import scipy.sparse as sp

from .blas import one_blas_thread
from .ir import IR, Conv, Dense, MaxPool, in_classes
from .logic.encoding import _gather
from .logic.region import Region

#: default time budget of ``attack`` (seconds): a hit usually comes within a few gradient
#: steps (milliseconds); a robust query costs the whole budget
DEFAULT_TIMEOUT = 0.1
#: threshold window of a neuron: ``1 + WIDTH * (hi - lo)`` margin units (its interval width)
WIDTH = 0.05
#: latent step of the gradient stage, in levels, for the largest gradient entry of a candidate
STEP = 0.5
#: gradient steps without improvement before a candidate restarts
PATIENCE = 8
#: share of the restarts that start from the best candidate so far, with ``PERTURB_FRAC`` of
#: its features drawn anew (iterated local search); the others start afresh
PERTURB = 0.5
PERTURB_FRAC = 0.3
#: the pattern stage runs when at most this many first-layer neurons are live
PATTERN_BITS = 16
#: greedy steps of stage 0 in an L0 region (at most its budget)
GREEDY_STEPS = 20
#: greedy steps with more candidate moves than this are scored by the inference engine
ENGINE_MOVES = 1024
#: share of the time budget stages 0 and 1 (single moves, patterns) may take
PATTERN_SHARE = 0.5
#: bad patterns the pattern stage's distance looks at (the nearest to the current input)
PATTERN_CAP = 2048
#: share of the time left after stages 0 and 1 that the gradient stage may take (the local
#: search the rest): on the 16 queries of ``portfolio.RESTART_S``, 0.25 hit 9 and 12 with
#: slices of 0.1 + 3 x 1 s and 0.1 + 1 + 2 + 4 s, 0.5 hit 7 and 11
GRADIENT_SHARE = 0.25
#: local search steps without a new best before it restarts
LOCAL_PATIENCE = 50


# ---------------------------------------------------------------------- search space
@dataclass(frozen=True)
class Space:
    """The free features of a region, their levels and their free input bits.

    ``feats`` (n,) free feature indices; ``lo``, ``hi``, ``mid`` (n,) their lowest, highest
    and center level; ``rep`` (n, M + 1) the representative raw value of each level (levels
    outside [lo, hi] repeat the nearest end); ``x0`` (d,) the center, raw; ``l0`` the budget of
    features whose level may differ from ``mid`` (None: no budget).  Free bit i is
    ``[L_{bit_feat[i]} > bit_level[i]]``; feature f's bits start at ``first_bit[f]``."""

    feats: np.ndarray
    lo: np.ndarray
    hi: np.ndarray
    mid: np.ndarray
    rep: np.ndarray
    x0: np.ndarray
    l0: int | None

    @classmethod
    def of(cls, ir: IR, R: Region) -> "Space":
        thr = ir.coding.thresholds  # (M, d)
        x0 = np.clip(R.center if R.center is not None else (R.lo + R.hi) // 2, R.lo, R.hi).astype(np.int64)
        level = lambda v: (v[None] >= thr).sum(axis=0)  # noqa: E731
        lo, hi, mid = level(R.lo), level(R.hi), level(x0)
        feats = np.nonzero(hi > lo)[0]
        L = np.arange(thr.shape[0] + 1)[None]
        t = thr[:, feats].T  # (n, M)
        # level L holds [t_{L-1}, t_L - 1]: above the center its smallest value, below its largest
        first = np.concatenate([np.full((len(feats), 1), np.iinfo(np.int64).min), t], axis=1)
        last = np.concatenate([t - 1, np.full((len(feats), 1), np.iinfo(np.int64).max)], axis=1)
        m = mid[feats, None]
        rep = np.where(L > m, first, np.where(L < m, last, x0[feats, None]))
        rep = np.clip(rep, R.lo[feats, None], R.hi[feats, None])
        return cls(feats, lo[feats], hi[feats], mid[feats], rep, x0, R.l0)

    @property
    def n(self) -> int:
        return len(self.feats)

    @property
    def first_bit(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.hi - self.lo)[:-1]]).astype(np.int64)

    @property
    def bit_feat(self) -> np.ndarray:
        return np.repeat(np.arange(self.n), self.hi - self.lo)

    @property
    def bit_level(self) -> np.ndarray:
        f = self.bit_feat
        return np.arange(len(f)) - self.first_bit[f] + self.lo[f]

    def bits(self, ir: IR) -> np.ndarray:
        """Flat input-bit indices of the free bits (bit (m, f) is ``m * d + f``)."""
        return self.bit_level * ir.coding.n_features + self.feats[self.bit_feat]

    def bit_values(self, L: np.ndarray) -> np.ndarray:
        """Levels (b, n) -> free bits (b, nb) float32."""
        return (L[:, self.bit_feat] > self.bit_level).astype(np.float32)

    def raw(self, L: np.ndarray) -> np.ndarray:
        """Levels (b, n) -> raw inputs (b, d) int64."""
        X = np.repeat(self.x0[None], len(L), axis=0)
        X[:, self.feats] = np.take_along_axis(self.rep, L.T, axis=1).T
        return X


# ---------------------------------------------------------------------- the network over a region
class _Linear:
    """A layer's weights W (n_out, n_in): ``forward(h) = h W^T`` (b, n_out), ``backward(g) =
    g W`` (b, n_in); a dense float32 array (BLAS) when at least ``DENSE_FILL`` of W is
    non-zero, else CSR matrices of W and W^T."""

    DENSE_FILL = 0.2

    def __init__(self, W: sp.spmatrix | np.ndarray) -> None:
        if isinstance(W, np.ndarray) and np.count_nonzero(W) >= self.DENSE_FILL * W.size:
            self.dense, self.M = True, np.ascontiguousarray(W.T, dtype=np.float32)  # (n_in, n_out)
            return
        W = sp.csr_matrix(W, dtype=np.float32)
        self.dense = W.nnz >= self.DENSE_FILL * W.shape[0] * W.shape[1]
        if self.dense:
            self.M = np.ascontiguousarray(W.T.toarray())
        else:
            self.W, self.WT = W, W.T.tocsr()

    def forward(self, h: np.ndarray) -> np.ndarray:
        return h @ self.M if self.dense else np.asarray((self.W @ h.T).T)

    def backward(self, g: np.ndarray) -> np.ndarray:
        return g @ self.M.T if self.dense else np.asarray((self.WT @ g.T).T)

    def radius(self, h: np.ndarray) -> np.ndarray:
        """``h |W|^T``: the interval radius of the sums for input radii h."""
        if not hasattr(self, "absW"):
            self.absW = np.abs(self.M) if self.dense else abs(self.W)
        return h @ self.absW if self.dense else np.asarray((self.absW @ h.T).T)

    def forward_sparse(self, D: sp.spmatrix) -> np.ndarray:
        """``D W^T`` for a sparse D (b, n_in), dense (b, n_out)."""
        return np.asarray(D @ self.M) if self.dense else (D @ self.WT).toarray()

    def by_input(self) -> np.ndarray:
        """W^T as a dense (n_in, n_out) array: row j is input j's weights."""
        return self.M if self.dense else self.WT.toarray()

    def sub(self, rows: np.ndarray, cols: np.ndarray) -> "_Linear":
        """The neurons ``rows`` over the inputs ``cols`` (dense stays dense)."""
        if not self.dense:
            return _Linear(self.W[rows][:, cols])
        out = _Linear.__new__(_Linear)
        out.dense, out.M = True, np.ascontiguousarray(self.M[np.ix_(cols, rows)])
        return out


def _conv_matrix(layer: Conv, in_shape: tuple[int, ...]) -> sp.csr_matrix:
    """A convolution as a sparse (n_out, n_in) matrix over flat inputs (outputs
    channel-major, ``(C_out, Ho, Wo)`` flattened, like the IR); padded positions (index n_in
    in ``_gather``) read a constant 0 bit, so they have no entry."""
    G = _gather(layer, in_shape)  # (P, C*kh*kw)
    A = layer.A.reshape(len(layer.A), -1).astype(np.float32)  # (O, C*kh*kw)
    O, P, n_in = A.shape[0], G.shape[0], int(np.prod(in_shape))
    rows = np.broadcast_to((np.arange(O)[:, None] * P + np.arange(P)[None])[:, :, None], (O, P, G.shape[1]))
    cols = np.broadcast_to(G[None], (O,) + G.shape)
    vals = np.broadcast_to(A[:, None, :], (O, P, A.shape[1]))
    keep = (vals != 0) & (cols < n_in)
    return sp.csr_matrix((vals[keep], (rows[keep], cols[keep])), shape=(O * P, n_in))


_NETWORKS: dict[int, tuple] = {}


def _network(ir: IR) -> list[tuple]:
    """The IR's hidden layers as ops, built once per IR (the last few IRs are kept):
    ``("lin", _Linear, k)`` (k float32 (n_out,), a convolution's per position) or
    ``("pool", G)`` (G (n_out, size^2), each output's window of flat inputs)."""
    hit = _NETWORKS.get(id(ir))
    if hit is not None and hit[0] is ir:
        return hit[1]
    shape, ops = ir.coding.bit_shape, []
    for layer in ir.layers:
        if isinstance(layer, MaxPool):
            ops.append(("pool", _gather(layer, shape)))
        elif isinstance(layer, Dense):
            ops.append(("lin", _Linear(layer.A), layer.k.astype(np.float32)))
        else:
            ops.append(("lin", _Linear(_conv_matrix(layer, shape)), layer.flat_k(shape).astype(np.float32)))
        shape = layer.out_shape(shape)
    while len(_NETWORKS) >= 8:
        _NETWORKS.pop(next(iter(_NETWORKS)))
    _NETWORKS[id(ir)] = (ir, ops)
    return ops


class Relaxed:
    """The network over one region's free input bits, live neurons only (module docstring).

    Every op maps margins to margins (the input bits u enter as margins ``2u - 1``; a linear
    op thresholds its input first).  ``forward(U)``: free bits (b, nb) -> the margins of every
    op (with a pool's argmax) and the exact scores (b, n_classes) float64;
    ``backward(trace, dscores)``: the straight-through gradient (b, nb) of
    ``sum(dscores * scores) / scale``."""

    def __init__(self, ir: IR, x0: np.ndarray, bits: np.ndarray) -> None:
        """``x0`` (d,) a raw input fixing every input bit but the flat indices ``bits``."""
        full = _network(ir)
        u0 = ir.coding.encode(x0[None]).reshape(-1).astype(np.float32)
        m0 = 2 * u0 - 1
        lo, hi = m0.copy(), m0.copy()
        lo[bits], hi[bits] = -1, 1
        # the first op (or the output) reads the free bits only, unless it is a pool: then every
        # input bit, the fixed ones from base
        self.base = m0 if full and full[0][0] == "pool" else None
        keep = bits if self.base is None else np.arange(len(u0))
        self.bits, self.ops, self.live, self.width = bits, [], [], []
        for j, op in enumerate(full):
            last = j + 1 == len(full)
            on = lo >= 0
            on[keep] = False  # inputs not read are fixed; the fixed-on ones add a constant
            if op[0] == "lin":
                _, W, k = op
                Wk = W.sub(np.arange(len(k)), keep)
                const = W.forward(on[None].astype(np.float32))[0]
                blo, bhi = (lo[keep] >= 0).astype(np.float32), (hi[keep] >= 0).astype(np.float32)
                c = const + Wk.forward(((blo + bhi) / 2)[None])[0] - k
                r = Wk.radius(((bhi - blo) / 2)[None])[0]
                lo, hi = c - r, c + r
            else:
                G = op[1]
                lo, hi = lo[G].max(axis=1), hi[G].max(axis=1)
            live = (lo < 0) & (hi >= 0)
            out = np.nonzero(live)[0] if last or full[j + 1][0] == "lin" else np.arange(len(lo))
            if op[0] == "lin":
                self.ops.append(("lin", Wk.sub(out, np.arange(len(keep))), (k - const)[out]))
            else:  # a pool reads every output of the op below (kept whole for it)
                self.ops.append(("pool", G[out]))
            self.live.append(live[out])
            self.width.append((1.0 + WIDTH * (hi - lo))[out].astype(np.float32))
            keep = out
        o = ir.output
        A = o.A.astype(np.float32)
        on = lo >= 0
        on[keep] = False
        self.A = A[:, keep]
        self.offset = o.offset.astype(np.float64) + o.scale * A[:, on].sum(axis=1).astype(np.float64)
        self.scale = float(o.scale)

    def _input(self, U: np.ndarray) -> np.ndarray:
        if self.base is None:
            return 2 * U - 1
        X = np.repeat(self.base[None], len(U), axis=0)
        X[:, self.bits] = 2 * U - 1
        return X

    def forward(self, U: np.ndarray, start: int = 0, h: np.ndarray | None = None
                ) -> tuple[list[tuple], np.ndarray]:
        """Margins of every op from ``start`` on (pools: with their argmax) and the exact scores;
        from op ``start`` the input is the margins h of op ``start - 1`` instead of U."""
        h = self._input(U.astype(np.float32)) if h is None else h
        trace = []
        for kind, *p in self.ops[start:]:
            if kind == "pool":
                arg = h[:, p[0]].argmax(axis=2)
                h = np.take_along_axis(h, np.take_along_axis(p[0][None], arg[:, :, None], axis=2)[:, :, 0], axis=1)
                trace.append((h, arg))
            else:
                W, k = p
                h = W.forward((h >= 0).astype(np.float32)) - k
                trace.append((h, None))
        u = (h >= 0).astype(np.float32)
        return trace, self.scale * (u @ self.A.T).astype(np.float64) + self.offset

    def backward(self, trace: list[tuple], dscores: np.ndarray) -> np.ndarray:
        """Straight-through gradient w.r.t. the free input bits (class docstring)."""
        g = dscores.astype(np.float32) @ self.A  # w.r.t. the last bits
        n = len(self.ops)
        for j in range(n - 1, -1, -1):
            kind, *p = self.ops[j]
            h, arg = trace[j]
            if j + 1 == n or self.ops[j + 1][0] == "lin":  # bits -> margins through the window
                g = g * self.live[j] / (1.0 + ((h + 0.5) / self.width[j]) ** 2)
            if kind == "pool":  # to the window's largest margin
                idx = np.take_along_axis(p[0][None], arg[:, :, None], axis=2)[:, :, 0]
                n_in = trace[j - 1][0].shape[1] if j else (len(self.bits) if self.base is None else len(self.base))
                out = np.zeros((len(g), n_in), np.float32)
                np.add.at(out, (np.arange(len(g))[:, None], idx), g)
                g = out
            else:
                g = p[0].backward(g)
        return g if self.base is None else g[:, self.bits]


# ---------------------------------------------------------------------- the search
def attack(engine, ir: IR, R: Region, bad_classes: Sequence[int], seed: int = 0,
           timeout: float | None = DEFAULT_TIMEOUT, batch: int = 32, max_steps: int = 1_000_000,
           ties: str = "low", stop: threading.Event | None = None) -> np.ndarray | None:
    """A raw input of R predicted in ``bad_classes`` (by ``engine``; a tie read by the rule
    ``ties``, ``ir.in_classes``), or None if none is found.

    The stages of the module docstring until a hit, ``timeout`` seconds (None: no limit),
    ``stop`` set (seen between stages, chunks of single moves, tabu restarts and gradient
    steps: a racer's cancel) or
    ``max_steps`` steps (gradient steps; tabu restarts in stage 1); ``batch`` gradient
    candidates at a time.  Deterministic for a given ``seed`` when the budget is in steps
    (``timeout=None``).  A candidate that the network over R predicts bad and ``engine`` does
    not is a bug (``RuntimeError``), never a result."""
    t_end = None if timeout is None else time.perf_counter() + timeout
    bad = np.zeros(ir.n_classes, dtype=bool)
    bad[list(bad_classes)] = True
    S = Space.of(ir, R)
    if in_classes(engine.scores(S.x0[None]), bad, ties)[0]:
        return S.x0
    if S.n == 0 or not bad.any():
        return None
    with one_blas_thread():  # small products; BLAS threads would fight numba's
        q = _Search(Relaxed(ir, S.x0, S.bits(ir)), S, bad, engine, np.random.default_rng(seed), batch, max_steps,
                    ties, stop)
        t_stop = None
        for stage, share in ((_single_moves, PATTERN_SHARE), (_patterns, None), (_gradient, GRADIENT_SHARE),
                             (_local_search, 1.0)):
            if q.stopped():
                return None
            if share is not None:  # else the previous stage's deadline
                t_stop = None if t_end is None else time.perf_counter() + share * (t_end - time.perf_counter())
            L = stage(q, t_stop)
            if L is not None and not len(L):  # the stage showed that no input of R is bad
                return None
            if L is not None:
                X = S.raw(L)
                hit = np.nonzero(in_classes(engine.scores(X), bad, ties) & R.contains(X))[0]
                if len(hit):
                    return X[hit[0]]
                raise RuntimeError("attack: the network over the region disagrees with the engine; this is a bug")
    return None


@dataclass
class _Search:
    """What the stages share: the network over R, the search space, the bad classes (bool
    (C,)), the inference engine, the random generator, the gradient batch and step budget, the
    tie rule, the racer's stop event."""

    net: Relaxed
    S: Space
    bad: np.ndarray
    engine: Any
    rng: np.random.Generator
    batch: int
    max_steps: int
    ties: str = "low"
    stop: threading.Event | None = None
    #: (gap, levels (n,)): the input with the largest ``_gap`` the local search reached over all
    #: its calls (a large-neighbourhood search starts there: ``benchmarks/lns.py``)
    elite: tuple[float, np.ndarray] | None = None

    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def is_bad(self, scores: np.ndarray) -> np.ndarray:
        """Which rows of exact scores (b, C) are predicted in ``bad`` under the tie rule."""
        return in_classes(scores, self.bad, self.ties)


def _expired(t_end: float | None) -> bool:
    return t_end is not None and time.perf_counter() > t_end


def _moves(S: Space, L: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The single level moves from levels L (n,): every free bit (m, f) moves feature f to
    level m (if L_f > m) or m + 1 (else), so to each other level of f once; at an L0 region's
    budget only features already moved from the center move.  Move i sets ``L[feat[i]] =
    to[i]``; returns (feat, to), each (c,)."""
    f = S.bit_feat
    to = np.where(S.bit_level < L[f], S.bit_level, S.bit_level + 1)
    ok = to != L[f]
    if S.l0 is not None and (L != S.mid).sum() >= S.l0:
        ok &= L[f] != S.mid[f]
    return f[ok], to[ok]


def _apply(L: np.ndarray, feat: np.ndarray, to: np.ndarray) -> np.ndarray:
    """The levels (c, n) after each move (``_moves``) from L."""
    C = np.repeat(L[None], len(feat), axis=0)
    C[np.arange(len(feat)), feat] = to
    return C


def _flips(S: Space, L: np.ndarray, feat: np.ndarray, to: np.ndarray) -> sp.csr_matrix:
    """(c, nb) sparse: +1 on the free bits a move turns on, -1 on those it turns off (from
    level a to b the bits of levels min(a, b) .. max(a, b) - 1 of its feature)."""
    frm = L[feat]
    n = np.abs(to - frm)
    rows = np.repeat(np.arange(len(feat)), n)
    step = np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n)
    cols = (S.first_bit[feat] + np.minimum(frm, to) - S.lo[feat])[rows] + step
    vals = np.sign(to - frm)[rows].astype(np.float32)
    return sp.csr_matrix((vals, (rows, cols)), shape=(len(feat), len(S.bit_feat)))


def _score_moves(q: _Search, L: np.ndarray, s0: np.ndarray, feat: np.ndarray, to: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """Exact scores (c, C) after each move from levels L, whose first-op margins are s0 (k,)
    (they move by the weights of the bits that flip), and the margins (c, k') of the last
    hidden op."""
    s = s0 + q.net.ops[0][1].forward_sparse(_flips(q.S, L, feat, to))
    trace, scores = q.net.forward(None, 1, s)
    return scores, trace[-1][0] if trace else s


def _first_margins(q: _Search, L: np.ndarray) -> np.ndarray:
    """The first op's margins (k,) at levels L (n,)."""
    W, k0 = q.net.ops[0][1], q.net.ops[0][2]
    return W.forward(q.S.bit_values(L[None]))[0] - k0


def _gap(q: _Search, scores: np.ndarray) -> np.ndarray:
    """``max_bad score - max_good score`` per row (>= 0 on a tie that reads bad)."""
    return np.where(q.bad, scores, -np.inf).max(axis=1) - np.where(q.bad, -np.inf, scores).max(axis=1)


def _single_moves(q: _Search, t_end: float | None) -> np.ndarray | None:
    """Stage 0 (module docstring): levels (1, n) predicted in bad, or None.  Each step tries
    every input one level move away (``_moves``, scored exactly by ``_score_moves``, on chunks
    of moves) and takes the best by ``_gap``; one step for a box, up to
    ``min(l0, GREEDY_STEPS)`` for an L0 region.  Steps of more than ``ENGINE_MOVES`` moves run
    on the inference engine (faster when most neurons are live).  Gives up when the time left
    cannot cover the step (judged as it goes)."""
    net, S, rng = q.net, q.S, q.rng
    if not net.ops or net.ops[0][0] != "lin":
        return None
    L = S.mid.copy()
    steps = 1 if S.l0 is None else min(S.l0, GREEDY_STEPS, q.max_steps)
    for step in range(steps):
        t0 = time.perf_counter()
        feat, to = _moves(S, L)
        s0 = _first_margins(q, L)
        best, best_L = -np.inf, None
        chunk = ENGINE_MOVES if len(feat) > ENGINE_MOVES else 256
        for c in range(0, len(feat), chunk):
            f, t = feat[c:c + chunk], to[c:c + chunk]
            if chunk == ENGINE_MOVES:  # many moves (L0): the compiled engine on all threads
                scores = q.engine.scores(S.raw(_apply(L, f, t))).astype(np.float64)
            else:
                scores = _score_moves(q, L, s0, f, t)[0]
            hit = np.nonzero(q.is_bad(scores))[0]
            if len(hit):
                return _apply(L, f[hit[:1]], t[hit[:1]])
            margin = _gap(q, scores)
            j = int(np.argmax(margin + rng.random(len(f))))  # ties at random
            if margin[j] > best:
                best, best_L = margin[j], _apply(L, f[j:j + 1], t[j:j + 1])[0]
            if q.stopped() or t_end is not None and t0 + (time.perf_counter() - t0) * len(feat) / (c + len(f)) > t_end:
                return None
        L = best_L
    return None


def _local_search(q: _Search, t_end: float | None) -> np.ndarray | None:
    """Stage 3 (module docstring): levels (1, n) predicted in bad, or None.

    Tabu search over single level moves from the center, every neighbour (``_moves``) scored
    exactly (``_score_moves``, ``ENGINE_MOVES`` at a time): a step takes the best move whose
    feature is not tabu, ranked by ``_gap`` and, among equal gaps (most moves leave the last
    hidden layer as it is), by its smooth form

        sum_j (A_t - A_g)_j sigmoid((h_j + 1/2) / w_j)

    with t, g the candidate's best bad and best good class, h the last hidden layer's margins
    and w their windows (``Relaxed``); the moved feature is then tabu for ``max(3, n / 8)``
    steps.  After ``LOCAL_PATIENCE`` steps without a new best the search restarts at its best
    input with ``PERTURB_FRAC`` of its features drawn anew (an L0 region: moved back to the
    center).  Each step counts against ``max_steps``; the best input by ``_gap`` is kept in
    ``q.elite``."""
    net, S, rng = q.net, q.S, q.rng
    if not net.ops or net.ops[0][0] != "lin":
        return None
    tenure = max(3, S.n // 8)
    tabu = np.zeros(S.n, dtype=np.int64)
    L, elite = S.mid.copy(), S.mid.copy()
    best, stall = (-np.inf, -np.inf), 0
    for step in range(q.max_steps):
        if _expired(t_end) or q.stopped():
            return None
        feat, to = _moves(S, L)
        if not len(feat):
            return None
        s0, top = _first_margins(q, L), (-np.inf,)
        for c in range(0, len(feat), ENGINE_MOVES):
            f, t = feat[c:c + ENGINE_MOVES], to[c:c + ENGINE_MOVES]
            scores, h = _score_moves(q, L, s0, f, t)
            hit = np.nonzero(q.is_bad(scores))[0]
            if len(hit):
                return _apply(L, f[hit[:1]], t[hit[:1]])
            t_bad = np.where(q.bad, scores, -np.inf).argmax(axis=1)
            t_good = np.where(q.bad, -np.inf, scores).argmax(axis=1)
            rows = np.arange(len(f))
            gap = scores[rows, t_bad] - scores[rows, t_good]  # ``_gap``, from the argmaxes the tie-break needs
            sig = 1.0 / (1.0 + np.exp(-np.clip((h + 0.5) / net.width[-1], -30, 30)))
            smooth = ((net.A[t_bad] - net.A[t_good]) * sig).sum(axis=1)
            allowed = tabu[f] <= step
            j = np.lexsort((rng.random(len(f)), smooth, gap, allowed))[-1]
            top = max(top, (bool(allowed[j]), gap[j], smooth[j], f[j], t[j]))
        _, g, sm, fj, tj = top
        L = L.copy()
        L[fj] = tj
        tabu[fj] = step + tenure
        stall += 1
        if (g, sm) > best:
            best, elite, stall = (g, sm), L, 0
            if q.elite is None or g > q.elite[0]:
                q.elite = (g, L)
        elif stall > LOCAL_PATIENCE:
            L, best, stall = elite.copy(), (-np.inf, -np.inf), 0
            redo = rng.random(S.n) < PERTURB_FRAC
            L[redo] = S.mid[redo] if S.l0 is not None else rng.integers(S.lo[redo], S.hi[redo] + 1)
    return None


def _patterns(q: _Search, t_end: float | None) -> np.ndarray | None:
    """Stage 1 (module docstring): levels (1, n) predicted in bad, None, or no levels (0, n)
    if no pattern of the live first-layer neurons is bad (then no input of R is: the
    neurons outside are fixed over R and the layers above are exact).  Applies when the
    first op is linear (its outputs are its live neurons) with at most ``PATTERN_BITS``."""
    net, S, rng = q.net, q.S, q.rng
    if not net.ops or net.ops[0][0] != "lin" or len(net.live[0]) > PATTERN_BITS:
        return None
    W, k0 = net.ops[0][1], net.ops[0][2]
    Pb = _bad_patterns(net, len(k0), q.is_bad, t_end)
    if Pb is None:
        return None
    if not len(Pb):
        return np.zeros((0, S.n), np.int64)
    Wb = W.by_input()  # (nb, k): each free bit's weights
    L = S.mid.copy()
    s = _first_margins(q, L)
    for restart in range(q.max_steps):
        L, s, found = _toward(Pb, L, s, Wb, S, rng, t_end, 4 * S.n + 16)
        if found:
            return L[None]
        if _expired(t_end) or q.stopped():
            return None
        L = S.mid.copy() if S.l0 is not None else rng.integers(S.lo, S.hi + 1)
        s = _first_margins(q, L)
    return None


def _bad_patterns(net: Relaxed, k: int, is_bad, t_end: float | None) -> np.ndarray | None:
    """Every pattern (2^k, k) of the first op's k outputs predicted in bad (``is_bad`` of the
    exact scores; the layers above are exact); None if they cannot all be tried before
    ``t_end`` (judged after each chunk)."""
    out, chunk, n, t0 = [], 4096, 1 << k, time.perf_counter()
    for s in range(0, n, chunk):
        P = ((np.arange(s, min(n, s + chunk))[:, None] >> np.arange(k)) & 1).astype(np.float32)
        scores = net.forward(None, 1, 2 * P - 1)[1]
        out.append(P[is_bad(scores)])
        if t_end is not None and t0 + (time.perf_counter() - t0) * n / (s + len(P)) > t_end:
            return None
    return np.concatenate(out)


def _toward(Pb: np.ndarray, L: np.ndarray, s: np.ndarray, Wb: np.ndarray, S: Space,
            rng: np.random.Generator, t_end: float | None, iters: int) -> tuple[np.ndarray, np.ndarray, bool]:
    """Tabu search over single level moves from L (first-layer margins s) minimising the
    distance to the nearest pattern of Pb (module docstring); returns (L, s, reached)."""
    first, feats = S.first_bit, np.arange(S.n)
    tabu = np.zeros(S.n, dtype=int)
    best = (np.inf, L.copy(), s.copy())

    def viol(s):  # costs of pattern bit 1 and bit 0 for the margins s (..., k)
        return np.maximum(0, -s), np.maximum(0, s + 1)

    for it in range(iters):
        if it % 16 == 15 and _expired(t_end):
            break
        a, b = viol(s)
        dist = Pb @ (a - b) + b.sum()
        if dist.min() <= 0:
            return L, s, True
        near = Pb if len(Pb) <= PATTERN_CAP else Pb[np.argpartition(dist, PATTERN_CAP)[:PATTERN_CAP]]
        up, down = L < S.hi, L > S.lo
        if S.l0 is not None and (L != S.mid).sum() >= S.l0:  # at the budget: moved features only
            up &= L != S.mid
            down &= L != S.mid
        f = np.concatenate([feats[up], feats[down]])
        if not len(f):
            break
        d = np.concatenate([np.ones(up.sum()), -np.ones(down.sum())])
        bit = first[f] + np.where(d > 0, L[f], L[f] - 1) - S.lo[f]
        s2 = s[None] + d[:, None] * Wb[bit]
        a2, b2 = viol(s2)
        cost = (near @ (a2 - b2).T).min(axis=0) + b2.sum(axis=1)
        if (tabu[f] <= it).any():
            cost += np.where(tabu[f] > it, np.inf, 0)
        cost += 0.1 * rng.random(len(f))
        j = int(np.argmin(cost))
        L, s = L.copy(), s2[j]
        L[f[j]] += int(d[j])
        tabu[f[j]] = it + 5
        if cost[j] < best[0]:
            best = (cost[j], L, s)
    return best[1], best[2], False


def _gradient(q: _Search, t_end: float | None) -> np.ndarray | None:
    """Stage 2 (module docstring): levels (k, n) of candidates predicted in bad, or None."""
    net, S, bad, rng = q.net, q.S, q.bad, q.rng
    batch, max_steps = q.batch, q.max_steps
    scores0 = net.forward(S.bit_values(S.mid[None]))[1][0]
    order = np.argsort(-scores0, kind="stable")
    order = order[bad[order]]
    n_targets = min(len(order), 4)
    targets = order[np.arange(batch) % n_targets]
    good = np.where(bad, -np.inf, 0.0)
    rows = np.arange(batch)
    first = S.first_bit

    def fresh(k: int) -> np.ndarray:
        if S.l0 is not None:
            return S.mid + rng.uniform(-0.49, 0.49, size=(k, S.n))
        return rng.uniform(S.lo - 0.49, S.hi + 0.49, size=(k, S.n))

    z = np.concatenate([S.mid[None] + np.zeros((1, S.n)), fresh(batch - 1)])
    best = np.full(batch, -np.inf)
    stall = np.zeros(batch, dtype=int)
    elite, elite_obj = S.mid.astype(float), -np.inf
    for step in range(max_steps):
        L = np.clip(np.floor(z + 0.5).astype(np.int64), S.lo, S.hi)
        trace, scores = net.forward(S.bit_values(L))
        hit = q.is_bad(scores)
        if hit.any():
            return L[hit]
        if _expired(t_end) or q.stopped() or step + 1 == max_steps:
            return None
        g_best = (scores + good).argmax(axis=1)
        obj = scores[rows, targets] - scores[rows, g_best]
        stall = np.where(obj > best, 0, stall + 1)
        best = np.maximum(best, obj)
        if obj.max() > elite_obj:
            elite_obj, elite = obj.max(), L[int(np.argmax(obj))].astype(float)
        dsc = np.zeros_like(scores)
        dsc[rows, targets] = 1.0
        dsc[rows, g_best] = -1.0
        gU = net.backward(trace, dsc)
        m = np.clip(np.floor(z).astype(np.int64), S.lo, S.hi - 1)  # the nearest level boundary
        gz = gU[rows[:, None], first + (m - S.lo)]
        z = np.clip(z + STEP * gz / (np.abs(gz).max(axis=1, keepdims=True) + 1e-30), S.lo - 0.49, S.hi + 0.49)
        if S.l0 is not None:
            z = _project_l0(z, S.mid, S.l0)
        old = stall > PATIENCE
        if old.any():
            k = int(old.sum())
            z[old] = fresh(k)
            near = old & (rng.random(batch) < PERTURB)
            if near.any():
                keep = rng.random((int(near.sum()), S.n)) >= PERTURB_FRAC
                z[near] = np.where(keep, elite + rng.uniform(-0.3, 0.3, size=keep.shape), z[near])
            best[old], stall[old] = -np.inf, 0
            targets[old] = order[rng.integers(0, n_targets, size=k)]
    return None


def _project_l0(z: np.ndarray, mid: np.ndarray, k: int) -> np.ndarray:
    """Keep the k features per row whose latent level moved farthest; the others back to mid."""
    moved = np.floor(z + 0.5) != mid
    over = moved.sum(axis=1) > k
    if over.any():
        zo = z[over]
        keep = np.argsort(-np.abs(zo - mid), axis=1, kind="stable")[:, :k]
        out = np.broadcast_to(mid, zo.shape).astype(float)
        np.put_along_axis(out, keep, np.take_along_axis(zo, keep, axis=1), axis=1)
        z[over] = out
    return z
