"""A saved model: the IR plus metadata (and the trained torch network's parameters).

File format (version 2, documented in ``docs/ir.md``; version 1 files, which predate conv
padding and per-position thresholds, are read too): a zip archive holding
``header.json`` (format name, version, layer kinds and scalars, metadata) and one ``.npy``
member per array (``coding.thresholds``, ``layers.{i}.A``, ``layers.{i}.k``, ``output.A``,
``output.offset``, ``torch.{name}``).  Loading never unpickles anything and validates every
shape and value range.
"""
from __future__ import annotations

import io
import json
import os
import zipfile
import zlib
from typing import Any

import numpy as np

from .errors import UserError
from .fileio import atomic_open
from .ir import IR, Conv, Dense, InputCoding, MaxPool, Output

FORMAT = "bnnlogic-ir"
VERSION = 2
READS = (1, 2)  # version 1: no conv padding, per-filter conv thresholds only (a subset of 2)


class Model:
    """A BNN in its exact integer form.

    ``predict``/``scores`` run the bit-packed engine (``bnnlogic.infer``) on raw features.
    ``meta`` holds the data set, architecture, training settings and measured metrics;
    ``torch_state`` the trained network's parameters (used to measure IR agreement).
    """

    def __init__(self, ir: IR, meta: dict[str, Any] | None = None,
                 torch_state: dict[str, np.ndarray] | None = None) -> None:
        ir.validate()
        self.ir = ir
        self.meta = dict(meta or {})
        self.torch_state = torch_state
        self.path: str | None = None  # the file it was loaded from (certificates pin it by hash)
        self._engine = None

    def __getstate__(self) -> dict[str, Any]:
        """Pickled without the compiled engine (rebuilt on first use in the receiving process):
        batch workers and Ray tasks receive a model this way."""
        return {**self.__dict__, "_engine": None}

    # ------------------------------------------------------------------ inference
    @property
    def engine(self):
        """The compiled bit-packed engine for this IR (built on first use)."""
        if self._engine is None:
            from .infer import Engine

            self._engine = Engine(self.ir)
        return self._engine

    def check_inputs(self, X: Any, dtype: Any = np.int64) -> np.ndarray:
        """Raw features as an (n, d) array of ``dtype``; one row (d,) or (*feature_shape) is a batch
        of 1 (a grey image may omit its channel axis: (H, W) or (n, H, W)).  ``dtype=None`` keeps an
        integer input's own dtype (uint8 pixels then take the engine's byte path, no copy).

        Raises ``UserError`` for a wrong shape, non-integer values or values outside [lo, hi].
        """
        c = self.ir.coding
        X = np.asarray(X)
        d, fs = c.n_features, tuple(c.feature_shape)
        gray = fs[1:] if len(fs) == 3 and fs[0] == 1 else None  # (H, W) for a (1, H, W) model
        if X.shape in (fs, (d,), gray):
            X = X.reshape(1, d)
        elif X.ndim >= 2 and X.shape[1:] in (fs, (d,), gray):
            X = X.reshape(len(X), d)
        else:
            raise UserError(f"input has shape {X.shape}; this model takes raw features of shape "
                            f"(n, {d}) or ({d},) (feature shape {fs})")
        if X.dtype.kind == "f":
            if not np.all(np.isfinite(X)) or not np.all(X == np.round(X)):
                raise UserError("input holds non-integer values; give raw integer features "
                                f"(e.g. pixels {c.lo}..{c.hi}), not normalised floats")
        elif X.dtype.kind not in "iub":
            raise UserError(f"input has dtype {X.dtype}; give raw integer features")
        if X.size and not (X.dtype == np.uint8 and c.lo <= 0 and c.hi >= 255):
            x_min, x_max = int(X.min()), int(X.max())  # integer-valued (checked above)
            if x_min < c.lo or x_max > c.hi:
                raise UserError(f"input values span [{x_min}, {x_max}], outside the model's "
                                f"feature domain [{c.lo}, {c.hi}]")
        if dtype is None and X.dtype.kind in "iu":
            return X
        return X.astype(np.int64 if dtype is None else dtype)

    def scores(self, X: Any) -> np.ndarray:
        """Exact integer class scores (n, n_classes)."""
        return self.engine.scores(self.check_inputs(X, dtype=None))

    def predict(self, X: Any) -> np.ndarray:
        """Predicted classes (n,), ties to the lowest class index."""
        return self.engine.predict(self.check_inputs(X, dtype=None))

    @property
    def classes(self) -> list[str]:
        return list(self.meta.get("classes", [str(c) for c in range(self.ir.n_classes)]))

    def __repr__(self) -> str:
        kinds = ",".join(layer.kind for layer in self.ir.layers)
        return f"Model({self.meta.get('arch', kinds)!r}, data={self.meta.get('dataset')!r})"

    # ------------------------------------------------------------------ file format
    def save(self, path: str | os.PathLike) -> None:
        """Write the model as one zip file, atomically (temp file, then rename)."""
        ir = self.ir
        arrays: dict[str, np.ndarray] = {"coding.thresholds": ir.coding.thresholds}
        layers = []
        for i, layer in enumerate(ir.layers):
            if isinstance(layer, MaxPool):
                layers.append({"kind": "maxpool", "size": layer.size, "stride": layer.stride})
                continue
            entry: dict[str, Any] = {"kind": layer.kind}
            if isinstance(layer, Conv):
                entry.update(stride=layer.stride, padding=layer.padding)
            layers.append(entry)
            arrays[f"layers.{i}.A"] = layer.A
            arrays[f"layers.{i}.k"] = layer.k
        arrays["output.A"] = ir.output.A
        arrays["output.offset"] = ir.output.offset
        for name, value in (self.torch_state or {}).items():
            arrays[f"torch.{name}"] = value
        header = {
            "format": FORMAT,
            "version": VERSION,
            "coding": {"feature_shape": list(ir.coding.feature_shape),
                       "lo": ir.coding.lo, "hi": ir.coding.hi},
            "layers": layers,
            "output": {"scale": ir.output.scale},
            "torch": sorted(self.torch_state) if self.torch_state else None,
            "meta": self.meta,
        }
        with atomic_open(path, "wb") as fh, zipfile.ZipFile(fh, "w", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("header.json", json.dumps(header, indent=1))
            for name, value in arrays.items():
                buf = io.BytesIO()
                np.lib.format.write_array(buf, np.ascontiguousarray(value), allow_pickle=False)
                zf.writestr(f"{name}.npy", buf.getvalue())

    @classmethod
    def load(cls, path: str | os.PathLike) -> "Model":
        """Read and validate a model file; a missing, corrupt or foreign file is a ``UserError``."""
        path = os.fspath(path)
        if not os.path.isfile(path):
            raise UserError(f"{path}: no such model file (train one with `bnnlogic train`)")
        fix = "re-create it with `bnnlogic train`"
        try:
            with zipfile.ZipFile(path) as zf:
                header = json.loads(zf.read("header.json"))
                if header.get("format") != FORMAT:
                    raise UserError(f"{path}: not a bnnlogic model file (format {header.get('format')!r})")
                version = header.get("version")
                if version not in READS:
                    raise UserError(f"{path}: model file version {version} is not supported (this "
                                    f"bnnlogic reads versions {', '.join(map(str, READS))}); {fix}")

                def arr(name: str, dtype: Any) -> np.ndarray:
                    a = np.lib.format.read_array(io.BytesIO(zf.read(f"{name}.npy")), allow_pickle=False)
                    if not np.can_cast(a.dtype, dtype, casting="same_kind"):
                        raise UserError(f"{path}: array {name} has dtype {a.dtype}; {fix}")
                    return a.astype(dtype)

                c = header["coding"]
                coding = InputCoding(tuple(int(v) for v in c["feature_shape"]), int(c["lo"]),
                                     int(c["hi"]), arr("coding.thresholds", np.int64))
                layers = []
                for i, entry in enumerate(header["layers"]):
                    kind = entry["kind"]
                    if kind == "maxpool":
                        layers.append(MaxPool(int(entry["size"]), int(entry["stride"])))
                    elif kind == "dense":
                        layers.append(Dense(arr(f"layers.{i}.A", np.int8), arr(f"layers.{i}.k", np.int64)))
                    elif kind == "conv":
                        pad = int(entry["padding"]) if version >= 2 else 0
                        layers.append(Conv(arr(f"layers.{i}.A", np.int8), arr(f"layers.{i}.k", np.int64),
                                           int(entry["stride"]), pad))
                    else:
                        raise UserError(f"{path}: unknown layer kind {kind!r}; {fix}")
                output = Output(arr("output.A", np.int8), int(header["output"]["scale"]),
                                arr("output.offset", np.int64))
                torch_state = ({name: np.lib.format.read_array(io.BytesIO(zf.read(f"torch.{name}.npy")),
                                                               allow_pickle=False)
                                for name in header["torch"]} if header.get("torch") else None)
                if version < 2 and any(isinstance(l, Conv) and l.k.ndim != 1 for l in layers):
                    raise UserError(f"{path}: a version-1 model file holds per-filter conv thresholds only; {fix}")
                ir = IR(coding, tuple(layers), output)
                try:
                    ir.validate()
                except UserError as exc:
                    raise UserError(f"{path}: invalid model ({exc}); {fix}") from None
                model = cls(ir, header.get("meta", {}), torch_state)
                model.path = path
                return model
        except UserError:
            raise
        except (zipfile.BadZipFile, zlib.error, NotImplementedError, KeyError, ValueError, TypeError, OSError,
                EOFError) as exc:  # NotImplementedError: zipfile on a compression method byte gone bad
            raise UserError(f"{path}: corrupt or foreign model file ({type(exc).__name__}: {exc}); {fix}") from None


def load(path: str | os.PathLike) -> Model:
    """Load a model file: ``bnnlogic.load("model.bnn")``."""
    return Model.load(path)
