"""The bit-sliced counting intrinsics against numpy, on both code paths (VPTERNLOGQ and plain logic)."""
from __future__ import annotations

import numpy as np
import pytest
from numba import njit

from bnnlogic.infer import pack_bits, slices, unpack_bits


def test_store_set_bits_lists_set_bits_in_order():
    @njit
    def listed(words, base):
        idx = np.full(64 * len(words) + 1, -1, np.int32)
        m = 0
        for w in range(len(words)):
            slices.store_set_bits(words[w], base + 64 * w, idx, m)
            m += int(np.sum(np.array([(words[w] >> np.uint64(b)) & np.uint64(1) for b in range(64)])))
        return idx, m

    rng = np.random.default_rng(0)
    bits = (rng.random((1, 64 * 5)) < 0.3).astype(np.uint8)
    bits[0, :64] = 0  # an empty word
    bits[0, 64:128] = 1  # a full one
    idx, m = listed(pack_bits(bits)[0], 7)
    np.testing.assert_array_equal(idx[:m], 7 + np.flatnonzero(bits[0]))
    assert (idx[m:] == -1).all()  # nothing written past the set bits


@pytest.mark.parametrize("ternlog", [True, False])
def test_counter_sums_columns_and_carry_out_compares(monkeypatch, ternlog):
    """Planes start at F, add 16-column groups (Harley-Seal + ripple), then fire iff F + C >= T."""
    if not ternlog:
        monkeypatch.setattr(slices, "_has_ternlog", lambda: False)

    @njit
    def run(cols, base, idx, planes, n_planes, addend, out):  # a fresh function: compiled with the patch
        for g in range(0, len(idx), 16):
            slices.add_columns16(cols, base, idx, g, planes, n_planes)
        slices.carry_out(planes, n_planes, addend, out, 8)

    rng = np.random.default_rng(1 + ternlog)
    n_cols, P = 40, 11
    col_bits = rng.integers(0, 2, size=(n_cols, 512)).astype(np.uint8)
    cols = np.concatenate([np.zeros(24, np.uint64), pack_bits(col_bits).ravel()])  # columns from word 24 on
    idx = rng.integers(0, n_cols, size=7 * 16).astype(np.int32)  # repeats allowed: a column may count twice
    start = rng.integers(0, 2 ** P - 7 * 16, size=512)
    planes = pack_bits(((start[None, :] >> np.arange(P)[:, None]) & 1).astype(np.uint8))
    T = 700
    out = np.zeros(24, np.uint64)
    run(cols, 24, idx, planes, P, 2 ** P - T, out)
    total = start + col_bits[idx].astype(np.int64).sum(axis=0)
    got = (unpack_bits(planes, 512).astype(np.int64) << np.arange(P)[:, None]).sum(axis=0)
    np.testing.assert_array_equal(got, total)
    np.testing.assert_array_equal(unpack_bits(out[8:16][None], 512)[0], total >= T)
    assert not out[:8].any() and not out[16:].any()  # writes its 8 words only
