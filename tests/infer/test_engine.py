"""The bit-packed engine equals the IR's reference semantics exactly (no timing here)."""
from __future__ import annotations

import numpy as np
import pytest

from bnnlogic.infer import Engine, compile_ir, pack_bits, unpack_bits
from bnnlogic.infer.packing import layout
from bnnlogic.ir import IR, Dense, Output
from helpers import random_coding, random_ir

BATCHES = (1, 7, 31, 33, 130)  # 1, odd, around the serial/parallel switch, > 64


def _raw(ir: IR, n: int, seed: int = 0) -> np.ndarray:
    c = ir.coding
    return np.random.default_rng(seed).integers(c.lo, c.hi + 1, size=(n, c.n_features))


def _check(ir: IR, batches=BATCHES) -> None:
    """Scores equal the IR's with hidden dense layers bit-sliced, by popcount, and as estimated."""
    for sliced in (None, True, False):
        engine = Engine(ir, sliced)
        for n in batches:
            X = _raw(ir, n, seed=n)
            ref = ir.scores(X)
            got = engine.scores(X)
            assert got.dtype == np.int64 and got.shape == ref.shape
            np.testing.assert_array_equal(got, ref)
            np.testing.assert_array_equal(engine.predict(X), ir.predict(X))


@pytest.mark.parametrize("n_features,hidden", [(1, (1,)), (63, (65, 1)), (65, (130, 63)), (64, (64, 128)),
                                               (130, (3,)), (200, ())])
@pytest.mark.parametrize("p_zero", [0.0, 0.3])
def test_dense_awkward_widths(n_features, hidden, p_zero):
    _check(random_ir(seed=n_features, n_features=n_features, lo=0, hi=7, hidden=hidden, p_zero=p_zero,
                     n_classes=5))


@pytest.mark.parametrize("p_zero", [0.0, 0.4])
def test_wide_layers_several_chunks(p_zero):
    """Layers of more than 512 neurons (several 512-lane chunks when sliced), binary and
    ternary, also on inputs whose bits are all 0 or all 1 (s = 0 and s = n)."""
    ir = random_ir(seed=21, n_features=100, lo=0, hi=3, levels=2, hidden=(600, 1030, 20), p_zero=p_zero)
    _check(ir, batches=(1, 40))
    X = np.array([[ir.coding.lo] * 100, [ir.coding.hi] * 100])
    for sliced in (True, False):
        np.testing.assert_array_equal(Engine(ir, sliced).scores(X), ir.scores(X))


def test_first_layer_slices_by_default():
    """The cost estimate slices a wide first layer (784 -> 500, as in benchmarks/infer.py) and
    keeps narrow layers on AND+POPCOUNT."""
    from bnnlogic.infer.packing import SLICED
    ir = random_ir(seed=2, n_features=784, lo=0, hi=1, hidden=(500, 300, 200), p_zero=0.0)
    assert compile_ir(ir).ops[:, SLICED].tolist() == [1, 0, 0, 0]


@pytest.mark.parametrize("levels", [2, 3])
def test_dense_thermometer(levels):
    _check(random_ir(seed=levels, n_features=45, lo=0, hi=9, levels=levels, hidden=(70, 9)))


@pytest.mark.parametrize("image,conv,pool,levels,p_zero", [
    ((1, 8, 8), ((3, 3, 1),), 0, 1, 0.0),
    ((1, 12, 12), ((16, 4, 2), (32, 4, 2)), 0, 1, 0.0),  # conv-small's shape, smaller
    ((2, 9, 11), ((5, 3, 1), (70, 2, 2)), 2, 3, 0.2),  # thermometer channels, pool, >64 channels
    ((3, 10, 7), ((65, 2, 1),), 3, 1, 0.5),  # 65 channels through a pool of 3
    ((1, 6, 6), ((1, 6, 1),), 0, 2, 0.2),  # kernel = image, one output pixel
])
def test_conv_pool(image, conv, pool, levels, p_zero):
    _check(random_ir(seed=sum(image), image=image, lo=0, hi=5, levels=levels, conv=conv, pool=pool,
                     hidden=(9,), p_zero=p_zero))


@pytest.mark.parametrize("image,conv,pool,levels,position_k", [
    ((1, 8, 8), ((3, 3, 1, 1),), 0, 1, False),  # "same" padding
    ((1, 12, 12), ((16, 4, 2, 1), (32, 4, 2, 1)), 0, 1, True),  # conv-small's padded shape, smaller
    ((2, 9, 11), ((5, 3, 1, 2), (70, 2, 2, 1)), 2, 3, True),  # thermometer channels, pool, >64 channels
    ((3, 10, 7), ((65, 3, 1, 1),), 3, 1, True),  # 65 channels (runs of 195 bits) through a pool
    ((1, 6, 6), ((1, 6, 1, 5),), 0, 2, True),  # padding 5 > kernel/2: windows wholly in the padding
    ((1, 5, 9), ((4, 3, 3, 2),), 0, 1, False),  # stride 3 with padding 2: asymmetric coverage
])
def test_padded_conv_and_per_position_thresholds(image, conv, pool, levels, position_k):
    _check(random_ir(seed=sum(image) + 1, image=image, lo=0, hi=5, levels=levels, conv=conv, pool=pool,
                     hidden=(9,), p_zero=0.2, position_k=position_k))


