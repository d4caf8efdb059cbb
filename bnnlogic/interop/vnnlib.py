"""VNN-LIB properties: read them into exact bnnlogic queries, write them beside an ONNX model.

A VNN-LIB file states a *counterexample*: inputs ``X`` in a box and outputs ``Y`` meeting a
condition; "the property holds" (bnnlogic: ``robust``) means no input of the box meets it.
``Y`` are the model's integer scores, as the ONNX graph of ``bnnlogic export`` computes them
(``scores``); ``X`` its raw features, flat in row-major order of the feature shape.

Parsing is the ``vnnlib`` package's (the VNN-LIB 2.0 reference parser, type checked).  Files in
the VNN-COMP convention (VNN-LIB 1.0: ``(declare-const X_0 Real)``, ``X_i``/``Y_j``, ``=``, ``distinct``,
literals such as ``1`` or ``1e-05``) are first rewritten into 2.0 (one network with an input
``X`` and an output ``Y``, ``X[i]``, ``==``, ``!=``, decimal real literals: a token rewrite, exact).

Mapping, exact (no float decides anything; every literal is read as the rational its decimal
text denotes):

* **input**: top-level conjunctions of bounds on single inputs ``a * X[i] + k (<=|<|>=|>|==) b``.
  A raw feature is an integer, so ``X >= q`` is ``x >= ceil(q)``, ``X > q`` is ``x >= floor(q)+1``,
  ``X <= q`` is ``x <= floor(q)``, ``X < q`` is ``x <= ceil(q)-1``; unbounded features span the
  model's domain, bounds outside it are clipped to it; an empty box is refused (it usually means
  normalised units: X must be raw features, e.g. pixels 0..255).
* **output**: any and/or nesting of linear comparisons of outputs, turned into disjunctive
  normal form.  A comparison ``sum_c a_c Y_c + k (op) 0`` with rational a, k becomes, after
  clearing denominators, ``sum_c a'_c Y_c >= b'`` with integers (``>`` is ``>= b'+1`` since scores
  are integers; ``==`` is two of them, ``!=`` a disjunction): a ``ScoreAtLeast`` atom, encoded
  exactly (``bnnlogic.logic.encoding``).  If the DNF says exactly "the prediction lies in B" (each
  term: one class c beating, with the model's tie rule, every class outside B; e.g. what
  ``write_vnnlib`` writes), the query is ``verify_region``'s "prediction in the complement of
  B" and gets its whole portfolio (bounds, branch and bound, attack, solver); otherwise the
  score atoms go to a solver backend.  Refused with one line: input disjunctions (several
  boxes), inputs and outputs in one comparison, products of variables, hidden variables,
  several networks, shapes that do not match the model, comparisons whose integer
  coefficients add up to more than ``MAX_WEIGHT`` (each is a repeated literal per bit).
"""
from __future__ import annotations

import json
import math
import os
import re
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from functools import reduce
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from ..errors import UserError
from ..fileio import write_text
from ..logic import region
from ..logic.encoding import ScoreAtLeast
from ..logic.region import Region
from ..model import Model

#: largest sum of |integer coefficients| of one output comparison
MAX_WEIGHT = 64
#: largest number of terms of the output condition in disjunctive normal form
MAX_TERMS = 4096

Linear = dict[Any, Fraction]  # variable key ("X", i) / ("Y", j) or 1 (the constant) -> coefficient
Term = list[ScoreAtLeast]  # a conjunction


# ---------------------------------------------------------------------- parsing
def parse(text: str, name: str = "property"):
    """The ``vnnlib`` package's typed AST of a VNN-LIB 2.0 text, or of a 1.0 text rewritten into
    2.0 (see the module docstring); a syntax or type error is a one-line ``UserError``."""
    import vnnlib

    if "vnnlib-version" not in text:
        text = _from_v1(text, name)
    try:
        return vnnlib.parse_query_string(text)
    except vnnlib.VNNLibException as exc:
        raise UserError(f"{name}: {_one_line(str(exc))}") from None


def _one_line(message: str) -> str:
    """The parser's first error (its report is JSON for type errors) on one line."""
    try:
        e = json.loads(message)["errors"][0]
        return f"{e['message']} at line {e['line']} ({e['offendingSymbol']}): {e['hint']}"
    except (ValueError, KeyError, IndexError, TypeError):
        return " ".join(message.split())


_DECLARE = re.compile(r"\(\s*declare-const\s+([A-Za-z_][\w.]*)\s+(\w+)\s*\)")


