"""The exact integer form of a trained BNN (the IR), with its reference semantics.

Every consumer (inference engine, SAT encodings, explanations, counting) reads this,
never the torch model. All values are integers; nothing here rounds.

Semantics (see ``docs/ir.md`` for the file format)::

    raw features x in Z^d, lo <= x_f <= hi              (feature_shape, e.g. (784,) or (1,28,28))
    input bits   b[m, f] = [x_f >= tau[m, f]]           m = 0..M-1, tau strictly increasing in m
                 laid out as (M*C, H, W) for images (level-major channels) or (M*d,) for vectors
    dense        t_i = [ sum_j A_ij * u_j >= k_i ]       A_ij in {-1, 0, +1}, u in {0,1}^n (flattened)
    conv         t[o,y,x] = [ sum_{c,i,j} A[o,c,i,j] * u'[c, y*s+i, x*s+j] >= k[o,y,x] ]
                 u' = u zero-padded by p on each side (padded bits are 0); k per filter (C_out,)
                 or per output position (C_out, Ho, Wo)
    maxpool      t[c,y,x] = OR_{i,j < size} u[c, y*s+i, x*s+j]
    output       score_c = scale * sum_j A_cj * u_j + offset_c   (integers, scale > 0)
                 prediction = the smallest c with a maximal score (ties go to the lower class)

A property's "prediction in S" has two tie rules (``TIES``): ``low`` is the prediction above;
``adversarial`` counts an input for S as soon as some class of S has a maximal score (a wrong
class that ties the true one is a counterexample, the usual rule of verification benchmarks).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import cached_property
from typing import Union

import numpy as np

from .errors import UserError


def free_thresholds(thresholds: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """(M, d) bool: lo_f < t_mf <= hi_f, i.e. [x_f >= t_mf] is 0 at x_f = lo_f and 1 at x_f = hi_f.

    Broadcasts: thresholds (M, *s) against boxes lo, hi of shape s (e.g. (M, 1, d) against a
    batch of boxes (n, d))."""
    return (thresholds > np.asarray(lo)[None]) & (thresholds <= np.asarray(hi)[None])


@dataclass(frozen=True)
class InputCoding:
    """Integer thresholds on raw features: ``b[m, f] = [x_f >= thresholds[m, f]]``.

    ``thresholds`` has shape (M, d) with d = prod(feature_shape); M = 1 is a plain threshold,
    M > 1 a thermometer code (thresholds strictly increasing in m, so b[m+1] implies b[m]).
    """

    feature_shape: tuple[int, ...]
    lo: int
    hi: int
    thresholds: np.ndarray

    @property
    def n_features(self) -> int:
        return math.prod(self.feature_shape)

    @property
    def n_levels(self) -> int:
        return int(self.thresholds.shape[0])

    @property
    def bit_shape(self) -> tuple[int, ...]:
        fs = self.feature_shape
        return (self.n_levels * fs[0],) + tuple(fs[1:])

    @property
    def n_bits(self) -> int:
        return self.n_levels * self.n_features

    def encode(self, X: np.ndarray) -> np.ndarray:
        """Raw features (n, d) -> input bits (n, *bit_shape) as uint8 in {0, 1}."""
        X = np.asarray(X).reshape(len(X), 1, self.n_features)
        bits = (X >= self.thresholds[None]).astype(np.uint8)  # (n, M, d)
        return bits.reshape((len(X),) + self.bit_shape)

    def free(self, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """(M, d) bool: bit (m, f) takes both values over the box lo <= x <= hi ((d,) each)."""
        return free_thresholds(self.thresholds, lo, hi)

    def bit_feature(self, bit: int) -> tuple[int, int]:
        """Flat bit index -> (level m, flat feature index f)."""
        return divmod(int(bit), self.n_features)


@dataclass(frozen=True)
class Dense:
    """Threshold neurons ``t_i = [sum_j A[i, j] u_j >= k_i]`` over the flattened input u."""

    A: np.ndarray  # int8 (n_out, n_in)
    k: np.ndarray  # int64 (n_out,)
    kind: str = field(default="dense", init=False)

    @property
    def n_in(self) -> int:
        return int(self.A.shape[1])

    @cached_property
    def nonzero(self) -> int:
        """Number of non-zero weights (counted once; A is never modified)."""
        return int(np.count_nonzero(self.A))

    def out_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (int(self.A.shape[0]),)

    def apply(self, u: np.ndarray) -> np.ndarray:
        s = u.reshape(len(u), -1).astype(np.int32) @ self.A.T.astype(np.int32)
        return (s >= self.k).astype(np.uint8)

    def flat_k(self, in_shape: tuple[int, ...]) -> np.ndarray:
        """The threshold of every neuron (n_out,)."""
        return self.k


@dataclass(frozen=True)
class Conv:
    """Binary convolution over the input zero-padded by ``padding`` bits on each side:
    ``t[o,y,x] = [sum A[o,c,i,j] u'[c,y*s+i,x*s+j] >= k[o,y,x]]``, u' the padded input (its
    padded bits are 0).  ``k`` is per filter (C_out,) or per output position (C_out, Ho, Wo)."""

    A: np.ndarray  # int8 (C_out, C_in, kh, kw)
    k: np.ndarray  # int64 (C_out,) or (C_out, Ho, Wo)
    stride: int
    padding: int = 0
    kind: str = field(default="conv", init=False)

    def out_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        _, h, w = in_shape
        _, _, kh, kw = self.A.shape
        p = 2 * self.padding
        return (int(self.A.shape[0]), (h + p - kh) // self.stride + 1, (w + p - kw) // self.stride + 1)

    @property
    def k_grid(self) -> np.ndarray:
        """k as (C_out, 1, 1) or (C_out, Ho, Wo): broadcasts against an output (C_out, Ho, Wo)."""
        return self.k if self.k.ndim == 3 else self.k.reshape(-1, 1, 1)

    def flat_k(self, in_shape: tuple[int, ...]) -> np.ndarray:
        """The threshold of every neuron, flat in (o, y, x) order (C_out*Ho*Wo,)."""
        return np.broadcast_to(self.k_grid, self.out_shape(in_shape)).reshape(-1)

    def windows(self, u: np.ndarray, fill: int = 0) -> np.ndarray:
        """(n, C, H, W) -> receptive fields (n, C, Ho, Wo, kh, kw) of u padded with ``fill``."""
        kh, kw = self.A.shape[2:]
        if self.padding:
            p = self.padding
            u = np.pad(u, ((0, 0), (0, 0), (p, p), (p, p)), constant_values=fill)
        win = np.lib.stride_tricks.sliding_window_view(u, (kh, kw), axis=(2, 3))
        return win[:, :, :: self.stride, :: self.stride]

    def apply(self, u: np.ndarray) -> np.ndarray:
        s = np.einsum("nchwij,ocij->nohw", self.windows(u).astype(np.int32), self.A.astype(np.int32))
        return (s >= self.k_grid[None]).astype(np.uint8)


@dataclass(frozen=True)
class MaxPool:
    """Max-pool of binary values is an OR: ``t[c,y,x] = OR_{i,j<size} u[c,y*s+i,x*s+j]``."""

    size: int
    stride: int
    kind: str = field(default="maxpool", init=False)

    def out_shape(self, in_shape: tuple[int, ...]) -> tuple[int, ...]:
        c, h, w = in_shape
        return (c, (h - self.size) // self.stride + 1, (w - self.size) // self.stride + 1)

    def apply(self, u: np.ndarray) -> np.ndarray:
        win = np.lib.stride_tricks.sliding_window_view(u, (self.size, self.size), axis=(2, 3))
        return win[:, :, :: self.stride, :: self.stride].max(axis=(4, 5))


Layer = Union[Dense, Conv, MaxPool]

#: tie rules of "prediction in S" (see the module docstring)
TIES = ("low", "adversarial")


def check_ties(ties: str) -> str:
    """``ties`` if it names a tie rule, else ``UserError``."""
    if ties not in TIES:
        raise UserError(f"unknown tie rule {ties!r}; use {' or '.join(TIES)}")
    return ties


def in_classes(scores: np.ndarray, mask: np.ndarray, ties: str = "low") -> np.ndarray:
    """(n,) bool: the prediction of each row of integer ``scores`` (n, C) lies in the classes of
    ``mask`` ((C,) bool).  ``low``: the first maximal class is in the mask; ``adversarial``:
    some class of the mask has a maximal score (``max_{mask} >= max_{not mask}``)."""
    scores, mask = np.asarray(scores), np.asarray(mask, dtype=bool)
    if check_ties(ties) == "low" or not mask.any() or mask.all():
        return mask[np.argmax(scores, axis=1)]
    return scores[:, mask].max(axis=1) >= scores[:, ~mask].max(axis=1)


@dataclass(frozen=True)
class Output:
    """Exact integer scores ``score_c = scale * sum_j A[c, j] u_j + offset_c``; argmax, ties low."""

    A: np.ndarray  # int8 (n_classes, n_in)
    scale: int
    offset: np.ndarray  # int64 (n_classes,)

    @property
    def n_classes(self) -> int:
        return int(self.A.shape[0])

    def scores(self, u: np.ndarray) -> np.ndarray:
        s = u.reshape(len(u), -1).astype(np.int64) @ self.A.T.astype(np.int64)
        return self.scale * s + self.offset

    def beat_bound(self, c, d, ties: str = "low"):
        """Class c is preferred to class d iff ``sum_j (A_c - A_d)_j u_j >= ceil((offset_d -
        offset_c + tie) / scale)``, this exact integer bound.  With ties ``low`` preferred means
        ``score_c > score_d``, or equal with ``c < d`` (tie = [c > d]); with ``adversarial`` it
        means ``score_c >= score_d`` (tie = 0: c is the class a property asks about, and a tie
        counts for it).  c and d may be integer arrays (broadcast)."""
        tie = (np.asarray(c) > np.asarray(d)) if check_ties(ties) == "low" else 0
        num = np.asarray(self.offset[d] - self.offset[c] + tie, dtype=np.int64)
        return -((-num) // int(self.scale))


@dataclass(frozen=True)
class IR:
    """A whole BNN: input coding, hidden threshold layers, exact output layer."""

    coding: InputCoding
    layers: tuple[Layer, ...]
    output: Output

    @property
    def n_classes(self) -> int:
        return self.output.n_classes

    def shapes(self) -> list[tuple[int, ...]]:
        """Activation shape after the coding and after each hidden layer."""
        shapes = [self.coding.bit_shape]
        for layer in self.layers:
            shapes.append(layer.out_shape(shapes[-1]))
        return shapes

    def activations(self, X: np.ndarray) -> list[np.ndarray]:
        """Reference forward pass: [input bits, layer 1 bits, ...], each (n, *shape) uint8."""
        acts = [self.coding.encode(X)]
        for layer in self.layers:
            acts.append(layer.apply(acts[-1]))
        return acts

    def scores(self, X: np.ndarray) -> np.ndarray:
        """Integer scores (n, n_classes), int64."""
        return self.output.scores(self.activations(X)[-1])

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predicted classes (n,), ties to the lowest class index."""
        return np.argmax(self.scores(X), axis=1)

    def validate(self) -> None:
        """Raise ``UserError`` if shapes do not chain or values are out of their domains."""
        c = self.coding
        if c.thresholds.ndim != 2 or c.thresholds.shape[1] != c.n_features or c.n_levels < 1:
            raise UserError(f"input coding: thresholds must have shape (M, {c.n_features})")
        if c.n_levels > 1 and not np.all(np.diff(c.thresholds, axis=0) > 0):
            raise UserError("input coding: thermometer thresholds must increase strictly per feature")
        if c.lo > c.hi:
            raise UserError(f"input coding: empty feature domain [{c.lo}, {c.hi}]")
        shape = c.bit_shape
        for i, layer in enumerate(self.layers):
            if isinstance(layer, (Conv, MaxPool)) and len(shape) != 3:
                raise UserError(f"layer {i} ({layer.kind}) needs a (C, H, W) input, got {shape}")
            if isinstance(layer, Dense) and layer.n_in != int(np.prod(shape)):
                raise UserError(f"layer {i} (dense) expects {layer.n_in} inputs, gets {int(np.prod(shape))}")
            if isinstance(layer, Conv) and (layer.A.ndim != 4 or layer.A.shape[1] != shape[0]):
                raise UserError(f"layer {i} (conv) expects {layer.A.shape[1]} channels, gets {shape[0]}")
            if isinstance(layer, (Conv, MaxPool)) and (layer.stride < 1 or getattr(layer, "padding", 0) < 0):
                raise UserError(f"layer {i} ({layer.kind}): stride must be >= 1 and padding >= 0")
            if isinstance(layer, (Dense, Conv)):
                _check_ternary(layer.A, f"layer {i}")
                ks = [(layer.A.shape[0],)] + ([layer.out_shape(shape)] if isinstance(layer, Conv) else [])
                if layer.k.shape not in ks:
                    raise UserError(f"layer {i}: thresholds k must have shape {' or '.join(map(str, ks))}")
            shape = layer.out_shape(shape)
            if min(shape) < 1:
                raise UserError(f"layer {i} ({layer.kind}) leaves an empty output {shape}")
        o = self.output
        _check_ternary(o.A, "output layer")
        if o.A.shape[1] != int(np.prod(shape)) or o.offset.shape != (o.A.shape[0],) or o.scale <= 0:
            raise UserError("output layer: shapes do not match the last hidden layer, or scale <= 0")
        if o.scale * (o.A.shape[1] + 1) + int(np.abs(o.offset).max(initial=0)) >= 2 ** 62:
            raise UserError("output layer: scale and offsets too large for exact 64-bit scores")


def _check_ternary(A: np.ndarray, where: str) -> None:
    if not np.isin(A, (-1, 0, 1)).all():
        raise UserError(f"{where}: weights must be in {{-1, 0, +1}}")
