"""The bit-packed inference engine: exact integer scores of an IR, compiled with numba.

``Engine(ir).scores(X)`` equals ``ir.scores(X)`` bit for bit (integer arithmetic throughout):
the input coding is a threshold compare per bit, hidden layers are AND + popcount on 64-bit
words, or -- wide dense layers, where it costs less -- a bit-sliced sum of weight columns over
the input's set bits (see ``packing`` for the layout and the identities, ``kernels`` and
``slices`` for the loops).  Batches
of at least ``PARALLEL_MIN`` rows run in parallel over numba's threads; smaller ones on the
calling thread (no thread hand-off, for latency).  The first call compiles the kernels (cached
on disk by numba afterwards); ``Engine.warm_up()`` does it explicitly and returns the seconds.
"""
from __future__ import annotations

import time

import numba
import numpy as np

from ..ir import IR
from . import kernels
from .packing import Program, compile_ir, pack_bits, unpack_bits

__all__ = ["Engine", "Program", "compile_ir", "pack_bits", "unpack_bits"]

PARALLEL_MIN = 32


class Engine:
    """Runs an IR on raw features (n, d) int64: ``scores`` (n, n_classes) int64, ``predict`` (n,)."""

    def __init__(self, ir: IR, sliced: bool | None = None) -> None:
        """``sliced``: hidden dense layers bit-sliced (True), AND+POPCOUNT (False), or by the
        cost estimate of ``packing.slicing_pays`` (None, the default)."""
        self.ir = ir
        self.program = compile_ir(ir, sliced)

    def scores(self, X: np.ndarray) -> np.ndarray:
        """Exact integer scores, equal to ``ir.scores(X)``."""
        X = np.asarray(X)
        p = self.program
        if X.dtype == np.uint8:  # pixels: compared as bytes against thresholds clipped to 0..256
            X, thr = np.ascontiguousarray(X), p.thr_u8
        else:
            X, thr = np.ascontiguousarray(X, dtype=np.int64), p.thr
        X = X.reshape(len(X), self.ir.coding.n_features)
        out = np.empty((len(X), self.ir.n_classes), dtype=np.int64)
        args = (X, p.feat, thr, p.ident, p.ops, p.pos, p.neg, p.k, out, p.max_words, p.max_col, p.max_acc, p.max_idx,
                p.max_planes, p.max_pos)
        if len(X) >= PARALLEL_MIN and numba.get_num_threads() > 1:
            kernels.run_parallel(*args, min(len(X), 8 * numba.get_num_threads()))
        elif len(X):
            kernels.run_serial(*args)
        return out

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted classes (n,), ties to the lowest class index."""
        return np.argmax(self.scores(X), axis=1)

    def warm_up(self, dtype=np.int64) -> float:
        """Compile (or load from numba's on-disk cache) both kernels for inputs of ``dtype``
        (int64, or uint8 for the byte path); returns the seconds it took.  The first run on a
        machine compiles (tens of seconds); later processes load the cached code (< 1 s)."""
        t0 = time.perf_counter()
        lo = max(self.ir.coding.lo, 0) if np.dtype(dtype) == np.uint8 else self.ir.coding.lo
        x = np.full((PARALLEL_MIN, self.ir.coding.n_features), lo, dtype=dtype)
        self.scores(x[:1])
        self.scores(x)
        return time.perf_counter() - t0
