"""DIMACS export: the CNF of an encoding plus a JSON map from variables to features/neurons.

(OPB and WCNF, with the same map, are in ``bnnlogic.interop.opb`` and ``bnnlogic.interop.wcnf``.)

The map (``<out>.map.json``) holds ``inputs``: one entry per free coding threshold
``{"var", "feature", "threshold"}`` (the variable is true iff raw ``x[feature] >= threshold``),
the region (``lo``, ``hi``, ``center``) so a model decodes to a raw input, and ``names``: the
named variables (neurons ``N<net>.L<layer>[<index>]``, ``pred==c``, ...).
"""
from __future__ import annotations

import os

import numpy as np

from ..fileio import atomic_open, write_json
from .backends import to_cnf
from .encoding import Encoding, nearest_in_interval


def write_dimacs(enc: Encoding, path: str | os.PathLike, encoding: str = "totalizer") -> dict:
    """Write ``path`` (DIMACS CNF) and ``path.map.json``; returns the size ``{variables, clauses}``.
    A CNF that would not fit in memory is refused first (``budget.check_fits``)."""
    from .memory import check_fits

    check_fits(enc.formula, encoding)
    clauses, n_vars = to_cnf(enc.formula, encoding)
    with atomic_open(path, "w") as fh:
        fh.write(f"c bnnlogic robustness query, cardinality encoding {encoding}\n")
        fh.write(f"p cnf {n_vars} {len(clauses)}\n")
        fh.writelines(" ".join(map(str, c)) + " 0\n" for c in clauses)
    write_json(str(path) + ".map.json", {"format": "bnnlogic-dimacs-map", "version": 1,
                                         "cardinality_encoding": encoding, **variable_map(enc)})
    return {"variables": n_vars, "clauses": len(clauses)}


def variable_map(enc: Encoding) -> dict:
    """The map file's content (see the module docstring): ``inputs``, ``region``, ``names``."""
    inp, r = enc.inputs, enc.inputs.region
    return {
        "inputs": [{"var": int(v), "feature": f, "threshold": int(t)}
                   for f in sorted(inp.vars) for v, t in zip(inp.vars[f], inp.thresholds[f])],
        "region": {"lo": r.lo.tolist(), "hi": r.hi.tolist(),
                   "center": None if r.center is None else r.center.tolist()},
        "names": {str(v): n for v, n in enc.formula.names.items()},
    }


def decode_model(mapping: dict, true_vars: set[int]) -> np.ndarray:
    """A raw input from a DIMACS model (the set of true variables) and the map file's content:
    per feature, the value of its threshold interval nearest the region's center."""
    lo, hi = np.array(mapping["region"]["lo"]), np.array(mapping["region"]["hi"])
    center = mapping["region"]["center"]
    x = np.clip(np.array(center) if center is not None else lo.copy(), lo, hi)
    per: dict[int, list[tuple[int, int]]] = {}
    for e in mapping["inputs"]:
        per.setdefault(e["feature"], []).append((e["threshold"], e["var"]))
    for f, tv in per.items():
        tv.sort()
        x[f] = nearest_in_interval(int(x[f]), int(lo[f]), int(hi[f]), [t for t, _ in tv],
                                   sum(1 for _, v in tv if v in true_vars))
    return x.astype(np.int64)
