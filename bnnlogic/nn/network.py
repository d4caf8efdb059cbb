"""BNNs built from spec strings, and their export to the IR."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from ..fold import fold_output, fold_sign_bn
from ..ir import IR, Conv, Dense, InputCoding, MaxPool, Output
from ..spec import parse_arch
from .layers import (OUTPUT_FRAC_BITS, BinaryConv2d, BinaryLinear, Coding, LevelTiedLinear, OutputLayer,
                     SignBlock, layer_quants)


@dataclass
class NetConfig:
    """Everything needed to rebuild the network (stored in the model file's metadata)."""

    arch: str
    feature_shape: tuple[int, ...]
    lo: int
    hi: int
    thresholds: list[int]
    n_classes: int
    quant: dict = field(default_factory=lambda: {"mode": "binary"})
    scale: bool = False
    stochastic: bool = False
    tied_levels: bool = False  # the first (dense) layer shares its weight over a feature's levels

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        d["feature_shape"] = list(self.feature_shape)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> "NetConfig":
        return cls(**{**d, "feature_shape": tuple(d["feature_shape"])})


class BNN(nn.Module):
    """coding -> [SignBlock | MaxPool]* -> OutputLayer, on raw features (n, *feature_shape)."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        specs = parse_arch(cfg.arch)
        quants = iter(layer_quants(cfg.quant, sum(spec.kind != "pool" for spec in specs)))
        d = int(np.prod(cfg.feature_shape))
        thr = torch.tensor(cfg.thresholds, dtype=torch.float32)[:, None].expand(-1, d).contiguous()
        self.coding = Coding(cfg.feature_shape, thr)
        shape = (len(cfg.thresholds) * cfg.feature_shape[0],) + tuple(cfg.feature_shape[1:])
        blocks: list[nn.Module] = []
        if cfg.tied_levels and (not specs or specs[0].kind != "dense"):
            from ..errors import UserError
            raise UserError(f"a quantized input coding shares first-layer weights over levels: {cfg.arch!r} must "
                            "start with a dense layer (e.g. mlp:500,300,200,100)")
        for spec in specs:
            if spec.kind == "conv":
                if len(shape) != 3:
                    from ..errors import UserError
                    raise UserError(f"architecture {cfg.arch!r}: conv layers need image features")
                conv = BinaryConv2d(shape[0], spec.size, spec.kernel, spec.stride, next(quants), cfg.scale,
                                    spec.padding)
                blocks.append(SignBlock(conv, cfg.stochastic))
                shape = (spec.size,) + spec.out_hw(*shape[1:])
            elif spec.kind == "pool":
                blocks.append(nn.MaxPool2d(spec.size, spec.stride))
                shape = (shape[0], (shape[1] - spec.size) // spec.stride + 1, (shape[2] - spec.size) // spec.stride + 1)
            elif cfg.tied_levels and not blocks:
                dense = LevelTiedLinear(d, len(cfg.thresholds), spec.size, next(quants), cfg.scale)
                blocks.append(SignBlock(dense, cfg.stochastic))
                shape = (spec.size,)
            else:
                dense = BinaryLinear(int(np.prod(shape)), spec.size, next(quants), cfg.scale)
                blocks.append(SignBlock(dense, cfg.stochastic))
                shape = (spec.size,)
            if min(shape) < 1:
                from ..errors import UserError
                raise UserError(f"architecture {cfg.arch!r} shrinks the input to nothing")
        self.blocks = nn.ModuleList(blocks)
        self.output = OutputLayer(int(np.prod(shape)), cfg.n_classes, next(quants))

    def binary_layers(self) -> list[BinaryLinear | BinaryConv2d]:
        return [b.layer for b in self.blocks if isinstance(b, SignBlock)] + [self.output.linear]

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """+-1 activations of the last hidden layer."""
        h = self.coding(x)
        for block in self.blocks:
            if isinstance(block, SignBlock) and not block.conv:
                h = h.flatten(1)
            h = block(h)
        return h.flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.output(self.features(x))

    @torch.no_grad()
    def predict(self, X: np.ndarray, batch: int = 4096) -> np.ndarray:
        """The trained network's predictions (evaluation mode; ties to the lowest class)."""
        was = self.training
        self.eval()
        out = [self(torch.as_tensor(X[i:i + batch], dtype=torch.float32)).argmax(1).numpy()
               for i in range(0, len(X), batch)]
        self.train(was)
        return np.concatenate(out) if out else np.zeros(0, dtype=np.int64)

    def clip_(self) -> None:
        for layer in self.binary_layers():
            layer.clip_()

    # ------------------------------------------------------------------ export
    @torch.no_grad()
    def to_ir(self) -> IR:
        """The exact integer form of this network (see ``bnnlogic.fold``)."""
        cfg = self.cfg
        coding = InputCoding(tuple(cfg.feature_shape), cfg.lo, cfg.hi,
                             self.coding.thresholds.numpy().astype(np.int64))
        layers = []
        for block in self.blocks:
            if isinstance(block, nn.MaxPool2d):
                layers.append(MaxPool(int(block.kernel_size), int(block.stride)))
                continue
            lin, bn = block.layer, block.bn
            W = (lin.tiled_weight() if isinstance(lin, LevelTiedLinear) else lin.quantized_weight()).numpy()
            W = W.astype(np.int8)
            A, k = fold_sign_bn(W, lin.alpha().numpy(), np.zeros(W.shape[0]), bn.running_mean.numpy(),
                                bn.running_var.numpy(), bn.eps, bn.weight.numpy(), bn.bias.numpy())
            layers.append(Conv(A, k, lin.stride, lin.padding) if block.conv else Dense(A.reshape(W.shape[0], -1), k))
        W = self.output.linear.quantized_weight().numpy().astype(np.int8)
        A, scale, offset = fold_output(W, self.output.fixed_bias().numpy(), OUTPUT_FRAC_BITS)
        return IR(coding, tuple(layers), Output(A, scale, offset))

    def state_arrays(self) -> dict[str, np.ndarray]:
        return {k: v.detach().cpu().numpy() for k, v in self.state_dict().items()}

    @classmethod
    def from_state(cls, cfg: NetConfig, state: dict[str, np.ndarray]) -> "BNN":
        net = cls(cfg)
        net.load_state_dict({k: torch.as_tensor(v) for k, v in state.items()})
        net.eval()
        return net
