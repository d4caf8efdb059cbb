"""Exact BN folding: hand-built cases (negative/zero gamma, ties) against exact arithmetic."""
from fractions import Fraction
import itertools

import numpy as np
import pytest

from bnnlogic.fold import fold_output, fold_sign_bn

ALL6 = np.array(list(itertools.product([0, 1], repeat=6)), dtype=np.int64)  # u in {0,1}^6


def exact_fire(w, u, alpha, bias, mean, var, eps, gamma, beta):
    """t = [gamma*(alpha*s + bias - mean)/sqrt(var+eps) + beta >= 0], decided exactly."""
    s = int(np.dot(w, 2 * u - 1))
    g, b = Fraction(gamma), Fraction(beta)
    if g == 0:
        return b >= 0
    lhs = g * (Fraction(alpha) * s + Fraction(bias) - Fraction(mean))  # compare lhs/sigma >= -b
    d = Fraction(var) + Fraction(eps)
    # lhs/sqrt(d) >= -b  <=>  lhs >= -b*sqrt(d)
    if lhs >= 0 and -b <= 0:
        return True
    if lhs < 0 and -b >= 0:
        return False
    if lhs >= 0:  # -b > 0: lhs^2 >= b^2 d
        return lhs * lhs >= b * b * d
    return lhs * lhs <= b * b * d  # lhs < 0, -b < 0


def folded_fire(A, k, u):
    return (u @ A.astype(np.int64).T >= k)


@pytest.mark.parametrize("gamma,beta,mean,var,eps", [
    (1.0, 0.0, 2.0, 1.0, 0.0),     # tie at s = 2
    (-1.0, 0.0, 2.0, 1.0, 0.0),    # negative gamma: fires for s <= 2, tie included
    (2.0, 1.0, 1.0, 4.0, 0.0),     # y = s: tie at s = 0 through beta and sigma
    (-2.0, 1.0, 1.0, 4.0, 0.0),    # y = -(s - 1) + 1 = 2 - s
    (0.0, 0.5, 0.0, 1.0, 1e-5),    # zero gamma, positive beta: always fires
    (0.0, -0.5, 0.0, 1.0, 1e-5),   # zero gamma, negative beta: never
    (0.0, 0.0, 0.0, 1.0, 1e-5),    # zero gamma, beta 0: fires (y = 0 >= 0)
    (1e-30, -1.0, 0.0, 1.0, 1e-5), # tiny gamma: threshold beyond reach, never fires
    (0.37, 0.11, -0.6, 0.9, 1e-5), # generic irrational threshold
    (-0.37, 0.11, 0.6, 0.3, 1e-5),
])
def test_hand_built_cases_match_exact_arithmetic(gamma, beta, mean, var, eps):
    w = np.array([1, -1, 1, 0, 1, 1], dtype=np.int8)
    A, k = fold_sign_bn(w[None], np.array([1.0]), np.array([0.0]), np.array([mean]), np.array([var]), eps,
                        np.array([gamma]), np.array([beta]))
    got = folded_fire(A, k, ALL6)[:, 0]
    want = np.array([exact_fire(w, u, 1.0, 0.0, mean, var, eps, gamma, beta) for u in ALL6])
    np.testing.assert_array_equal(got, want)
    assert set(np.unique(A)) <= {-1, 0, 1}


def test_random_blocks_with_scale_and_bias_match_exact_arithmetic():
    rng = np.random.default_rng(0)
    for _ in range(40):
        w = rng.choice([-1, 0, 1], size=6).astype(np.int8)
        alpha, bias = float(rng.uniform(0.1, 2)), float(rng.normal())
        mean, var = float(rng.normal() * 2), float(rng.uniform(0.01, 3))
        gamma, beta = float(rng.normal()), float(rng.normal())
        A, k = fold_sign_bn(w[None], np.array([alpha]), np.array([bias]), np.array([mean]), np.array([var]),
                            1e-5, np.array([gamma]), np.array([beta]))
        want = [exact_fire(w, u, alpha, bias, mean, var, 1e-5, gamma, beta) for u in ALL6]
        np.testing.assert_array_equal(folded_fire(A, k, ALL6)[:, 0], want)


def test_output_scores_are_positive_multiples_of_logits():
    rng = np.random.default_rng(1)
    W = rng.choice([-1, 0, 1], size=(4, 6)).astype(np.int8)
    B = rng.integers(-5 << 16, 5 << 16, size=4)
    A, scale, offset = fold_output(W, B, 16)
    for u in ALL6:
        logits = np.array([Fraction(int(np.dot(W[c], 2 * u - 1))) + Fraction(int(B[c]), 1 << 16) for c in range(4)])
        scores = scale * (A.astype(np.int64) @ u) + offset
        assert all(Fraction(int(s)) == (1 << 16) * l for s, l in zip(scores, logits))
