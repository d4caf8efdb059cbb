"""IR reference semantics and validation."""
import numpy as np
import pytest

from bnnlogic.errors import UserError
from bnnlogic.ir import IR, Conv, Dense, InputCoding, MaxPool, Output
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
