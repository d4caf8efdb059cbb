"""glibc malloc settings that keep a long verification run's memory bounded.

A query's large temporaries (sweep tables and blocks, bounds, encodings) are freed when it
ends, but glibc does not give all of it back: after a large block is freed its mmap
threshold grows (up to 32 MB), so later blocks of that size come from the heap, and each
racing thread may get its own arena; freed heap memory stays resident.  Over a batch of
conv-small queries at eps 5 a process grew from 262 MB to 930 MB; with the threshold fixed
at 128 KiB and two arenas it stayed at 384 MB, with the same verdicts in the same time.
``bound_heap`` sets both (``mallopt``) in the calling process; it does nothing where the C
library has no ``mallopt`` (not glibc).  The CLI and every batch worker call it.
"""
from __future__ import annotations

import ctypes

M_MMAP_THRESHOLD = -3  # glibc's mallopt parameters (malloc.h)
M_ARENA_MAX = -8
MMAP_THRESHOLD = 128 * 1024  # bytes: blocks this large or larger are mmapped, and unmapped when freed
ARENA_MAX = 2


def bound_heap() -> bool:
    """Fix glibc's mmap threshold and cap its arenas (module docstring); True if applied."""
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(mallopt(M_ARENA_MAX, ARENA_MAX))
