"""Import, export and train full-precision networks (the "DNN" a user already has).

Two file formats are read into a torch-free ``bnnlogic.quant.FloatNet``:

* ``.pt``: ``torch.save({"format": "bnnlogic-floatnet", "version": 1, "feature_shape": [...],
  "spec": [{"op": "linear", "in": 784, "out": 256}, {"op": "relu"}, ...],
  "state_dict": seq.state_dict()})`` -- an ``nn.Sequential`` described by its spec.  Write
  one with ``save_float(seq, feature_shape, path)``.  Read with ``torch.load(weights_only=True)``
  (no arbitrary unpickling).
* ``.onnx``: a chain of Gemm/MatMul(+Add)/Conv/BatchNormalization/Relu/MaxPool/Flatten nodes
  (Identity and Dropout pass through; a Reshape to (batch, n) is a Flatten, and the shape
  arithmetic that feeds it, e.g. ``x.view(x.size(0), -1)``, is skipped), read with the ``onnx``
  package.  The graph's declared input shape is kept: a network on vectors (an MLP exported
  from an ``(n, 64)`` input) reads ``(1, 8, 8)`` images flattened.  onnxruntime, running the
  file itself, is the float reference: the network read must compute its outputs (up to float32
  rounding) on random inputs, else the file is refused (``UserError``), so a construct read
  wrongly never becomes a silently different network.

  Why a walker and not a converter: the layer list is what distillation and exact compilation
  need (``FloatNet.quant_chain``), so a converter to torch (onnx2torch) would still need a walk
  over its modules; and onnx2torch imports torchvision, whose only build on the package index is
  the CUDA one (it does not load beside the CPU torch pinned here).  onnxruntime does fit: it
  checks the walk.

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
from .training import fit, set_seed

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
    """Read a ``.pt`` or ``.onnx`` float network; ``input_scale`` is folded into the first layer.

    ``feature_shape`` (the data set's) replaces the shape the file declares when both hold
    the same number of features: a network that takes vectors (e.g. an MLP exported from an
    ``(n, 64)`` input) gets a leading ``Flatten`` for ``(1, 8, 8)`` images; any other change
    of layout is a ``UserError``.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such network file (give a .pt or .onnx file)")
    if path.endswith(".onnx"):
        net = _load_onnx(path, feature_shape)
    elif path.endswith((".pt", ".pth")):
        net = _load_pt(path)
    else:
        raise UserError(f"{path}: unknown network format; give a .pt (bnnlogic-floatnet) or .onnx file")
    if feature_shape is not None:
        net = _fit_input(net, tuple(int(v) for v in feature_shape), path)
    return net.scale_input(input_scale) if input_scale != 1.0 else net


def _fit_input(net: FloatNet, shape: tuple[int, ...], path: str) -> FloatNet:
    """``net`` on inputs of ``shape``: the same shape, or a flattening of it where the network
    takes vectors (or flattens first)."""
    want = tuple(net.feature_shape)
    if int(np.prod(want)) != int(np.prod(shape)):
        raise UserError(f"{path}: the network takes inputs of shape {want}, "
                        f"the data set has features of shape {shape}")
    if want == shape:
        return net
    if net.layers and isinstance(net.layers[0], Flatten):
        return FloatNet(shape, list(net.layers))
    if len(want) == 1 and net.layers and isinstance(net.layers[0], Linear):
        return FloatNet(shape, [Flatten()] + list(net.layers))
    raise UserError(f"{path}: the network takes inputs of shape {want}, the data set's features have shape "
                    f"{shape}; only a network on flat vectors can take them (flattened)")


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


ONNX_SUPPORTED = "Gemm, MatMul(+Add), Conv, BatchNormalization, Relu, MaxPool, Flatten, Reshape to (batch, n)"
#: ops that only compute shapes (e.g. ``x.view(x.size(0), -1)`` exported as Shape, Gather,
#: Unsqueeze, Concat feeding a Reshape): skipped off the data chain
_SHAPE_OPS = {"Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Cast", "Slice", "Constant", "ConstantOfShape"}


def _load_onnx(path: str, feature_shape: tuple[int, ...] | None) -> FloatNet:
    """Walk the ONNX graph's chain of layers into a ``FloatNet``, then check it against
    onnxruntime running the file itself (``_check_onnxruntime``): a construct read wrongly is
    a ``UserError``, never a silently different network."""
    import onnx

    try:
        model = onnx.load(path)
    except Exception as exc:
        raise UserError(f"{path}: cannot read as ONNX ({type(exc).__name__}: {str(exc)[:120]})") from None
    try:
        net = _walk_onnx(model, path, feature_shape)
    except UserError:
        raise
    except Exception as exc:  # a malformed graph: a missing tensor, a wrong attribute, ...
        raise UserError(f"{path}: malformed or unsupported ONNX graph ({type(exc).__name__}: {str(exc)[:120]}); "
                        f"supported: {ONNX_SUPPORTED}") from None
    _check_onnxruntime(path, net)
    return net


def _walk_onnx(model, path: str, feature_shape: tuple[int, ...] | None) -> FloatNet:
    import onnx
    from onnx import numpy_helper

    g = model.graph
    consts = {t.name: numpy_helper.to_array(t).astype(np.float64) for t in g.initializer}
    inputs = [i for i in g.input if i.name not in consts]
    if len(inputs) != 1 or len(g.output) != 1:
        raise UserError(f"{path}: the ONNX graph must have one input and one output, has "
                        f"{len(inputs)} and {len(g.output)}")
    dims = [d.dim_value for d in inputs[0].type.tensor_type.shape.dim][1:]
    if dims and all(dims):
        feature_shape = tuple(dims)  # the graph's own layout; load_float adapts it to the data
    elif feature_shape is None:
        raise UserError(f"{path}: the ONNX input shape is not fixed; give the data set")
    try:  # inferred shapes tell a Reshape that flattens (its output is (batch, n)) from others
        inferred = onnx.shape_inference.infer_shapes(model, data_prop=True).graph.value_info
    except Exception:
        inferred = []
    rank = {v.name: len(v.type.tensor_type.shape.dim) for v in inferred if v.type.tensor_type.HasField("shape")}
    current, layers = inputs[0].name, []
    flat = len(feature_shape) == 1  # is the current tensor (batch, n)?

    def attrs(node) -> dict[str, Any]:
        return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}

    def const(node, i: int) -> np.ndarray:
        if len(node.input) <= i or node.input[i] not in consts:
            raise UserError(f"{path}: node {node.name or node.op_type} ({node.op_type}): input {i} must be a "
                            "constant (an initializer); weights computed inside the graph are not supported")
        return consts[node.input[i]]

    for node in g.node:
        op, a = node.op_type, attrs(node)
        if op == "Constant":
            consts[node.output[0]] = numpy_helper.to_array(a["value"]).astype(np.float64)
            continue
        if op == "Identity" and node.input[0] in consts:
            consts[node.output[0]] = consts[node.input[0]]
            continue
        if op == "Shape" or (op in _SHAPE_OPS and current not in node.input):
            continue  # shape arithmetic: only a Reshape's shape input reads it
        if not node.input or node.input[0] != current:
            raise UserError(f"{path}: node {node.name or op} ({op}) does not continue a single chain of layers")
        if op in ("Identity", "Dropout"):
            pass
        elif op == "Flatten":
            if a.get("axis", 1) != 1:
                raise UserError(f"{path}: Flatten node {node.name}: only axis=1 is supported")
            layers.append(Flatten())
            flat = True
        elif op == "Reshape":
            shape = consts.get(node.input[1])
            if (shape is not None and shape.size == 2) or rank.get(node.output[0]) == 2:
                layers.append(Flatten())  # to (batch, n); onnxruntime confirms it below
                flat = True
            else:
                raise UserError(f"{path}: Reshape node {node.name}: only a flattening to (batch, n) is supported")
        elif op in ("Gemm", "MatMul") and not flat:
            raise UserError(f"{path}: {op} node {node.name or '?'} acts on a tensor of rank > 2; only (batch, n) "
                            "tensors are supported (flatten first)")
        elif op == "Gemm":
            if a.get("transA", 0):
                raise UserError(f"{path}: Gemm with transA=1 is not supported")
            W = const(node, 1)
            W = (W if a.get("transB", 0) else W.T) * a.get("alpha", 1.0)
            b = const(node, 2) * a.get("beta", 1.0) if len(node.input) > 2 else np.zeros(W.shape[0])
            layers.append(Linear(W, np.broadcast_to(b, (W.shape[0],)).copy()))
        elif op == "MatMul":
            W = const(node, 1).T
            layers.append(Linear(W, np.zeros(W.shape[0])))
        elif op == "Add" and layers and isinstance(layers[-1], Linear) and node.input[1] in consts:
            last = layers.pop()
            layers.append(Linear(last.W, last.b + np.broadcast_to(consts[node.input[1]].reshape(-1), last.b.shape)))
        elif op == "Conv":
            if flat:
                raise UserError(f"{path}: Conv node {node.name or '?'} acts on a flat (batch, n) tensor")
            W = const(node, 1)
            pads, strides = a.get("pads", [0] * 4), a.get("strides", [1, 1])
            if a.get("group", 1) != 1 or len(set(pads)) != 1 or len(set(strides)) != 1 \
                    or set(a.get("dilations", [1, 1])) != {1} or a.get("auto_pad", b"NOTSET") != b"NOTSET":
                raise UserError(f"{path}: Conv node {node.name}: only group=1, square stride and symmetric pads")
            b = const(node, 2) if len(node.input) > 2 else np.zeros(W.shape[0])
            layers.append(Conv2d(W, b, int(strides[0]), int(pads[0])))
        elif op == "BatchNormalization":
            g_, b_, m_, v_ = (const(node, i) for i in range(1, 5))
            layers.append(BatchNorm(g_, b_, m_, v_, float(a.get("epsilon", 1e-5))))
        elif op == "Relu":
            layers.append(ReLU())
        elif op == "MaxPool":
            k, s = a["kernel_shape"], a.get("strides", [1, 1])
            if any(a.get("pads", [0])) or a.get("ceil_mode", 0) or len(set(k)) != 1 or len(set(s)) != 1 \
                    or set(a.get("dilations", [1, 1])) != {1}:
                raise UserError(f"{path}: MaxPool node {node.name}: only square kernels without padding")
            layers.append(MaxPool2d(int(k[0]), int(s[0])))
        else:
            raise UserError(f"{path}: unsupported ONNX op {op!r} (node {node.name or '?'}); "
                            f"supported: {ONNX_SUPPORTED}")
        current = node.output[0]
    if current != g.output[0].name:
        raise UserError(f"{path}: the graph output {g.output[0].name} is not the end of the layer chain")
    return FloatNet(tuple(feature_shape), layers)


