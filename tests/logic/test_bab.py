"""Branch and bound over input thresholds agrees with brute force (sound and complete)."""
import threading

import numpy as np
import pytest

from bnnlogic import Model
from bnnlogic.logic import region
from bnnlogic.logic.bab import Progress, bab, split_box
from bnnlogic.logic.sweep import n_cells
from tests.helpers import blas_threads, box_inputs, random_ir
from tests.logic.test_query import NETS


@pytest.mark.parametrize("net", sorted(NETS))
@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("enum_cells", [1, 6, 4096])  # split to single cells / mixed / enumerate at once
def test_bab_matches_brute_force(net, seed, enum_cells):
    ir = random_ir(seed, **NETS[net])
    m = Model(ir)
    rng = np.random.default_rng(seed)
    x = rng.integers(ir.coding.lo, ir.coding.hi + 1, ir.coding.n_features)
    y = int(ir.predict(x[None])[0])
    for eps in range(min(2, ir.coding.hi) + 1):
        R = region.linf(ir.coding, x, eps)
        for bad in ([c for c in range(ir.n_classes) if c != y], [ir.n_classes - 1]):
            truth = bool(np.isin(ir.predict(box_inputs(R.lo, R.hi)), bad).any())
            status, w, _ = bab(m.engine, ir, R, bad, enum_cells=enum_cells)
            assert status == ("sat" if truth else "unsat")
            if w is not None:
                assert R.contains(w[None])[0] and int(ir.predict(w[None])[0]) in bad


@pytest.mark.parametrize("net", sorted(NETS))
@pytest.mark.parametrize("seed", range(5))
def test_bab_searches_only_the_parts_given(net, seed):
    """With ``parts`` (sub-boxes of R), the answer is brute force's over those parts alone:
    the first half of R's split, the second, both."""
    ir = random_ir(seed, **NETS[net])
    m = Model(ir)
    x = np.random.default_rng(seed).integers(ir.coding.lo, ir.coding.hi + 1, ir.coding.n_features)
    R = region.linf(ir.coding, x, min(2, ir.coding.hi))
    halves = [(P.lo, P.hi) for P in split_box(ir, R, 2)]
    for bad in ([c for c in range(ir.n_classes) if c != int(ir.predict(x[None])[0])], [ir.n_classes - 1]):
        for parts in ([halves[0]], [halves[-1]], halves):
            X = np.concatenate([box_inputs(lo, hi) for lo, hi in parts])
            truth = bool(np.isin(ir.predict(X), bad).any())
            status, w, _ = bab(m.engine, ir, R, bad, enum_cells=6, parts=parts)
            assert status == ("sat" if truth else "unsat")
            if w is not None:
                assert any(np.all((lo <= w) & (w <= hi)) for lo, hi in parts) and int(ir.predict(w[None])[0]) in bad


def test_bab_gives_up_on_budget():
    """A query that needs splitting reports unknown when the node budget is exhausted."""
    for seed in range(50):
        ir = random_ir(seed, n_features=4, hi=5, levels=2, hidden=(8, 6))
        m, R = Model(ir), region.domain(ir.coding)
        bad = [ir.n_classes - 1]
        status, _, nodes = bab(m.engine, ir, R, bad, enum_cells=1)
        if status == "unsat" and nodes > 1:
            assert bab(m.engine, ir, R, bad, max_nodes=0, enum_cells=1)[0] == "unknown"
            return
    pytest.fail("no seed needed splitting")


@pytest.mark.parametrize("net", sorted(NETS))
@pytest.mark.parametrize("seed", range(4))
def test_bab_resumes_from_the_boxes_it_left(net, seed, monkeypatch):
    """Given up ("unknown") by its node budget, or by a sweep cut off at the deadline, branch
    and bound fills ``left`` with boxes holding every bad input it has not ruled out; searching
    them (``parts``), budget after budget, reaches brute force's answer."""
    import bnnlogic.logic.bab as bab_module

    ir = random_ir(seed, **NETS[net])
    m = Model(ir)
    x = np.random.default_rng(seed).integers(ir.coding.lo, ir.coding.hi + 1, ir.coding.n_features)
    R = region.linf(ir.coding, x, min(2, ir.coding.hi))
    sweep, calls = bab_module.sweep, []

    def cut_off_every_third(*args, **kw):  # a sweep interrupted at the deadline
        calls.append(1)
        return ("unknown", None, 0) if len(calls) % 3 == 0 else sweep(*args, **kw)

    monkeypatch.setattr(bab_module, "sweep", cut_off_every_third)
    X = box_inputs(R.lo, R.hi)
    for bad in ([c for c in range(ir.n_classes) if c != int(ir.predict(x[None])[0])], [ir.n_classes - 1]):
        truth = bool(np.isin(ir.predict(X), bad).any())
        parts, status, gave_up = None, "unknown", 0
        while status == "unknown":
            left = []
            status, w, _ = bab(m.engine, ir, R, bad, max_nodes=2, enum_cells=6, parts=parts, left=left)
            if status == "unknown":
                gave_up += 1
                inside = np.zeros(len(X), dtype=bool)
                for lo, hi in left:
                    inside |= np.all((lo <= X) & (X <= hi), axis=1)
                assert inside[np.isin(ir.predict(X), bad)].all()  # no bad input is lost
                parts = left
            assert gave_up < 10_000
        assert status == ("sat" if truth else "unsat")
        if w is not None:
            assert R.contains(w[None])[0] and int(ir.predict(w[None])[0]) in bad


