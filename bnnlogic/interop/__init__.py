"""Networks from other tools: ``import_model`` (CLI ``bnnlogic import``) reads a BNN trained
elsewhere and returns its exact IR as a ``Model``, with the evidence: agreement with the
source's own float32 inference and the neurons that float32 rounding leaves ambiguous.

Readers, one per kind of source (``READERS``; ``kind`` picks one, else the first whose
``detect`` accepts the file):

    bnnlogic-onnx  an ONNX file of ``bnnlogic export`` (``bnnlogic.interop.onnx_io``), read back
                   bit-identically
    torch    a PyTorch state dict or TorchScript module (``bnnlogic.nn.importer``, torch)
    qonnx    a QONNX graph, e.g. Brevitas' export (``bnnlogic.interop.qonnx``, onnx + numpy)

A reader is ``read(path, mapping, feature_shape, domain) -> SourceNet | Model``; adding a kind
is one entry here.  In Python the source may also be a module object: a Brevitas module
(exported to QONNX and read torch-free) or any other ``torch.nn.Module`` (``from_module``).
"""
from __future__ import annotations

import importlib
import os
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..errors import UserError
from ..model import Model
from .source import SourceNet, to_ir

__all__ = ["READERS", "ImportResult", "Reader", "import_model"]


@dataclass(frozen=True)
class Reader:
    """A source kind: ``module:function`` reading a path, and a cheap test of a file."""

    target: str
    detect: Callable[[str], bool]
    help: str

    def read(self, path: str, mapping, feature_shape, domain) -> SourceNet | Model:
        mod, fn = self.target.split(":")
        return getattr(importlib.import_module(mod), fn)(path, mapping, feature_shape, domain)


def _is_qonnx(path: str) -> bool:
    if not path.lower().endswith(".onnx"):
        return False
    try:
        import onnx

        g = onnx.load(path, load_external_data=False).graph
    except Exception:  # any unreadable file is simply not this kind
        return False
    return any("qonnx" in n.domain or "brevitas" in n.domain or n.op_type in ("BipolarQuant", "Quant", "IntQuant")
               for n in g.node)


def _is_torch(path: str) -> bool:
    import zipfile

    if path.lower().endswith((".pt", ".pth", ".ts", ".torchscript")):
        return True
    try:
        with zipfile.ZipFile(path) as zf:
            return any(n.endswith(("data.pkl", "constants.pkl")) for n in zf.namelist())
    except (zipfile.BadZipFile, OSError, NotImplementedError, ValueError):
        return False


def _is_exported(path: str) -> bool:
    from .onnx_io import is_exported

    return is_exported(path)


READERS: dict[str, Reader] = {
    "bnnlogic-onnx": Reader("bnnlogic.interop.onnx_io:read_exported", _is_exported,
                            "an ONNX file of `bnnlogic export` (.onnx)"),
    "torch": Reader("bnnlogic.nn.importer:read_torch", _is_torch, "PyTorch state dict or TorchScript (.pt, .pth)"),
    "qonnx": Reader("bnnlogic.interop.qonnx:read_qonnx", _is_qonnx, "QONNX graph, e.g. Brevitas' export (.onnx)"),
}


@dataclass
class ImportResult:
    """The imported ``model`` and the evidence (``report``, also in ``model.meta["import"]``)."""

    model: Model
    report: dict[str, Any] = field(default_factory=dict)

    @property
    def agreement(self) -> float | None:
        return self.report.get("agreement")

    @property
    def ambiguous_neurons(self) -> list[dict]:
        return self.report.get("ambiguous_neurons", [])


