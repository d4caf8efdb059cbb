"""Architecture and input-coding spec strings (pure Python, no torch).

Architectures::

    mlp:500,300,200,100            dense hidden layers (the output layer is added)
    cnn:c16k4s2,c32k4s2,d100       conv (c<out>k<kernel>s<stride>[p<padding>]), maxpool (p<size>), dense (d<n>)
    cnn:c16k4s2p1,c32k4s2p1,d100   padded convs: the +-1 activations padded with -1 (bit 0, see docs/ir.md)
    mlp-small | mlp-large | conv-small | conv-small-padded   the shapes of the SAT-friendly BNN and EEV work

Input codings (thresholds on raw features, b = [x >= tau])::

    threshold:128                  one bit per feature
    thermometer:64,128,192         one bit per threshold, increasing
    levels:3                       thermometer with evenly spaced thresholds in the domain
    quantized:11                   the input quantizer of the EEV work: x / (hi - lo) rounded to
                                   11 values (step 0.1), i.e. a thermometer with thresholds at
                                   the rounding midpoints, and the first layer's weight shared
                                   by all levels of a feature (``tied_levels``), so the network
                                   sees sum_m w (2 b_m - 1) = w (2q - M): the quantized value q
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import UserError

ALIASES = {
    "mlp-small": "mlp:200,100,100,100",
    "mlp-large": "mlp:500,300,200,100",
    "conv-small": "cnn:c16k4s2,c32k4s2,d100",
    "conv-small-padded": "cnn:c16k4s2p1,c32k4s2p1,d100",  # conv-small as the EEV work pads it
    "mlp-tiny": "mlp:64,32",
}


@dataclass(frozen=True)
class LayerSpec:
    """One hidden layer: kind in {'dense', 'conv', 'pool'}; size = units/channels/pool size."""

    kind: str
    size: int
    kernel: int = 0
    stride: int = 1
    padding: int = 0

    def out_hw(self, h: int, w: int) -> tuple[int, int]:
        """Output height and width of this conv or pool layer on an (h, w) input."""
        p = 2 * self.padding
        return (h + p - self.kernel) // self.stride + 1, (w + p - self.kernel) // self.stride + 1


def parse_arch(spec: str) -> list[LayerSpec]:
    """Parse an architecture spec into hidden-layer specs."""
    full = ALIASES.get(spec, spec)
    how = f"bad architecture {spec!r}: use e.g. mlp:500,300,200,100 or cnn:c16k4s2,c32k4s2,d100 or one of {', '.join(ALIASES)}"
    kind, _, body = full.partition(":")
    if kind not in ("mlp", "cnn") or not body:
        raise UserError(how)
    layers = []
    for tok in body.split(","):
        tok = tok.strip()
        if kind == "mlp" and tok.isdigit():
            tok = "d" + tok
        if m := re.fullmatch(r"d(\d+)", tok):
            layers.append(LayerSpec("dense", int(m[1])))
        elif kind == "cnn" and (m := re.fullmatch(r"c(\d+)k(\d+)(?:s(\d+))?(?:p(\d+))?", tok)):
            layers.append(LayerSpec("conv", int(m[1]), int(m[2]), int(m[3] or 1), int(m[4] or 0)))
        elif kind == "cnn" and (m := re.fullmatch(r"p(\d+)", tok)):
            layers.append(LayerSpec("pool", int(m[1]), int(m[1]), int(m[1])))
        else:
            raise UserError(how)
        if layers[-1].size < 1 or (layers[-1].kind != "dense" and layers[-1].stride < 1):
            raise UserError(how)
    if any(a.kind == "dense" and b.kind != "dense" for a, b in zip(layers, layers[1:])):
        raise UserError(f"bad architecture {spec!r}: conv and pool layers must come before dense ones")
    return layers


def parse_coding(spec: str, lo: int, hi: int) -> list[int]:
    """Parse an input-coding spec into increasing integer thresholds within (lo, hi]."""
    how = f"bad input coding {spec!r}: use threshold:T, thermometer:T1,T2,..., levels:M or quantized:N"
    kind, _, body = spec.partition(":")
    try:
        if kind == "quantized":
            n = int(body)
            if n < 2 or n - 1 > hi - lo:
                raise UserError(f"quantized:{n} must be between 2 and {hi - lo + 1} for features in [{lo}, {hi}]")
            # q = round((x - lo) (n-1) / (hi - lo)) >= m  iff  x >= lo + (m - 1/2)(hi - lo)/(n-1), rounding
            # halves up: the smallest such integer x, exactly (integer ceil of a rational)
            taus = [lo + -((-(2 * m - 1) * (hi - lo)) // (2 * (n - 1))) for m in range(1, n)]
        elif kind == "levels":
            m = int(body)
            if m < 1 or m > hi - lo:
                raise UserError(f"levels:{m} must be between 1 and {hi - lo} for features in [{lo}, {hi}]")
            taus = [lo + round((hi - lo + 1) * (i + 1) / (m + 1)) for i in range(m)]
        elif kind in ("threshold", "thermometer"):
            taus = [int(t) for t in body.split(",")]
            if kind == "threshold" and len(taus) != 1:
                raise UserError(how)
        else:
            raise UserError(how)
    except ValueError:
        raise UserError(how) from None
    if any(b <= a for a, b in zip(taus, taus[1:])) or taus[0] <= lo or taus[-1] > hi:
        raise UserError(f"input coding {spec!r}: thresholds must increase strictly and lie in ({lo}, {hi}]")
    return taus


def tied_levels(spec: str) -> bool:
    """True for codings whose levels share one first-layer weight per feature (``quantized:N``)."""
    return spec.partition(":")[0] == "quantized"
