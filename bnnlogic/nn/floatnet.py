"""Import, export and train full-precision networks (the "DNN" a user already has).

Two file formats are read into a torch-free ``bnnlogic.quant.FloatNet``:

* ``.pt``: ``torch.save({"format": "bnnlogic-floatnet", "version": 1, "feature_shape": [...],
  "spec": [{"op": "linear", "in": 784, "out": 256}, {"op": "relu"}, ...],
  "state_dict": seq.state_dict()})`` -- an ``nn.Sequential`` described by its spec.  Write
  one with ``save_float(seq, feature_shape, path)``.  Read with ``torch.load(weights_only=True)``
  (no arbitrary unpickling).
* ``.onnx``: a chain of Gemm/MatMul(+Add)/Conv/BatchNormalization/Relu/MaxPool/Flatten nodes
  (Identity and Dropout pass through), read with the ``onnx`` package.

Layers: Linear, Conv2d (groups=1, symmetric zero padding), BatchNorm1d/2d, ReLU,
MaxPool2d (no padding), Flatten.  Anything else is a ``UserError`` naming the layer.
The network must take *raw* features (e.g. pixels 0..255) of shape (n, *feature_shape);
``FloatNet`` users with normalised inputs pass ``input_scale`` (folded into the first layer).
"""
from __future__ import annotations

import os
import warnings
from typing import Any

import numpy as np
import torch
from torch import nn

from ..data import Dataset
from ..errors import UserError
from ..fileio import atomic_open
from ..quant.graph import BatchNorm, Conv2d, Flatten, FloatNet, Linear, MaxPool2d, ReLU
from ..spec import parse_arch
from .train import fit, set_seed

FORMAT = "bnnlogic-floatnet"
SUPPORTED = "Linear, Conv2d, BatchNorm1d/2d, ReLU, MaxPool2d, Flatten"


# ---------------------------------------------------------------------- torch <-> FloatNet
def _np(t: torch.Tensor) -> np.ndarray:
    return t.detach().cpu().double().numpy()


def from_torch(seq: nn.Sequential, feature_shape: tuple[int, ...]) -> FloatNet:
    """Read an ``nn.Sequential`` of supported modules (evaluation-mode semantics)."""
    layers: list[Any] = []
    for i, m in enumerate(seq):
        if isinstance(m, nn.Linear):
            b = _np(m.bias) if m.bias is not None else np.zeros(m.out_features)
            layers.append(Linear(_np(m.weight), b))
        elif isinstance(m, nn.Conv2d):
            pad = m.padding if isinstance(m.padding, tuple) else None
            if m.groups != 1 or pad is None or len(set(pad)) != 1 or len(set(m.stride)) != 1 \
                    or set(m.dilation) != {1} or m.padding_mode != "zeros":
                raise UserError(f"module {i} ({m}): only Conv2d with groups=1, square stride and "
                                "symmetric zero padding is supported")
            b = _np(m.bias) if m.bias is not None else np.zeros(m.out_channels)
            layers.append(Conv2d(_np(m.weight), b, int(m.stride[0]), int(pad[0])))
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            n = m.num_features
            g = _np(m.weight) if m.affine else np.ones(n)
            be = _np(m.bias) if m.affine else np.zeros(n)
            layers.append(BatchNorm(g, be, _np(m.running_mean), _np(m.running_var), float(m.eps)))
        elif isinstance(m, nn.ReLU):
            layers.append(ReLU())
        elif isinstance(m, nn.MaxPool2d):
            k, s = m.kernel_size, m.stride
            if m.padding not in (0, (0, 0)) or m.ceil_mode or not isinstance(k, int) or not isinstance(s, int):
                raise UserError(f"module {i} ({m}): only MaxPool2d with square kernel and no padding is supported")
            layers.append(MaxPool2d(k, s))
        elif isinstance(m, nn.Flatten):
            layers.append(Flatten())
        elif isinstance(m, nn.Dropout):
            continue
        else:
            raise UserError(f"unsupported layer {type(m).__name__} (module {i}); supported: {SUPPORTED}")
    return FloatNet(tuple(feature_shape), layers)


