"""PyTorch BNNs trained elsewhere -> ``interop.source.SourceNet`` (the torch side of ``bnnlogic import``).

Sources:

* a state dict (``torch.save(model.state_dict())``, read with ``weights_only=True``: nothing is
  unpickled but tensors) of Linear / Conv2d (+ bias) + BatchNorm blocks and a final Linear
  (+ bias, + BatchNorm); strides, padding and max-pools are not in a state dict, so a
  **mapping** gives them (below), and the float32 reference is the standard reading of the
  tensors (F.linear / F.conv2d with zero padding, F.batch_norm in evaluation mode, sign with
  sign(0) = +1, F.max_pool2d);
* a TorchScript module (``torch.jit.save``) or an ``nn.Module`` in Python: the layers, strides,
  padding and pools come from its modules (in registration order), and the reference is the
  module's own forward pass;
* a Brevitas module: exported to QONNX and read by ``interop.qonnx`` (torch-free), the
  reference is the module's own forward pass.

Weights stored as {-1, 0, 1} are used as they are; latent floats are binarized by sign
(w >= 0 -> +1).  The mapping (a dict, or JSON)::

    {"input":  {"shape": [1, 28, 28], "domain": [0, 255],
                "divide": 255,                   # the source's input is raw / divide (float32)
                "binarize": "bn-sign"            # sign(BatchNorm(x)), the BN at "bn" (or the first one)
                          | "sign"               # sign(x)
                          | {"threshold": 0.5, "values": "pm1" | "01"}   # x >= t -> +1 | 1, else -1 | 0
                          | {"quantize": 0.1},   # round(x / step): an integer level per feature
                "bn": "prefix"},
     "layers": [{"conv": "features.0", "stride": 2, "padding": 1, "bn": "features.1"},
                {"maxpool": 2, "stride": 2},
                {"linear": "classifier.0", "bn": "classifier.1"}],
     "output": {"linear": "classifier.3", "bn": null},
     "activation": "pm1" | "01"}                 # hidden activations: sign (+-1) or 0/1

Names are the state dict's module prefixes.  Without ``layers`` they are read in order (every
weight tensor a layer, a BatchNorm after it its BatchNorm, a BatchNorm before the first layer
the input's; the last Linear is the output layer).
"""
from __future__ import annotations

import os
import tempfile
import warnings
import zipfile
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import UserError
from ..interop.mapping import input_spec, load_mapping, raw_input
from ..interop.source import Affine, BinaryLayer, Head, Pool, SourceNet

BN_EPS = 1e-5  # torch's BatchNorm default, for state dicts that do not say


def is_torchscript(path: str) -> bool:
    """A TorchScript archive holds ``code/`` and ``constants.pkl``; a state dict does not."""
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.split("/", 1)[-1].startswith(("code/", "constants.pkl")) for n in zf.namelist())
    except (zipfile.BadZipFile, OSError, NotImplementedError, ValueError):
        return False


# ---------------------------------------------------------------------- reading the layers
def _ops_from_modules(module: torch.nn.Module) -> list[dict]:
    """Layers of a module (TorchScript or nn.Module) in registration order."""
    ops = []
    for name, m in module.named_modules():
        if any(True for _ in m.children()):
            continue
        kind = getattr(m, "original_name", type(m).__name__)
        w = getattr(m, "weight", None)
        if "BatchNorm" in kind:
            ops.append({"bn": name, "eps": float(getattr(m, "eps", BN_EPS))})
        elif "MaxPool" in kind:
            if int(_one(getattr(m, "padding", 0), name)) or getattr(m, "ceil_mode", False) \
                    or int(_one(getattr(m, "dilation", 1), name)) != 1:
                raise UserError(f"{name}: a max-pool with padding, dilation or ceil_mode is not supported")
            k = int(_one(m.kernel_size, name))
            ops.append({"maxpool": k, "stride": int(_one(m.stride if m.stride is not None else k, name))})
        elif "Pool" in kind:
            raise UserError(f"{name}: {kind} is not supported (a BNN pools its binary activations with MaxPool2d)")
        elif isinstance(w, torch.Tensor) and w.dim() == 4:
            if int(getattr(m, "groups", 1)) != 1 or int(_one(getattr(m, "dilation", 1), name)) != 1:
                raise UserError(f"{name}: grouped or dilated convolutions are not supported")
            if getattr(m, "padding_mode", "zeros") != "zeros" or isinstance(m.padding, str):
                raise UserError(f"{name}: only numeric zero padding is supported")
            ops.append({"conv": name, "stride": int(_one(m.stride, name)), "padding": int(_one(m.padding, name))})
        elif isinstance(w, torch.Tensor) and w.dim() == 2:
            ops.append({"linear": name})
    return ops


