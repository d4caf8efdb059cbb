"""Inference on the IR.  (Placeholder: the reference semantics; the bit-packed engine follows.)"""
from __future__ import annotations

import numpy as np

from ..ir import IR


class Engine:
    """Runs an IR on raw features (n, d) int64."""

    def __init__(self, ir: IR) -> None:
        self.ir = ir

    def scores(self, X: np.ndarray) -> np.ndarray:
        return self.ir.scores(X)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return np.argmax(self.scores(X), axis=1)
