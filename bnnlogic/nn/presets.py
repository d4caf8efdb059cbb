"""Training presets for verification-friendly BNNs (``bnnlogic train --preset NAME``).

    plain                   binary weights {-1,+1}
    ternary                 ternary weights, zero band = the 60th percentile of |w| per layer
    l1-ternary              ternary with a fixed zero band |w| <= 0.03, plus L1 on latent weights
    stablesign-ternary      ternary + StableSign at the training eps
    stablesign-l1-ternary   l1-ternary + StableSign at the training eps
    stablesign-sparse       ternary with a fixed fraction of weights kept per layer, by rank
                            (hidden layers 5%, 20%, 30%, 50%, 50%...; output all), reached by
                            a cubic ramp over the first half of training, + StableSign

The zero band of ``l1-ternary`` is fixed, so the L1 term (which pulls weights that do not
help the loss into the band) decides how many coefficients vanish; with a percentile band
the fraction of zeros is fixed instead.  ``stablesign-sparse`` fixes it per layer: the
first layer (784 pixels x 3 thresholds in, most of the weights) keeps 5%, so the
coefficients fall ~12x on mlp-large with the accuracy of the plain net (docs: training).

StableSign's eps is in raw feature units.  Unless given, it is scaled to the data's range:
``default_stable_eps(lo, hi) = max(1, round(0.02 * (hi - lo)))``, 5 on pixels 0..255 (the
setting the presets were tuned with) and 1 on sklearn digits' 0..16, where a fixed 5 would be
31% of the range and cost accuracy.  ``Preset.for_range`` fills it in; the model's metadata
records the value and the rule (``preset_settings["stable_eps"]``, ``["stable_eps_rule"]``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any

from ..errors import UserError
from .regularizers import L1, StableSign

PERCENTILE = 60.0
DELTA = 0.03
L1_LAMBDA = 1e-5
STABLE_LAMBDA = 0.5
STABLE_EPS_FRACTION = 0.02  # StableSign's default eps: this fraction of the feature range (hi - lo), at least 1
KEEP = [0.05, 0.2, 0.3, 0.5]  # stablesign-sparse: fraction kept per hidden layer (deeper: the last)
RAMP = 0.5  # stablesign-sparse: fraction of training over which the sparsity ramps in


@dataclass(frozen=True)
class Preset:
    """Weight quantization plus regularizer strengths (0 = off); stored in the model's metadata."""

    name: str
    quant: dict = field(default_factory=lambda: {"mode": "binary"})
    l1: float = 0.0
    stable: float = 0.0
    stable_eps: float | None = None  # raw units; None with ``stable`` > 0: scaled to the data (``for_range``)
    ramp: float = 0.0  # > 0: ramp a per-layer ``keep`` in over this fraction of training
    stable_eps_rule: str | None = None  # how a default eps was derived (None: given by the user)

    def for_range(self, lo: int, hi: int) -> "Preset":
        """This preset with StableSign's eps filled in for raw features in ``lo..hi`` when none
        was given (``default_stable_eps``); unchanged otherwise."""
        if not self.stable or self.stable_eps is not None:
            return self
        return replace(self, stable_eps=float(default_stable_eps(lo, hi)),
                       stable_eps_rule=f"max(1, round({STABLE_EPS_FRACTION} * ({hi} - {lo})))")

    def regularizers(self) -> list:
        if self.stable and self.stable_eps is None:
            raise ValueError("StableSign's eps is unset: call Preset.for_range(lo, hi) first")
        regs: list = []
        if self.l1:
            regs.append(L1(self.l1))
        if self.stable:
            regs.append(StableSign(self.stable, self.stable_eps))
        return regs

    def settings(self) -> dict[str, Any]:
        return asdict(self)


def default_stable_eps(lo: int, hi: int) -> int:
    """StableSign's eps for raw features in ``lo..hi`` when the user gives none: 2% of the
    range, rounded, at least 1 (pixels 0..255: 5; digits 0..16: 1)."""
    return max(1, int(round(STABLE_EPS_FRACTION * (int(hi) - int(lo)))))


def _ternary_pct() -> dict:
    return {"mode": "ternary", "percentile": PERCENTILE}


def _ternary_fixed() -> dict:
    return {"mode": "ternary", "delta": DELTA}


def get_preset(name: str, stable_eps: float | None = None) -> Preset:
    """The preset called ``name``; ``stable_eps`` (raw units) sets StableSign's eps, else it is
    left for ``Preset.for_range`` to scale to the data."""
    if stable_eps is not None and stable_eps < 0:
        raise UserError(f"--stable-eps must be >= 0, got {stable_eps}")
    eps = None if stable_eps is None else float(stable_eps)
    presets = {
        "plain": lambda: Preset("plain"),
        "ternary": lambda: Preset("ternary", _ternary_pct()),
        "l1-ternary": lambda: Preset("l1-ternary", _ternary_fixed(), l1=L1_LAMBDA),
        "stablesign-ternary": lambda: Preset("stablesign-ternary", _ternary_pct(), stable=STABLE_LAMBDA,
                                             stable_eps=eps),
        "stablesign-l1-ternary": lambda: Preset("stablesign-l1-ternary", _ternary_fixed(), l1=L1_LAMBDA,
                                                stable=STABLE_LAMBDA, stable_eps=eps),
        "stablesign-sparse": lambda: Preset("stablesign-sparse", {"mode": "ternary", "keep": KEEP, "keep_output": 1.0},
                                            stable=STABLE_LAMBDA, stable_eps=eps, ramp=RAMP),
    }
    if name not in presets:
        raise UserError(f"unknown preset {name!r}; use one of {', '.join(PRESETS)}")
    if stable_eps is not None and "stablesign" not in name:
        raise UserError(f"--stable-eps only applies to the stablesign presets, not {name!r}")
    return presets[name]()


PRESETS = ("plain", "ternary", "l1-ternary", "stablesign-ternary", "stablesign-l1-ternary", "stablesign-sparse")
