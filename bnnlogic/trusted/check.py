"""Check a robustness certificate (``bnnlogic check CERT``), trusting as little as possible.

A certificate (a zip file written by ``bnnlogic.certify``) claims: every raw input x of a
region (a box ``lo <= x <= hi``, optionally with at most ``l0`` features off ``center``) is
predicted by the model file with the given SHA-256 in the set ``allowed``.  Its evidence is
a case split of the box into leaves, written in preorder as a flat list of tokens:

    [f, t]   split: the left child keeps x_f < t, the right child x_f >= t (the two cover the box)
    "B"      interval bounds exclude every bad class on the leaf (``cnf.bounds_exclude``)
    "E"      the leaf has few threshold cells: each cell's input is run through the IR
    "P"      the leaf's reference CNF (``cnf.query_cnf``) has a DRAT refutation, stored as
             ``leaf<i>.drat`` (i counts the P leaves in order), checked by ``dratify``

A whole-query proof is the tree ``["P"]``; a verdict of interval bounds alone is ``["B"]``.
The check re-derives everything from the model file and the claim: it hashes the model file,
checks that the region is the one its label names (an L-inf or L0 ball around the input, or a
box), walks the tree, re-encodes every P leaf and compares the formula's SHA-256 with the one
the proof was made for (a proof of another formula is rejected), and runs the DRAT checker.

Trust base: this module and ``cnf`` (the reference encoding, the bounds, the enumeration),
the model loader and the IR's semantics (``bnnlogic.model``, ``bnnlogic.ir``), ``dratify``
(pure Python, or its Rust engine when ``cdclkit-native`` is installed), numpy, Python.  Not
trusted: the solvers, bnnlogic's own encoder, bounds and branch and bound, and whoever wrote
the certificate.
"""
from __future__ import annotations

import itertools
import json
import os
import time
import zipfile
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import UserError
from ..ir import IR
from .cnf import bounds_exclude, query_cnf, sha256

FORMAT = "bnnlogic-certificate"
VERSION = 1
MAX_MEMBER = 1 << 31  # bytes: a larger (uncompressed) zip member is refused, not read
ENUM_CELLS = 1 << 16  # an "E" leaf may have at most this many threshold cells
CHUNK = 256  # boxes per batch of interval bounds


class Invalid(Exception):
    """The certificate does not prove its claim (the message says why)."""


@dataclass
class CheckReport:
    valid: bool
    reason: str  # why not, or "every leaf checked"
    claim: str = ""  # the claim in words
    model_sha256: str = ""
    leaves: dict[str, int] = field(default_factory=dict)  # leaves checked per kind (B, E, P, empty)
    proof_bytes: int = 0
    cnf_clauses: int = 0
    check_s: float = 0.0
    engine: str = ""  # the DRAT checker that ran

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _member(zf: zipfile.ZipFile, name: str) -> bytes:
    """A zip member's bytes, refused past MAX_MEMBER (a zip bomb is never inflated)."""
    try:
        with zf.open(name) as fh:
            data = fh.read(MAX_MEMBER + 1)
    except KeyError:
        raise Invalid(f"the certificate has no {name}") from None
    if len(data) > MAX_MEMBER:
        raise Invalid(f"{name} is larger than {MAX_MEMBER} bytes")
    return data


def _ints(v: Any, n: int | None, what: str) -> np.ndarray:
    a = np.asarray(v)
    if a.dtype.kind not in "iu" or a.ndim != 1 or (n is not None and len(a) != n):
        raise Invalid(f"{what}: expected {n if n is not None else 'a list of'} integers")
    return a.astype(np.int64)


