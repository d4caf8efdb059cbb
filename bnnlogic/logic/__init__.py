"""Exact logic for BNNs: regions, bounds, encodings, solver backends, queries.

    from bnnlogic.logic import region, Query
    R = region.linf(ir.coding, x, eps=5)
    q = Query(ir, R, goal=[[(0, other_classes)]])      # some input of R predicted outside {y}?
    q.solve(timeout=60)                                 # Answer(status, witness, ...)
"""
from typing import TYPE_CHECKING

from .._lazy import lazy_names
from . import region
from .region import Region

if TYPE_CHECKING:  # the names below, for type checkers; at run time each is imported on first use
    from .backends import BACKENDS, DEFAULT, make_backend, to_cnf
    from .bounds import propagate, stable_fraction
    from .encoding import Encoding, encode
    from .formula import Formula
    from .query import Answer, Query, ReplayError, goal_holds

__all__ = ["Answer", "BACKENDS", "DEFAULT", "Encoding", "Formula", "Query", "Region", "ReplayError",
           "encode", "goal_holds", "make_backend", "propagate", "region", "stable_fraction", "to_cnf"]
__getattr__, __dir__ = lazy_names(__name__, {
    "BACKENDS": "backends", "DEFAULT": "backends", "make_backend": "backends", "to_cnf": "backends",
    "propagate": "bounds", "stable_fraction": "bounds", "Encoding": "encoding", "encode": "encoding",
    "Formula": "formula", "Answer": "query", "Query": "query", "ReplayError": "query", "goal_holds": "query"})