def to_torch(net: FloatNet) -> nn.Sequential:
    """The ``nn.Sequential`` (float32, evaluation mode) that computes ``net``."""
    mods: list[nn.Module] = []
    spatial = len(net.feature_shape) == 3  # is the current tensor (n, C, H, W)?
    for layer in net.layers:
        if isinstance(layer, Linear):
            m = nn.Linear(layer.W.shape[1], layer.W.shape[0])
            m.weight.data, m.bias.data = torch.tensor(layer.W).float(), torch.tensor(layer.b).float()
        elif isinstance(layer, Conv2d):
            o, c, k, _ = layer.W.shape
            m = nn.Conv2d(c, o, k, layer.stride, layer.padding)
            m.weight.data, m.bias.data = torch.tensor(layer.W).float(), torch.tensor(layer.b).float()
        elif isinstance(layer, BatchNorm):
            m = (nn.BatchNorm2d if spatial else nn.BatchNorm1d)(len(layer.gamma), eps=layer.eps)
            for name, v in (("weight", layer.gamma), ("bias", layer.beta), ("running_mean", layer.mean),
                            ("running_var", layer.var)):
                getattr(m, name).data = torch.tensor(v).float()
        elif isinstance(layer, ReLU):
            m = nn.ReLU()
        elif isinstance(layer, MaxPool2d):
            m = nn.MaxPool2d(layer.kernel, layer.stride)
        else:
            m = nn.Flatten()
            spatial = False
        mods.append(m)
    return nn.Sequential(*mods).eval()


def spec_of(seq: nn.Sequential) -> list[dict[str, Any]]:
    """The ``spec`` list stored in a ``.pt`` file (rebuilds ``seq``'s modules)."""
    out = []
    for m in seq:
        if isinstance(m, nn.Linear):
            out.append({"op": "linear", "in": m.in_features, "out": m.out_features, "bias": m.bias is not None})
        elif isinstance(m, nn.Conv2d):
            out.append({"op": "conv2d", "in": m.in_channels, "out": m.out_channels, "kernel": m.kernel_size[0],
                        "stride": m.stride[0], "padding": m.padding[0], "bias": m.bias is not None})
        elif isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            out.append({"op": "batchnorm2d" if isinstance(m, nn.BatchNorm2d) else "batchnorm1d",
                        "n": m.num_features, "eps": m.eps})
        elif isinstance(m, nn.ReLU):
            out.append({"op": "relu"})
        elif isinstance(m, nn.MaxPool2d):
            out.append({"op": "maxpool2d", "kernel": m.kernel_size, "stride": m.stride})
        elif isinstance(m, nn.Flatten):
            out.append({"op": "flatten"})
        else:
            raise UserError(f"unsupported layer {type(m).__name__}; supported: {SUPPORTED}")
    return out


def _build(spec: list[dict[str, Any]]) -> nn.Sequential:
    mods: list[nn.Module] = []
    for s in spec:
        op = s.get("op")
        if op == "linear":
            mods.append(nn.Linear(s["in"], s["out"], bias=s.get("bias", True)))
        elif op == "conv2d":
            mods.append(nn.Conv2d(s["in"], s["out"], s["kernel"], s.get("stride", 1), s.get("padding", 0),
                                  bias=s.get("bias", True)))
        elif op in ("batchnorm1d", "batchnorm2d"):
            cls = nn.BatchNorm2d if op == "batchnorm2d" else nn.BatchNorm1d
            mods.append(cls(s["n"], eps=s.get("eps", 1e-5)))
        elif op == "relu":
            mods.append(nn.ReLU())
        elif op == "maxpool2d":
            mods.append(nn.MaxPool2d(s["kernel"], s.get("stride", s["kernel"])))
        elif op == "flatten":
            mods.append(nn.Flatten())
        else:
            raise UserError(f"unsupported layer {op!r} in the spec; supported: {SUPPORTED}")
    return nn.Sequential(*mods)


# ---------------------------------------------------------------------- files
def save_float(seq: nn.Sequential | FloatNet, feature_shape: tuple[int, ...], path: str | os.PathLike) -> None:
    """Write a ``.pt`` file: spec + state dict (see the module docstring), atomically."""
    if isinstance(seq, FloatNet):
        seq = to_torch(seq)
    obj = {"format": FORMAT, "version": 1, "feature_shape": list(feature_shape), "spec": spec_of(seq),
           "state_dict": {k: v.detach().cpu() for k, v in seq.state_dict().items()}}
    with atomic_open(path, "wb") as fh:
        torch.save(obj, fh)


def export_onnx(net: FloatNet, path: str | os.PathLike) -> None:
    """Write ``net`` as an ONNX file with ``torch.onnx.export`` (batch dimension dynamic)."""
    seq = to_torch(net)
    with atomic_open(path, "wb") as fh, warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter needs no onnxscript
        torch.onnx.export(seq, torch.zeros((1,) + tuple(net.feature_shape)), fh, dynamo=False,
                          input_names=["x"], output_names=["logits"],
                          dynamic_axes={"x": {0: "n"}, "logits": {0: "n"}})


