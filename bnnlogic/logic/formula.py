"""A solver-neutral constraint system: clauses and (reified) cardinality constraints.

Variables are positive integers 1..n_vars, literals are non-zero integers (``-v`` is "not v"),
as in DIMACS.  Variable 1 is the constant TRUE (a unit clause), so fixed bits are just the
literals ``TRUE``/``-TRUE`` and every constraint folds them away.

A cardinality constraint ``Card(lits, bound, head, both)`` means::

    head is None:        sum(lits) >= bound                    (hard)
    both is True:        head  <=>  sum(lits) >= bound         (a threshold neuron)
    both is False:       head  ==>  sum(lits) >= bound         (one direction suffices)

``lits`` may repeat a literal (a coefficient 2); backends that cannot take repeats copy it.
Every backend (``bnnlogic.logic.backends``) reads this one form.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

TRUE = 1


@dataclass(frozen=True)
class Card:
    lits: tuple[int, ...]
    bound: int
    head: int | None = None
    both: bool = True


@dataclass
class Formula:
    n_vars: int = 1
    clauses: list[list[int]] = field(default_factory=lambda: [[TRUE]])
    cards: list[Card] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)

    def new_var(self, name: str | None = None) -> int:
        self.n_vars += 1
        if name is not None:
            self.names[self.n_vars] = name
        return self.n_vars

    def add_clause(self, lits: Iterable[int]) -> None:
        """OR of ``lits`` (constants folded: a TRUE literal drops the clause)."""
        lits = [l for l in lits if l != -TRUE]
        if TRUE not in lits:
            self.clauses.append(lits)

    def add_card(self, lits: Sequence[int], bound: int, head: int | None = None, both: bool = True) -> None:
        """``head (<=>|==>) sum(lits) >= bound``; TRUE/-TRUE literals are folded into the bound."""
        free = [l for l in lits if abs(l) != TRUE]
        bound -= sum(1 for l in lits if l == TRUE)
        if bound <= 0:  # always met
            if head is not None and both:
                self.add_clause([head])
            return
        if bound > len(free):  # never met
            self.add_clause([] if head is None else [-head])
            return
        if bound == 1 and (head is None or not both):
            self.add_clause(free + ([] if head is None else [-head]))
            return
        self.cards.append(Card(tuple(free), int(bound), head, both))

    def add_atmost(self, lits: Sequence[int], bound: int) -> None:
        """Hard ``sum(lits) <= bound``, i.e. ``sum(-lits) >= len(lits) - bound``."""
        self.add_card([-l for l in lits], len(lits) - bound)

    def reify_card(self, lits: Sequence[int], bound: int, name: str | None = None, both: bool = True,
                   fold: bool = True) -> int:
        """A literal equal to (or, with ``both=False``, implying) ``sum(lits) >= bound``.

        ``fold=False`` always returns a fresh variable (a constant one gets a unit clause), as
        an encoder without any simplification does."""
        if not fold:
            head = self.new_var(name)
            self.add_card(lits, bound, head, both)
            return head
        free = [l for l in lits if abs(l) != TRUE]
        b = bound - sum(1 for l in lits if l == TRUE)
        if b <= 0:
            return TRUE
        if b > len(free):
            return -TRUE
        if b == 1 and len(free) == 1:
            return free[0]
        head = self.new_var(name)
        self.add_card(free, b, head, both)
        return head

    def reify_or(self, lits: Sequence[int], name: str | None = None) -> int:
        """A literal equal to ``OR(lits)`` (binary max-pool)."""
        lits = [l for l in lits if l != -TRUE]
        if TRUE in lits:
            return TRUE
        if not lits:
            return -TRUE
        if len(lits) == 1:
            return lits[0]
        t = self.new_var(name)
        self.add_clause([-t] + lits)
        for l in lits:
            self.add_clause([t, -l])
        return t
