"""Random tiny queries and their brute-force oracle, shared by the property-based tests
(tests/test_reliability.py, a few hundred cases) and the long run (benchmarks/reliability.py).

``random_case(seed)`` draws a network (dense, conv, max-pool, ternary weights, 1-3 input
levels), an input, a region (L-inf, L0, a feature mask, an explicit box) and a property (a
set of allowed classes), or a second network for a miter.  ``check_case(case, parts)`` runs
the parts asked for and returns the disagreements with enumeration of every raw input of the
region (an empty list: all agree):

    backends   every backend x encoding (bounds-first and naive), and verify's portfolio
    radius     ``robustness_radius`` against the smallest eps with a bad input
    explain    an abductive and a contrastive explanation: sufficient / a real witness, and
               subset-minimal, re-checked by enumeration
    count      ``count`` (enumeration and Ganak) and the compiled BDD's count
    certify    a certificate of every robust verdict, checked by ``bnnlogic.trusted``
    miter      ``equivalent`` of two networks

Padded convolutions (issue 23a) are drawn once the IR has them: see ``PADDING``.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bnnlogic.ir import Conv
from bnnlogic.logic import BACKENDS, Query, region
from bnnlogic.logic.region import Region
from tests.helpers import box_inputs, random_ir

MAX_INPUTS = 1 << 12  # raw inputs of a region's box (else it is shrunk) and of the radius's whole domain
PARTS = ("backends", "radius", "explain", "count", "certify", "miter")
#: HOOK (issue 23a, conv padding): when ``Conv`` takes ``padding``, draw it here and in
#: ``random_ir``; the reference CNF (bnnlogic.trusted.cnf) already pads with FALSE bits.
PADDING = "padding" in getattr(Conv, "__dataclass_fields__", {})


@dataclass
class Case:
    seed: int
    kind: str
    net: dict
    x: np.ndarray
    R: Region
    allowed: list[int]


def random_case(seed: int) -> Case:
    rng = np.random.default_rng(seed)
    kind = str(rng.choice(["dense", "dense", "conv", "conv-pool", "ternary"]))
    levels, hi = int(rng.integers(1, 4)), int(rng.integers(3, 6))
    net = dict(levels=levels, hi=hi, n_classes=int(rng.integers(2, 5)), p_zero=0.5 if kind == "ternary" else 0.2)
    if kind.startswith("conv"):
        net.update(image=(1, 3, int(rng.integers(3, 5))), conv=((2, 2, 1),), hidden=(3,), hi=min(hi, 3),
                   levels=min(levels, 2), pool=2 if kind == "conv-pool" else 0)
    else:
        net.update(n_features=int(rng.integers(3, 6)), hidden=tuple(int(h) for h in rng.integers(3, 7, rng.integers(1, 3))))
    ir = random_ir(seed, **net)
    c = ir.coding
    x = rng.integers(c.lo, c.hi + 1, c.n_features)
    shape = str(rng.choice(["linf", "linf", "l0", "mask", "box"]))
    eps = int(rng.integers(0, 3))
    if shape == "linf":
        R = region.linf(c, x, eps)
    elif shape == "l0":
        R = region.l0(c, x, min(eps, c.n_features))
    elif shape == "mask":
        R = region.linf(c, x, max(eps, 1), rng.random(c.n_features) < 0.6)
    else:
        a, b = rng.integers(c.lo, c.hi + 1, (2, c.n_features))
        R = region.box(c, np.minimum(a, b), np.maximum(a, b))
    if np.prod(R.hi - R.lo + 1, dtype=float) > MAX_INPUTS:  # brute force stays cheap: the L-inf ball of eps 1 on a few features
        R = region.linf(c, x, 1, np.arange(c.n_features) < 4)
    y = int(ir.predict(x[None])[0])
    allowed = [y] if rng.random() < 0.6 else sorted(set(rng.choice(ir.n_classes, int(rng.integers(1, ir.n_classes)))))
    return Case(seed, kind, net, x, R, [int(a) for a in allowed])


def _inputs(R: Region) -> np.ndarray:
    X = box_inputs(R.lo, R.hi)
    return X[R.contains(X)]


def check_case(case: Case, parts=PARTS, backends=BACKENDS) -> list[str]:
    """Disagreements of the asked ``parts`` with brute force (see the module docstring)."""
    from bnnlogic import Model

    ir = random_ir(case.seed, **case.net)
    R, allowed = case.R, case.allowed
    bad = [c for c in range(ir.n_classes) if c not in allowed]
    X = _inputs(R)
    pred = ir.predict(X)
    robust = not np.isin(pred, bad).any()
    out: list[str] = []
    model = Model(ir)
    if "backends" in parts:
        for b in backends:
            for use_bounds in (True, False):
                ans = Query(ir, R, [[(0, bad)]], b, use_bounds).solve() if bad else None
                if ans is not None and ans.status != ("unsat" if robust else "sat"):
                    out.append(f"{b} bounds={use_bounds}: {ans.status}, brute force robust={robust}")
        from bnnlogic.verification import verify_region

        r = verify_region(model, R, allowed, allowed[0])
        if r.status != ("robust" if robust else "counterexample"):
            out.append(f"verify auto ({r.backend}): {r.status}, brute force robust={robust}")
    if "radius" in parts and R.norm == "linf" and region.domain(ir.coding).size() <= MAX_INPUTS:
        from bnnlogic.verification import robustness_radius

        y = int(ir.predict(case.x[None])[0])
        span = ir.coding.hi - ir.coding.lo
        first = next((e for e in range(span + 1)
                      if (ir.predict(_inputs(region.linf(ir.coding, case.x, e))) != y).any()), None)
        rr = robustness_radius(model, case.x)
        if rr.radius_counterexample != first or rr.radius_robust != (span if first is None else first - 1):
            out.append(f"radius {rr.radius_robust}/{rr.radius_counterexample}, brute force first bad eps {first}")
    if "explain" in parts and R.norm == "linf" and region.linf(ir.coding, case.x, R.eps).size() <= MAX_INPUTS:
        out += _explanations(ir, case.x, region.linf(ir.coding, case.x, R.eps))
    if "count" in parts and R.l0 is None:
        from bnnlogic.compile import compile_bdd
        from bnnlogic.count import count

        want = int(np.isin(pred, allowed).sum())
        for method in ("enumerate", "ganak"):
            got = count(ir, R, allowed, method).count
            if got != want:
                out.append(f"count {method}: {got}, enumeration {want}")
        got = compile_bdd(ir, R).count(allowed)
        if got != want:
            out.append(f"bdd count: {got}, enumeration {want}")
    if "certify" in parts and robust and bad:
        from bnnlogic.certify import make_certificate

        with tempfile.TemporaryDirectory() as tmp:
            model.save(Path(tmp) / "m.bnn")
            c = make_certificate(Model.load(Path(tmp) / "m.bnn"), R, allowed, Path(tmp) / "c.cert.zip")
            if c.status != "certified":
                out.append(f"certificate: {c.status} ({c.reason})")
    if "miter" in parts:
        from bnnlogic.verification import equivalent

        other = random_ir(case.seed + 1, **case.net)
        if other.coding.thresholds.shape == ir.coding.thresholds.shape:
            other = type(other)(ir.coding, other.layers, other.output)  # same inputs, other weights
            same = bool((other.predict(X) == pred).all())
            e = equivalent(model, Model(other), R)
            if e.status != ("equivalent" if same else "different"):
                out.append(f"miter: {e.status}, brute force same={same}")
    return out


def _explanations(ir, x: np.ndarray, R: Region) -> list[str]:
    """An AXp must be sufficient and subset-minimal, a CXp's witness real and the CXp minimal,
    all by enumeration over R."""
    from bnnlogic.explain import Explainer

    y = int(ir.predict(x[None])[0])
    X = _inputs(R)
    pred = ir.predict(X)

    def sufficient(S) -> bool:  # fixing S to x entails y on R
        keep = (X[:, list(S)] == x[list(S)]).all(axis=1)
        return bool((pred[keep] == y).all())

    out = []
    ex = Explainer(ir, x, R.eps)
    try:
        a = ex.abductive()
        if not sufficient(a.features) or any(sufficient([f for f in a.features if f != g]) for g in a.features):
            out.append(f"AXp {a.features} not sufficient and subset-minimal")
        c = ex.contrastive()
        rest = [f for f in range(len(x)) if f not in (c.features if c else [])]
        if c is None:
            if not sufficient([]):
                out.append("no CXp although the prediction can change")
        elif sufficient(rest) or any(not sufficient(rest + [g]) for g in c.features):
            out.append(f"CXp {c.features} not a subset-minimal contrastive set")
    finally:
        ex.close()
    return out
