"""Property-based soundness: random tiny networks, regions and properties against brute force.

Every case (``tests/oracle.py``) runs verify's backends (a different three per case, bounds-first
and naive), the portfolio, the radius, explanations, counts, the compiled BDD, a certificate
of every robust verdict and a miter, each compared with enumeration.  Hypothesis draws the
seeds (derandomized: the same cases every run); the long run is benchmarks/reliability.py.
"""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bnnlogic.logic import BACKENDS
from tests.oracle import check_case, random_case


@settings(max_examples=150, deadline=None, derandomize=True)
@given(st.integers(0, 2 ** 31))
def test_random_queries_agree_with_brute_force(seed):
    case = random_case(seed)
    backends = list(np.random.default_rng(seed).choice(BACKENDS, 3, replace=False))
    assert check_case(case, backends=backends) == [], (seed, case.kind, case.R.norm)
