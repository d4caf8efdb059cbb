"""Exact folding of ``sign(BN(alpha * s + bias))`` into integer threshold neurons.

A hidden block of the trained network computes, for an integer pre-activation
``s = sum_j w_j x_j`` (w in {-1,0,+1}, x in {-1,+1})::

    y = gamma * (alpha * s + bias - mean) / sqrt(var + eps) + beta,   t = +1 iff y >= 0

with alpha > 0.  All parameters are read as the exact rationals their floats denote and
the square root is handled exactly (by squaring), so the integer threshold returned here is
the one real arithmetic gives.  With  P = (mean - bias)/alpha,  Q = -beta/(gamma*alpha),
D = var + eps:

    gamma > 0:  t  <=>  s >= P + Q*sqrt(D)  <=>   s >= K,  K = ceil(P + Q sqrt D)
    gamma < 0:  t  <=>  s <= P + Q*sqrt(D)  <=>  -s >= -U, U = floor(P + Q sqrt D)
    gamma = 0:  t is the constant [beta >= 0]

In the {0,1} domain (x = 2u - 1) a condition ``sum_j c_j x_j >= K`` over ternary c is
``sum_j c_j u_j >= ceil((K + sum_j c_j) / 2)``.
"""
from __future__ import annotations

from fractions import Fraction

import numpy as np


def _sign_p_plus_q_sqrt(p: Fraction, q: Fraction, d: Fraction) -> int:
    """Exact sign of ``p + q*sqrt(d)`` for rationals p, q and d >= 0."""
    sp = (p > 0) - (p < 0)
    sq = ((q > 0) - (q < 0)) if d != 0 else 0
    if sp >= 0 and sq >= 0:
        return int(sp > 0 or sq > 0)
    if sp <= 0 and sq <= 0:
        return -int(sp < 0 or sq < 0)
    diff = p * p - q * q * d
    return sp if diff > 0 else (sq if diff < 0 else 0)


def _smallest_at_least(P: Fraction, Q: Fraction, D: Fraction, lo: int, hi: int) -> int:
    """Smallest integer n in [lo, hi] with n >= P + Q*sqrt(D), or hi if none below hi does."""
    while lo < hi:
        mid = (lo + hi) // 2
        if _sign_p_plus_q_sqrt(mid - P, -Q, D) >= 0:
            hi = mid
        else:
            lo = mid + 1
    return lo


def _largest_at_most(P: Fraction, Q: Fraction, D: Fraction, lo: int, hi: int) -> int:
    """Largest integer n in [lo, hi] with n <= P + Q*sqrt(D), or lo if none above lo does."""
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _sign_p_plus_q_sqrt(mid - P, -Q, D) <= 0:
            lo = mid
        else:
            hi = mid - 1
    return lo


def bn_thresholds(alpha: np.ndarray, bias: np.ndarray, mean: np.ndarray, var: np.ndarray, eps: float,
                  gamma: np.ndarray, beta: np.ndarray, s_bound: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact integer form of ``sign(BN(alpha * s + bias)) = +1`` for integer pre-activations
    ``|s| <= s_bound`` (arrays (n_out,), see the module docstring): returns ``sgn`` and ``K``
    (n_out,) int64 with ``t = 1 <=> sgn * s >= K``, where sgn = +1 (gamma > 0: K = ceil(P + Q
    sqrt D)), -1 (gamma < 0: K = -floor(P + Q sqrt D)) or 0 (gamma = 0, the constant [beta >= 0]:
    K = 0 always fires, K = 1 never).  K is clamped to [-s_bound - 1, s_bound + 1] (always /
    never within the range)."""
    n_out = len(gamma)
    sgn = np.zeros(n_out, dtype=np.int64)
    K = np.empty(n_out, dtype=np.int64)
    lo, hi = -int(s_bound) - 1, int(s_bound) + 1
    for i in range(n_out):
        g = Fraction(float(gamma[i]))
        if g == 0:  # constant neuron: empty sum >= 0 is true, >= 1 false
            K[i] = 0 if float(beta[i]) >= 0 else 1
            continue
        a = Fraction(float(alpha[i]))
        P = (Fraction(float(mean[i])) - Fraction(float(bias[i]))) / a
        Q = -Fraction(float(beta[i])) / (g * a)
        D = Fraction(float(var[i])) + Fraction(float(eps))
        if g > 0:  # s >= K; K = lo means always, hi never
            sgn[i], K[i] = 1, _smallest_at_least(P, Q, D, lo, hi)
        else:  # s <= U  <=>  -s >= -U
            sgn[i], K[i] = -1, -_largest_at_most(P, Q, D, lo, hi)
    return sgn, K


def fold_sign_bn(
    W: np.ndarray,
    alpha: np.ndarray,
    bias: np.ndarray,
    mean: np.ndarray,
    var: np.ndarray,
    eps: float,
    gamma: np.ndarray,
    beta: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Fold ternary weights and the BN/sign block into ``(A, k)`` over {0,1} inputs.

    W: (n_out, ...) ternary weights on {-1,+1} inputs; the other arrays have shape (n_out,).
    Returns A (same shape as W, int8) and k (n_out,) int64 with
    ``t_i = 1  <=>  sum_j A_ij u_j >= k_i`` for every u in {0,1}^n.
    """
    W = np.asarray(W)
    n_out = W.shape[0]
    rows = W.reshape(n_out, -1).astype(np.int64)
    sgn, K = bn_thresholds(alpha, bias, mean, var, eps, gamma, beta, rows.shape[1])
    A = sgn[:, None] * rows  # sgn = 0: the constant neuron's all-zero row, k = K
    k = np.where(sgn == 0, K, -((-(K + A.sum(axis=1))) // 2))  # ceil((K + sum c) / 2)
    return A.reshape(W.shape).astype(np.int8), k.astype(np.int64)


def fold_output(W: np.ndarray, bias_fixed: np.ndarray, frac_bits: int) -> tuple[np.ndarray, int, np.ndarray]:
    """Exact integer output layer from ``logit_c = sum_j W_cj x_j + B_c / 2**frac_bits``.

    W: (n_classes, n_in) ternary on {-1,+1} inputs; bias_fixed: integers B_c.
    Multiplying by 2**frac_bits and substituting x = 2u - 1 gives
    ``score_c = 2**(frac_bits+1) * sum_j W_cj u_j + (B_c - 2**frac_bits * sum_j W_cj)``,
    a positive multiple of the logit, so the argmax (ties low) is unchanged.
    """
    W = np.asarray(W).astype(np.int64)
    offset = np.asarray(bias_fixed, dtype=np.int64) - (1 << frac_bits) * W.sum(axis=1)
    return W.astype(np.int8), 1 << (frac_bits + 1), offset
