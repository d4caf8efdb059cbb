"""Memory budget: refuse a CNF that would not fit in memory before it is built.

A bounds-first encoding holds each neuron as one cardinality constraint; the clauses come
when a CNF backend (or the DIMACS writer, or a certificate's reference CNF) expands them.
The expansion of ``sum(lits) >= b`` over n literals, b' = min(b, n - b), takes about (per
direction; a reified neuron has two):

    seqcounter                      2 n b'         sortnetwrk, cardnetwrk   n log2(n)^2
    totalizer                       0.55 n^2       mtotalizer, kmtotalizer  0.5 n log2(n)^2

(measured on PySAT's encoders, within a factor 2; n clauses when b' <= 1).  At
``BYTES_PER_CLAUSE`` (Python lists on the way plus the solver's copy; the naive CNF of a
784-200-100-100-100-10 net, 6M clauses, took 1.1 GB) the estimate is compared with the memory
available (``MemAvailable``, or the ``BNNLOGIC_MAX_MEMORY`` environment variable in bytes),
and a query above ``FRACTION`` of it is refused with a ``UserError``.
"""
from __future__ import annotations

import math
import os

from ..errors import UserError
from .formula import Formula

BYTES_PER_CLAUSE = 200
FRACTION = 0.6


def card_clauses(n: int, bound: int, encoding: str, both: bool = True) -> float:
    """Estimated clauses of ``sum of n literals >= bound`` (both directions if ``both``)."""
    b = min(bound, n - bound)
    if b <= 1:
        per = n
    elif encoding == "seqcounter":
        per = 2 * n * b
    elif encoding == "totalizer":
        per = 0.55 * n * n
    else:
        per = n * math.log2(n) ** 2 * (0.5 if encoding.endswith("mtotalizer") else 1.0)
    return per * (2 if both else 1)


def cnf_clauses(formula: Formula, encoding: str) -> int:
    """Estimated clauses of ``formula`` expanded with cardinality ``encoding``."""
    return len(formula.clauses) + int(sum(card_clauses(len(c.lits), c.bound, encoding, c.head is not None and c.both)
                                          for c in formula.cards))


def available_bytes() -> int:
    """``BNNLOGIC_MAX_MEMORY`` (bytes) if set, else the kernel's MemAvailable."""
    if os.environ.get("BNNLOGIC_MAX_MEMORY"):
        return int(os.environ["BNNLOGIC_MAX_MEMORY"])
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")


def fits(clauses: int) -> bool:
    return clauses * BYTES_PER_CLAUSE <= FRACTION * available_bytes()


def check_fits(formula: Formula, encoding: str, what: str = "this query's CNF") -> None:
    """Raise ``UserError`` if expanding ``formula`` with ``encoding`` would not fit in memory."""
    n = cnf_clauses(formula, encoding)
    if not fits(n):
        gb = n * BYTES_PER_CLAUSE / 2 ** 30
        raise UserError(f"{what} would take about {n:,} clauses ({gb:.1f} GB), more than {FRACTION:.0%} of the "
                        f"{available_bytes() / 2 ** 30:.1f} GB available: use the default bounds-first encoding, "
                        f"a smaller region, or backend exact/cpsat (no CNF)")
