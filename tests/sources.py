"""BNNs as other tools train them, for the importer's tests and ``benchmarks/imports.py``: a
hand-written PyTorch BNN with padded convolutions and a Brevitas BNN, trained on digits."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

#: the state dict's layers (a state dict holds no strides, padding or pools)
TORCH_MAPPING = {"input": {"bn": "bn_in", "binarize": "bn-sign"},
                 "layers": [{"conv": "conv1", "stride": 1, "padding": 1, "bn": "bn1"},
                            {"conv": "conv2", "stride": 2, "padding": 1, "bn": "bn2"},
                            {"maxpool": 2, "stride": 2},
                            {"linear": "fc", "bn": "bn3"}],
                 "output": {"linear": "out"}}


def sign(x: torch.Tensor, train: bool) -> torch.Tensor:
    """+-1 (x >= 0 -> +1); straight-through gradient while training."""
    s = torch.where(x >= 0, 1.0, -1.0)
    return x + (s - x).detach() if train else s


class TorchBNN(nn.Module):
    """BN + sign on the pixels, conv 3x3 p1, conv 3x3 s2 p1 (+ bias), max-pool, dense, output
    Linear + bias; latent float weights binarized by sign, +-1 activations zero-padded."""

    def __init__(self, channels: int = 1, hw: int = 8, n_classes: int = 10) -> None:
        super().__init__()
        self.bn_in = nn.BatchNorm2d(channels)
        self.conv1, self.bn1 = nn.Conv2d(channels, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8)
        self.conv2, self.bn2 = nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.BatchNorm2d(16)
        self.pool = nn.MaxPool2d(2)
        n = 16 * (((hw + 1) // 2) // 2) ** 2
        self.fc, self.bn3 = nn.Linear(n, 32), nn.BatchNorm1d(32)
        self.out = nn.Linear(32, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        t = self.training
        h = sign(self.bn_in(x), t)
        h = sign(self.bn1(F.conv2d(h, sign(self.conv1.weight, t), None, 1, 1)), t)
        h = sign(self.bn2(F.conv2d(h, sign(self.conv2.weight, t), self.conv2.bias, 2, 1)), t)
        h = self.pool(h)
        h = sign(self.bn3(F.linear(h.flatten(1), sign(self.fc.weight, t), self.fc.bias)), t)
        logits = F.linear(h, sign(self.out.weight, t), self.out.bias)
        return logits / 8 if t else logits  # a training temperature (the argmax is the same)


class BrevitasBNN(nn.Module):
    """The same shape in Brevitas: binary / ternary weight quantizers, binary sign activations."""

    def __init__(self, channels: int = 1, hw: int = 8, n_classes: int = 10) -> None:
        super().__init__()
        import brevitas.nn as qnn
        from brevitas.quant import (SignedBinaryActPerTensorConst as Act, SignedBinaryWeightPerTensorConst as Bin,
                                    SignedTernaryWeightPerTensorConst as Ter)

        self.bn_in, self.act_in = nn.BatchNorm2d(channels), qnn.QuantIdentity(act_quant=Act)
        self.conv1 = qnn.QuantConv2d(channels, 8, 3, padding=1, bias=False, weight_quant=Bin)
        self.bn1, self.act1 = nn.BatchNorm2d(8), qnn.QuantIdentity(act_quant=Act)
        self.conv2 = qnn.QuantConv2d(8, 16, 3, stride=2, padding=1, bias=False, weight_quant=Ter)
        self.bn2, self.act2 = nn.BatchNorm2d(16), qnn.QuantIdentity(act_quant=Act)
        self.pool = nn.MaxPool2d(2)
        n = 16 * (((hw + 1) // 2) // 2) ** 2
        self.fc = qnn.QuantLinear(n, 32, bias=False, weight_quant=Ter)
        self.bn3, self.act3 = nn.BatchNorm1d(32), qnn.QuantIdentity(act_quant=Act)
        self.out = qnn.QuantLinear(32, n_classes, bias=True, weight_quant=Bin)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.act_in(self.bn_in(x))
        h = self.act1(self.bn1(self.conv1(h)))
        h = self.pool(self.act2(self.bn2(self.conv2(h))))
        h = self.act3(self.bn3(self.fc(torch.flatten(h, 1))))
        return self.out(h)


def train_source(net: nn.Module, data, epochs: int = 10, seed: int = 0, lr: float = 1e-2) -> nn.Module:
    """Adam on the training split, inputs raw / hi (as the importer's default ``divide``)."""
    torch.manual_seed(seed)
    X = torch.as_tensor(data.X_train, dtype=torch.float32).reshape((-1,) + tuple(data.feature_shape)) / data.hi
    y = torch.as_tensor(data.y_train, dtype=torch.long)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    gen = torch.Generator().manual_seed(seed)
    net.train()
    for _ in range(epochs):
        for idx in torch.randperm(len(X), generator=gen).split(64):
            loss = F.cross_entropy(net(X[idx]), y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


def accuracy(net: nn.Module, data) -> float:
    X = torch.as_tensor(data.X_test, dtype=torch.float32).reshape((-1,) + tuple(data.feature_shape)) / data.hi
    with torch.no_grad():
        out = net(X)
    return float((np.argmax(getattr(out, "value", out).numpy(), axis=1) == data.y_test).mean())