def _from_v1(text: str, name: str) -> str:
    """A VNN-LIB 1.0 text (VNN-COMP) rewritten into 2.0."""
    text = re.sub(r";[^\n]*", "", text)
    sizes = {"X": 0, "Y": 0}
    for var, sort in _DECLARE.findall(text):
        m = re.fullmatch(r"([XY])_(\d+)", var)
        if not m or sort != "Real":
            raise UserError(f"{name}: declare-const {var} {sort}: VNN-LIB 1.0 properties declare inputs X_i and "
                            "outputs Y_j of sort Real")
        sizes[m[1]] = max(sizes[m[1]], int(m[2]) + 1)
    if not sizes["X"] or not sizes["Y"]:
        raise UserError(f"{name}: no (declare-const X_i Real) and (declare-const Y_j Real): not a VNN-LIB property")
    body = _DECLARE.sub("", text)
    body = re.sub(r"\b([XY])_(\d+)\b", r"\1[\2]", body)
    body = re.sub(r"\(\s*=(?=\s)", "(==", body)
    body = re.sub(r"\(\s*distinct(?=\s)", "(!=", body)  # SMT-LIB's name of !=

    def real(m: re.Match) -> str:
        try:
            return format(Decimal(m[0]), "f") + ("" if "." in format(Decimal(m[0]), "f") else ".0")
        except InvalidOperation:
            return m[0]

    body = re.sub(r"(?<![\w.\[])[-+]?\d+(\.\d*)?([eE][-+]?\d+)?(?![\w.\]])", real, body)
    return (f"(vnnlib-version <2.0>)\n(declare-network N (declare-input X real [{sizes['X']}]) "
            f"(declare-output Y real [{sizes['Y']}]))\n{body}")


# ---------------------------------------------------------------------- exact linear forms
def _linear(e: Any, name: str) -> Linear:
    """The exact linear form of an arithmetic expression of the AST."""
    import vnnlib

    if isinstance(e, vnnlib.Var):
        if e.kind not in (vnnlib.SymbolKind.Input, vnnlib.SymbolKind.Output) or len(e.indices) != 1:
            raise UserError(f"{name}: variable {e.name}{e.indices}: only inputs X[i] and outputs Y[j] of "
                            "one-dimensional declarations are supported")
        return {("X" if e.kind == vnnlib.SymbolKind.Input else "Y", int(e.indices[0])): Fraction(1)}
    if isinstance(e, (vnnlib.Float, vnnlib.Int, vnnlib.Literal)):
        return {1: Fraction(Decimal(e.lexeme))}
    if isinstance(e, vnnlib.Negate):
        return _scaled(_linear(e.expr, name), Fraction(-1))
    if isinstance(e, vnnlib.Plus):
        return reduce(_add, (_linear(a, name) for a in e.args))
    if isinstance(e, vnnlib.Minus):
        return reduce(_add, [_linear(e.head, name)] + [_scaled(_linear(a, name), Fraction(-1)) for a in e.rest])
    if isinstance(e, vnnlib.Multiply):
        forms = [_linear(a, name) for a in e.args]
        if sum(1 for f in forms if set(f) - {1}) > 1:
            raise UserError(f"{name}: {' '.join(str(e).split())}: a product of variables is not linear")
        out = {1: Fraction(1)}
        for f in forms:
            out = _scaled(f, out[1]) if set(out) == {1} else _scaled(out, f.get(1, Fraction(0)))
        return out
    raise UserError(f"{name}: unsupported expression {' '.join(str(e).split())}")


def _scaled(f: Linear, a: Fraction) -> Linear:
    return {k: v * a for k, v in f.items()}


def _add(f: Linear, g: Linear) -> Linear:
    out = dict(f)
    for k, v in g.items():
        out[k] = out.get(k, Fraction(0)) + v
    return out


_OPS = ("GreaterEqual", "GreaterThan", "LessEqual", "LessThan", "Equal", "NotEqual")


def _comparison(e: Any, name: str) -> tuple[Linear, str]:
    """``lhs - rhs`` (zero coefficients dropped) and the operator name."""
    op = type(e).__name__
    if op not in _OPS:
        raise UserError(f"{name}: unsupported comparison {' '.join(str(e).split())}")
    f = _add(_linear(e.lhs, name), _scaled(_linear(e.rhs, name), Fraction(-1)))
    return {k: v for k, v in f.items() if v or k == 1}, op