def _claim(ir: IR, spec: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int | None, list[int], str]:
    """The region and allowed classes of a certificate, checked against their label."""
    c = ir.coding
    d = c.n_features
    r = spec.get("region")
    if not isinstance(r, dict):
        raise Invalid("no region")
    lo, hi = _ints(r.get("lo"), d, "region lo"), _ints(r.get("hi"), d, "region hi")
    if (lo < c.lo).any() or (hi > c.hi).any() or (lo > hi).any():
        raise Invalid(f"the region is not a box inside the domain [{c.lo}, {c.hi}]")
    center = None if r.get("center") is None else _ints(r["center"], d, "region center")
    l0 = r.get("l0")
    norm, eps = r.get("norm"), r.get("eps")
    if norm == "box":
        if center is not None or l0 is not None:
            raise Invalid("a box region has no center and no L0 budget")
        words = "the box region"
    elif norm in ("linf", "l0") and center is not None and isinstance(eps, int) and eps >= 0:
        if norm == "linf":
            if l0 is not None:
                raise Invalid("an L-inf region has no L0 budget")
            ball = (np.maximum(center - eps, c.lo), np.minimum(center + eps, c.hi))
        else:
            if l0 != eps:
                raise Invalid("an L0 region's budget must be its eps")
            ball = (np.full(d, c.lo), np.full(d, c.hi))
        fixed, moved = (lo == center) & (hi == center), (lo == ball[0]) & (hi == ball[1])
        if not (fixed | moved).all():
            raise Invalid(f"the region is not the {norm} ball of eps {eps} around its input")
        words = (f"the {norm} ball of eps {eps} around the input (sha256 {sha256(center.tobytes())[:16]}) "
                 f"on {int(np.count_nonzero(lo != hi))} free features")
    else:
        raise Invalid("region norm must be linf, l0 (with input and integer eps) or box")
    allowed = sorted(set(_ints(spec.get("allowed"), None, "allowed").tolist()))
    if not allowed or allowed[0] < 0 or allowed[-1] >= ir.n_classes:
        raise Invalid(f"allowed classes must lie in 0..{ir.n_classes - 1}")
    return lo, hi, center, l0, allowed, f"every input of {words} is predicted in {allowed}"


def _leaves(tree: Any, lo: np.ndarray, hi: np.ndarray) -> list[tuple[str, np.ndarray, np.ndarray]]:
    """The leaves (kind, lo, hi) of a preorder split tree over the box [lo, hi]."""
    if not isinstance(tree, list):
        raise Invalid("the tree must be a list")
    out, stack, tokens = [], [(lo, hi)], iter(tree)
    for tok in tokens:
        if not stack:
            raise Invalid("the tree has tokens after its last leaf")
        a, b = stack.pop()
        if tok in ("B", "E", "P"):
            out.append((tok, a, b))
            continue
        if not (isinstance(tok, list) and len(tok) == 2 and all(type(v) is int for v in tok)
                and 0 <= tok[0] < len(lo)):
            raise Invalid(f"bad tree token {tok!r}")
        f, t = tok
        left_hi, right_lo = b.copy(), a.copy()
        left_hi[f], right_lo[f] = min(b[f], t - 1), max(a[f], t)
        stack += [(right_lo, b), (a, left_hi)]  # the left child is next in preorder
    if stack:
        raise Invalid("the tree ends before every node has its leaves")
    return out


def _enumerate(ir: IR, lo: np.ndarray, hi: np.ndarray, center: np.ndarray | None, l0: int | None,
               bad: list[int]) -> bool:
    """True if no input of the leaf box (within the L0 budget) is predicted in ``bad``: one
    input per threshold cell (the center's value where the cell holds it) through the IR."""
    thr = ir.coding.thresholds
    base = center.clip(lo, hi) if center is not None else lo.copy()
    choices = {}
    for f in range(len(lo)):
        ts = sorted(int(t) for t in thr[:, f] if lo[f] < t <= hi[f])
        if ts:
            cells = list(zip([int(lo[f])] + ts, [t - 1 for t in ts] + [int(hi[f])]))
            choices[f] = [min(max(int(base[f]), a), b) for a, b in cells]
    feats = sorted(choices)
    if np.prod([len(choices[f]) for f in feats], dtype=float) > ENUM_CELLS:
        raise Invalid(f"an E leaf has more than {ENUM_CELLS} cells")
    X = np.repeat(base[None], max(1, int(np.prod([len(choices[f]) for f in feats]))), axis=0)
    if feats:
        X[:, feats] = np.array(list(itertools.product(*(choices[f] for f in feats))), dtype=np.int64)
    if l0 is not None:
        X = X[np.count_nonzero(X != center, axis=1) <= l0]
    return not np.isin(ir.predict(X), bad).any()


