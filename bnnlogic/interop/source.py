"""A BNN trained elsewhere, as its file describes it, and its exact folding into the IR (torch-free).

Readers (``bnnlogic.nn.importer`` for PyTorch files and Brevitas modules, ``interop.qonnx`` for
QONNX graphs) describe the source network as a ``SourceNet``: float parameters around an
integer structure.  Its semantics, in real arithmetic over the float parameters:

    input    raw integer features x (lo..hi)  ->  first-layer inputs v_f(x) = delta * z_f(x),
             the source's own input block (normalisation, BatchNorm + sign, a threshold, a
             quantizer round(x / step)) evaluated in float32 on every raw value; z_f is an
             integer step function of x_f, monotone, with steps of m = 2 (+-1 inputs) or m = 1
             (0/1 or quantized inputs): z_f = c_f + m * sigma_f * #{tau in T_f : x_f >= tau}
    layer    s = sum_j W_j z_j  (W ternary; a conv's zero padding is z = 0), then
             y = gamma (alpha s + bias - mean) / sqrt(var + eps) + beta, fires iff y >= 0;
             the next layer sees z = +-1 (``act = "pm1"``, sign) or z = 1/0 (``"01"``); alpha
             carries the quantizers' scales (weight scale x input scale)
    pool     max over windows (an OR of the fired bits)
    output   logit_c = a_c (alpha_c s_c + bias_c - mean_c) + beta_c  (a_c = gamma_c / sqrt(var_c +
             eps), or 1 without a BatchNorm); the prediction is the first maximal logit

``to_ir`` folds it exactly (``bnnlogic.fold.bn_thresholds``: ceil / floor of p + q sqrt(D)
without floats).  With the IR's bits b (the thermometer bits of the coding, then each layer's
fired bits) a layer's sum is ``s = C + m * sum_j A_j b_j`` where A = W sigma (tiled over the
coding's levels) and C = sum over the window's real inputs of W_j c_j (padded inputs are 0), so
``sgn * s >= K`` becomes ``sum_j (sgn A_j) b_j >= ceil((K - sgn C) / m)``: one threshold per
neuron, or per conv output position when C differs at the border (+-1 activations with zero
padding, docs/ir.md).  When every class has the same multiplier kappa = a_c alpha_c m (no output
BatchNorm, or a scalar one) ``score_c = S * sgn A_c u + round(S * delta_c / |kappa|)`` with
S = 2^OUT_BITS and the offset rounded exactly; exact ties of logits stay exact ties.  With
per-class multipliers (a per-class output BatchNorm) the logits are replaced by their exact
order-preserving ranks, through one extra hidden layer of thermometer neurons (``_ranked_head``).

Float32 is not real arithmetic.  The source's own inference rounds (BatchNorm, scaled sums,
fl32(q * step) inputs), so a neuron whose real threshold lies within float32 error of a
reachable integer sum is one the source itself may decide either way: ``to_ir`` names every
such neuron (``ambiguous``), and every pair of classes whose logit difference can come that
near a tie.  The IR follows real arithmetic there; ``import_model`` measures agreement with the
source's float32 predictions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from decimal import Decimal as Dec, localcontext
from fractions import Fraction
from typing import Callable, Union

import numpy as np

from ..errors import UserError
from ..fold import _largest_at_most, bn_thresholds
from ..ir import IR, Conv, Dense, InputCoding, MaxPool, Output

OUT_BITS = 24  # the output's fixed-point scale S = 2^OUT_BITS
RANK_DIGITS, RANK_TIE = 120, 90  # per-class output multipliers: exact ranks to 120 digits, ties below 10^-90
U32 = 2.0 ** -24  # float32 unit roundoff
BN_ULPS = 16  # float32 roundings allowed in one BatchNorm evaluation (a generous count)


@dataclass
class Affine:
    """Per neuron: ``y = gamma (alpha s + bias - mean) / sqrt(var + eps) + beta`` (arrays (n,))."""

    alpha: np.ndarray
    bias: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float
    gamma: np.ndarray
    beta: np.ndarray

    @classmethod
    def make(cls, n: int, alpha=1.0, bias=0.0, bn: dict | None = None) -> "Affine":
        """From a layer's scale and bias and its BatchNorm (``mean, var, eps, gamma, beta``;
        None: the identity, y = alpha s + bias)."""
        full = lambda v: np.broadcast_to(np.asarray(v, dtype=np.float64), (n,)).copy()  # noqa: E731
        if bn is None:
            return cls(full(alpha), full(bias), full(0.0), full(1.0), 0.0, full(1.0), full(0.0))
        return cls(full(alpha), full(bias), full(bn["mean"]), full(bn["var"]), float(bn["eps"]),
                   full(bn["gamma"]), full(bn["beta"]))


@dataclass
class BinaryLayer:
    """Linear (W (n_out, n_in)) or Conv2d (W (C_out, C_in, kh, kw)), ternary W, then the affine and sign."""

    W: np.ndarray
    affine: Affine
    stride: int = 1
    padding: int = 0  # zero padding (z = 0 there)

    @property
    def conv(self) -> bool:
        return self.W.ndim == 4


@dataclass
class Pool:
    size: int
    stride: int


@dataclass
class Head:
    """The output layer: ternary W (C, n) and its affine (output BatchNorm or identity)."""

    W: np.ndarray
    affine: Affine


@dataclass
class SourceNet:
    """A source BNN (see the module docstring).  ``inputs``: raw (n, d) int64 -> the first
    layer's input values (n, d) float, by the source's own float32 ops; ``reference``: raw (n, d)
    -> the source's float32 logits (n, C), its own inference, to measure agreement."""

    kind: str
    feature_shape: tuple[int, ...]
    lo: int
    hi: int
    inputs: Callable[[np.ndarray], np.ndarray]
    layers: list[Union[BinaryLayer, Pool]]
    head: Head
    act: str  # "pm1" | "01": the hidden activations' values
    reference: Callable[[np.ndarray], np.ndarray]
    notes: dict = field(default_factory=dict)

    @property
    def n_features(self) -> int:
        return math.prod(self.feature_shape)


