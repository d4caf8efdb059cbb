"""The trust base of a certificate: what a user must believe for a checked "robust".

``cnf`` builds a query's reference CNF from the IR alone (no code shared with the solving
path); ``check`` re-derives the query a certificate names, re-encodes it, compares it with
the formula the proof refutes, and hands both to an independent DRAT checker (``dratify``).
Nothing here imports a solver.
"""
