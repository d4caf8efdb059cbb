"""A user's float network as plain numpy arrays (torch-free): a chain of layers.

``FloatNet`` is what ``bnnlogic.nn.floatnet`` reads from a ``.pt`` or ``.onnx`` file.  The
network takes *raw* features (the data set's integers, as floats) of shape
``(n, *feature_shape)``; any input normalisation is folded into the first layer.

Supported layers (PyTorch names): Linear, Conv2d, BatchNorm1d/2d, ReLU, MaxPool2d, Flatten.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

import numpy as np

from ..errors import UserError


@dataclass(frozen=True)
class Linear:
    """``z = x W^T + b``, W (out, in)."""

    W: np.ndarray
    b: np.ndarray
    op: str = field(default="linear", init=False)


@dataclass(frozen=True)
class Conv2d:
    """2-D convolution, W (out, in, kh, kw), zero padding ``padding`` on each side."""

    W: np.ndarray
    b: np.ndarray
    stride: int = 1
    padding: int = 0
    op: str = field(default="conv2d", init=False)


@dataclass(frozen=True)
class BatchNorm:
    """Inference-mode batch norm: ``gamma * (x - mean) / sqrt(var + eps) + beta`` per channel."""

    gamma: np.ndarray
    beta: np.ndarray
    mean: np.ndarray
    var: np.ndarray
    eps: float = 1e-5
    op: str = field(default="batchnorm", init=False)

    def scale_shift(self) -> tuple[np.ndarray, np.ndarray]:
        """(a, c) with BN(x) = a * x + c (float64)."""
        a = self.gamma.astype(np.float64) / np.sqrt(self.var.astype(np.float64) + self.eps)
        return a, self.beta.astype(np.float64) - a * self.mean.astype(np.float64)


@dataclass(frozen=True)
class ReLU:
    op: str = field(default="relu", init=False)


@dataclass(frozen=True)
class MaxPool2d:
    kernel: int
    stride: int
    op: str = field(default="maxpool2d", init=False)


@dataclass(frozen=True)
class Flatten:
    op: str = field(default="flatten", init=False)


FloatLayer = Union[Linear, Conv2d, BatchNorm, ReLU, MaxPool2d, Flatten]


@dataclass
class FloatNet:
    """A float network on raw features ``(n, *feature_shape)``; logits are its last output."""

    feature_shape: tuple[int, ...]
    layers: list[FloatLayer]

    def describe(self) -> str:
        parts = []
        for layer in self.layers:
            if isinstance(layer, Linear):
                parts.append(f"Linear({layer.W.shape[1]},{layer.W.shape[0]})")
            elif isinstance(layer, Conv2d):
                parts.append(f"Conv2d({layer.W.shape[1]},{layer.W.shape[0]},k{layer.W.shape[2]},s{layer.stride})")
            else:
                parts.append(type(layer).__name__)
        return "-".join(parts)

    def scale_input(self, s: float) -> "FloatNet":
        """The network applied to ``s * x``: the first Linear/Conv weight times s (pooling,
        flattening and zero padding commute with a positive scale)."""
        if s <= 0:
            raise UserError(f"input scale must be positive, got {s}")
        layers = list(self.layers)
        for i, layer in enumerate(layers):
            if isinstance(layer, Linear):
                layers[i] = Linear(layer.W * s, layer.b)
            elif isinstance(layer, Conv2d):
                layers[i] = Conv2d(layer.W * s, layer.b, layer.stride, layer.padding)
            elif not isinstance(layer, (Flatten, MaxPool2d)):
                raise UserError(f"cannot fold an input scale into {type(layer).__name__} (layer {i})")
            else:
                continue
            break
        return FloatNet(self.feature_shape, layers)

    def affine_chain(self) -> list[tuple[np.ndarray, np.ndarray]]:
        """The network as affine maps ``z_l = W_l a_{l-1} + b_l`` with ReLU between them.

        Only for fully connected networks: ``[Flatten] (Linear [BatchNorm] ReLU)* Linear
        [BatchNorm]``.  Batch norm is folded into the preceding Linear (float64).  Anything
        else (convolutions, pooling, two ReLUs in a row) is a ``UserError``.
        """
        chain: list[list[np.ndarray]] = []
        expect_relu = False
        for i, layer in enumerate(self.layers):
            if isinstance(layer, Flatten) and i == 0:
                continue
            if isinstance(layer, Linear) and not expect_relu:
                chain.append([layer.W.astype(np.float64), layer.b.astype(np.float64)])
                expect_relu = True
            elif isinstance(layer, BatchNorm) and expect_relu and chain:
                a, c = layer.scale_shift()
                chain[-1] = [chain[-1][0] * a[:, None], chain[-1][1] * a + c]
            elif isinstance(layer, ReLU) and expect_relu:
                expect_relu = False
            else:
                raise UserError(f"exact compilation supports fully connected ReLU networks "
                                f"([Flatten] (Linear [BatchNorm1d] ReLU)* Linear); layer {i} "
                                f"({type(layer).__name__}) of {self.describe()} does not fit")
        if not chain or not expect_relu:
            raise UserError(f"network {self.describe()} must end with a Linear layer (the logits)")
        return [(W, b) for W, b in chain]
