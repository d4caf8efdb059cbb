"""Exact logic for BNNs: regions, bounds, encodings, solver backends, queries.

    from bnnlogic.logic import region, Query
    R = region.linf(ir.coding, x, eps=5)
    q = Query(ir, R, goal=[[(0, other_classes)]])      # some input of R predicted outside {y}?
    q.solve(timeout=60)                                 # Answer(status, witness, ...)
"""
from . import region
from .backends import BACKENDS, DEFAULT, make_backend, to_cnf
from .bounds import propagate, stable_fraction
from .encode import Encoding, encode
from .formula import Formula
from .query import Answer, Query, ReplayError, goal_holds
from .region import Region

__all__ = ["Answer", "BACKENDS", "DEFAULT", "Encoding", "Formula", "Query", "Region", "ReplayError",
           "encode", "goal_holds", "make_backend", "propagate", "region", "stable_fraction", "to_cnf"]