# ---------------------------------------------------------------------- the mapping
@dataclass
class VnnProperty:
    """A VNN-LIB file mapped onto a model: the box of raw inputs and the output condition
    (the counterexample) in DNF over ``ScoreAtLeast`` atoms; ``bad`` is the class set B when
    the condition is exactly "the prediction lies in B" (else None)."""

    region: Region
    terms: list[Term]
    bad: list[int] | None

    def goal(self) -> list[list[tuple[int, Any]]]:
        """The condition as a ``Query`` goal on network 0."""
        return [[(0, a) for a in t] for t in self.terms]


def read_vnnlib(path: str | os.PathLike, model: Model) -> VnnProperty:
    """Parse a VNN-LIB file (1.0 or 2.0) and map it exactly onto ``model`` (module docstring)."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such VNN-LIB file")
    try:
        text = Path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read ({type(exc).__name__})") from None
    return map_property(parse(text, path), model, path)


def map_property(query: Any, model: Model, name: str = "property") -> VnnProperty:
    """The ``VnnProperty`` of a parsed VNN-LIB query for ``model``."""
    import vnnlib

    if len(query.networks) != 1:
        raise UserError(f"{name}: {len(query.networks)} networks declared; bnnlogic verifies one")
    net = query.networks[0]
    c, n = model.ir.coding, model.ir.n_classes
    if len(net.inputs) != 1 or len(net.outputs) != 1 or len(net.hidden):
        raise UserError(f"{name}: the network must declare one input, one output and no hidden variables")
    d_in, d_out = math.prod(net.inputs[0].shape), math.prod(net.outputs[0].shape)
    if d_in != c.n_features or d_out != n:
        raise UserError(f"{name}: the property has {d_in} inputs and {d_out} outputs; the model takes "
                        f"{c.n_features} raw features and has {n} classes (scores)")
    if len(net.inputs[0].shape) != 1 or len(net.outputs[0].shape) != 1:
        raise UserError(f"{name}: declare the input and the output flat ([{d_in}] and [{d_out}])")
    lo = np.full(c.n_features, c.lo, dtype=np.int64)
    hi = np.full(c.n_features, c.hi, dtype=np.int64)
    terms: list[Term] = [[]]
    for assertion in query.assertions:
        for part in _conjuncts(assertion.expr, vnnlib, name):
            if isinstance(part, vnnlib.Comparison):
                f, op = _comparison(part, name)
                kinds = {k[0] for k in f if k != 1}
                if kinds == {"X"}:
                    _bound_input(f, op, lo, hi, name)
                    continue
                if "X" in kinds:
                    raise UserError(f"{name}: {' '.join(str(part).split())}: a comparison mixes inputs and outputs")
            terms = _and(terms, _dnf(part, name, vnnlib))
    empty = np.nonzero(lo > hi)[0]
    if len(empty):
        f = int(empty[0])
        raise UserError(f"{name}: the input box holds no raw input of the model's domain [{c.lo}, {c.hi}] (feature "
                        f"{f}: {lo[f]} > {hi[f]}); X must be raw integer features, not normalised values")
    return VnnProperty(region.box(c, lo, hi), terms, _pred_in(terms, model))


def _conjuncts(e: Any, vnnlib: Any, name: str) -> list[Any]:
    """A top-level AND split into its parts; an OR over inputs is refused."""
    if isinstance(e, vnnlib.And):
        return [p for a in e.args for p in _conjuncts(a, vnnlib, name)]
    if isinstance(e, vnnlib.Or) and _mentions_inputs(e, vnnlib):
        raise UserError(f"{name}: a disjunction over inputs (several input boxes) is not supported: verify each "
                        "box in its own file")
    return [e]


def _mentions_inputs(e: Any, vnnlib: Any) -> bool:
    if isinstance(e, vnnlib.Var):
        return e.kind == vnnlib.SymbolKind.Input
    return any(_mentions_inputs(ch, vnnlib) for ch in e.children())


def _bound_input(f: Linear, op: str, lo: np.ndarray, hi: np.ndarray, name: str) -> None:
    """Tighten the integer box by ``a * X[i] + k (op) 0`` (see the module docstring)."""
    terms = [(k[1], v) for k, v in f.items() if k != 1]
    if len(terms) != 1:
        raise UserError(f"{name}: an input constraint must bound a single input X[i] by a constant")
    (i, a), = terms
    q = -f.get(1, Fraction(0)) / a  # X[i] (op) q, the operator flipped for a < 0
    if a < 0:
        op = {"GreaterEqual": "LessEqual", "GreaterThan": "LessThan", "LessEqual": "GreaterEqual",
              "LessThan": "GreaterThan"}.get(op, op)
    if op == "NotEqual":
        raise UserError(f"{name}: X[{i}] != ...: input disjunctions are not supported")
    if op in ("GreaterEqual", "Equal"):
        lo[i] = max(lo[i], math.ceil(q))
    if op == "GreaterThan":
        lo[i] = max(lo[i], math.floor(q) + 1)
    if op in ("LessEqual", "Equal"):
        hi[i] = min(hi[i], math.floor(q))
    if op == "LessThan":
        hi[i] = min(hi[i], math.ceil(q) - 1)


def _atom(f: Linear, strict: bool, name: str) -> ScoreAtLeast:
    """``sum a_c Y_c + k (> if strict else >=) 0`` as ``sum a'_c score_c >= b'`` over integers."""
    lcm = reduce(math.lcm, (v.denominator for v in f.values()), 1)
    coef = {k[1]: int(v * lcm) for k, v in f.items() if k != 1 and v}
    g = reduce(math.gcd, coef.values(), 0) or 1
    bound = -(f.get(1, Fraction(0)) * lcm)  # sum coef * Y >= bound (+1 if strict, scores being integers)
    bound = Fraction(bound) / g
    b = math.floor(bound) + 1 if strict else math.ceil(bound)
    coef = {k: v // g for k, v in coef.items()}
    if sum(abs(v) for v in coef.values()) > MAX_WEIGHT:
        raise UserError(f"{name}: an output comparison with integer coefficients {sorted(coef.values())} (sum of "
                        f"magnitudes above {MAX_WEIGHT}) is too large to encode as repeated literals")
    return ScoreAtLeast(tuple(sorted(coef.items())), int(b))


def _dnf(e: Any, name: str, vnnlib: Any) -> list[Term]:
    """An output condition in disjunctive normal form over score atoms."""
    if isinstance(e, vnnlib.And):
        return reduce(_and, (_dnf(a, name, vnnlib) for a in e.args), [[]])
    if isinstance(e, vnnlib.Or):
        out = [t for a in e.args for t in _dnf(a, name, vnnlib)]
        if len(out) > MAX_TERMS:
            raise UserError(f"{name}: the output condition has more than {MAX_TERMS} terms in disjunctive form")
        return out
    f, op = _comparison(e, name)
    neg = _scaled(f, Fraction(-1))
    return {"GreaterEqual": [[_atom(f, False, name)]], "GreaterThan": [[_atom(f, True, name)]],
            "LessEqual": [[_atom(neg, False, name)]], "LessThan": [[_atom(neg, True, name)]],
            "Equal": [[_atom(f, False, name), _atom(neg, False, name)]],
            "NotEqual": [[_atom(f, True, name)], [_atom(neg, True, name)]]}[op]


def _and(a: list[Term], b: list[Term]) -> list[Term]:
    out = [x + y for x in a for y in b]
    if len(out) > MAX_TERMS:
        raise UserError(f"the output condition has more than {MAX_TERMS} terms in disjunctive form")
    return out


def beats_atom(model: Model, c: int, d: int) -> ScoreAtLeast:
    """``c`` is preferred to ``d`` under the model's tie rule: ``score_c - score_d >= [c > d]``."""
    return ScoreAtLeast(tuple(sorted({c: 1, d: -1}.items())), int(c > d))