@pytest.mark.parametrize("net", sorted(NETS))
@pytest.mark.parametrize("seed", range(4))
def test_bab_progress_counts_each_cell_once_across_resumed_calls(net, seed):
    """``Progress.share``: the pruned and swept nodes' cells over R's; a robust box searched
    to the end, budget after budget, is decided once in whole (share 1, nothing remaining);
    before that the share stays below 1 and the projection is finite once anything is decided."""
    ir = random_ir(seed, **NETS[net])
    m = Model(ir)
    x = np.random.default_rng(seed).integers(ir.coding.lo, ir.coding.hi + 1, ir.coding.n_features)
    for eps in range(min(2, ir.coding.hi), -1, -1):  # the widest box some class never reaches
        R = region.linf(ir.coding, x, eps)
        reached = np.unique(ir.predict(box_inputs(R.lo, R.hi)))
        bad = [c for c in range(ir.n_classes) if c not in reached]
        if bad:
            break
    progress, parts, status, calls = Progress(n_cells(ir.coding.thresholds, R.lo, R.hi)[0]), None, "unknown", 0
    while status == "unknown":
        left = []
        status, _, _ = bab(m.engine, ir, R, bad, max_nodes=2, enum_cells=6, parts=parts, left=left, progress=progress)
        calls += 1
        if status == "unknown":
            assert progress.share < 1 - 1e-9
            assert progress.share == 0 or progress.remaining() < float("inf")
            parts = left
    assert status == "unsat" and abs(progress.share - 1) < 1e-9
    assert progress.remaining() == 0 and progress.elapsed() > 0


def test_bab_holds_blas_to_one_thread_while_it_sweeps_on_threads(monkeypatch):
    """Branch and bound's sweep threads are its parallelism: a BLAS pool beside them only
    contends (a 2-core backend="bab" query of conv-small: 26 s with BLAS on 2 threads, 15 s on
    one), so leaves swept on its threads run with BLAS on one thread, and the setting is
    restored after."""
    from threadpoolctl import threadpool_limits

    import bnnlogic.logic.bab as bab_module

    seen = []

    def look(*args, **kw):
        if threading.current_thread() is not threading.main_thread():
            seen.append(max(blas_threads()))
        return "unsat", None, 1

    monkeypatch.setattr(bab_module, "sweep", look)
    with threadpool_limits(2, user_api="blas"):
        assert set(blas_threads()) == {2}
        for seed in range(20):  # until leaves are swept on threads (neither their probes nor bounds decide)
            ir = random_ir(seed, **NETS[sorted(NETS)[0]])
            x = np.random.default_rng(seed).integers(ir.coding.lo, ir.coding.hi + 1, ir.coding.n_features)
            y = int(ir.predict(x[None])[0])
            R = region.linf(ir.coding, x, ir.coding.hi)
            bab(Model(ir).engine, ir, R, [c for c in range(ir.n_classes) if c != y], enum_cells=4, threads=2)
            if seen:
                break
        assert seen and set(seen) == {1}
        assert set(blas_threads()) == {2}  # restored (the search may have loaded another BLAS library meanwhile)


@pytest.mark.parametrize("seed", range(6))
def test_split_box_partitions_the_box(seed):
    """Every raw input of R lies in exactly one part; there are n_parts parts unless R has
    fewer threshold cells (then one part per cell), each centred inside itself."""
    ir = random_ir(seed, n_features=4, hi=5, levels=2, hidden=(6,))
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 6, 4)
    R = region.linf(ir.coding, x, 2)
    X = box_inputs(R.lo, R.hi)
    cells = int(round(2 ** n_cells(ir.coding.thresholds, R.lo, R.hi)[0]))
    for k in (1, 2, 3, 5, 8, 1000):
        parts = split_box(ir, R, k)
        assert len(parts) == min(k, cells)
        inside = np.array([P.contains(X) for P in parts])  # (parts, points)
        assert (inside.sum(axis=0) == 1).all()
        assert all(P.contains(P.center[None])[0] and R.contains(P.lo[None])[0] for P in parts)
