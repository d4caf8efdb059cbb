"""`bnnlogic export`: write a model in another tool's format (ONNX), checked after writing."""
from __future__ import annotations

import time

import numpy as np

from ..data import NAMES
from ..model import load
from ._common import add_json_flag, emit


def register(sub) -> None:
    p = sub.add_parser("export", help="write a model as an ONNX graph of its exact integer scores",
                       description="Write the model as an ONNX graph (standard operators: comparisons, "
                                   "MatMulInteger/ConvInteger, MaxPool, int64 output) that computes exactly the "
                                   "model's integer scores ('scores') and its prediction ('prediction', ties to "
                                   "the lowest class) from raw features ('x'). onnxruntime then runs the file on "
                                   "the test split of --data (or on random raw inputs) and must agree with the "
                                   "engine on every input. bnnlogic.interop.onnx_io.read_onnx reads the file back "
                                   "into the same model.")
    p.add_argument("model", help="model file")
    p.add_argument("--format", choices=("onnx",), default="onnx", help="output format (default onnx)")
    p.add_argument("--out", required=True, help="file to write (e.g. model.onnx)")
    p.add_argument("--data", choices=NAMES, help="check on this data set's test split (default: 1000 random inputs)")
    p.add_argument("--data-dir", help="folder with the data set's IDX files")
    add_json_flag(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..interop.onnx_io import export_onnx, onnx_agreement

    model = load(args.model)
    t0 = time.perf_counter()
    export_onnx(model, args.out)
    t_export = time.perf_counter() - t0
    c = model.ir.coding
    if args.data:
        from ..data import load_dataset

        X, checked = load_dataset(args.data, args.data_dir).X_test, f"the {args.data} test split"
    else:
        X = np.random.default_rng(0).integers(c.lo, c.hi, size=(1000, c.n_features), endpoint=True)
        checked = "1000 random raw inputs"
    t0 = time.perf_counter()
    agree = onnx_agreement(args.out, model, X)
    t_check = time.perf_counter() - t0
    if agree["scores_equal"] != agree["n"]:
        raise RuntimeError(f"onnxruntime disagrees with the engine on {agree['n'] - agree['scores_equal']} of "
                           f"{agree['n']} inputs: an exporter bug")
    d = {"out": args.out, "format": args.format, "checked_on": checked, **agree,
         "export_s": round(t_export, 4), "check_s": round(t_check, 4)}
    emit(d, args.json, f"wrote {args.out}: onnxruntime gives the engine's scores on all {agree['n']} inputs of "
                       f"{checked} ({t_check:.2f} s)")
    return 0
