"""OPB export (the pseudo-Boolean competition format): one linear constraint per neuron.

``write_opb(encoding, "q.opb")`` writes the ``Formula`` of an encoding (``bnnlogic.logic.encoding``)
for PB solvers (clasp, RoundingSat, Exact, ...), with the map file ``q.opb.map.json`` of
``bnnlogic.logic.dimacs`` (variables -> raw feature thresholds and neurons; ``decode_model``
turns a solver's model into a raw input).  Variables are ``x1 .. xN``, the formula's own;
no auxiliary variables are added.  Literals are written over variables (``~x = 1 - x``), so
only the basic OPB syntax is used.

Each part of the formula becomes, with ``sum`` a linear expression over literals whose least
value is ``L = sum of its negative coefficients``:

    clause  l_1 v .. v l_k              sum_i l_i >= 1
    hard    sum(lits) >= b              sum(lits) >= b
    neuron  h <=> sum(lits) >= b        h  => sum >= b:     sum + (b - L) * ~h >= b
                                        ~h => sum <= b - 1: -sum + (1 - b + U) * h >= 1 - b
                                        (U = -L of -sum, i.e. the largest value of sum)
    one-way h => sum(lits) >= b         the first of the two

exactly the reified constraints that the Exact backend receives (``addReification``: both
directions; ``addRightReification``: the first), spelled out because OPB has no reification.
A repeated literal is a coefficient 2.
"""
from __future__ import annotations

import os
from typing import Iterator, Sequence

from ..fileio import atomic_open, write_json
from ..logic.dimacs import variable_map
from ..logic.encoding import Encoding
from ..logic.formula import Formula

Terms = dict[int, int]  # variable -> coefficient


def _over_variables(terms: Sequence[tuple[int, int]], rhs: int) -> tuple[Terms, int]:
    """``sum a * lit >= rhs`` over variables: a literal -v is 1 - v; repeated variables merged."""
    coef: Terms = {}
    for a, lit in terms:
        v = abs(lit)
        coef[v] = coef.get(v, 0) + (a if lit > 0 else -a)
        if lit < 0:
            rhs -= a
    return {v: a for v, a in coef.items() if a}, rhs


def _implied(cond: int | None, terms: list[tuple[int, int]], rhs: int) -> tuple[Terms, int] | None:
    """``cond => sum a * lit >= rhs`` as one inequality (``cond`` None: unconditional), i.e.
    ``sum + M * ~cond >= rhs`` with ``M = rhs - min(sum)``; None when it always holds."""
    M = rhs - sum(min(a, 0) for a, _ in terms)
    if M <= 0:
        return None
    return _over_variables(terms + ([(M, -cond)] if cond is not None else []), rhs)


def pb_constraints(formula: Formula) -> Iterator[tuple[Terms, int]]:
    """Every constraint of ``formula`` as ``(terms, rhs)``: ``sum_v terms[v] * x_v >= rhs``."""
    for clause in formula.clauses:
        yield _over_variables([(1, l) for l in clause], 1)
    for card in formula.cards:
        terms = [(1, l) for l in card.lits]
        parts = [_implied(card.head, terms, card.bound)]
        if card.head is not None and card.both:
            parts.append(_implied(-card.head, [(-a, l) for a, l in terms], 1 - card.bound))
        yield from (p for p in parts if p is not None)


def _line(terms: Terms, rhs: int) -> str:
    if not terms:  # a constant constraint 0 >= rhs: false ones read x1 = TRUE against it
        terms, rhs = ({1: -1}, 0) if rhs > 0 else ({1: 0}, 0)
    return " ".join(f"{a:+d} x{v}" for v, a in sorted(terms.items())) + f" >= {rhs} ;\n"


def write_opb(enc: Encoding, path: str | os.PathLike, comment: str = "bnnlogic query") -> dict:
    """Write ``path`` (OPB) and ``path.map.json``; returns ``{variables, constraints}``."""
    lines = [_line(t, r) for t, r in pb_constraints(enc.formula)]
    n = enc.formula.n_vars
    with atomic_open(path, "w") as fh:
        fh.write(f"* #variable= {n} #constraint= {len(lines)}\n* {comment}\n")
        fh.writelines(lines)
    write_json(str(path) + ".map.json", {"format": "bnnlogic-opb-map", "version": 1, **variable_map(enc)})
    return {"variables": n, "constraints": len(lines)}
