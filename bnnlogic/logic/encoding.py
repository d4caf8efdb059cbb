"""IR + region + property -> ``Formula``.

Inputs.  For each raw feature f the region allows ``lo_f <= x_f <= hi_f``.  Every coding
threshold tau of f (of every network encoded, so two networks share their inputs) with
``lo_f < tau <= hi_f`` gets a variable ``z[f,tau] = [x_f >= tau]``, chained
``z[f,tau'] => z[f,tau]`` for tau < tau' (thermometer order); thresholds outside the box are
constants.  An assignment of the z's picks an interval of raw values per feature, so a model
decodes to a concrete raw input (the value nearest the region's center).  An L0 budget adds
``changed_f <= (z leaves the center's interval)`` and ``sum_f changed_f <= k``.

Neurons.  Bounds first (``bounds.propagate``): a neuron fixed over the box is the constant
TRUE/-TRUE.  A free neuron ``t <=> sum_j a_j u_j >= k`` (a_j in {-1,0,1}) folds its fixed
inputs into the bound and becomes the cardinality constraint
``t <=> sum_{a_j=1} u_j + sum_{a_j=-1} -u_j >= k - const + #{a_j=-1 free}``.
A free max-pool unit is ``t <=> OR u_j``.  A conv's padded input bits are the constant -TRUE.

Output.  ``beats(c, d)``: class c is preferred to d, i.e. ``score_c > score_d`` or equal with
``c < d``.  With ``score = scale * A u + offset`` this is the exact integer condition
``sum_j (A_c - A_d)_j u_j >= ceil((offset_d - offset_c + [c > d]) / scale)`` (coefficients
in {-2..2}: a coefficient 2 is a repeated literal).  ``pred in S`` holds iff some c in S beats
every d outside S.  A linear condition on the scores (``ScoreAtLeast``, e.g. from a VNN-LIB
property: ``sum_c a_c score_c >= b``) is likewise ``sum_j (sum_c a_c A_c)_j u_j >=
ceil((b - sum_c a_c offset_c) / scale)``.  A goal is an OR of ANDs of such atoms, one network
or several (a miter).  With the tie rule ``adversarial`` (``ir.TIES``) c beats d iff
``score_c >= score_d`` (the ``[c > d]`` term is dropped): ``pred in S`` then holds iff some
class of S has a maximal score.
Only the direction ``literal => condition`` is encoded for the goal: a model is a real
witness, and UNSAT means no input of the region reaches the goal.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Callable, Sequence

import numpy as np

from ..ir import IR, Conv, Dense, MaxPool, check_ties, free_thresholds
from .bounds import Bounds, propagate
from .formula import TRUE, Formula
from .region import Region


def cell_intervals(lo: int, hi: int, ts: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
    """The raw intervals that the sorted thresholds ``ts`` (all in (lo, hi]) cut [lo, hi] into:
    on [low[n], high[n]] exactly the first n thresholds are met (low = lo, ts; high = ts - 1, hi)."""
    t = np.asarray(ts, dtype=np.int64)
    return np.concatenate([[lo], t]), np.concatenate([t - 1, [hi]])


def nearest_in_interval(x: int, lo: int, hi: int, ts: Sequence[int], n_true: int) -> int:
    """The raw value nearest x with exactly the first ``n_true`` of the sorted thresholds ``ts``
    met, inside [lo, hi] (the interval ``cell_intervals(lo, hi, ts)[:, n_true]``)."""
    low, high = cell_intervals(lo, hi, ts)
    return int(min(max(x, low[n_true]), high[n_true]))


@dataclass
class InputVars:
    """The z variables of the region's free coding thresholds, per raw feature."""

    region: Region
    thresholds: dict[int, np.ndarray]  # feature -> sorted free thresholds (lo < tau <= hi)
    vars: dict[int, np.ndarray]  # feature -> their variables (same order)
    keys: np.ndarray  # ``_key`` of every (feature, free threshold), sorted; flat over the features
    flat_vars: np.ndarray  # their variables, same order

    def bit_lits(self, ir: IR) -> np.ndarray:
        """Literal of every input bit of ``ir`` (flat, level-major), constants as +-TRUE."""
        thr = ir.coding.thresholds  # (M, d)
        lits = np.where(thr <= self.region.lo[None], TRUE, -TRUE).astype(np.int64)
        m, f = np.nonzero(free_thresholds(thr, self.region.lo, self.region.hi))
        # every free bit has a variable: its key is among self.keys
        lits[m, f] = self.flat_vars[np.searchsorted(self.keys, _key(f, thr[m, f]))]
        return lits.reshape(-1)

    def box_literals(self, lo: np.ndarray, hi: np.ndarray) -> dict[int, list[int]]:
        """Per feature with variables: the literals restricting ``x_f`` to ``[lo_f, hi_f]``
        (``x_f >= t`` true for t <= lo_f, false for t > hi_f).  ``lo = hi = x`` fixes features to
        x; a smaller box as assumptions reuses one encoding."""
        return {f: [int(v) if t <= lo[f] else -int(v) for v, t in zip(self.vars[f], ts)
                    if t <= lo[f] or t > hi[f]] for f, ts in self.thresholds.items()}

    def decode(self, value: Callable[[int], bool]) -> np.ndarray:
        """A raw input (d,) from a model: per feature, the value of its z-interval nearest the
        region's center (the box's low end without a center).  Vectorized over features:
        ``nearest_in_interval`` with n_true = the number of the feature's true variables."""
        r = self.region
        x = np.clip(r.center if r.center is not None else r.lo, r.lo, r.hi)
        f, var, owner, low, high = self._decoder
        if len(f):
            true = np.fromiter((value(v) for v in var), dtype=bool, count=len(var))
            n = np.bincount(owner, weights=true, minlength=len(f)).astype(np.int64)
            i = np.arange(len(f))
            x[f] = np.clip(x[f], low[i, n], high[i, n])
        return x

    @cached_property
    def _decoder(self) -> tuple[np.ndarray, list[int], np.ndarray, np.ndarray, np.ndarray]:
        """Features with variables f (n_f,), their variables in threshold order (flat), each
        variable's index into f, and low/high (n_f, M+1): the raw interval of f[i] when exactly
        its first n thresholds hold is [low[i, n], high[i, n]]."""
        r = self.region
        f = np.array(sorted(self.thresholds), dtype=np.int64)
        var = self.flat_vars.tolist()  # by feature, then threshold: the order of f
        owner = np.repeat(np.arange(len(f)), [len(self.vars[g]) for g in f.tolist()])
        M = max((len(self.thresholds[g]) for g in f.tolist()), default=0)
        low, high = np.zeros((len(f), M + 1), np.int64), np.zeros((len(f), M + 1), np.int64)
        for i, g in enumerate(f.tolist()):
            n = len(self.thresholds[g]) + 1
            low[i, :n], high[i, :n] = cell_intervals(r.lo[g], r.hi[g], self.thresholds[g])
        return f, var, owner, low, high