@dataclass
class _Values:
    """The IR view of a layer's input values: z = c + m * sigma * (sum of its bits), padded z = 0."""

    c: np.ndarray  # (d,) int constant per input position
    m: int  # step: 2 (+-1 values) or 1
    sigma: np.ndarray  # (d,) +-1
    exact: bool  # the source's float32 sums of these values are exact (power-of-two steps)


def _input_coding(src: SourceNet) -> tuple[InputCoding, _Values, float]:
    """The coding's thresholds from the source's input block evaluated on every raw value, the
    first layer's input values in IR terms, and their step delta (v = delta * z)."""
    d, lo, hi = src.n_features, src.lo, src.hi
    if hi - lo > 1 << 16:
        raise UserError(f"the raw feature domain [{lo}, {hi}] is too wide to read the input block value by value")
    raw = np.repeat(np.arange(lo, hi + 1, dtype=np.int64)[:, None], d, axis=1)
    V = np.asarray(src.inputs(raw), dtype=np.float64).reshape(len(raw), d)
    if not np.all(np.isfinite(V)):
        raise UserError("the input block gives non-finite values on some raw input; check the input scaling")
    vals = np.unique(V)
    if len(vals) == 2 and vals[0] == -vals[1]:  # +-a: z = +-1
        delta, m = float(vals[1]), 2
    else:
        steps = np.diff(vals)
        delta, m = (float(steps.min()) if len(steps) else 1.0), 1
    Z = V / delta
    z = np.rint(Z).astype(np.int64)
    if not np.allclose(Z, z, rtol=0, atol=1e-3):
        raise UserError("the input block's values are not integer multiples of one step (e.g. a quantizer "
                        "round(x / step) or a sign); this importer reads binarized or quantized inputs only")
    jumps = np.diff(z, axis=0)
    if np.any(np.abs(jumps) > m) or np.any((jumps != 0) & (np.abs(jumps) != m)):
        raise UserError("the input block skips a level between two adjacent raw values; a quantizer step "
                        "finer than the raw resolution cannot be coded exactly")
    up, down = (jumps > 0).any(axis=0), (jumps < 0).any(axis=0)
    if np.any(up & down):
        raise UserError("the input block is not monotone in the raw value of some feature")
    sigma = np.where(down, -1, 1)
    T = [lo + 1 + np.nonzero(jumps[:, f])[0] for f in range(d)]  # raw values where the level changes
    M = max(1, max(len(t) for t in T))
    thr = np.empty((M, d), np.int64)
    for f, t in enumerate(T):  # features with fewer levels get thresholds that never fire
        thr[:, f] = np.concatenate([t, hi + 1 + np.arange(M - len(t))])
    exact = _power_of_two(delta) and bool(np.all(V == delta * z))
    return InputCoding(tuple(src.feature_shape), lo, hi, thr), _Values(z[0], m, sigma, exact), delta


def _power_of_two(x: float) -> bool:
    return x > 0 and math.frexp(x)[0] == 0.5