def load_float(path: str | os.PathLike, feature_shape: tuple[int, ...] | None = None,
               input_scale: float = 1.0) -> FloatNet:
    """Read a ``.pt`` or ``.onnx`` float network; ``input_scale`` is folded into the first layer."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such network file (give a .pt or .onnx file)")
    if path.endswith(".onnx"):
        net = _load_onnx(path, feature_shape)
    elif path.endswith((".pt", ".pth")):
        net = _load_pt(path)
    else:
        raise UserError(f"{path}: unknown network format; give a .pt (bnnlogic-floatnet) or .onnx file")
    if feature_shape is not None and int(np.prod(net.feature_shape)) != int(np.prod(feature_shape)):
        raise UserError(f"{path}: the network takes inputs of shape {net.feature_shape}, "
                        f"the data set has features of shape {tuple(feature_shape)}")
    if feature_shape is not None:
        net.feature_shape = tuple(feature_shape)
    return net.scale_input(input_scale) if input_scale != 1.0 else net


def _load_pt(path: str) -> FloatNet:
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds for foreign files
        raise UserError(f"{path}: cannot read as a torch file ({type(exc).__name__}: {str(exc)[:120]})") from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise UserError(f"{path}: not a bnnlogic float network (expected a dict with format {FORMAT!r}, "
                        "spec and state_dict; see `bnnlogic binarize --help`)")
    seq = _build(obj["spec"])
    try:
        seq.load_state_dict(obj["state_dict"])
    except RuntimeError as exc:
        raise UserError(f"{path}: state dict does not match the spec ({str(exc).splitlines()[0]})") from None
    return from_torch(seq.eval(), tuple(obj["feature_shape"]))


def _load_onnx(path: str, feature_shape: tuple[int, ...] | None) -> FloatNet:
    import onnx
    from onnx import numpy_helper

    try:
        model = onnx.load(path)
    except Exception as exc:
        raise UserError(f"{path}: cannot read as ONNX ({type(exc).__name__}: {str(exc)[:120]})") from None
    g = model.graph
    consts = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in g.initializer}
    inputs = [i for i in g.input if i.name not in consts]
    if len(inputs) != 1:
        raise UserError(f"{path}: the ONNX graph must have exactly one input, has {len(inputs)}")
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim][1:]
    if feature_shape is None:
        if not dims or not all(dims):
            raise UserError(f"{path}: the ONNX input shape is not fixed; give the data set")
        feature_shape = tuple(dims)
    current, layers = inputs[0].name, []

    def attrs(node) -> dict[str, Any]:
        return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}

    for node in g.node:
        op, a = node.op_type, attrs(node)
        if op == "Constant":
            consts[node.output[0]] = numpy_helper.to_array(a["value"]).astype(np.float64)
            continue
        if op == "Identity" and node.input[0] in consts:
            consts[node.output[0]] = consts[node.input[0]]
            continue
        if node.input[0] != current:
            raise UserError(f"{path}: node {node.name or op} ({op}) does not continue a single chain of layers")
        if op in ("Identity", "Dropout"):
            pass
        elif op == "Flatten":
            layers.append(Flatten())
        elif op == "Reshape" and consts.get(node.input[1], np.zeros(0)).size == 2:
            layers.append(Flatten())
        elif op == "Gemm":
            if a.get("transA", 0):
                raise UserError(f"{path}: Gemm with transA=1 is not supported")
            W = consts[node.input[1]]
            W = (W if a.get("transB", 0) else W.T) * a.get("alpha", 1.0)
            b = consts[node.input[2]] * a.get("beta", 1.0) if len(node.input) > 2 else np.zeros(W.shape[0])
            layers.append(Linear(W, np.broadcast_to(b, (W.shape[0],)).copy()))
        elif op == "MatMul" and node.input[1] in consts:
            W = consts[node.input[1]].T
            layers.append(Linear(W, np.zeros(W.shape[0])))
        elif op == "Add" and layers and isinstance(layers[-1], Linear) and node.input[1] in consts:
            last = layers.pop()
            layers.append(Linear(last.W, last.b + consts[node.input[1]].reshape(-1)))
        elif op == "Conv":
            W = consts[node.input[1]]
            pads, strides = a.get("pads", [0] * 4), a.get("strides", [1, 1])
            if a.get("group", 1) != 1 or len(set(pads)) != 1 or len(set(strides)) != 1 \
                    or set(a.get("dilations", [1, 1])) != {1}:
                raise UserError(f"{path}: Conv node {node.name}: only group=1, square stride and symmetric pads")
            b = consts[node.input[2]] if len(node.input) > 2 else np.zeros(W.shape[0])
            layers.append(Conv2d(W, b, int(strides[0]), int(pads[0])))
        elif op == "BatchNormalization":
            g_, b_, m_, v_ = (consts[n] for n in node.input[1:5])
            layers.append(BatchNorm(g_, b_, m_, v_, float(a.get("epsilon", 1e-5))))
        elif op == "Relu":
            layers.append(ReLU())
        elif op == "MaxPool":
            k, s = a["kernel_shape"], a.get("strides", [1, 1])
            if any(a.get("pads", [0])) or a.get("ceil_mode", 0) or len(set(k)) != 1 or len(set(s)) != 1:
                raise UserError(f"{path}: MaxPool node {node.name}: only square kernels without padding")
            layers.append(MaxPool2d(int(k[0]), int(s[0])))
        else:
            raise UserError(f"{path}: unsupported ONNX op {op!r} (node {node.name or '?'}); "
                            "supported: Gemm, MatMul+Add, Conv, BatchNormalization, Relu, MaxPool, Flatten")
        current = node.output[0]
    if current != g.output[0].name:
        raise UserError(f"{path}: the graph output {g.output[0].name} is not the end of the layer chain")
    return FloatNet(tuple(feature_shape), layers)


# ---------------------------------------------------------------------- training and prediction
@torch.no_grad()
def float_logits(net: FloatNet | nn.Sequential, X: np.ndarray, batch: int = 4096) -> np.ndarray:
    """Float32 logits of the network on raw features (n, *feature_shape)."""
    seq = to_torch(net) if isinstance(net, FloatNet) else net
    seq.eval()
    out = [seq(torch.as_tensor(X[i:i + batch], dtype=torch.float32)).numpy() for i in range(0, len(X), batch)]
    return np.concatenate(out) if out else np.zeros((0, 0), dtype=np.float32)


def float_predict(net: FloatNet | nn.Sequential, X: np.ndarray) -> np.ndarray:
    """The float network's predicted classes (argmax; ties to the lowest class)."""
    return np.argmax(float_logits(net, X), axis=1)