def _check_onnxruntime(path: str, net: FloatNet, n: int = 16, rtol: float = 1e-3) -> None:
    """onnxruntime (the float reference) and ``net`` must compute the same logits, up to
    float32 rounding (``rtol`` of the largest logit), on ``n`` random inputs of the declared
    shape (normal, and uniform on [0, 255]); else the graph was read wrongly: ``UserError``."""
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    except Exception as exc:
        raise UserError(f"{path}: onnxruntime cannot load the graph ({str(exc).splitlines()[0][:160]})") from None
    inp = sess.get_inputs()[0]
    rng = np.random.default_rng(0)
    shape = (n,) + tuple(net.feature_shape)
    X = np.concatenate([rng.normal(size=shape)[: n // 2], rng.uniform(0, 255, size=shape)[n // 2:]])
    dtype = {"tensor(float)": np.float32, "tensor(double)": np.float64}.get(inp.type)
    if dtype is None:
        raise UserError(f"{path}: the graph's input has type {inp.type}; a float network takes float or double")
    try:
        b = inp.shape[0] if isinstance(inp.shape[0], int) and inp.shape[0] > 0 else n  # a fixed batch size
        ref = np.concatenate([sess.run(None, {inp.name: X[i:i + b].astype(dtype)})[0]
                              for i in range(0, n - n % b, b)]).astype(np.float64)
        X = X[: len(ref)]
        ours = float_logits(net, X).astype(np.float64)
    except Exception as exc:
        raise UserError(f"{path}: cannot evaluate the graph on inputs of shape {shape[1:]} "
                        f"({str(exc).splitlines()[0][:160]})") from None
    if ref.ndim != 2:
        raise UserError(f"{path}: the graph's output has shape {ref.shape[1:]} per input; a classifier's "
                        "logits are (batch, classes)")
    scale = max(1.0, float(np.abs(ref).max()))
    if ref.shape != ours.shape or not np.allclose(ours, ref, rtol=0, atol=rtol * scale):
        diff = float(np.abs(ours - ref).max()) if ref.shape == ours.shape else float("nan")
        raise UserError(f"{path}: read as {net.describe()}, but onnxruntime computes other outputs (largest "
                        f"difference {diff:.3g}, shapes {ref.shape} vs {ours.shape}): the graph uses a construct "
                        f"this reader does not support; supported: {ONNX_SUPPORTED}")


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