@dataclass
class Network:
    """One encoded network: literal arrays per layer (flat), output data, fixed-neuron stats,
    and the bit bounds over the region that fixed them (``bounds.propagate``; None if naive)."""

    ir: IR
    layers: list[np.ndarray]
    neurons: int
    fixed: int
    bounds: Bounds | None = None
    ties: str = "low"  # how the goal's atoms on this network read a tie (``ir.TIES``)
    beats_cache: dict[tuple[int, int], int] = field(default_factory=dict)
    #: per ``pred in S`` atom (S sorted): each class c of S that bounds leave possible -> a
    #: literal implying "c beats every class outside S" (``pred_in``)
    class_lits: dict[tuple[int, ...], dict[int, int]] = field(default_factory=dict)


def size_stats(neurons: int, fixed: int, variables: int = 0, clauses: int = 0, cardinality: int = 0) -> dict:
    """An encoding's size as verdicts report it (all 0 but the neurons when bounds alone decided)."""
    return {"variables": variables, "clauses": clauses, "cardinality": cardinality, "neurons": neurons,
            "fixed_by_bounds": fixed}


@dataclass
class Encoding:
    formula: Formula
    inputs: InputVars
    nets: list[Network]
    goal_false: bool = False  # bounds folded every goal term to FALSE: UNSAT with no search

    @property
    def stats(self) -> dict:
        f = self.formula
        return size_stats(sum(n.neurons for n in self.nets), sum(n.fixed for n in self.nets), f.n_vars,
                          len(f.clauses), len(f.cards))


#: key of a (feature f, threshold tau) pair: ``f * _KEY + tau + _KEY // 2`` (|tau| < 2^31)
_KEY = 1 << 32