def _one(v: Any, name: str) -> int:
    """A square (stride, padding, kernel) value; ``UserError`` for a non-square one."""
    if isinstance(v, (tuple, list)):
        if len(set(v)) != 1:
            raise UserError(f"{name}: only square kernels, strides and padding are supported (got {tuple(v)})")
        return v[0]
    return v


def _ops_from_state(state: dict[str, torch.Tensor]) -> list[dict]:
    """Layers of a state dict in key order, by tensor names and shapes (strides, padding and
    pools are not in a state dict: give a mapping for them)."""
    ops, seen = [], set()
    for key in state:
        prefix = key.rsplit(".", 1)[0] if "." in key else ""
        if prefix in seen:
            continue
        if f"{prefix}.running_mean" in state:
            ops.append({"bn": prefix})
        elif key.endswith("weight") and state[key].dim() in (2, 4):
            ops.append({"conv" if state[key].dim() == 4 else "linear": prefix})
        else:
            continue
        seen.add(prefix)
    return ops


def _plan(ops: list[dict], mapping: dict) -> tuple[dict | None, list[dict], dict]:
    """(input BN op or None, hidden ops with their BN, output op) from the op sequence or the mapping."""
    if "layers" in mapping or "output" in mapping:
        try:
            hidden, out = list(mapping["layers"]), dict(mapping["output"])
        except (KeyError, TypeError):
            raise UserError("a mapping with layers needs both 'layers' (a list) and 'output'") from None
        in_bn = mapping.get("input", {}).get("bn")
        return ({"bn": in_bn} if in_bn else None), hidden, out
    first = next((i for i, op in enumerate(ops) if "conv" in op or "linear" in op), None)
    if first is None:
        raise UserError("no Linear or Conv2d weights found; is this a network's state dict?")
    in_bn = next((op for op in ops[:first] if "bn" in op), None)
    blocks, i = [], first
    while i < len(ops):
        op = dict(ops[i])
        if "conv" in op or "linear" in op:
            if i + 1 < len(ops) and "bn" in ops[i + 1]:
                op["bn"], op["eps"] = ops[i + 1]["bn"], ops[i + 1].get("eps")
                i += 1
        elif "bn" in op:
            raise UserError(f"BatchNorm {op['bn']} follows no layer; give a mapping")
        blocks.append(op)
        i += 1
    if not blocks or "linear" not in blocks[-1]:
        raise UserError("the last layer is not a Linear layer; give a mapping whose 'output' names it")
    return in_bn, blocks[:-1], blocks[-1]


class _Tensors:
    """Named tensors of a state dict, with one-line errors for missing ones."""

    def __init__(self, state: dict[str, torch.Tensor]) -> None:
        self.state = {k: v.detach().cpu() for k, v in state.items() if isinstance(v, torch.Tensor)}

    def get(self, prefix: str, name: str, default: float | None = None) -> torch.Tensor | None:
        key = f"{prefix}.{name}" if prefix else name
        if key in self.state:
            return self.state[key].float()
        if default is None:
            return None
        return torch.tensor(default)

    def need(self, prefix: str, name: str) -> torch.Tensor:
        t = self.get(prefix, name)
        if t is None:
            raise UserError(f"tensor {prefix}.{name} not found in the source (check the mapping's names)")
        return t

    def bn(self, prefix: str | None, eps: float | None) -> dict | None:
        """BatchNorm parameters (float64 numpy of the float32 tensors) or None."""
        if not prefix:
            return None
        mean, var = self.need(prefix, "running_mean"), self.need(prefix, "running_var")
        n = len(mean)
        g = self.get(prefix, "weight")
        b = self.get(prefix, "bias")
        return {"mean": mean.double().numpy(), "var": var.double().numpy(), "eps": BN_EPS if eps is None else eps,
                "gamma": np.ones(n) if g is None else g.double().numpy(),
                "beta": np.zeros(n) if b is None else b.double().numpy(), "torch": (mean, var, g, b)}


def binarize(w: torch.Tensor) -> torch.Tensor:
    """Weights as {-1, 0, 1}: stored ternary values as they are, latent floats by sign (w >= 0 -> +1)."""
    if bool(torch.isin(w, torch.tensor([-1.0, 0.0, 1.0])).all()):
        return w.clone()
    return torch.where(w >= 0, 1.0, -1.0)


