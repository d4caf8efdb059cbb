"""Branch and bound over input thresholds: a complete decision procedure for one network.

Question: does some raw input of the box R get a prediction in ``bad``?  A node is a sub-box
of R.  For a batch of nodes at once:

    1. the node's probe point (R's center clipped into the node) is run concretely: a bad
       prediction is a witness (the caller replays it);
    2. interval bounds (``bounds.propagate``) on the last hidden layer bound every score
       difference: node is safe when for every c in bad, d = the probe's class,
       ``max_u sum_j (A_c - A_d)_j u_j < ceil((off_d - off_c + [c > d]) / scale)``, i.e.
       c can never be preferred to d inside the node (exact integers);
    3. otherwise the node splits one feature's interval at a coding threshold inside it.

Leaves have no threshold inside any feature's interval, so every bit is fixed, the bounds are
exact, and the probe decides the leaf: the search is sound and complete (tests compare it
with brute force).  Near the bottom, splitting costs more than looking: a node with at most
``enum_cells`` threshold cells is decided by ``sweep.sweep``, which visits every cell with
incremental, deduplicated inference, several nodes at once on threads.
Features are split in order of their weight into the free first-layer neurons; the nodes of a
batch, and so the leaves swept, go in the order of how close a bad class comes to their probe.
It suits plain (not verification-friendly) networks at small eps, where a CDCL solver
branching on hidden neurons struggles although few input bits are free.  On those the bounds
prune almost nothing, so its time is the box's cells at the sweep's price per cell and
thread: 2-36 ns behind a dense first layer (fashion mlp-small: 2^34 cells in 35-44 s on two
threads), 170-200 ns on conv-small's leaves, where nearly every cell shows a new first-layer
pattern (``sweep``'s deep walk).
"""
from __future__ import annotations

import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from typing import Sequence

import numpy as np

from ..blas import one_blas_thread
from ..ir import IR, Conv, Dense, free_thresholds, in_classes
from .bounds import Bounds, propagate
from .encoding import _gather
from .region import Region
from .sweep import n_cells, sweep


#: bytes of one (batch, features) int64 array of boxes: a batch's working copies (bounds, probes,
#: kids) are a few of them; measured on plain Fashion nets (784 features), 2048-box batches
#: peaked at 654 MB where 256-512 peaked at 537-555 MB, with equal or shorter times
BATCH_BYTES = 1 << 21


class Either:
    """Reads as set when any of its events (None entries ignored) is set (``sweep`` polls it)."""

    def __init__(self, *events: threading.Event | None) -> None:
        self.events = [e for e in events if e is not None]

    def is_set(self) -> bool:
        return any(e.is_set() for e in self.events)


class Progress:
    """How far ``bab`` has come on a box R, shared across resumed calls: ``share`` of R's
    threshold cells decided (a node's cells count once it is pruned by its bounds or swept;
    R has 2^log_cells of them) over ``elapsed()`` seconds of search.  At the pace kept since
    an earlier ``mark()`` (elapsed e0, share s0), the search ends after ``remaining(mark)``
    more seconds, ``(elapsed - e0) * (1 - share) / (share - s0)``: a racing portfolio uses it to
    decide whether to let it run.  Written by the search's own thread, read by any."""

    def __init__(self, log_cells: float) -> None:
        self.log_cells, self.share = log_cells, 0.0
        self._busy, self._since = 0.0, None  # seconds of ended calls; start of the running one

    def add(self, log_cells: np.ndarray) -> None:
        """Nodes of 2^log_cells cells each are decided."""
        self.share += float(np.exp2(np.asarray(log_cells, dtype=float) - self.log_cells).sum())

    def elapsed(self) -> float:
        since = self._since
        return self._busy + (0.0 if since is None else time.perf_counter() - since)

    def mark(self) -> tuple[float, float]:
        """(elapsed, share) now: the start of a pace for ``remaining``."""
        return self.elapsed(), self.share

    def remaining(self, mark: tuple[float, float] = (0.0, 0.0)) -> float:
        """Seconds to the end at the pace since ``mark`` (default: the start); inf if nothing
        was decided since."""
        (e0, s0), elapsed, share = mark, self.elapsed(), min(self.share, 1.0)
        if share >= 1.0:
            return 0.0
        return float("inf") if share <= s0 or elapsed <= e0 else (elapsed - e0) * (1 - share) / (share - s0)

    def start(self) -> None:
        self._since = time.perf_counter()

    def pause(self) -> None:
        self._busy, self._since = self.elapsed(), None