def _key(f: np.ndarray, tau: np.ndarray) -> np.ndarray:
    """Sortable int64 keys of (feature, threshold) pairs: by feature, then threshold."""
    tau = tau.astype(np.int64)
    if len(tau) and np.abs(tau).max() >= _KEY // 2:
        raise ValueError("coding thresholds must lie in (-2^31, 2^31)")
    return f * _KEY + tau + _KEY // 2


def _inputs(F: Formula, irs: Sequence[IR], region: Region) -> InputVars:
    allthr = np.concatenate([ir.coding.thresholds for ir in irs], axis=0)  # (M, d)
    m, f = np.nonzero(free_thresholds(allthr, region.lo, region.hi))
    keys = np.unique(_key(f, allthr[m, f]))  # sorted by feature, then threshold
    feat, thr = np.divmod(keys, _KEY)
    thr -= _KEY // 2
    var = np.arange(F.n_vars + 1, F.n_vars + 1 + len(keys), dtype=np.int64)
    F.n_vars += len(keys)
    F.names.update(zip(var.tolist(), (f"x[{a}]>={b}" for a, b in zip(feat.tolist(), thr.tolist()))))
    chain = np.nonzero(feat[1:] == feat[:-1])[0]  # x >= t' implies x >= t  (t < t', same feature)
    F.clauses.extend([[-b, a] for a, b in zip(var[chain].tolist(), var[chain + 1].tolist())])
    starts = np.flatnonzero(np.r_[True, feat[1:] != feat[:-1]]) if len(keys) else np.zeros(0, np.int64)
    groups = np.split(np.arange(len(keys)), starts[1:])
    thresholds = {int(feat[g[0]]): thr[g] for g in groups if len(g)}
    variables = {int(feat[g[0]]): var[g] for g in groups if len(g)}
    inp = InputVars(region, thresholds, variables, keys, var)
    if region.l0 is not None:
        changed = []
        for f, ts in thresholds.items():
            i = int(np.searchsorted(ts, region.center[f], side="right"))  # ts[:i] <= center
            ch = F.new_var(f"changed[{f}]")
            if i > 0:
                F.add_clause([ch, int(variables[f][i - 1])])  # dropped below the center's interval
            if i < len(ts):
                F.add_clause([ch, -int(variables[f][i])])  # rose above it
            changed.append(ch)
        if len(changed) > region.l0:
            F.add_atmost(changed, region.l0)
    return inp


def _gather(layer: Conv | MaxPool, in_shape: tuple[int, ...]) -> np.ndarray:
    """Flat input indices of each output position's receptive field: (Ho*Wo, C*kh*kw) for a
    conv (channel-major, matching ``A[o].reshape(-1)``), (C*Ho*Wo, s*s) for a pool.  A conv's
    padded positions have the index C*H*W, one past the input: append the constant 0 bit
    (``padded``) before indexing."""
    c, h, w = in_shape
    idx = np.arange(c * h * w).reshape(1, c, h, w)
    if isinstance(layer, Conv):
        win = layer.windows(idx, fill=c * h * w)[0]  # (C, Ho, Wo, kh, kw)
        return win.transpose(1, 2, 0, 3, 4).reshape(win.shape[1] * win.shape[2], -1)
    win = np.lib.stride_tricks.sliding_window_view(idx, (layer.size, layer.size), axis=(2, 3))
    win = win[0, :, :: layer.stride, :: layer.stride]
    return win.reshape(-1, layer.size * layer.size)


def padded(values: np.ndarray, zero) -> np.ndarray:
    """A layer's flat input ``values`` with ``zero`` (the value of a padded 0 bit) appended, so
    that ``_gather``'s padding index reads it."""
    return np.append(values, np.asarray(zero, dtype=values.dtype))


def _threshold_rows(F: Formula, W: np.ndarray, L: np.ndarray, k: np.ndarray, names: list[str],
                    fold: bool = True) -> list[int]:
    """Reify rows ``sum_j W[r,j] * L[r,j] >= k[r]`` (W in {-1,0,1}, L literals, +-TRUE folded)."""
    is_true, is_false = L == TRUE, L == -TRUE
    const = np.sum(W * is_true, axis=1)
    live = (W != 0) & ~is_true & ~is_false
    signed = np.where(W > 0, L, -L)
    n_neg = np.sum(live & (W < 0), axis=1)
    bounds = k - const + n_neg
    return [F.reify_card(signed[r][live[r]].tolist(), int(bounds[r]), names[r], fold=fold) for r in range(len(W))]