def _pred_in(terms: list[Term], model: Model) -> list[int] | None:
    """B if the DNF is exactly "prediction in B": every term is c beating (tie rule included) a
    set D_c of classes with (all - B) <= D_c, B the set of those c (see the module docstring)."""
    n = model.ir.n_classes
    winners: dict[int, set[int]] = {}
    for t in terms:
        if not t or any(len(a.coef) != 2 for a in t):
            return None
        pairs = [(next(k for k, v in a.coef if v == 1), next(k for k, v in a.coef if v == -1))
                 if sorted(v for _, v in a.coef) == [-1, 1] else (None, None) for a in t]
        cs = {p[0] for p in pairs}
        if len(cs) != 1 or None in cs or any(a != beats_atom(model, *p) for a, p in zip(t, pairs)):
            return None
        c = cs.pop()
        winners.setdefault(c, set()).update(d for _, d in pairs)
    B = set(winners)
    if not B or not all(set(range(n)) - B <= D for D in winners.values()):
        return None
    return sorted(B)


# ---------------------------------------------------------------------- verifying
def verify_vnnlib(model: Model, path: str | os.PathLike, backend: str = "auto", timeout: float | None = None,
                  use_attack: bool = True):
    """Verify a VNN-LIB property: ``robust`` (no input of the box meets the output condition:
    VNN-COMP's "unsat"), ``counterexample`` (a raw input that does, replayed through the engine:
    "sat") or ``unknown``; a ``VerifyResult`` whose ``allowed`` are the classes the prediction
    must stay in when the condition is "prediction in B", else [] (score comparisons)."""
    from ..logic import Query
    from ..verification import VerifyResult, solver_name, verify_region

    prop = read_vnnlib(path, model)
    R = prop.region
    mid = (R.lo + R.hi) // 2
    label = int(model.predict(mid[None])[0])
    if prop.bad is not None:
        allowed = [k for k in range(model.ir.n_classes) if k not in prop.bad]
        res = verify_region(model, R, allowed, label, backend, timeout, use_attack)
        res.stats["property"] = f"prediction in {allowed}"
        return res
    t0 = time.perf_counter()
    name = solver_name(backend)
    res = VerifyResult("unknown", None, label, [], 0.0, name, name.split(":")[-1])
    q = Query(model.ir, R, prop.goal(), name, engines=[model.engine])
    if q.encoding.goal_false:
        res.status, res.backend, res.encoding = "robust", "bounds", "bounds"
        ans = None
    else:
        ans = q.solve(timeout=timeout)
        res.status = {"sat": "counterexample", "unsat": "robust"}.get(ans.status, "unknown")
    res.stats = {**q.stats, "property": f"scores: {len(prop.terms)} term(s) of score comparisons"}
    q.close()
    if ans is not None and ans.status == "sat":  # the witness was replayed by Query.solve
        res.counterexample, res.adv_label, res.found_by = ans.witness, ans.predictions[0], "solver"
    res.time_s = time.perf_counter() - t0
    return res