def _bn_eval(x: torch.Tensor, bn: dict | None) -> torch.Tensor:
    if bn is None:
        return x
    mean, var, g, b = bn["torch"]
    return F.batch_norm(x, mean, var, g, b, training=False, eps=bn["eps"])


# ---------------------------------------------------------------------- the input block
def _input_block(spec: dict, bn: dict | None):
    """The input block as a float32 function on the source's input x, and its activation kind."""
    how = spec.get("binarize", "bn-sign" if bn is not None else None)
    if how is None:
        raise UserError("the source does not say how raw inputs become bits: give a mapping with input.binarize "
                        "(bn-sign, sign, {\"threshold\": t} or {\"quantize\": step})")
    if how == "bn-sign":
        if bn is None:
            raise UserError("input.binarize bn-sign needs an input BatchNorm (input.bn)")
        return lambda x: torch.where(_bn_eval(x, bn) >= 0, 1.0, -1.0)
    if how == "sign":
        return lambda x: torch.where(x >= 0, 1.0, -1.0)
    if isinstance(how, dict) and "threshold" in how:
        t, lo = float(how["threshold"]), (-1.0 if how.get("values", "pm1") == "pm1" else 0.0)
        return lambda x: torch.where(x >= t, 1.0, lo)
    if isinstance(how, dict) and "quantize" in how:
        step = float(how["quantize"])
        return lambda x: torch.round(x / step)
    raise UserError(f"input.binarize {how!r}: use bn-sign, sign, {{\"threshold\": t}} or {{\"quantize\": step}}")


def _raw_to_input(spec: dict, feature_shape: tuple[int, ...], hi: int):
    """``interop.mapping.raw_input`` as torch tensors (the same float32 division / product)."""
    to_x = raw_input(spec, feature_shape, hi)
    return lambda raw: torch.from_numpy(to_x(raw))


# ---------------------------------------------------------------------- sources
def from_state(state: dict[str, torch.Tensor], mapping: dict, feature_shape=None, domain=None,
               ops: list[dict] | None = None, module: torch.nn.Module | None = None, kind: str = "torch") -> SourceNet:
    """A ``SourceNet`` from named tensors; ``ops``: the layers if a module told them (else from
    the mapping or the key order); ``module``: the source's own forward pass, else the standard
    reading of the tensors is the reference."""
    spec, shape, lo, hi = input_spec(mapping, feature_shape, domain)
    T = _Tensors(state)
    in_bn_op, hidden, out = _plan(ops if ops is not None else _ops_from_state(T.state), mapping)
    in_bn = T.bn(in_bn_op["bn"], in_bn_op.get("eps")) if in_bn_op else None
    block = _input_block(spec, in_bn)
    to_x = _raw_to_input(spec, shape, hi)
    act = mapping.get("activation", "pm1")
    layers, torch_ops = [], []
    for op in hidden:
        if "maxpool" in op:
            k = int(op["maxpool"])
            layers.append(Pool(k, int(op.get("stride", k))))
            torch_ops.append(("pool", layers[-1]))
            continue
        name = op.get("conv", op.get("linear"))
        if name is None:
            raise UserError(f"mapping layer {op}: expected a 'conv', 'linear' or 'maxpool' entry")
        W = binarize(T.need(name, "weight"))
        bias = T.get(name, "bias")
        bn = T.bn(op.get("bn"), op.get("eps"))
        aff = Affine.make(len(W), 1.0, 0.0 if bias is None else bias.double().numpy(), bn)
        layer = BinaryLayer(W.numpy().astype(np.int64), aff, int(op.get("stride", 1)), int(op.get("padding", 0)))
        if ("conv" in op) != layer.conv:
            raise UserError(f"{name}: a {'4' if 'conv' in op else '2'}-d weight was expected")
        layers.append(layer)
        torch_ops.append(("layer", (W, bias, bn, layer)))
    name = out.get("linear")
    if name is None:
        raise UserError("the mapping's output needs 'linear': the final Linear layer's name")
    W = binarize(T.need(name, "weight"))
    if W.dim() != 2:
        raise UserError(f"{name}: the output layer must be a Linear layer")
    bias = T.get(name, "bias")
    bn = T.bn(out.get("bn"), out.get("eps"))
    head = Head(W.numpy().astype(np.int64), Affine.make(len(W), 1.0, 0.0 if bias is None else bias.double().numpy(), bn))
    inputs = _numpy(lambda raw: block(to_x(raw)).flatten(1))

    if module is not None:
        reference = module_reference(module, to_x)
    else:
        def forward(raw):
            h = block(to_x(raw))
            for what, item in torch_ops:
                if what == "pool":
                    h = F.max_pool2d(h, item.size, item.stride)
                    continue
                Wt, b, bnp, layer = item
                h = F.conv2d(h, Wt, b, layer.stride, layer.padding) if layer.conv else F.linear(h.flatten(1), Wt, b)
                h = torch.where(_bn_eval(h, bnp) >= 0, 1.0, -1.0 if act == "pm1" else 0.0)
            return _bn_eval(F.linear(h.flatten(1), W, bias), bn)
        reference = _numpy(forward)
    return SourceNet(kind, shape, lo, hi, inputs, layers, head, act, reference)