def _rows(layer: Dense | Conv, in_shape: tuple[int, ...], prev: np.ndarray,
          free: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Weights W (r, n), input literals L (r, n) and thresholds k (r,) of the neurons ``free``
    (flat indices; a conv neuron is a filter at one position, over its receptive field)."""
    if isinstance(layer, Dense):
        W = layer.A[free].astype(np.int64)
        return W, np.broadcast_to(prev[None, :], W.shape), layer.k[free]
    G = _gather(layer, in_shape)
    o, p = np.divmod(free, G.shape[0])
    return layer.A.reshape(len(layer.A), -1)[o].astype(np.int64), padded(prev, -TRUE)[G[p]], layer.flat_k(in_shape)[free]


def _network(F: Formula, ir: IR, bits: np.ndarray, region: Region, use_bounds: bool, tag: str,
             bnds: Bounds | None = None, ties: str = "low") -> Network:
    shapes = ir.shapes()
    if use_bounds:
        bnds = propagate(ir, region.lo, region.hi) if bnds is None else bnds
    else:  # naive: every neuron free
        bnds = [(np.zeros((1,) + s, np.uint8), np.ones((1,) + s, np.uint8)) for s in shapes]
    layers, neurons, fixed = [bits], 0, 0
    for li, layer in enumerate(ir.layers):
        lo, hi = (b[0].reshape(-1) for b in bnds[li + 1])
        out = np.where(lo == 1, TRUE, -TRUE).astype(np.int64)
        free = np.nonzero(lo != hi)[0]
        prev = layers[-1]
        if isinstance(layer, MaxPool):
            G = _gather(layer, shapes[li])
            for i in free:
                out[i] = F.reify_or(prev[G[i]].tolist(), f"{tag}L{li}[{i}]")
        else:
            neurons += lo.size
            fixed += lo.size - len(free)
            if len(free):
                W, L, k = _rows(layer, shapes[li], prev, free)
                out[free] = _threshold_rows(F, W, L, k, [f"{tag}L{li}[{i}]" for i in free], fold=use_bounds)
        layers.append(out)
    return Network(ir, layers, neurons, fixed, bnds if use_bounds else None, ties)


def beats(F: Formula, net: Network, pairs: Sequence[tuple[int, int]]) -> list[int]:
    """Per pair (c, d): a literal implying that class c is preferred to class d (see the module
    docstring), ``sum_j (A_c - A_d)_j u_j >= beat_bound(c, d)`` over the last hidden layer's
    literals u; built once per pair."""
    new = [p for p in dict.fromkeys(pairs) if p not in net.beats_cache]
    if new:
        out = net.ir.output
        c, d = np.array(new).T
        A = out.A.astype(np.int64)
        bound = out.beat_bound(c, d, net.ties)
        for r, (cr, dr) in enumerate(new):
            net.beats_cache[(cr, dr)] = _last_layer_at_least(F, net, A[cr] - A[dr], int(bound[r]),
                                                             f"beats[{cr},{dr}]")
    return [net.beats_cache[p] for p in pairs]


def _last_layer_at_least(F: Formula, net: Network, D: np.ndarray, bound: int, name: str) -> int:
    """A literal implying ``sum_j D_j u_j >= bound`` (integer D) over the last hidden layer's
    literals u: fixed u folded into the bound, each free u_j repeated |D_j| times (negated for
    D_j < 0); always / never met folds to +-TRUE as ``reify_card`` does."""
    u = net.layers[-1]
    fixed, live = np.abs(u) == TRUE, (D != 0) & (np.abs(u) != TRUE)
    b = bound - int(D[fixed] @ (u[fixed] == TRUE)) + int(np.sum(-D[live & (D < 0)]))
    j = np.nonzero(live)[0]
    if b <= 0 or b > int(np.abs(D[j]).sum()):
        return TRUE if b <= 0 else -TRUE
    lits = np.repeat(np.where(D[j] > 0, u[j], -u[j]), np.abs(D[j])).tolist()
    return F.reify_card(lits, b, name, both=False)


@dataclass(frozen=True)
class ScoreAtLeast:
    """A goal atom on one network's integer scores: ``sum_c coef_c * score_c >= bound``
    (``coef`` pairs (class, integer coefficient)); e.g. ``score_2 - score_0 >= 1``."""

    coef: tuple[tuple[int, int], ...]
    bound: int

    def holds(self, scores: Sequence[int]) -> bool:
        return sum(a * int(scores[c]) for c, a in self.coef) >= self.bound


def score_at_least(F: Formula, net: Network, atom: ScoreAtLeast) -> int:
    """A literal implying ``atom``: with ``score = scale * A u + offset`` it is the exact integer
    condition ``sum_j D_j u_j >= ceil((bound - sum_c a_c offset_c) / scale)``, ``D = sum_c a_c A_c``."""
    out = net.ir.output
    D = np.zeros(out.A.shape[1], dtype=np.int64)
    rest = atom.bound
    for c, a in atom.coef:
        D += a * out.A[c].astype(np.int64)
        rest -= a * int(out.offset[c])
    return _last_layer_at_least(F, net, D, -((-rest) // int(out.scale)), f"score>={atom.bound}")


def atom_literal(F: Formula, net: Network, atom: "Sequence[int] | ScoreAtLeast") -> int:
    """A literal implying a goal atom: ``pred in S`` (a class list) or a ``ScoreAtLeast``."""
    return score_at_least(F, net, atom) if isinstance(atom, ScoreAtLeast) else pred_in(F, net, atom)


def pred_in(F: Formula, net: Network, classes: Sequence[int]) -> int:
    """A literal implying ``argmax score in classes`` (some c in S beats every d outside S)."""
    S = sorted(set(int(c) for c in classes))
    rest = [d for d in range(net.ir.n_classes) if d not in S]
    if not S:
        return -TRUE
    if not rest:
        return TRUE
    lits = beats(F, net, [(c, d) for c in S for d in rest])
    alts = net.class_lits[tuple(S)] = {}
    for i, c in enumerate(S):
        conds = lits[i * len(rest):(i + 1) * len(rest)]
        if -TRUE in conds:
            continue
        alts[c] = F.new_var(f"pred=={c}")
        for b in conds:
            F.add_clause([-alts[c], b])
    if not alts:
        return -TRUE
    if len(alts) == 1:
        return next(iter(alts.values()))
    atom = F.new_var(f"pred in {S}")
    F.add_clause([-atom] + list(alts.values()))
    return atom


def encode(irs: Sequence[IR] | IR, region: Region,
           goal: Sequence[Sequence[tuple[int, "Sequence[int] | ScoreAtLeast"]]], use_bounds: bool = True,
           bounds: Sequence[Bounds | None] | None = None, ties: str = "low") -> Encoding:
    """Encode networks over a shared region with a goal in disjunctive normal form.

    ``goal`` is ``[[(net, atom), ...], ...]``: an OR over terms, each an AND of atoms, an atom
    ``pred_net(x) in classes`` (a class list) or a ``ScoreAtLeast`` on net's scores.  A model of
    the formula is an input of the region that reaches the goal; UNSAT proves that none does.
    ``use_bounds=False`` is the naive encoding: no bound propagation and no constant folding of
    neurons, every hidden neuron a variable with its full fan-in (only the input bits fixed by
    the region are constants).  ``bounds``: each network's ``propagate(ir, region.lo,
    region.hi)`` if the caller has it (None entries are computed).  ``ties``: how a
    class-set atom reads a tie of scores (``ir.TIES``; see the module docstring).
    """
    check_ties(ties)
    irs = [irs] if isinstance(irs, IR) else list(irs)
    bounds = list(bounds) if bounds is not None else [None] * len(irs)
    F = Formula()
    inputs = _inputs(F, irs, region)
    nets = [_network(F, ir, inputs.bit_lits(ir), region, use_bounds, f"N{i}.", b, ties)
            for i, (ir, b) in enumerate(zip(irs, bounds))]
    terms = []
    for term in goal:
        lits = [atom_literal(F, nets[n], atom) for n, atom in term]
        if -TRUE in lits:
            continue
        lits = [l for l in lits if l != TRUE]
        if not lits:
            terms.append(TRUE)
            continue
        s = lits[0] if len(lits) == 1 else F.new_var("term")
        if len(lits) > 1:
            for l in lits:
                F.add_clause([-s, l])
        terms.append(s)
    F.add_clause(terms)
    return Encoding(F, inputs, nets, goal_false=not terms)
