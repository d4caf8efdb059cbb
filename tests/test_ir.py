"""IR reference semantics and validation."""
import itertools

import numpy as np
import pytest

from bnnlogic.errors import UserError
from bnnlogic.ir import IR, Conv, Dense, InputCoding, MaxPool, Output, in_classes
from helpers import random_ir


def test_thermometer_coding_is_exact_at_thresholds():
    c = InputCoding((2,), 0, 255, np.array([[64, 10], [128, 20], [192, 30]]))
    X = np.array([[63, 9], [64, 10], [127, 19], [128, 20], [255, 30]])
    bits = c.encode(X)  # layout: level-major, m * d + f
    np.testing.assert_array_equal(bits, [[0, 0, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0], [1, 1, 0, 0, 0, 0],
                                         [1, 1, 1, 1, 0, 0], [1, 1, 1, 1, 1, 1]])
    assert c.bit_feature(3) == (1, 1)


def test_image_coding_puts_levels_in_channels():
    c = InputCoding((1, 2, 2), 0, 3, np.array([[1, 1, 1, 1], [2, 2, 2, 2]]))
    bits = c.encode(np.array([[0, 1, 2, 3]]))
    assert bits.shape == (1, 2, 2, 2)
    np.testing.assert_array_equal(bits[0, 0].ravel(), [0, 1, 1, 1])
    np.testing.assert_array_equal(bits[0, 1].ravel(), [0, 0, 1, 1])


def test_dense_conv_pool_output_semantics_by_hand():
    coding = InputCoding((1, 3, 3), 0, 1, np.ones((1, 9), dtype=np.int64))
    conv = Conv(np.array([[[[1, -1], [0, 1]]]], dtype=np.int8), np.array([1]), stride=1)  # (1,1,2,2)
    pool = MaxPool(2, 1)
    out = Output(np.array([[1], [-1]], dtype=np.int8), 2, np.array([0, 1]))
    ir = IR(coding, (conv, pool), out)
    x = np.array([[1, 0, 0, 0, 0, 0, 0, 0, 0]])
    # conv at (0,0): u00 - u01 + u11 = 1 >= 1 -> 1; everything else 0 -> pool OR = 1
    assert ir.activations(x)[1][0, 0].tolist() == [[1, 0], [0, 0]]
    assert ir.scores(x).tolist() == [[2, -1]]
    assert ir.predict(np.zeros((1, 9), dtype=np.int64)).tolist() == [1]  # scores [0, 1]


def test_ties_go_to_the_lowest_class():
    coding = InputCoding((1,), 0, 1, np.ones((1, 1), dtype=np.int64))
    out = Output(np.array([[0], [1], [1]], dtype=np.int8), 1, np.array([1, 0, 0]))
    ir = IR(coding, (), out)
    assert ir.scores(np.array([[0], [1]])).tolist() == [[1, 0, 0], [1, 1, 1]]
    assert ir.predict(np.array([[0], [1]])).tolist() == [0, 0]  # a three-way tie goes to class 0
    out2 = Output(np.array([[0], [1], [1]], dtype=np.int8), 1, np.array([0, 0, 0]))
    assert IR(coding, (), out2).predict(np.array([[1]])).tolist() == [1]  # tie of 1 and 2 -> 1


@pytest.mark.parametrize("bad", ["weights", "k_shape", "chain", "scale", "dims"])
def test_validate_rejects_inconsistent_irs(bad):
    ir = random_ir(0)
    layers = list(ir.layers)
    coding, out = ir.coding, ir.output
    if bad == "weights":
        A = layers[0].A.copy(); A[0, 0] = 2
        layers[0] = Dense(A, layers[0].k)
    elif bad == "k_shape":
        layers[0] = Dense(layers[0].A, layers[0].k[:-1])
    elif bad == "chain":
        coding = InputCoding(coding.feature_shape, 0, 3, np.array([[2] * 4, [1] * 4]))
    elif bad == "scale":
        out = Output(out.A, 0, out.offset)
    else:
        layers[1] = Dense(layers[1].A[:, :-1], layers[1].k)
    with pytest.raises(UserError):
        IR(coding, tuple(layers), out).validate()