def _source(source: Any, kind: str | None, mapping, feature_shape, domain) -> tuple[SourceNet | Model, str]:
    """Read ``source`` (a path, or a module object) with the reader of ``kind`` or the detected one."""
    if not isinstance(source, (str, os.PathLike)):
        from ..nn.importer import from_object

        return from_object(source, mapping, feature_shape, domain), type(source).__name__
    path = os.fspath(source)
    if not os.path.isfile(path):
        raise UserError(f"{path}: no such file")
    if kind is not None:
        if kind not in READERS:
            raise UserError(f"unknown source kind {kind!r}; use one of {', '.join(READERS)}")
        return READERS[kind].read(path, mapping, feature_shape, domain), path
    for reader in READERS.values():
        if reader.detect(path):
            return reader.read(path, mapping, feature_shape, domain), path
    raise UserError(f"{path}: not a source this importer knows ({'; '.join(f'{k}: {r.help}' for k, r in READERS.items())}); "
                    "give --kind")


def import_model(source: Any, mapping: str | os.PathLike | dict | None = None, kind: str | None = None,
                 data: str | None = None, data_dir: str | None = None, feature_shape: tuple[int, ...] | None = None,
                 domain: tuple[int, int] | None = None, n_random: int = 2000, seed: int = 0) -> ImportResult:
    """Import a BNN trained elsewhere (see the module docstring and ``bnnlogic.nn.importer``).

    ``mapping``: which tensor is which layer, how raw inputs become the source's input and bits
    (a dict or a JSON file); ``data``: a data set name (its test split measures agreement and
    gives the raw shape and domain), else ``n_random`` random raw inputs; ``feature_shape`` and
    ``domain`` (lo, hi): the raw inputs when no data set says.  Returns the model (exact IR) and
    a report: ``agreement`` (fraction of inputs where the IR's prediction equals the source's
    float32 argmax), ``ambiguous_neurons`` (neurons and class pairs that float32 rounding may
    decide either way in the source itself), timings, layer summary.
    """
    t0 = time.perf_counter()
    X, classes, data_name = None, None, None
    if data is not None:
        from ..data import load_dataset

        d = load_dataset(data, data_dir)
        X, classes, data_name = d.X_test.reshape(len(d.X_test), -1), d.classes, d.name
        feature_shape, domain = feature_shape or tuple(d.feature_shape), domain or (d.lo, d.hi)
    src, origin = _source(source, kind, mapping, feature_shape, domain)
    t_read = time.perf_counter() - t0
    if isinstance(src, Model):
        model, ambiguous, reference, src_kind = src, [], None, kind or "model"
    else:
        ir, ambiguous = to_ir(src)
        model, reference, src_kind = Model(ir), src.reference, src.kind
    t_fold = time.perf_counter() - t0 - t_read
    c = model.ir.coding
    if X is None:
        X = np.random.default_rng(seed).integers(c.lo, c.hi + 1, size=(n_random, c.n_features))
    X = model.check_inputs(X)
    report: dict[str, Any] = {"source": str(origin), "kind": src_kind, "n_classes": model.ir.n_classes,
                              "feature_shape": list(c.feature_shape), "domain": [c.lo, c.hi],
                              "agreement_data": f"{data_name}:test" if data_name else f"random:{len(X)}"}
    if reference is not None:
        logits = np.asarray(reference(X), dtype=np.float32)
        if logits.shape != (len(X), model.ir.n_classes):
            raise UserError(f"the source's own inference gives logits of shape {logits.shape}, the import "
                            f"({len(X)}, {model.ir.n_classes}); check the mapping's output layer")
        agree = np.argmax(logits, axis=1) == model.predict(X)
        report.update(agreement=float(agree.mean()), agreement_n=int(len(X)),
                      disagreements=np.nonzero(~agree)[0][:20].tolist())
    else:
        report.update(agreement=None, agreement_n=0, disagreements=[])
    report.update(ambiguous_neurons=ambiguous, layers=[layer.kind for layer in model.ir.layers],
                  seconds={"read": round(t_read, 6), "fold": round(t_fold, 6),
                           "total": round(time.perf_counter() - t0, 6)})
    model.meta.update({"dataset": data_name, "arch": f"imported:{src_kind}", "import": report,
                       "ir_agreement": report["agreement"]})
    if classes is not None:
        model.meta["classes"] = list(classes)
    return ImportResult(model, report)
