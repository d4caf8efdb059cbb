"""The Gray-order cell sweep agrees with brute force (sound and complete) and stops on time."""
import dataclasses
import threading
import time

import numpy as np
import pytest

from bnnlogic.logic import region, sweep as sweep_mod
from bnnlogic.logic.sweep import sweep
from tests.helpers import box_inputs, random_ir
from tests.logic.test_query import NETS

WIDE = dict(n_features=6, hi=6, levels=3, hidden=(7, 6, 5), n_classes=4)  # 4^6 cells, 3 layers


def _bad(ir, classes):
    b = np.zeros(ir.n_classes, dtype=bool)
    b[list(classes)] = True
    return b


D = dict(table=sweep_mod.TABLE, memory=sweep_mod.MEMORY, sparse=0.0, table0=1 << 12, deep=2.0,
         block=sweep_mod.BLOCK, wide=sweep_mod.WIDE, cache=sweep_mod.CACHE_BITS, deep_cells=sweep_mod.DEEP_CELLS,
         deep_first=False)
CONFIGS = [
    dict(D, table=1), dict(D, table=4),  # flushes (blocks of at most 1 and 4 cells); dense products
    dict(D, table=64, table0=2),  # growth 2, 4, ..., 128 slots, new patterns decided at each step, then flushes
    dict(D, sparse=sweep_mod.SPARSE, deep=sweep_mod.DEEP_RATIO),  # the defaults
    # table capped by bytes, one-row decide blocks, sparse products
    dict(D, memory=64, sparse=1.0, deep=0.0, deep_cells=0),
    dict(D, wide=2, cache=0),  # blocks: keys built per cell beyond 2 changing neurons, a 1-slot cache
    dict(D, block=4, cache=1),  # ... blocks of at most 4 cells, a 2-slot cache
    dict(D, table0=2, deep=0.0, block=1, deep_cells=0),  # the deep walk from the second cell on
    dict(D, table0=16, deep=0.0, block=4, deep_cells=0),  # ... after a few blocks
    dict(D, deep=0.0, deep_cells=64),  # ... after 64 cells (boxes of fewer never go deep)
    dict(D, deep_first=True)]  # the deep walk from the first cell


@pytest.mark.parametrize("net", sorted(NETS) + ["wide"])
@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("cfg", CONFIGS, ids=range(len(CONFIGS)))
def test_sweep_matches_brute_force(net, seed, cfg, monkeypatch):
    """Every configuration of the walk decides every box like brute force: the block walk
    alone (``deep`` 2.0: never switches), the deep walk after the first decision (0.0) or from
    the first cell (``deep_first``)."""
    monkeypatch.setattr(sweep_mod, "CHUNK", 3)  # many resumed kernel calls per box
    for name, attr in [("deep", "DEEP_RATIO"), ("table", "TABLE"), ("table0", "TABLE0"), ("memory", "MEMORY"),
                       ("sparse", "SPARSE"), ("block", "BLOCK"), ("wide", "WIDE"), ("cache", "CACHE_BITS"),
                       ("deep_cells", "DEEP_CELLS")]:
        monkeypatch.setattr(sweep_mod, attr, cfg[name])
    monkeypatch.setattr(sweep_mod, "BLOCK_MEMORY", min(cfg["memory"], sweep_mod.BLOCK_MEMORY))
    deep, table0 = cfg["deep"], cfg["table0"]
    ir = random_ir(seed, **(WIDE if net == "wide" else NETS[net]))
    rng = np.random.default_rng(seed)
    x = rng.integers(ir.coding.lo, ir.coding.hi + 1, ir.coding.n_features)
    y = int(ir.predict(x[None])[0])
    for eps in range(min(3, ir.coding.hi) + 1):
        R = region.linf(ir.coding, x, eps)
        pred = ir.predict(box_inputs(R.lo, R.hi))
        layer1 = ir.activations(box_inputs(R.lo, R.hi))[1].reshape(len(pred), -1)
        for bad in ([c for c in range(ir.n_classes) if c != y], [ir.n_classes - 1], [y]):
            stats = {}
            status, w, _ = sweep(ir, R.lo, R.hi, _bad(ir, bad), probe=x, stats=stats, deep_first=cfg["deep_first"])
            assert status == ("sat" if np.isin(pred, bad).any() else "unsat")
            if cfg["deep_first"]:
                assert stats["deep"]
            elif deep > 1:  # the block walk alone: never reported deep
                assert "deep" not in stats
            elif net == "wide" and status == "unsat" and table0 == 2 and len(np.unique(layer1, axis=0)) > 1:
                assert stats["deep"]  # deep from the first decision (the second cell) on
            if w is not None:
                assert R.contains(w[None])[0] and int(ir.predict(w[None])[0]) in bad