# ---------------------------------------------------------------------- writing
def _real(v: int) -> str:
    return f"{int(v)}.0"


def vnnlib_text(model: Model, R: Region, allowed: Sequence[int], onnx_name: str = "model.onnx") -> str:
    """The VNN-LIB 1.0 text (VNN-COMP convention) of "every raw input of the box R is predicted
    in ``allowed``": the box on X, and the counterexample condition "prediction outside allowed"
    with the model's tie rule, ``OR_{c not allowed} AND_{d allowed} (Y_c > Y_d if c > d else
    Y_c >= Y_d)``."""
    n = model.ir.n_classes
    allowed = sorted(set(int(a) for a in allowed))
    bad = [c for c in range(n) if c not in allowed]
    if not allowed or not bad:
        raise UserError(f"the allowed classes must be a proper, non-empty subset of 0..{n - 1}")
    lines = [f"; bnnlogic property for {onnx_name}: X = raw features (flat, row-major), Y = integer scores",
             f"; holds (unsat) iff every X in the box is predicted in {allowed}; ties go to the lowest class",
             *(f"(declare-const X_{i} Real)" for i in range(len(R.lo))),
             *(f"(declare-const Y_{j} Real)" for j in range(n)), ""]
    for i, (a, b) in enumerate(zip(R.lo.tolist(), R.hi.tolist())):
        lines += [f"(assert (>= X_{i} {_real(a)}))", f"(assert (<= X_{i} {_real(b)}))"]
    terms = [" ".join(f"({'>' if c > d else '>='} Y_{c} Y_{d})" for d in allowed) for c in bad]
    lines.append("(assert (or " + " ".join(f"(and {t})" for t in terms) + "))")
    return "\n".join(lines) + "\n"


def write_vnnlib(model: Model, R: Region, allowed: Sequence[int], path: str | os.PathLike) -> dict[str, str]:
    """Write the property of ``vnnlib_text`` to ``path`` and the model beside it as ONNX
    (``path`` with suffix ``.onnx``, ``bnnlogic.interop.onnx_io.export_onnx``)."""
    from .onnx_io import export_onnx

    onnx_path = str(Path(path).with_suffix(".onnx"))
    export_onnx(model, onnx_path)
    write_text(path, vnnlib_text(model, R, allowed, Path(onnx_path).name))
    return {"out": os.fspath(path), "onnx": onnx_path}
