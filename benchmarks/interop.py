"""Exports to the field's formats, checked: ONNX round trips, OPB and WCNF against bnnlogic's answers.

    python benchmarks/interop.py [--models digits-mlp,fashion-mlp-small] [--model-file F ...]
                                 [--solver-images K] [--eps E] [--max-eps E] [--timeout S] [--record]

Per model (``benchmarks/models.py`` zoo names, or model files):

1. ONNX: ``export_onnx`` (seconds, file size), onnxruntime on the model's whole test split:
   inputs whose score vector / prediction equals the engine's (must be all), seconds of
   onnxruntime and of the engine for the split, and ``read_onnx``: seconds and whether the IR
   arrays read back are bit-identical to the model's;
2. with ``--solver-images K`` (K > 0): for the first K test inputs, the OPB of the eps-``E``
   robustness query solved by clasp (Debian's, if installed) against ``verify`` (backend auto),
   and the WCNF of the minimal perturbation up to ``--max-eps`` solved by PySAT's RC2 against
   ``robustness_radius`` (each in a subprocess with ``--timeout`` seconds; a timeout is
   reported, not counted as a disagreement).

Prints markdown tables; ``--record`` writes ``benchmarks/records/interop/<date>-<rev>.json``.
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bnnlogic import load, robustness_radius, verify  # noqa: E402
from bnnlogic.data import load_dataset  # noqa: E402
from bnnlogic.interop.onnx_io import export_onnx, onnx_scores, read_onnx  # noqa: E402
from bnnlogic.interop.opb import write_opb  # noqa: E402
from bnnlogic.interop.wcnf import radius_encoding, write_wcnf  # noqa: E402
from bnnlogic.ir import MaxPool  # noqa: E402
from bnnlogic.logic import encode  # noqa: E402
from bnnlogic.verification import make_region  # noqa: E402

RC2 = ("import sys; from pysat.examples.rc2 import RC2; from pysat.formula import WCNF\n"
       "r = RC2(WCNF(from_file=sys.argv[1])); m = r.compute(); print('none' if m is None else r.cost)")


def ir_arrays(ir) -> list[np.ndarray]:
    out = [ir.coding.thresholds, ir.output.A, ir.output.offset]
    for layer in ir.layers:
        out += [] if isinstance(layer, MaxPool) else [layer.A, layer.k]
    return out


def onnx_row(name: str, model, X: np.ndarray, folder: str) -> dict:
    path = os.path.join(folder, f"{name}.onnx")
    t0 = time.perf_counter()
    export_onnx(model, path)
    t_export = time.perf_counter() - t0
    model.engine.warm_up()
    t0 = time.perf_counter()
    ref_scores, ref_pred = model.scores(X), model.predict(X)
    t_engine = time.perf_counter() - t0
    onnx_scores(path, X[:1])  # session start-up and the first run outside the timing
    t0 = time.perf_counter()
    scores, pred = onnx_scores(path, X)
    t_ort = time.perf_counter() - t0
    t0 = time.perf_counter()
    back = read_onnx(path)
    t_read = time.perf_counter() - t0
    same = all(a.dtype == b.dtype and a.shape == b.shape and np.array_equal(a, b)
               for a, b in zip(ir_arrays(model.ir), ir_arrays(back.ir)))
    return {"model": name, "n": len(X), "scores_equal": int(np.all(scores == ref_scores, axis=1).sum()),
            "predictions_equal": int((pred == ref_pred).sum()), "bit_identical": bool(same),
            "export_s": round(t_export, 3), "onnx_mb": round(os.path.getsize(path) / 2 ** 20, 2),
            "onnxruntime_s": round(t_ort, 3), "engine_s": round(t_engine, 3), "read_s": round(t_read, 3)}


def _run(cmd: list[str], timeout: float) -> str | None:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout).stdout
    except subprocess.TimeoutExpired:
        return None


def solver_rows(name: str, model, X: np.ndarray, eps: int, max_eps: int, timeout: float, folder: str) -> list[dict]:
    rows = []
    for i, x in enumerate(X):
        x = x.reshape(-1).astype(np.int64)
        label = int(model.predict(x[None])[0])
        row = {"model": name, "index": i, "label": label, "eps": eps, "max_eps": max_eps}
        R = make_region(model, x, eps)
        t0 = time.perf_counter()
        row["verify"] = verify(model, x, eps, timeout=timeout).status
        row["verify_s"] = round(time.perf_counter() - t0, 3)
        if shutil.which("clasp"):
            opb = os.path.join(folder, "q.opb")
            write_opb(encode(model.ir, R, [[(0, [c for c in range(model.ir.n_classes) if c != label])]]), opb)
            t0 = time.perf_counter()
            out = _run(["clasp", opb], timeout)
            row["opb_clasp"] = "timeout" if out is None else "robust" if "s UNSATISFIABLE" in out else "counterexample"
            row["opb_clasp_s"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        r = robustness_radius(model, x, max_eps=max_eps, timeout=timeout)
        row["radius"] = r.radius_counterexample if r.complete else "unknown"
        row["radius_s"] = round(time.perf_counter() - t0, 3)
        wcnf = os.path.join(folder, "q.wcnf")
        write_wcnf(radius_encoding(model, x, max_eps, label), wcnf)
        t0 = time.perf_counter()
        out = _run([sys.executable, "-c", RC2, wcnf], timeout)
        row["wcnf_rc2"] = "timeout" if out is None else (None if out.strip() == "none" else int(out))
        row["wcnf_rc2_s"] = round(time.perf_counter() - t0, 3)
        rows.append(row)
    return rows


def table(rows: list[dict], keys: list[str]) -> str:
    out = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    out += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", default="digits-mlp", help="comma list of benchmarks/models.py zoo names")
    ap.add_argument("--model-file", action="append", default=[], help="a model file (repeatable)")
    ap.add_argument("--solver-images", type=int, default=0, help="test inputs for the OPB/WCNF check (default 0)")
    ap.add_argument("--eps", type=int, default=1, help="radius of the OPB robustness query (raw units)")
    ap.add_argument("--max-eps", type=int, default=4, help="largest radius of the WCNF problem")
    ap.add_argument("--timeout", type=float, default=60.0, help="seconds per solver call")
    ap.add_argument("--record", action="store_true", help="write a JSON record under benchmarks/records/interop/")
    args = ap.parse_args()
    from models import get_model  # benchmarks/models.py

    models = [(n, get_model(n)) for n in args.models.split(",") if n]
    models += [(Path(f).stem, load(f)) for f in args.model_file]
    onnx_rows, rows = [], []
    with tempfile.TemporaryDirectory() as folder:
        for name, model in models:
            data = load_dataset(model.meta["dataset"])
            X = data.X_test.reshape(len(data.X_test), -1)
            onnx_rows.append(onnx_row(name, model, X, folder))
            print(table(onnx_rows[-1:], list(onnx_rows[-1])), flush=True)
            if args.solver_images:
                rows += solver_rows(name, model, X[: args.solver_images], args.eps, args.max_eps, args.timeout,
                                    folder)
    print("\n## ONNX export\n\n" + table(onnx_rows, list(onnx_rows[0])))
    if rows:
        print("\n## OPB (clasp) and WCNF (RC2)\n\n" + table(rows, list(rows[0])))
    agree = {"onnx_all_equal": all(r["scores_equal"] == r["n"] == r["predictions_equal"] for r in onnx_rows),
             "bit_identical": all(r["bit_identical"] for r in onnx_rows),
             "opb_disagreements": sum(1 for r in rows if r.get("opb_clasp") not in (None, "timeout", r["verify"])
                                      and r["verify"] != "unknown"),
             "wcnf_disagreements": sum(1 for r in rows if r["wcnf_rc2"] != "timeout" and r["radius"] != "unknown"
                                       and r["wcnf_rc2"] != r["radius"])}
    print("\n" + ", ".join(f"{k}: {v}" for k, v in agree.items()))
    if args.record:
        from records import save_record

        print(save_record("interop", {**agree, "onnx": onnx_rows}, onnx_rows + rows))


if __name__ == "__main__":
    main()