def test_the_deep_walk_moves_the_cheapest_digit_fastest():
    """``_deep_order`` is a permutation of the digits, and a feature whose bits feed no
    first-layer neuron (its steps flip nothing) goes first, though it is the last in plan order."""
    ir = random_ir(0, **WIDE)
    first = ir.layers[0]
    A = first.A.copy()
    A[:, np.arange(ir.coding.n_levels) * ir.coding.n_features + ir.coding.n_features - 1] = 0
    ir = dataclasses.replace(ir, layers=(dataclasses.replace(first, A=A), *ir.layers[1:]))
    R = region.domain(ir.coding)
    p = sweep_mod._plan(ir, R.lo, R.hi)
    order = sweep_mod._deep_order(p)
    assert sorted(order) == list(range(len(p.radix))) and order[0] == len(p.radix) - 1


def test_gray_digits_follow_the_walk():
    """``_gray_digits(i)`` is the walk's i-th cell (witnesses are rebuilt from it); one digit
    moves by one per step, and every cell is visited once."""
    radix = np.array([3, 2, 4])
    seen = {tuple(sweep_mod._gray_digits(0, radix))}
    for i in range(1, int(radix.prod())):
        a, b = sweep_mod._gray_digits(i - 1, radix), sweep_mod._gray_digits(i, radix)
        assert np.abs(a - b).sum() == 1 and (b >= 0).all() and (b < radix).all()
        seen.add(tuple(b))
    assert len(seen) == radix.prod()


def test_sweep_reports_unknown_past_deadline_or_on_stop(monkeypatch):
    monkeypatch.setattr(sweep_mod, "CHUNK", 1)
    ir = random_ir(1, **WIDE)
    R = region.domain(ir.coding)
    bad = _bad(ir, [c for c in range(ir.n_classes) if not (ir.predict(box_inputs(R.lo, R.hi)) == c).any()])
    assert bad.any()  # a class nobody reaches: a full sweep would say unsat
    assert sweep(ir, R.lo, R.hi, bad)[0] == "unsat"
    assert sweep(ir, R.lo, R.hi, bad, deadline=time.perf_counter() - 1)[0] == "unknown"
    stop = threading.Event()
    stop.set()
    assert sweep(ir, R.lo, R.hi, bad, stop=stop)[0] == "unknown"
    # deciding a full table gives up too, before each block: the walk's first check passes
    # (clock before the deadline), the first block's fails, so no block is decided
    calls, blocks = [], []
    monkeypatch.setattr(sweep_mod, "TABLE", 2)
    monkeypatch.setattr(sweep_mod, "CHUNK", 1 << 20)  # the walk stops only when the table is full
    monkeypatch.setattr(sweep_mod.time, "perf_counter", lambda: calls.append(1) or (-1.0 if len(calls) == 1 else 1.0))
    monkeypatch.setattr(sweep_mod, "_decide_block", lambda *a: blocks.append(1) or -1)
    assert sweep(ir, R.lo, R.hi, bad, deadline=0.0)[0] == "unknown"
    assert len(calls) == 2 and not blocks


@pytest.mark.parametrize("net", ["thermometer", "conv", "wide"])
def test_cell_inputs_cover_every_cell_once(net):
    """One input per threshold cell, inside the box: the inputs' coding bits are all distinct
    and as many as the box has cells (brute force: the distinct bit patterns of every input)."""
    ir = random_ir(3, **(WIDE if net == "wide" else NETS[net]))
    x = np.full(ir.coding.n_features, (ir.coding.lo + ir.coding.hi) // 2)
    R = region.linf(ir.coding, x, 2)
    X = np.concatenate(list(sweep_mod.cell_inputs(ir.coding.thresholds, R.lo, R.hi, x, batch=7)))
    every = np.unique(ir.coding.encode(box_inputs(R.lo, R.hi)).reshape(-1, ir.coding.n_bits), axis=0)
    mine = np.unique(ir.coding.encode(X).reshape(len(X), -1), axis=0)
    assert R.contains(X).all() and len(mine) == len(X) == len(every)
    assert 2 ** sweep_mod.n_cells(ir.coding.thresholds, R.lo, R.hi)[0] == pytest.approx(len(X))


def test_lowest_bit_names_the_lowest_set_bit():
    rng = np.random.default_rng(0)
    for i in range(64):
        for high in (0, *rng.integers(0, 1 << 62, 3).tolist()):
            w = np.uint64(((high << 1) | 1) << i & (2**64 - 1))
            assert sweep_mod._lowest_bit(w) == i


@pytest.mark.parametrize("n", [0, 1, 7, 64, 65, 130])
def test_unique_rows_keeps_the_first_of_each_distinct_row_in_order(n):
    rng = np.random.default_rng(n)
    V = rng.random((300, n)) < 0.5
    V[150:] = V[rng.integers(0, 150, 150)]  # many repeats
    keep = sweep_mod._unique_rows(V)
    assert np.all(np.diff(keep) > 0)
    first = [r for r in range(len(V)) if not any((V[q] == V[r]).all() for q in range(r))]
    assert keep.tolist() == first