def _influence(ir: IR, bounds: Bounds) -> np.ndarray:
    """Per raw feature: total |weight| of its input bits into first-layer neurons free on the
    box whose bit bounds are ``bounds``."""
    c, first = ir.coding, ir.layers[0] if ir.layers else None
    infl_bits = np.zeros(c.n_bits)
    if isinstance(first, (Dense, Conv)):
        lo, hi = bounds[1]
        free = (lo != hi).reshape(-1)
        if isinstance(first, Dense):
            infl_bits = np.abs(first.A[free]).sum(axis=0).astype(float)
        else:
            G = _gather(first, c.bit_shape)
            o, p = np.divmod(np.nonzero(free)[0], G.shape[0])
            W = np.abs(first.A.reshape(len(first.A), -1))[o]
            infl_pad = np.zeros(c.n_bits + 1)  # the last entry collects the padding's weights
            np.add.at(infl_pad, G[p].reshape(-1), W.reshape(-1))
            infl_bits = infl_pad[:-1]
    return infl_bits.reshape(c.n_levels, c.n_features).sum(axis=0) + 1e-9


def safe_nodes(ir: IR, lo: np.ndarray, hi: np.ndarray, ref: np.ndarray, bad: np.ndarray,
               chunk: int = 256, ties: str = "low") -> np.ndarray:
    """Nodes (n,) where no class in ``bad`` can be preferred to the node's probe class ``ref``:
    for every c in bad, ``max_u sum_j (A_c - A_ref)_j u_j < beat_bound(c, ref, ties)`` over the
    bit box [lo, hi] of the last hidden layer; all classes at once, ``chunk`` nodes at a time.
    (``adversarial``: no bad class ever reaches ref's score, so none is ever maximal.)"""
    out = ir.output
    A, cs = out.A.astype(np.int64), np.nonzero(bad)[0]
    A_bad = A[cs][None]  # (1, |bad|, m)
    lo, hi = lo.reshape(len(lo), -1).astype(np.int64), hi.reshape(len(hi), -1).astype(np.int64)
    safe = np.ones(len(lo), dtype=bool)
    for s in range(0, len(lo), chunk):
        r = ref[s:s + chunk]
        D = A_bad - A[r][:, None]  # (n, |bad|, m)
        smax = np.where(D > 0, D * hi[s:s + chunk, None], D * lo[s:s + chunk, None]).sum(axis=2)
        safe[s:s + chunk] = (smax < out.beat_bound(cs[None], r[:, None], ties)).all(axis=1)
    return safe


def split_rank(ir: IR, bounds: Bounds) -> np.ndarray:
    """Per raw feature, its split priority (0 first): features by decreasing ``_influence``."""
    order = np.argsort(-_influence(ir, bounds))
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    return rank