def test_dense_on_image_input_and_extreme_thresholds():
    """Dense directly on an image (channel-last permutation) and neurons always/never firing."""
    rng = np.random.default_rng(3)
    coding = random_coding(rng, (2, 5, 7), 0, 4, levels=2)
    A = rng.choice([-1, 0, 1], size=(66, coding.n_bits)).astype(np.int8)
    k = rng.integers(-20, 20, size=66)
    k[:3] = (-10**6, 10**6, 0)
    out = Output(rng.choice([-1, 1], size=(4, 66)).astype(np.int8), 3, np.array([5, -5, 0, 7]))
    ir = IR(coding, (Dense(A, k.astype(np.int64)),), out)
    ir.validate()
    _check(ir)


@pytest.mark.parametrize("image,n_features", [(None, 70), (None, 30), (None, 128), (None, 200), ((2, 6, 5), 60)])
@pytest.mark.parametrize("extremes", [((-5, 0, 1, 254, 200, 100), (-4, 1, 2, 255, 255, 255)),  # byte thresholds
                                      ((-5, 0, 1, 255, 256, 300), (-4, 1, 2, 256, 257, 301))])  # some never fire
def test_uint8_pixels_equal_int64_features(image, n_features, extremes):
    """uint8 inputs take the byte path (thresholds clipped to 0..256, as bytes when they fit;
    64-byte vector compares, a short last run re-read from 64 bytes before its end when the
    row has them): same scores, also for thresholds at and beyond the byte range (always /
    never firing bits), at both ends of the row."""
    conv = ((4, 3, 1),) if image else ()
    ir = random_ir(seed=11, n_features=n_features, image=image, lo=0, hi=255, levels=2, conv=conv, hidden=(40,))
    thr = ir.coding.thresholds.copy()
    thr[:, :6] = thr[:, -6:] = extremes
    ir = IR(type(ir.coding)(ir.coding.feature_shape, 0, 255, thr), ir.layers, ir.output)
    ir.validate()
    X = np.random.default_rng(0).integers(0, 256, size=(77, ir.coding.n_features))
    X[0, :6], X[1, :6], X[2, -6:], X[3, -6:] = 0, 255, 0, 255
    engine, ref = Engine(ir), ir.scores(X)
    np.testing.assert_array_equal(engine.scores(X.astype(np.uint8)), ref)
    np.testing.assert_array_equal(engine.scores(X), ref)


def test_ties_go_to_lowest_class():
    ir = random_ir(seed=5, n_features=10, hidden=(4,))
    ir = IR(ir.coding, ir.layers, Output(np.zeros_like(ir.output.A), 1, np.array([2, 2, 1])))
    assert (Engine(ir).predict(_raw(ir, 50)) == 0).all()


def test_empty_batch():
    ir = random_ir(seed=6)
    assert Engine(ir).scores(np.zeros((0, 4), dtype=np.int64)).shape == (0, 3)


@pytest.mark.parametrize("n_bits", [1, 63, 64, 65, 130])
def test_pack_round_trip(n_bits):
    bits = np.random.default_rng(n_bits).integers(0, 2, size=(5, n_bits)).astype(np.uint8)
    words = pack_bits(bits)
    assert words.dtype == np.uint64 and words.shape == (5, (n_bits + 63) // 64)
    np.testing.assert_array_equal(unpack_bits(words, n_bits), bits)
    q = [int(j) for j in np.flatnonzero(bits[0])]
    assert all((int(words[0, j // 64]) >> (j % 64)) & 1 for j in q)  # bit q in word q//64, position q%64
    assert not unpack_bits(words, 64 * words.shape[1])[:, n_bits:].any()  # zero padding


def test_input_layout_matches_coding():
    """The engine's packed input bits are the IR's input bits, permuted channel-last."""
    ir = random_ir(seed=8, image=(2, 4, 5), lo=0, hi=5, levels=3, conv=((2, 2, 1),), hidden=())
    p = compile_ir(ir)
    X = _raw(ir, 6)
    ref = ir.coding.encode(X).reshape(6, -1)[:, layout(ir.coding.bit_shape)]
    np.testing.assert_array_equal((X[:, p.feat] >= p.thr).astype(np.uint8), ref)
    assert sorted(layout((3, 2, 2))) == list(range(12))
