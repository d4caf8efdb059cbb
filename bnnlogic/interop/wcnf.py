"""WCNF export: the minimal L-infinity perturbation of an input as a MaxSAT problem.

``radius_encoding(model, x, max_eps)`` builds, and ``write_wcnf`` writes (format of the MaxSAT
evaluations since 2022, through PySAT's ``WCNF``), the problem

    hard   the network over the largest box B_E = {x' : |x' - x|_inf <= E} (``encode``,
           bounds first), the goal "predicted outside {label}", and for e = 0 .. E-1 a
           variable r_e = "eps <= e" with r_e => (every threshold literal that keeps x'
           inside B_e), i.e. r_e implies that the perturbation stays within radius e
    soft   the unit clauses (r_e), weight 1 each

A model of the hard clauses is a counterexample x' in B_E; the r_e it can satisfy are those with
e >= |x' - x|_inf, so it violates exactly |x' - x|_inf soft clauses (the decoded input lies in
the smallest box whose r_e holds, ``InputVars.decode``).  Hence

    optimum cost = the smallest radius with a counterexample (``verify --min-eps``'s
                   ``radius_counterexample``); hard clauses UNSAT = robust up to E.

The cardinality constraints of the neurons are clauses through PySAT's encodings (as for
DIMACS); the map file ``<out>.map.json`` is ``bnnlogic.logic.dimacs``'s, plus ``radius``:
the r_e variables, E and the center.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from ..fileio import atomic_open, write_json
from ..logic import region
from ..logic.backends import to_cnf
from ..logic.dimacs import variable_map
from ..logic.encoding import Encoding, encode
from ..model import Model


@dataclass
class RadiusEncoding:
    encoding: Encoding
    radius_vars: list[int]  # r_e = "eps <= e", e = 0 .. max_eps - 1
    label: int
    max_eps: int


def radius_encoding(model: Model, x: np.ndarray, max_eps: int, label: int | None = None,
                    use_bounds: bool = True) -> RadiusEncoding:
    """The hard part and the radius variables of the problem in the module docstring."""
    c = model.ir.coding
    x = model.check_inputs(x)[0]
    label = int(model.predict(x[None])[0]) if label is None else int(label)
    bad = [k for k in range(model.ir.n_classes) if k != label]
    enc = encode(model.ir, region.linf(c, x, max_eps), [[(0, bad)]], use_bounds)
    F, inp = enc.formula, enc.inputs
    radius = []
    for e in range(max_eps):
        r = F.new_var(f"eps<={e}")
        box = region.linf(c, x, e)
        for lits in inp.box_literals(box.lo, box.hi).values():
            for lit in lits:
                F.add_clause([-r, lit])
        radius.append(r)
    return RadiusEncoding(enc, radius, label, int(max_eps))


def write_wcnf(problem: RadiusEncoding, path: str | os.PathLike, encoding: str = "totalizer") -> dict:
    """Write ``path`` (WCNF) and ``path.map.json``; returns ``{variables, hard, soft}``."""
    from pysat.formula import WCNF

    hard, n_vars = to_cnf(problem.encoding.formula, encoding)
    w = WCNF()
    w.extend(hard)
    for r in problem.radius_vars:
        w.append([r], weight=1)
    w.nv = max(w.nv, n_vars)
    with atomic_open(path, "w") as fh:
        w.to_fp(fh, comments=[f"c bnnlogic minimal L-inf perturbation (label {problem.label}, radius <= "
                              f"{problem.max_eps}); cardinality encoding {encoding}"])
    r = problem.encoding.inputs.region
    write_json(str(path) + ".map.json", {
        "format": "bnnlogic-wcnf-map", "version": 1, "cardinality_encoding": encoding,
        **variable_map(problem.encoding),
        "radius": {"vars": problem.radius_vars, "max_eps": problem.max_eps, "label": problem.label,
                   "center": r.center.tolist()}})
    return {"variables": w.nv, "hard": len(w.hard), "soft": len(w.soft)}