def module_reference(module: torch.nn.Module, to_x):
    """The module's own forward pass in evaluation mode on raw inputs (numpy in, float32 logits out)."""
    def run(raw: np.ndarray) -> np.ndarray:
        was = module.training
        module.eval()
        try:
            return _numpy(lambda r: module(to_x(r)))(raw)
        finally:
            module.train(was)
    return run


def _numpy(fn):
    """fn on torch tensors -> the same on numpy arrays, without gradients, float32."""
    def run(raw: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = fn(raw)
        return (out.value if hasattr(out, "value") else out).detach().float().numpy()
    return run


def read_torch(path: str, mapping: str | dict | None = None, feature_shape=None, domain=None) -> SourceNet:
    """A PyTorch file: a TorchScript module or a state dict (see the module docstring)."""
    mapping = load_mapping(mapping)
    if is_torchscript(path):
        try:
            module = torch.jit.load(path, map_location="cpu")
        except Exception as exc:  # torch raises many types for a broken archive
            raise UserError(f"{path}: not a loadable TorchScript module ({type(exc).__name__}: {str(exc)[:200]})") from None
        return from_module(module, mapping, feature_shape, domain, kind="torchscript")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols of foreign files
            warnings.simplefilter("ignore")
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle, zip and torch errors alike; only tensors are ever unpickled
        first = str(exc).strip().split(". ")[0].splitlines()[0][:160] if str(exc).strip() else ""
        raise UserError(f"{path}: not a PyTorch state dict or TorchScript file ({type(exc).__name__}: {first}); "
                        "save the model's state_dict() or torch.jit.save it") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not any(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path}: holds no tensors by name (save the model's state_dict(), or TorchScript)")
    return from_state(state, mapping, feature_shape, domain)


def from_module(module: torch.nn.Module, mapping: str | dict | None = None, feature_shape=None, domain=None,
                kind: str = "module") -> SourceNet:
    """A TorchScript module or plain ``nn.Module``: layers from its modules, its own forward as reference."""
    mapping = load_mapping(mapping)
    ops = None if ("layers" in mapping or "output" in mapping) else _ops_from_modules(module)
    return from_state(dict(module.state_dict()), mapping, feature_shape, domain, ops, module, kind)


def from_brevitas(module: torch.nn.Module, mapping: str | dict | None = None, feature_shape=None,
                  domain=None) -> SourceNet:
    """A Brevitas module: exported to QONNX (a temporary file) and read torch-free by
    ``interop.qonnx``; the reference is the module's own forward pass."""
    from ..interop.qonnx import read_qonnx

    mapping = load_mapping(mapping)
    spec, shape, lo, hi = input_spec(mapping, feature_shape, domain)
    try:
        from brevitas.export import export_qonnx
    except ImportError:
        raise UserError("importing a Brevitas module needs brevitas (pip install brevitas onnxoptimizer)") from None
    was = module.training
    module.eval()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.onnx")
        try:
            export_qonnx(module, torch.zeros((1,) + shape), export_path=path)
        except Exception as exc:  # brevitas / torch.onnx raise many types
            raise UserError(f"brevitas could not export the module to QONNX ({type(exc).__name__}: {str(exc)[:200]})") from None
        src = read_qonnx(path, mapping, shape, (lo, hi))
    module.train(was)
    src.reference = module_reference(module, _raw_to_input(spec, shape, hi))
    src.kind = "brevitas"
    return src


def from_object(module: Any, mapping: str | dict | None = None, feature_shape=None, domain=None) -> SourceNet:
    """A module object: Brevitas (any of its modules from ``brevitas``) or a plain ``nn.Module``."""
    if not isinstance(module, torch.nn.Module):
        raise UserError(f"cannot import a {type(module).__name__}: give a file path or a torch.nn.Module")
    if any(type(m).__module__.startswith("brevitas") for m in module.modules()):
        return from_brevitas(module, mapping, feature_shape, domain)
    return from_module(module, mapping, feature_shape, domain)