def float_sequential(data: Dataset, arch: str, batchnorm: bool = False) -> nn.Sequential:
    """A float ``nn.Sequential`` for ``data`` from an architecture spec (``mlp:256,128``, ``cnn:c16k3,p2,d100``).

    Hidden layers: Linear/Conv2d [-> BatchNorm] -> ReLU; pool ``pN`` is MaxPool2d(N).  The
    output Linear is added.
    """
    shape = tuple(data.feature_shape)
    mods: list[nn.Module] = []
    for s in parse_arch(arch):
        if s.kind in ("conv", "pool") and len(shape) != 3:
            raise UserError(f"architecture {arch!r}: conv and pool layers need image features")
        if s.kind == "conv":
            mods += [nn.Conv2d(shape[0], s.size, s.kernel, s.stride, s.padding)]
            mods += [nn.BatchNorm2d(s.size)] if batchnorm else []
            mods += [nn.ReLU()]
            shape = (s.size,) + s.out_hw(*shape[1:])
        elif s.kind == "pool":
            mods.append(nn.MaxPool2d(s.size, s.stride))
            shape = (shape[0], (shape[1] - s.size) // s.stride + 1, (shape[2] - s.size) // s.stride + 1)
        else:
            if len(shape) > 1 or not mods:
                mods.append(nn.Flatten())
            mods += [nn.Linear(int(np.prod(shape)), s.size)]
            mods += [nn.BatchNorm1d(s.size)] if batchnorm else []
            mods += [nn.ReLU()]
            shape = (s.size,)
        if min(shape) < 1:
            raise UserError(f"architecture {arch!r} shrinks the input to nothing")
    if len(shape) > 1 or not mods:
        mods.append(nn.Flatten())
    mods.append(nn.Linear(int(np.prod(shape)), len(data.classes)))
    return nn.Sequential(*mods)


def train_float(data: Dataset, arch: str, epochs: int = 10, seed: int = 0, lr: float = 1e-3,
                batch_size: int = 128, batchnorm: bool = False, progress: bool = True) -> FloatNet:
    """Train a float ReLU network on ``data`` (inputs scaled to [0, 1] while training).

    The scale 1/hi is folded into the first layer, so the returned network takes raw features.
    """
    set_seed(seed)
    seq = float_sequential(data, arch, batchnorm)
    X = data.X_train.astype(np.float32) / data.hi
    fit(seq, X, data.y_train, epochs, seed, batch_size, lr, progress=progress, desc="train float")
    return from_torch(seq.eval(), data.feature_shape).scale_input(1.0 / data.hi)