def _halve(LO: np.ndarray, HI: np.ndarray, thr: np.ndarray, rank: np.ndarray,
           within: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Split each box (n, d) of [LO, HI] in two on its highest-priority feature f with a
    (sorted) threshold inside, at the median such threshold t: ``x_f < t`` and ``x_f >= t``.
    Every box must have one (``within``: ``free_thresholds`` of the boxes, if computed).
    Returns the 2n boxes, lower halves first."""
    if within is None:
        within = free_thresholds(thr[:, None, :], LO, HI)  # (M, n, d)
    inside = within.any(axis=0)  # (n, d)
    f = np.argmin(np.where(inside, rank[None], len(rank)), axis=1)  # (n,)
    n = np.arange(len(LO))
    ts = np.where(free_thresholds(thr[:, f], LO[n, f], HI[n, f]), thr[:, f], np.iinfo(np.int64).max)
    cnt = (ts != np.iinfo(np.int64).max).sum(axis=0)
    t_split = np.sort(ts, axis=0)[(cnt - 1) // 2, n]  # median threshold inside the interval
    LO, HI = LO.copy(), HI.copy()
    LO2, HI2 = LO.copy(), HI.copy()
    HI[n, f] = t_split - 1  # x_f < t
    LO2[n, f] = t_split  # x_f >= t
    return np.concatenate([LO, LO2]), np.concatenate([HI, HI2])


def split_box(ir: IR, R: Region, n_parts: int, bounds: Bounds | None = None) -> list[Region]:
    """A partition of the box R into ``n_parts`` sub-boxes (fewer if R has fewer threshold
    cells) by branch and bound's own rule: the part with the most threshold cells is halved
    (``_halve``: its highest-priority feature at its median threshold inside) until there are
    ``n_parts``.  Every raw input of R lies in exactly one part; R is robust iff every part
    is, so the parts can be decided separately (``bnnlogic.split``).  Each part is a box
    region centred on R's center clipped into it; ``bounds``: R's own, if computed."""
    if R.l0 is not None:
        raise ValueError("split_box handles boxes only")
    thr = np.sort(ir.coding.thresholds, axis=0)
    rank = split_rank(ir, propagate(ir, R.lo, R.hi) if bounds is None else bounds)
    parts = [(R.lo.copy(), R.hi.copy())]
    while len(parts) < n_parts:
        LO, HI = np.array([p[0] for p in parts]), np.array([p[1] for p in parts])
        log_cells = np.log2(free_thresholds(thr[:, None, :], LO, HI).sum(axis=0) + 1).sum(axis=1)
        i = int(np.argmax(log_cells))
        if log_cells[i] == 0:  # every part is a single cell
            break
        lo2, hi2 = _halve(LO[i:i + 1], HI[i:i + 1], thr, rank)
        parts[i:i + 1] = [(lo2[0], hi2[0]), (lo2[1], hi2[1])]
    center = R.center if R.center is not None else R.lo
    return [Region(lo, hi, np.clip(center, lo, hi), None, "box", R.eps) for lo, hi in parts]


def conv_first(ir: IR) -> bool:
    """Whether the first hidden layer is a convolution (the sweep's cost per cell and its leaf
    size depend on it; a net without hidden layers counts as dense)."""
    return bool(ir.layers) and isinstance(ir.layers[0], Conv)


def leaf_cells(ir: IR) -> int:
    """Threshold cells of the largest node ``bab`` sweeps rather than splits.  A dense first
    layer: 2^24 (the sweep deduplicates layer-1 patterns within a leaf, and smaller leaves
    decide the patterns they share again: fashion mlp-small image 11 at eps 5, 2^28 cells on
    2 threads, 7.3 s with 2^20-cell leaves, 4.9 s with 2^24).  A convolution: 2^20 (a leaf's
    own bounds fix more of its many neurons: conv-small image 18 at eps 3, 15.0 s with 2^20,
    21.5 s with 2^24)."""
    return 1 << 20 if conv_first(ir) else 1 << 24


def bab(engine, ir: IR, R: Region, bad_classes: Sequence[int], timeout: float | None = None,
        max_nodes: int = 2_000_000, batch: int | None = None,
        enum_cells: int | None = None, threads: int | None = None,
        bounds: Bounds | None = None, ties: str = "low", stop: threading.Event | Either | None = None,
        parts: Sequence[tuple[np.ndarray, np.ndarray]] | None = None,
        left: list[tuple[np.ndarray, np.ndarray]] | None = None,
        progress: Progress | None = None) -> tuple[str, np.ndarray | None, int]:
    """``("unsat" | "sat" | "unknown", witness or None, nodes + cells explored)``; L0 regions
    unsupported; ``max_nodes`` bounds the nodes (not the swept cells); ``bounds`` are R's own
    (``propagate(ir, R.lo, R.hi)``) if the caller has them; ``parts``: sub-boxes (lo, hi) of R,
    the only inputs searched (default: R; the caller knows the rest of R is good); ``ties``:
    whether a tie with a bad class counts as bad (``ir.in_classes``); ``stop``: gives up
    ("unknown") soon after it is set (a racing portfolio's cancel); ``left``: on "unknown",
    filled with the sub-boxes (lo, hi) not yet decided, whose union holds every bad input of
    ``parts`` (passed back as ``parts``, a later call resumes the search).

    A node with at most ``enum_cells`` threshold cells (default ``leaf_cells(ir)``) is not
    split further: ``sweep`` visits every cell, which decides it exactly (each cell counts as a
    node); ``threads`` such leaves are swept at once (default: the CPU count).  Nodes are handled ``batch`` at a
    time (default: as many as fit one ``BATCH_BYTES`` int64 array of boxes, at most 2048): a
    depth-first search holds about one waiting batch per level."""
    if R.l0 is not None:
        raise ValueError("bab handles boxes only")
    t0 = time.perf_counter()
    enum_cells = leaf_cells(ir) if enum_cells is None else enum_cells
    bad = np.zeros(ir.n_classes, dtype=bool)
    bad[list(bad_classes)] = True
    thr = np.sort(ir.coding.thresholds, axis=0)  # (M, d)
    if bounds is None:
        bounds = propagate(ir, R.lo, R.hi)
    rank = split_rank(ir, bounds)
    center = R.center if R.center is not None else R.lo
    batch = batch or min(2048, max(64, BATCH_BYTES // (8 * len(R.lo))))
    # waiting boxes keep the smallest integer dtype of the domain (uint8 pixels: 8x less than
    # int64; a deep search holds ~depth batches); a popped batch works in int64
    compact = np.promote_types(np.min_scalar_type(ir.coding.lo), np.min_scalar_type(ir.coding.hi))
    parts = [(R.lo, R.hi)] if parts is None else parts
    # in batches; the last part is popped first (``left`` lists the deepest, most recent boxes last)
    stack = [(np.array([lo for lo, _ in parts[s:s + batch]], dtype=compact),
              np.array([hi for _, hi in parts[s:s + batch]], dtype=compact)) for s in range(0, len(parts), batch)]
    nodes = cells = 0
    deadline = None if timeout is None else t0 + timeout
    done = threading.Event()  # tells running sweeps to give up once the answer is known
    halt = Either(done, stop)
    pool: ThreadPoolExecutor | None = None  # started when two leaves are swept at once
    # ... and then BLAS is held to one thread: the sweeps' threads are the parallelism, BLAS
    # threads beside them only contend (a 2-core backend="bab" query of conv-small: 26 s -> 15 s)
    blas = ExitStack()
    if progress is not None:
        progress.start()

    deep: dict = {}  # "deep" once a leaf's sweep went through every layer: the later ones start so

    def sweep_leaves(LO: np.ndarray, HI: np.ndarray, probe: np.ndarray):
        """``sweep`` of every node given, on threads when there are several."""
        nonlocal pool
        run = lambda i: sweep(ir, LO[i], HI[i], bad, probe[i], deadline, halt, ties, deep, "deep" in deep)  # noqa: E731
        if len(LO) <= 1:
            return map(run, range(len(LO)))
        if pool is None:
            blas.enter_context(one_blas_thread())
            pool = ThreadPoolExecutor(threads or os.cpu_count() or 1)
        return pool.map(run, range(len(LO)))

    def give_up(*undecided: tuple[np.ndarray, np.ndarray]):
        if left is not None:
            left.extend((lo, hi) for LO, HI in [*stack, *undecided] for lo, hi in zip(LO, HI))
        return "unknown", None, nodes + cells

    try:
        while stack:
            if (timeout is not None and time.perf_counter() - t0 > timeout) or nodes > max_nodes or halt.is_set():
                return give_up()
            LO, HI = (a.astype(np.int64) for a in stack.pop())
            nodes += len(LO)
            probe = np.clip(center[None], LO, HI)
            scores = engine.scores(probe)
            hit = np.nonzero(in_classes(scores, bad, ties))[0]
            if len(hit):
                return "sat", probe[hit[0]], nodes + cells
            pred = np.argmax(scores, axis=1)  # a good class (with ``adversarial``, every maximal one is)
            first = nodes == 1 and np.array_equal(LO[0], R.lo) and np.array_equal(HI[0], R.hi)
            blo, bhi = bounds[-1] if first else propagate(ir, LO, HI)[-1]  # R's own bounds
            keep = ~safe_nodes(ir, blo, bhi, pred, bad, ties=ties)
            if progress is not None and not keep.all():
                progress.add(n_cells(thr, LO[~keep], HI[~keep]))
            LO, HI, probe, S = LO[keep], HI[keep], probe[keep], scores[keep]
            if not len(LO):
                continue
            # the nodes whose probe a bad class comes closest to first (leaves are swept in this order)
            lead = S[np.arange(len(S)), pred[keep]] - S[:, bad].max(axis=1)
            order = np.argsort(lead, kind="stable")
            LO, HI, probe = LO[order], HI[order], probe[order]
            within = free_thresholds(thr[:, None, :], LO, HI)  # (M, n, d)
            log_cells = np.log2(within.sum(axis=0) + 1).sum(axis=1)  # (n,)
            if (log_cells == 0).any():  # a leaf that is not safe: its probe would have been bad
                raise RuntimeError("bab: an unsafe leaf with a good probe (bounds are exact at leaves); bug")
            small = log_cells <= np.log2(max(enum_cells, 1))
            leaves = np.nonzero(small)[0]
            for j, (st, w, n) in enumerate(sweep_leaves(LO[leaves], HI[leaves], probe[leaves])):
                cells += n
                if st == "unknown":  # this leaf and the next ones may be unswept, the big nodes unsplit
                    rest = np.concatenate([leaves[j:], np.nonzero(~small)[0]])
                    return give_up((LO[rest], HI[rest]))
                if st != "unsat":
                    return st, w, nodes + cells
                if progress is not None:
                    progress.add(log_cells[leaves[j]])
            LO, HI, within = LO[~small], HI[~small], within[:, ~small]
            if not len(LO):
                continue
            kids_lo, kids_hi = _halve(LO, HI, thr, rank, within)
            for s in range(0, len(kids_lo), batch):
                stack.append((kids_lo[s:s + batch].astype(compact), kids_hi[s:s + batch].astype(compact)))
        return "unsat", None, nodes + cells
    finally:
        done.set()
        if progress is not None:
            progress.pause()
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
        blas.close()
