"""bnnlogic.jit: numba's settings are in force for every compiled loop of the package."""
import os
import subprocess
import sys

import llvmlite.binding as llvm
import pytest

PROBE = ("import bnnlogic; from numba.core.registry import cpu_target; "
         "print(cpu_target.target_context.codegen()._tm_features)")


def _codegen_features(**env: str) -> str:
    """The CPU features of numba's code generator in a fresh interpreter that imports bnnlogic."""
    clean = {k: v for k, v in os.environ.items() if k not in ("NUMBA_CPU_FEATURES", "NUMBA_CPU_NAME")}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True,
                         check=True)
    return out.stdout.strip()


def test_import_sets_512_bit_vectors_before_numba_builds_its_code_generator():
    # numba builds the generator at its first njit decoration (bnnlogic.logic.bounds has one); set
    # later, the features were ignored and every popcount loop ran on 256-bit vectors
    if not llvm.get_host_cpu_features().get("avx512vpopcntdq"):
        pytest.skip("the host has no AVX-512 VPOPCNTQ; numba's defaults are kept")
    assert _codegen_features().split(",")[-1] == "-prefer-256-bit"


def test_the_users_features_win():
    mine = llvm.get_host_cpu_features().flatten()
    assert _codegen_features(NUMBA_CPU_FEATURES=mine) == mine