def check(cert: str | os.PathLike, model: str | os.PathLike | None = None, engine: str = "auto") -> CheckReport:
    """Check certificate ``cert`` (see the module docstring); ``model`` overrides the model
    file named in it.  ``engine`` is dratify's: "auto" (Rust when installed), "python", "native".
    An unreadable file is a ``UserError``; a certificate that does not prove its claim gives
    ``valid=False`` and the reason."""
    t0 = time.perf_counter()
    report = CheckReport(False, "")
    try:
        zf = zipfile.ZipFile(cert)
    except (OSError, zipfile.BadZipFile, NotImplementedError, ValueError) as e:  # NotImplementedError: bad version
        raise UserError(f"{cert}: not a readable certificate ({e})") from None
    with zf:
        try:
            _check(zf, Path(cert), model, engine, report)
            report.valid, report.reason = True, "every leaf checked"
        except Invalid as e:
            report.reason = str(e)
        except (zipfile.BadZipFile, zlib.error, NotImplementedError, KeyError, EOFError, OSError) as e:  # bit rot
            report.reason = f"corrupt certificate ({type(e).__name__}: {e})"
    report.check_s = time.perf_counter() - t0
    return report


def drat_checker():
    """``dratify``, with its Rust engine registered when ``cdclkit-native`` is installed."""
    import dratify

    try:
        import cdclkit.native  # noqa: F401  (registers the Rust checker with dratify)
    except ImportError:
        pass
    return dratify


def _check(zf: zipfile.ZipFile, cert: Path, model_path: str | os.PathLike | None, engine: str,
           report: CheckReport) -> None:
    from ..model import load

    dratify = drat_checker()

    try:
        spec = json.loads(_member(zf, "certificate.json"))
    except ValueError as e:
        raise Invalid(f"certificate.json is not JSON ({e})") from None
    if not isinstance(spec, dict) or spec.get("format") != FORMAT or spec.get("version") != VERSION:
        raise Invalid(f"not a {FORMAT} version {VERSION}")
    m = spec.get("model") or {}
    path = Path(model_path) if model_path is not None else cert.parent / str(m.get("file", ""))
    if not path.is_file():
        raise UserError(f"model file {path} not found: pass the certified model with --model")
    report.model_sha256 = sha256(path.read_bytes())
    if report.model_sha256 != m.get("sha256"):
        raise Invalid(f"{path} is not the certified model (its SHA-256 differs)")
    ir = load(path).ir
    lo, hi, center, l0, allowed, report.claim = _claim(ir, spec)
    bad = [c for c in range(ir.n_classes) if c not in allowed]
    leaves = _leaves(spec.get("tree"), lo, hi)
    proofs = spec.get("proofs")
    if not isinstance(proofs, list) or len(proofs) != sum(k == "P" for k, _, _ in leaves):
        raise Invalid("the proofs do not match the P leaves of the tree")
    counts = dict.fromkeys(("B", "E", "P", "empty"), 0)
    boxes = [(a, b) for k, a, b in leaves if k == "B" and (a <= b).all()]
    for s in range(0, len(boxes), CHUNK):
        lo_b, hi_b = (np.stack(v) for v in zip(*boxes[s:s + CHUNK]))
        if not bounds_exclude(ir, lo_b, hi_b, bad).all():
            raise Invalid("a B leaf is not closed by interval bounds")
    p = 0
    for kind, a, b in leaves:
        empty = bool((a > b).any())  # a split outside the box leaves an empty child: vacuous
        counts["empty" if empty else kind] += 1
        if kind == "E" and not empty and not _enumerate(ir, a, b, center, l0, bad):
            raise Invalid("an E leaf holds an input predicted outside the allowed classes")
        if kind != "P":
            continue
        meta, p = proofs[p], p + 1
        if empty:
            continue
        text = query_cnf(ir, a, b, bad, center, l0).dimacs()
        if not isinstance(meta, dict) or sha256(text) != meta.get("cnf_sha256"):
            raise Invalid(f"P leaf {p - 1}: the proof was made for another formula than this leaf's CNF")
        proof = _member(zf, f"leaf{p - 1}.drat").decode("ascii", "replace")
        report.proof_bytes += len(proof)
        formula = dratify.parse_dimacs(text)
        report.cnf_clauses += len(formula.clauses)
        try:
            res = dratify.check_proof(formula, proof, engine=engine)
        except ValueError as e:
            raise Invalid(f"P leaf {p - 1}: malformed proof ({e})") from None
        report.engine = "native" if engine != "python" and dratify.native_available() else "python"
        if not res.ok:
            raise Invalid(f"P leaf {p - 1}: the DRAT check failed ({res.reason})")
    report.leaves = counts
