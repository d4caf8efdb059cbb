"""Score-sum ensembles of dense BNNs, as one exact IR.

Given K IRs that read the same input coding, have only dense hidden layers, the same depth
L >= 1 and the same output scale s, the IR

    layer 1      A = [A_1^(1); ...; A_1^(K)]              (stacked: every member reads the input bits)
    layer l > 1  A = blockdiag(A_l^(1), ..., A_l^(K))     (each member reads its own neurons)
    k            the members' thresholds, concatenated
    output       A = [A_out^(1) | ... | A_out^(K)],  scale s,  offset = sum_i offset^(i)

computes score_c(x) = sum_i score_c^(i)(x) for every raw input x, exactly: the members' neurons
are computed side by side, unchanged, and the output layer adds their contributions.  Weights
stay in {-1, 0, +1}, so the sum is an ordinary IR and everything in bnnlogic (engine, SAT
encodings, proofs) applies to it.  An ensemble's margin m = score_1 - score_0 is the sum of the
members' margins: averaging out their separate mistakes is what makes a calibrated threshold
on it less dependent on one member's extreme errors (``bnnlogic.cascade``).
"""
from __future__ import annotations

import numpy as np

from .ir import IR, Dense, Output
from .model import Model


def _block_diag(blocks: list[np.ndarray]) -> np.ndarray:
    rows, cols = sum(b.shape[0] for b in blocks), sum(b.shape[1] for b in blocks)
    out = np.zeros((rows, cols), dtype=blocks[0].dtype)
    r = c = 0
    for b in blocks:
        out[r:r + b.shape[0], c:c + b.shape[1]] = b
        r, c = r + b.shape[0], c + b.shape[1]
    return out


def score_sum(irs: list[IR]) -> IR:
    """The IR whose integer scores are the sum of the members' scores (see the module docstring).

    Raises ``ValueError`` if the members do not share the input coding, depth, classes and output
    scale, or have a layer other than ``Dense`` or no hidden layer."""
    if not irs:
        raise ValueError("an ensemble needs at least one member")
    first = irs[0]
    c0 = first.coding
    for ir in irs:
        c = ir.coding
        if (c.feature_shape, c.lo, c.hi) != (c0.feature_shape, c0.lo, c0.hi) or not np.array_equal(
                c.thresholds, c0.thresholds):
            raise ValueError("ensemble members must share the input coding")
        if len(ir.layers) != len(first.layers) or not ir.layers or not all(isinstance(l, Dense) for l in ir.layers):
            raise ValueError("ensemble members must be dense networks of the same depth (at least one hidden layer)")
        if ir.output.scale != first.output.scale or ir.n_classes != first.n_classes:
            raise ValueError("ensemble members must share the number of classes and the output scale")
    layers = []
    for depth, members in enumerate(zip(*(ir.layers for ir in irs))):
        A = np.vstack([m.A for m in members]) if depth == 0 else _block_diag([m.A for m in members])
        layers.append(Dense(A, np.concatenate([m.k for m in members]).astype(np.int64)))
    out = Output(np.hstack([ir.output.A for ir in irs]), first.output.scale,
                 np.sum([ir.output.offset for ir in irs], axis=0).astype(np.int64))
    ir = IR(c0, tuple(layers), out)
    ir.validate()
    return ir


def ensemble(models: list[Model], meta: dict | None = None) -> Model:
    """``score_sum`` of the models' IRs as a ``Model`` (no torch state: it is not one torch network).
    Its metadata names the members (``ensemble``: count, architecture, test accuracies) and adds ``meta``."""
    m0 = models[0].meta
    info = {"members": len(models), "member_arch": m0.get("arch"),
            "member_test_accuracy": [m.meta.get("test_accuracy") for m in models]}
    base = {k: m0[k] for k in ("dataset", "split", "classes") if k in m0}
    return Model(score_sum([m.ir for m in models]),
                 dict(base, arch=f"{len(models)} x {m0.get('arch')}", ensemble=info, **(meta or {})))
