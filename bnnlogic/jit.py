"""Process-wide numba settings the compiled loops' speed depends on (the inference engine,
interval bounds, cell sweeps); ``bnnlogic/__init__`` applies them before any module defines one.

* 512-bit vectors.  LLVM's tuning for recent Xeons prefers 256-bit vectors; on a CPU with
  AVX-512 VPOPCNTQ the popcount loops run ~1.3x faster on 512-bit ones (benchmarks/infer.py),
  so bnnlogic asks numba for the host's features minus ``prefer-256-bit``.
* Sleeping OpenMP workers.  With libgomp's default (spinning) wait policy a parallel launch
  cost ~8 ms on the 2-vCPU machine the README's numbers come from; ``passive`` makes it ~10 µs.

Both only fill in settings the user has not made: an explicit ``NUMBA_CPU_FEATURES`` or
``OMP_WAIT_POLICY`` in the environment wins.  Numba reads them when it builds its code
generator, which its first ``njit`` decoration builds (``bnnlogic.logic.bounds`` has one), so
they are applied when ``bnnlogic`` is imported, before any submodule; a program that used numba
before importing bnnlogic keeps numba's defaults (correct, slower).
"""
from __future__ import annotations

import os
import sys


def apply() -> None:
    """Set ``NUMBA_CPU_FEATURES`` (host features, 512-bit preferred) and ``OMP_WAIT_POLICY=passive``
    if unset.  Numba is not imported here (a process that never compiles a loop does not load
    it); if it already is, its configuration is reloaded."""
    os.environ.setdefault("OMP_WAIT_POLICY", "passive")
    if "NUMBA_CPU_FEATURES" not in os.environ and "NUMBA_CPU_NAME" not in os.environ:
        import llvmlite.binding as llvm

        features = llvm.get_host_cpu_features()
        if features.get("avx512vpopcntdq"):
            os.environ["NUMBA_CPU_FEATURES"] = features.flatten() + ",-prefer-256-bit"
    if "numba.core.config" in sys.modules:
        sys.modules["numba.core.config"].reload_config()
