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

    def quant_chain(self) -> list["Affine | MaxPool2d"]:
        """The network as ``Affine`` maps (ReLU after each but the last) and max-pools.

        Accepted: ``[Flatten] (Linear|Conv2d [BatchNorm] [MaxPool2d]* ReLU [MaxPool2d]* [Flatten])*
        Linear [BatchNorm]`` (Flatten anywhere).  Batch norm is folded into the preceding
        Linear/Conv2d (float64).  A max-pool between an affine layer and its ReLU is moved after
        the ReLU (both orders give the same values: ReLU is nondecreasing), so the chain reads
        affine, ReLU, pools.  Convolutions with zero padding are refused (``UserError``): the
        IR's convolution has no padding.
        """
        ops: list[Affine | MaxPool2d] = []
        shape = tuple(int(s) for s in self.feature_shape)
        pending = pooled = False  # an affine layer awaits its ReLU; a pool came after it
        for i, layer in enumerate(self.layers):
            where = f"layer {i} ({type(layer).__name__}) of {self.describe()}"
            if isinstance(layer, Flatten):
                shape = (int(np.prod(shape)),)
            elif isinstance(layer, (Linear, Conv2d)):
                if pending:
                    raise UserError(f"exact compilation needs a ReLU between affine layers; {where} follows "
                                    "another Linear/Conv2d without one")
                W, b = layer.W.astype(np.float64), layer.b.astype(np.float64)
                if isinstance(layer, Conv2d):
                    if len(shape) != 3 or W.shape[1] != shape[0]:
                        raise UserError(f"{where} takes {W.shape[1]} channels, its input has shape {shape}")
                    if layer.padding:
                        raise UserError(f"{where} uses zero padding {layer.padding}; exact compilation supports "
                                        "only Conv2d(padding=0) (the IR's convolution has no padding): "
                                        "retrain without padding")
                    kh, kw = W.shape[2:]
                    shape = (W.shape[0], (shape[1] - kh) // layer.stride + 1, (shape[2] - kw) // layer.stride + 1)
                    if min(shape) < 1:
                        raise UserError(f"{where}: the kernel is larger than its input")
                    ops.append(Affine(W, b, int(layer.stride)))
                else:
                    if W.shape[1] != int(np.prod(shape)):
                        raise UserError(f"{where} takes {W.shape[1]} inputs, gets {int(np.prod(shape))} "
                                        f"(shape {shape})")
                    ops.append(Affine(W, b))
                    shape = (W.shape[0],)
                pending, pooled = True, False
            elif isinstance(layer, BatchNorm) and pending and not pooled:
                a, c = layer.scale_shift()
                last = ops[-1]
                if len(a) != last.W.shape[0]:
                    raise UserError(f"{where} normalises {len(a)} channels, the layer before has {last.W.shape[0]}")
                ops[-1] = Affine(last.W * a.reshape((-1,) + (1,) * (last.W.ndim - 1)), last.b * a + c, last.stride)
            elif isinstance(layer, ReLU) and pending:
                pending = False
            elif isinstance(layer, MaxPool2d) and len(shape) == 3:
                shape = (shape[0], (shape[1] - layer.kernel) // layer.stride + 1,
                         (shape[2] - layer.kernel) // layer.stride + 1)
                if min(shape) < 1:
                    raise UserError(f"{where}: the pool window is larger than its input")
                ops.append(layer)
                pooled = pooled or pending
            else:
                raise UserError(f"exact compilation supports chains of (Linear|Conv2d [BatchNorm] ReLU [MaxPool2d]) "
                                f"ending with a Linear layer; {where} does not fit here")
        if not ops or not pending or pooled or ops[-1].W.ndim != 2:
            raise UserError(f"network {self.describe()} must end with a Linear layer (the logits)")
        return ops


@dataclass(frozen=True)
class Affine:
    """A Linear (W (out, in)) or Conv2d (W (out, in, kh, kw), ``stride``, no padding) with its
    batch norm folded in; float64."""

    W: np.ndarray
    b: np.ndarray
    stride: int = 1

    @property
    def conv(self) -> bool:
        return self.W.ndim == 4