def _conv_by_loops(u: np.ndarray, A: np.ndarray, k: np.ndarray, s: int, p: int) -> np.ndarray:
    """Reference of a padded conv by plain loops: positions outside the input contribute 0."""
    n, C, H, W = u.shape
    O, _, kh, kw = A.shape
    Ho, Wo = (H + 2 * p - kh) // s + 1, (W + 2 * p - kw) // s + 1
    k = np.broadcast_to(k if k.ndim == 3 else k[:, None, None], (O, Ho, Wo))
    out = np.zeros((n, O, Ho, Wo), np.uint8)
    for b, o, y, x in np.ndindex(n, O, Ho, Wo):
        total = 0
        for c, i, j in np.ndindex(C, kh, kw):
            yy, xx = y * s + i - p, x * s + j - p
            if 0 <= yy < H and 0 <= xx < W:
                total += int(A[o, c, i, j]) * int(u[b, c, yy, xx])
        out[b, o, y, x] = total >= k[o, y, x]
    return out


@pytest.mark.parametrize("s,p,per_position", [(1, 1, False), (2, 1, True), (1, 2, True), (3, 3, False), (2, 0, True)])
def test_padded_conv_equals_loops(s, p, per_position):
    rng = np.random.default_rng(s * 10 + p)
    A = rng.choice([-1, 0, 1], size=(3, 2, 3, 3)).astype(np.int8)
    conv = Conv(A, np.zeros(3, np.int64), s, p)
    _, Ho, Wo = conv.out_shape((2, 5, 6))
    k = rng.integers(-3, 4, size=(3, Ho, Wo) if per_position else 3).astype(np.int64)
    conv = Conv(A, k, s, p)
    u = rng.integers(0, 2, size=(4, 2, 5, 6)).astype(np.uint8)
    np.testing.assert_array_equal(conv.apply(u), _conv_by_loops(u, A, k, s, p))
    assert conv.flat_k((2, 5, 6)).shape == (3 * Ho * Wo,)


def test_validate_checks_conv_thresholds_and_padding():
    ir = random_ir(1, image=(1, 5, 5), hi=2, conv=((2, 3, 1, 1),), hidden=(3,))
    conv = ir.layers[0]
    for k, ok in [(np.zeros((2, 5, 5), np.int64), True), (np.zeros((2, 3, 3), np.int64), False),
                  (np.zeros((2, 1), np.int64), False)]:
        other = IR(ir.coding, (Conv(conv.A, k, 1, 1),) + ir.layers[1:], ir.output)
        if ok:
            other.validate()
        else:
            with pytest.raises(UserError, match="thresholds k"):
                other.validate()
    with pytest.raises(UserError, match="padding"):
        IR(ir.coding, (Conv(conv.A, conv.k, 1, -1),) + ir.layers[1:], ir.output).validate()


def test_tie_rules_of_in_classes_and_beat_bound():
    """``in_classes`` and ``beat_bound`` against the scores, both tie rules, every class pair."""
    rng = np.random.default_rng(0)
    out = Output(rng.choice([-1, 0, 1], size=(4, 3)).astype(np.int8), 2, np.array([0, 1, 2, 1]))
    U = np.array(list(itertools.product((0, 1), repeat=3)))
    S = out.scores(U)
    for c, d in itertools.permutations(range(4), 2):
        lhs = U @ (out.A[c].astype(np.int64) - out.A[d])
        low = (S[:, c] > S[:, d]) | ((S[:, c] == S[:, d]) & (c < d))
        np.testing.assert_array_equal(lhs >= out.beat_bound(c, d), low)
        np.testing.assert_array_equal(lhs >= out.beat_bound(c, d, "adversarial"), S[:, c] >= S[:, d])
    for mask in itertools.product((False, True), repeat=4):
        mask = np.array(mask)
        np.testing.assert_array_equal(in_classes(S, mask), mask[np.argmax(S, axis=1)])
        top = S == S.max(axis=1, keepdims=True)
        np.testing.assert_array_equal(in_classes(S, mask, "adversarial"), (top & mask).any(axis=1))
    with pytest.raises(UserError, match="tie rule"):
        in_classes(S, np.ones(4, bool), "high")
