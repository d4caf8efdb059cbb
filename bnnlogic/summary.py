"""A model's vital statistics: layers, parameters, non-zero coefficients, storage."""
from __future__ import annotations

from typing import Any

import numpy as np

from .ir import Conv, Dense, MaxPool
from .model import Model


def summarize(model: Model) -> dict[str, Any]:
    """Layers with shapes, weight counts, non-zeros and storage (bits vs float32 bytes)."""
    ir = model.ir
    shapes = ir.shapes()
    layers, n_weights, nonzero, n_thresholds = [], 0, 0, 0
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
                entry.update(kernel=list(layer.A.shape[2:]), stride=layer.stride)
            n_weights += w
            nonzero += nz
            n_thresholds += int(layer.A.shape[0])
            ternary |= bool((layer.A == 0).any()) and isinstance(layer, (Dense, Conv))
        entry["out_shape"] = list(shapes[i + 1]) if i + 1 < len(shapes) else [ir.n_classes]
        layers.append(entry)
    bits_per_weight = 2 if ternary else 1
    weight_bits = n_weights * bits_per_weight + 32 * n_thresholds
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
