"""A model's vital statistics: layers, parameters, non-zero coefficients, storage."""
from __future__ import annotations

from typing import Any

import numpy as np

from .ir import Conv, Dense, MaxPool
from .model import Model


def unique_filters(A: np.ndarray) -> dict[str, Any]:
    """Distinct kh x kw filters among a conv layer's (out, in) slices A[o, c] (C_out*C_in of them).

    ``possible`` is 2^(kh*kw) for a binary layer, 3^(kh*kw) for a ternary one; ``negated_pairs``
    counts pairs {f, -f} of distinct non-zero filters that both occur (f and -f give negated
    responses, so one computation serves both); ``distinct_up_to_sign`` = distinct - negated_pairs.
    """
    kk = int(A.shape[2] * A.shape[3])
    rows = np.unique(A.reshape(-1, kk).astype(np.int8), axis=0)
    present = {r.tobytes() for r in rows}
    negated = sum(1 for r in rows if r.any() and (-r).tobytes() in present) // 2
    return {"total": int(A.shape[0] * A.shape[1]), "distinct": len(rows),
            "possible": (2 if np.all(A != 0) else 3) ** kk, "negated_pairs": negated,
            "distinct_up_to_sign": len(rows) - negated}


def summarize(model: Model) -> dict[str, Any]:
    """Layers with shapes, weight counts, non-zeros and storage (bits vs float32 bytes)."""
    ir = model.ir
    shapes = ir.shapes()
    layers, n_weights, nonzero, n_thresholds, n_stored = [], 0, 0, 0, 0  # rows; thresholds stored
    ternary = False
    for i, layer in enumerate(list(ir.layers) + [ir.output]):
        entry: dict[str, Any] = {"kind": getattr(layer, "kind", "output"), "in_shape": list(shapes[i])}
        if isinstance(layer, MaxPool):
            entry.update(size=layer.size, stride=layer.stride)
        else:
            w = int(layer.A.size)
            nz = int(np.count_nonzero(layer.A))
            entry.update(weights=w, nonzero=nz, neurons=int(layer.A.shape[0]))
            if isinstance(layer, Conv):
                entry.update(kernel=list(layer.A.shape[2:]), stride=layer.stride, padding=layer.padding,
                             thresholds="per position" if layer.k.ndim == 3 else "per filter",
                             filters=unique_filters(layer.A))
            n_weights += w
            nonzero += nz
            n_thresholds += int(layer.A.shape[0])
            n_stored += int(layer.k.size if isinstance(layer, (Dense, Conv)) else layer.offset.size)
            ternary |= bool((layer.A == 0).any()) and isinstance(layer, (Dense, Conv))
        entry["out_shape"] = list(shapes[i + 1]) if i + 1 < len(shapes) else [ir.n_classes]
        layers.append(entry)
    bits_per_weight = 2 if ternary else 1
    weight_bits = n_weights * bits_per_weight + 32 * n_stored
    float_bytes = 4 * n_weights + 4 * 4 * n_thresholds  # float32 weights + BN (mean, var, gamma, beta)
    c = ir.coding
    return {
        "arch": model.meta.get("arch"),
        "dataset": model.meta.get("dataset"),
        "input": {"feature_shape": list(c.feature_shape), "domain": [c.lo, c.hi], "levels": c.n_levels,
                  "thresholds": sorted({int(t) for t in np.unique(c.thresholds)})[:16], "bits": c.n_bits},
        "layers": layers,
        "parameters": n_weights,
        "nonzero": nonzero,
        "neurons": n_thresholds - ir.n_classes,
        "storage_bits": weight_bits,
        "storage_bytes": (weight_bits + 7) // 8,
        "float32_bytes": float_bytes,
        "compression": float_bytes / max((weight_bits + 7) // 8, 1),
    }


def verification_profile(model: Model, X: np.ndarray, eps: int, n_cnf: int = 10,
                         encoding: str = "totalizer") -> dict[str, Any]:
    """How hard robustness queries at ``eps`` (raw units, L-infinity) around inputs X (n, d) are.

    ``stable_fraction``: hidden neurons fixed by bound propagation over each eps-box, averaged
    over X; ``clauses``/``variables``: median CNF size (``encoding``) of the robustness query
    (prediction stays the model's own) over the first ``n_cnf`` inputs.
    """
    from .logic import encode, region, stable_fraction, to_cnf

    c = model.ir.coding
    X = model.check_inputs(X)
    lo, hi = np.maximum(X - eps, c.lo), np.minimum(X + eps, c.hi)
    sizes = []
    for x, y in zip(X[:n_cnf], model.predict(X[:n_cnf])):
        bad = [k for k in range(model.ir.n_classes) if k != y]
        clauses, n_vars = to_cnf(encode(model.ir, region.linf(c, x, eps), [[(0, bad)]]).formula, encoding)
        sizes.append((len(clauses), n_vars))
    return {"eps": int(eps), "inputs": len(X), "stable_fraction": stable_fraction(model.ir, lo, hi),
            "clauses": int(np.median([s[0] for s in sizes])), "variables": int(np.median([s[1] for s in sizes]))}
