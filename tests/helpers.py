"""Shared test fixtures: random tiny IRs, brute-force enumeration of small raw boxes, and the
modules a fresh interpreter loads."""
from __future__ import annotations

import itertools
import subprocess
import sys
from typing import Sequence

import numpy as np

from bnnlogic.ir import IR, Conv, Dense, InputCoding, MaxPool, Output


def random_coding(rng: np.random.Generator, feature_shape: tuple[int, ...], lo: int, hi: int,
                  levels: int = 1) -> InputCoding:
    """Per-feature strictly increasing thresholds drawn from (lo, hi]."""
    d = int(np.prod(feature_shape))
    thr = np.stack([np.sort(rng.choice(np.arange(lo + 1, hi + 1), size=levels, replace=False)) for _ in range(d)], 1)
    return InputCoding(tuple(feature_shape), lo, hi, thr.astype(np.int64))


def _ternary(rng, shape, p_zero):
    A = rng.choice([-1, 1], size=shape)
    A[rng.random(shape) < p_zero] = 0
    return A.astype(np.int8)


def _thresholds(rng, A, grid: tuple[int, int] = ()):
    """Thresholds spread around the reachable range of sum A_ij u_j, so neurons vary; with
    ``grid`` = (Ho, Wo) one per conv output position, shape (C_out, Ho, Wo)."""
    rows = A.reshape(A.shape[0], -1)
    neg, pos = (rows < 0).sum(1), (rows > 0).sum(1)
    return np.stack([rng.integers(-n, p + 2, size=grid) for n, p in zip(neg, pos)]).astype(np.int64)


def random_ir(seed: int = 0, n_features: int = 4, lo: int = 0, hi: int = 3, levels: int = 1,
              hidden: tuple[int, ...] = (5, 4), n_classes: int = 3, p_zero: float = 0.2,
              image: tuple[int, int, int] | None = None, conv: tuple[tuple[int, ...], ...] = (),
              pool: int = 0, position_k: bool = False) -> IR:
    """A random valid IR.

    Dense-only by default (``n_features`` flat features in [lo, hi]).  With ``image=(C, H, W)``
    the features are an image; ``conv`` lists (out_channels, kernel, stride[, padding]) conv
    layers (zero padding, as the IR defines it), and ``pool`` > 0 adds a max-pool of that size
    after the first conv.  ``position_k``: conv thresholds per output position (C_out, Ho, Wo).
    """
    rng = np.random.default_rng(seed)
    coding = random_coding(rng, image or (n_features,), lo, hi, levels)
    shape = coding.bit_shape
    layers = []
    for i, (c_out, k, s, *pad) in enumerate(conv):
        A = _ternary(rng, (c_out, shape[0], k, k), p_zero)
        p = pad[0] if pad else 0
        grid = Conv(A, np.zeros(c_out, np.int64), s, p).out_shape(shape)[1:] if position_k else ()
        layers.append(Conv(A, _thresholds(rng, A, grid), s, p))
        shape = layers[-1].out_shape(shape)
        if i == 0 and pool:
            layers.append(MaxPool(pool, pool))
            shape = layers[-1].out_shape(shape)
    for h in hidden:
        A = _ternary(rng, (h, int(np.prod(shape))), p_zero)
        layers.append(Dense(A, _thresholds(rng, A)))
        shape = (h,)
    A = _ternary(rng, (n_classes, int(np.prod(shape))), p_zero)
    offset = rng.integers(-3, 4, size=n_classes).astype(np.int64)
    ir = IR(coding, tuple(layers), Output(A, int(rng.choice([1, 2, 4])), offset))
    ir.validate()
    return ir


def box_inputs(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Every integer point of the box [lower, upper] (inclusive), shape (n_points, d)."""
    ranges = [range(int(a), int(b) + 1) for a, b in zip(lower, upper)]
    return np.array(list(itertools.product(*ranges)), dtype=np.int64).reshape(-1, len(ranges))


def run_killed(cmd: list[str], kills: int, seed: int = 0, delay: tuple[float, float] = (0.5, 3.0),
               env: dict | None = None, timeout: float = 300, watch=None) -> int:
    """Start ``cmd`` (any resumable batch command), SIGKILL it after a random delay, ``kills``
    times (each start resumes the last), then let it finish; returns how many kills hit a
    running process.  With ``watch`` (the command's output file) the delay counts from the
    first line the run adds to it, so that each kill lands mid-batch however fast the batch
    is.  The caller compares the output with an uninterrupted run's."""
    import os
    import signal
    import subprocess
    import time
    from pathlib import Path

    def lines() -> int:
        return Path(watch).read_bytes().count(b"\n") if Path(watch).exists() else 0

    rng = np.random.default_rng(seed)
    hit = 0
    env = {**os.environ, **(env or {})}
    for _ in range(kills):
        start = lines() if watch is not None else 0
        p = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env)
        while watch is not None and p.poll() is None and lines() <= start:
            time.sleep(0.01)
        time.sleep(rng.uniform(*delay))
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
            hit += 1
        p.wait()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, check=True, timeout=timeout)
    return hit


def result_lines(path) -> list[dict]:
    """Every line of a results file parsed (a torn or duplicated line fails the caller's test)."""
    import json

    return [json.loads(line) for line in open(path).read().splitlines()]


def flipped_copies(path, out):
    """For every byte of file ``path``: ``out`` rewritten as ``path`` with that byte flipped
    (xor 0x5A); yields the byte's position after each rewrite (bit rot, one byte at a time)."""
    from pathlib import Path

    raw = Path(path).read_bytes()
    for pos in range(len(raw)):
        bad = bytearray(raw)
        bad[pos] ^= 0x5A
        Path(out).write_bytes(bytes(bad))
        yield pos


def loaded_modules(imports: str, modules: Sequence[str]) -> list[str]:
    """Which of ``modules`` a fresh interpreter has loaded after running ``imports`` (Python code)."""
    code = f"import sys\n{imports}\nprint(' '.join(m for m in {list(modules)!r} if m in sys.modules))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def blas_threads() -> list[int]:
    """The thread count of every BLAS library loaded in this process (threadpoolctl)."""
    from threadpoolctl import threadpool_info

    return [i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"]