def _fold_layer(layer: BinaryLayer, shape: tuple[int, ...], vals: _Values, levels: int, delta: float,
                index: int, ambiguous: list) -> Dense | Conv:
    """One binary layer as an IR layer over the bits of ``shape`` (see the module docstring)."""
    W = np.asarray(layer.W, dtype=np.int64)
    n_out = W.shape[0]
    if layer.conv:
        C_in = W.shape[1]
        sig = vals.sigma.reshape(C_in, -1)
        if np.any(sig != sig[:, :1]):
            raise UserError(f"layer {index}: the input block flips its sign within a channel; a conv cannot "
                            "share its weights over such an input")
        A = np.tile(W * sig[:, 0][None, :, None, None], (1, levels, 1, 1))
        probe = Conv(W, np.zeros(n_out, np.int64), layer.stride, layer.padding)
        cmap = vals.c.reshape(1, C_in, *shape[1:])
        C = np.einsum("nchwij,ocij->nohw", probe.windows(cmap), W)[0]  # (C_out, Ho, Wo)
    else:
        A = np.tile(W * vals.sigma[None], (1, levels))
        C = W @ vals.c  # (n_out,)
    aff = layer.affine
    nnz = np.count_nonzero(W.reshape(n_out, -1), axis=1)
    zmax = int(np.abs(vals.c).max(initial=0)) + vals.m * levels
    sgn, K = bn_thresholds(aff.alpha * delta, aff.bias, aff.mean, aff.var, aff.eps, aff.gamma, aff.beta,
                           int(nnz.max(initial=0)) * zmax)
    grid = (slice(None),) + (None,) * (C.ndim - 1)
    k = -((-(K[grid] - sgn[grid] * C)) // vals.m)  # ceil((K - sgn C) / m)
    k = np.where(sgn[grid] == 0, K[grid], k)
    A = (sgn.reshape((-1,) + (1,) * (A.ndim - 1)) * A).astype(np.int8)
    if layer.conv and np.all(k == k[:, :1, :1]):
        k = k[:, 0, 0]
    _flag_neurons(aff, delta, sgn, C, vals.m, nnz, zmax, vals.exact, index, ambiguous)
    return Conv(A, k.astype(np.int64), layer.stride, layer.padding) if layer.conv else Dense(A, k.astype(np.int64))


def _flag_neurons(aff: Affine, delta: float, sgn: np.ndarray, C: np.ndarray, m: int, nnz: np.ndarray, zmax: int,
                  exact: bool, index: int, ambiguous: list) -> None:
    """Append the neurons whose BatchNorm output at the reachable integer sum nearest their real
    threshold lies within float32 error of 0 (the source's own rounding may decide them)."""
    a = aff.alpha * delta
    scale = np.abs(aff.gamma) / np.sqrt(aff.var + aff.eps)
    live = sgn != 0
    g = np.where(live, aff.gamma, 1.0)
    T = (aff.mean - aff.bias) / a - aff.beta / (g * a) * np.sqrt(aff.var + aff.eps)  # the real threshold on s
    # reachable sums are s = C + m * (A b): of C's residue mod m, when it is one per neuron
    res = np.asarray(C).reshape(len(T), -1) % m
    one = np.all(res == res[:, :1], axis=1)
    r = np.where(one, res[:, 0], 0)
    step = np.where(one, m, 1)
    s = r + step * np.rint((T - r) / step)
    y = scale * np.abs(a * (s - T))  # |BN output| at the nearest integer sum
    # the source's float32 sum is exact when its terms are power-of-two multiples (partial sums
    # below 2^24 steps); else at most (n - 1) u sum|terms| off (recursive summation, any order)
    inexact = ~(exact & (np.frexp(np.abs(a))[0] == 0.5))
    err = BN_ULPS * U32 * (scale * (np.abs(a * s) + np.abs(aff.bias) + np.abs(aff.mean)) + np.abs(aff.beta)) \
        + inexact * U32 * scale * np.abs(a) * nnz * nnz * zmax
    reach = live & (np.abs(s) <= nnz * zmax)
    for i in np.nonzero(reach & (y <= err))[0]:
        ambiguous.append({"layer": index, "neuron": int(i), "threshold": float(T[i]),
                          "bn_output_at_nearest_sum": float(y[i]), "float32_error_bound": float(err[i])})


def _fold_head(head: Head, vals: _Values, n_in: int, ambiguous: list) -> Output | None:
    """The output layer with one scale (module docstring); None if the classes' multipliers differ."""
    W = np.asarray(head.W, dtype=np.int64)
    aff = head.affine
    C = W @ vals.c
    kappa2, signs = set(), set()
    for c in range(len(W)):
        g = Fraction(float(aff.gamma[c]))
        al = Fraction(float(aff.alpha[c]))
        kappa2.add(g * g * al * al / (Fraction(float(aff.var[c])) + Fraction(float(aff.eps))))
        signs.add((g > 0) == (al > 0) if g != 0 and al != 0 else None)
    if len(kappa2) != 1 or len(signs) != 1 or None in signs:
        return None
    sgn = 1 if signs.pop() else -1
    S = 1 << OUT_BITS
    offsets = np.empty(len(W), np.int64)
    delta_f = np.empty(len(W))
    for c in range(len(W)):  # delta_c / |kappa| = sgn (alpha C + bias - mean) / (alpha m) + sgn beta sqrt(D) / (gamma alpha m)
        al, g = Fraction(float(aff.alpha[c])), Fraction(float(aff.gamma[c]))
        D = Fraction(float(aff.var[c])) + Fraction(float(aff.eps))
        P = sgn * (al * int(C[c]) + Fraction(float(aff.bias[c])) - Fraction(float(aff.mean[c]))) / (al * vals.m)
        Q = sgn * Fraction(float(aff.beta[c])) / (g * al * vals.m)
        approx = float(S * P) + float(S * Q) * math.sqrt(float(D))
        offsets[c] = _largest_at_most(S * P + Fraction(1, 2), S * Q, D, math.floor(approx) - 4, math.ceil(approx) + 4)
        delta_f[c] = float(P) + float(Q) * math.sqrt(float(D))
    for c in range(len(W)):  # pairs of classes whose logit gap can come within float32 error of a tie
        for d_ in range(c + 1, len(W)):
            gap = delta_f[d_] - delta_f[c]
            near = abs(gap - round(gap))
            if round(abs(gap)) <= 2 * n_in and near <= max(2.0 / S, BN_ULPS * U32 * (2 * n_in + abs(delta_f[c]) + abs(delta_f[d_]))):
                ambiguous.append({"layer": "output", "classes": [c, d_], "logit_gap_to_tie": float(near)})
    return Output((sgn * W).astype(np.int8), S, offsets)


def _ranked_head(head: Head, vals: _Values, ambiguous: list) -> tuple[Dense, Output]:
    """The output layer when its classes have different multipliers (a per-class BatchNorm):
    ``logit_c = L_c(p_c)``, p_c = A_c u, is replaced by an order-preserving integer rank
    ``R_c(p_c)`` (equal logits, equal ranks), computed exactly (``RANK_DIGITS`` decimal digits; a
    difference below 10^-RANK_TIE counts as a tie, and is named ambiguous).  R_c is a step
    function of p_c: ``R_c(p) = R_c(p_lo) + sum_t (R_c(t) - R_c(t - 1)) [A_c u >= t]``, so a hidden
    dense layer of thermometer neurons ``[A_c u >= t]`` (each repeated |step| times) feeds an
    output of scale 1 with weights +-1 and offset R_c(p_lo).  Consecutive values of one class
    share a rank, so the layer has one neuron per change of the leading class, not per value."""
    W = np.asarray(head.W, dtype=np.int64)
    aff = head.affine
    C = W @ vals.c
    lo, hi = -(W < 0).sum(axis=1), (W > 0).sum(axis=1)  # the range of p_c = A_c u over u in {0, 1}
    values = []  # (logit, class, p), exact to RANK_DIGITS digits
    with localcontext() as ctx:
        ctx.prec = RANK_DIGITS
        for c in range(len(W)):
            a = Dec(float(aff.gamma[c])) / (Dec(float(aff.var[c])) + Dec(float(aff.eps))).sqrt()
            al = Dec(float(aff.alpha[c]))
            base = al * int(C[c]) + Dec(float(aff.bias[c])) - Dec(float(aff.mean[c]))
            values += [(a * (base + al * vals.m * p) + Dec(float(aff.beta[c])), c, p)
                       for p in range(int(lo[c]), int(hi[c]) + 1)]
        values.sort()
        groups: list[list] = []  # runs of equal values (within 10^-RANK_TIE)
        for v in values:
            if groups and v[0] - groups[-1][-1][0] <= Dec(10) ** -RANK_TIE:
                groups[-1].append(v)
            else:
                groups.append([v])
        rank, r, owner, prev = {}, 0, None, None
        for grp in groups:
            classes = {c for _, c, _ in grp}
            if len(classes) > 1:  # an exact tie of logits across classes: float32 decides it either way
                ambiguous.append({"layer": "output", "classes": sorted(classes), "logit_gap_to_tie": 0.0})
            elif prev is not None and prev[1] != classes \
                    and float(grp[0][0] - prev[0]) <= BN_ULPS * U32 * float(abs(grp[0][0]) + abs(prev[0])):
                ambiguous.append({"layer": "output", "classes": sorted(classes | prev[1]),
                                  "logit_gap_to_tie": float(grp[0][0] - prev[0])})
            if not (len(classes) == 1 and classes == owner):  # a run of one class keeps its rank
                r += 1
            owner = classes
            rank.update({(c, p): r for _, c, p in grp})
            prev = (grp[-1][0], classes)
    rows, k, out_w, offsets = [], [], [], np.zeros(len(W), np.int64)
    for c in range(len(W)):
        offsets[c] = rank[c, int(lo[c])]
        for t in range(int(lo[c]) + 1, int(hi[c]) + 1):
            step = rank[c, t] - rank[c, t - 1]
            rows += [W[c]] * abs(step)
            k += [t] * abs(step)
            out_w += [(c, 1 if step > 0 else -1)] * abs(step)
    A_out = np.zeros((len(W), max(len(rows), 1)), np.int8)
    for j, (c, sgn) in enumerate(out_w):
        A_out[c, j] = sgn
    if not rows:  # every class constant: one never-firing neuron keeps the shapes valid
        rows, k = [np.zeros(W.shape[1], np.int64)], [1]
    return Dense(np.array(rows, dtype=np.int8), np.array(k, dtype=np.int64)), Output(A_out, 1, offsets)


def to_ir(src: SourceNet) -> tuple[IR, list[dict]]:
    """The exact IR of ``src`` and its ambiguous neurons (see the module docstring)."""
    coding, vals, delta = _input_coding(src)
    levels = coding.n_levels
    shape = coding.bit_shape
    src_shape = tuple(src.feature_shape)
    layers, ambiguous = [], []
    if src.act not in ("pm1", "01"):
        raise UserError(f"unknown hidden activation values {src.act!r}; use pm1 (sign) or 01")
    if not any(isinstance(layer, BinaryLayer) for layer in src.layers):
        raise UserError("a network without hidden binary layers cannot be imported (the output would read raw inputs)")
    for i, layer in enumerate(src.layers):
        if isinstance(layer, Pool):
            if not layers:
                raise UserError(f"layer {i}: a max-pool before the first binary layer is not supported")
            if len(shape) != 3:
                raise UserError(f"layer {i}: max-pool after a flattening layer")
            layers.append(MaxPool(int(layer.size), int(layer.stride)))
        else:
            if layer.conv and (len(shape) != 3 or layer.W.shape[1] * levels != shape[0]):
                raise UserError(f"layer {i}: a conv with {layer.W.shape[1]} input channels after an input of shape "
                                f"{src_shape}; check the layer order and shapes")
            n_in = int(np.prod(src_shape))
            if not layer.conv and layer.W.shape[1] != n_in:
                raise UserError(f"layer {i}: a Linear layer with {layer.W.shape[1]} inputs after {n_in} values "
                                f"(shape {src_shape}); check the layer order, strides, padding and pooling (a "
                                "state dict does not store them: give a mapping)")
            if np.any(layer.affine.alpha <= 0):
                raise UserError(f"layer {i}: a non-positive scale multiplies the layer's sum; only positive "
                                "quantizer scales are supported")
            layers.append(_fold_layer(layer, src_shape, vals, levels, delta, i, ambiguous))
            levels, delta = 1, 1.0
        shape = layers[-1].out_shape(shape)
        n = int(np.prod(shape))  # the next layer reads hidden values: z = -1 + 2u (pm1) or u (01)
        vals = _Values(np.full(n, -1 if src.act == "pm1" else 0), 2 if src.act == "pm1" else 1, np.ones(n, np.int64), True)
        src_shape = shape
        if min(shape) < 1:
            raise UserError(f"layer {i} leaves an empty output {shape}; check strides, padding and pooling")
    n_in = int(np.prod(shape))
    if np.asarray(src.head.W).shape[1] != n_in:
        raise UserError(f"the output layer has {np.asarray(src.head.W).shape[1]} inputs after {n_in} values")
    out = _fold_head(src.head, vals, n_in, ambiguous)
    if out is None:  # per-class multipliers: a rank layer
        extra, out = _ranked_head(src.head, vals, ambiguous)
        layers.append(extra)
    ir = IR(coding, tuple(layers), out)
    ir.validate()
    return ir, ambiguous
