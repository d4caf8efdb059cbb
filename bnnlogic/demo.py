"""The main job on the embedded default: train on sklearn digits, evaluate, verify, explain, report.

``run_demo(out_dir)`` writes ``out_dir/report.md`` (plus the model and pictures) and returns the
report's numbers as a dict.  Every step is a call to the public API.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np

from .data import load_dataset
from .errors import UserError
from .evaluate import evaluate
from .fileio import write_json, write_text
from .summary import summarize

DEMO_ARCH = "mlp:100"
DEMO_EPOCHS = 40
DEMO_VERIFY = 6  # test digits verified
DEMO_EPS = (1, 2)  # raw units on 0..16 features


def run_demo(out_dir: str | Path = "bnnlogic-demo", epochs: int = DEMO_EPOCHS, seed: int = 0,
             progress: bool = True, log=print) -> dict[str, Any]:
    """Train a BNN on digits, evaluate it and report; returns the numbers in the report."""
    from .nn import train

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    data = load_dataset("digits")
    log(f"[1/4] training {DEMO_ARCH} on digits ({len(data.X_train)} train / {len(data.X_test)} test images, "
        f"values 0..16, thermometer input coding)")
    t0 = time.perf_counter()
    model = train(data, DEMO_ARCH, epochs=epochs, seed=seed, progress=progress)
    train_s = time.perf_counter() - t0
    model_path = out / "digits.bnn"
    model.save(model_path)

    log("[2/4] evaluating the exact integer form (IR) against the trained network")
    ev = evaluate(model, "digits")
    summary = summarize(model)
    pred = model.predict(data.X_test)
    confusion = np.zeros((10, 10), dtype=int)
    np.add.at(confusion, (data.y_test, pred), 1)

    report: dict[str, Any] = {
        "model": str(model_path), "arch": DEMO_ARCH, "epochs": epochs,
        "accuracy": ev["accuracy"], "n": ev["n"], "ir_agreement": ev["ir_agreement"],
        "train_seconds": train_s, "inference_seconds": ev["seconds"], "compile_seconds": ev["compile_seconds"],
        "parameters": summary["parameters"],
        "storage_bytes": summary["storage_bytes"], "float32_bytes": summary["float32_bytes"],
    }
    lines = [
        "# bnnlogic demo: a provable BNN on sklearn digits", "",
        f"Model `{model_path.name}`: {DEMO_ARCH} ({summary['parameters']} binary weights, "
        f"{summary['storage_bytes']} bytes vs {summary['float32_bytes']} bytes in float32), "
        f"trained {epochs} epochs in {train_s:.1f} s.", "",
        "| metric | value |", "|---|---|",
        f"| test accuracy | {ev['accuracy']:.4f} ({ev['n']} images) |",
        f"| IR agreement with the trained network | {ev['ir_agreement']:.4f} |",
        f"| inference on the {ev['n']} test images (bit-packed engine, warm) | {ev['seconds'] * 1e3:.2f} ms |",
        f"| engine compile, once per process (numba; cached on disk after the first run) | "
        f"{ev['compile_seconds']:.2f} s |", "",
        "Confusion matrix (rows: true digit, columns: predicted):", "",
        "| | " + " | ".join(map(str, range(10))) + " |", "|---" * 11 + "|",
        *[f"| **{i}** | " + " | ".join(map(str, row)) + " |" for i, row in enumerate(confusion)], "",
    ]
    log(f"[3/4] verifying robustness of the first {DEMO_VERIFY} test digits at eps {DEMO_EPS} (raw units)")
    report["verification"], vlines = _verify_section(model, data, out)
    lines += vlines
    log("[4/4] explaining a decision: which pixels provably suffice within eps 3")
    report["explanation"], elines = _explain_section(model, data, out)
    lines += elines
    report["seconds"] = time.perf_counter() - t_start
    lines.append(f"Total demo time: {report['seconds']:.1f} s.")
    write_text(out / "report.md", "\n".join(lines) + "\n")
    write_json(out / "report.json", report)
    log(f"test accuracy {ev['accuracy']:.4f}, IR agreement {ev['ir_agreement']:.4f}; "
        f"report written to {out / 'report.md'}")
    return report


def _verify_section(model, data, out: Path) -> tuple[list[dict], list[str]]:
    """Verify the first test digits at a few eps; draw the first counterexample."""
    from .pictures import save_counterexample_png
    from .verification import robustness_radius, verify

    X, y = data.X_test.reshape(len(data.X_test), -1), data.y_test
    rows, picture = [], None
    lines = ["## Robustness (SAT)", "",
             "Each row: is every input within eps (raw units, features 0..16) of the digit classified as "
             "its label? `robust` is a solver proof (UNSAT); a counterexample is a concrete input, replayed "
             "through the engine. The radius is the largest eps proven robust.", "",
             "| # | label | " + " | ".join(f"eps {e}" for e in DEMO_EPS) + " | radius | time s |",
             "|---" * (4 + len(DEMO_EPS)) + "|"]
    for i in range(DEMO_VERIFY):
        t0 = time.perf_counter()
        res = [verify(model, X[i], eps=e, label=int(y[i]), timeout=10) for e in DEMO_EPS]
        rad = robustness_radius(model, X[i], label=int(y[i]), max_eps=3, timeout=10)
        dt = time.perf_counter() - t0
        rows.append({"index": i, "label": int(y[i]), "status": {str(e): r.status for e, r in zip(DEMO_EPS, res)},
                     "radius_robust": rad.radius_robust, "radius_counterexample": rad.radius_counterexample,
                     "time_s": dt})
        cells = [r.status if r.status != "counterexample" else f"counterexample (-> {r.adv_label})" for r in res]
        lines.append(f"| {i} | {y[i]} | " + " | ".join(cells) + f" | {rad.radius_robust} | {dt:.2f} |")
        cex = next((r for r in res if r.status == "counterexample"), None)
        if picture is None and cex is not None:
            picture = out / "counterexample.png"
            save_counterexample_png(picture, X[i], cex.counterexample, (8, 8), 0, 16,
                                    f"digit {y[i]} -> {cex.adv_label} at eps {cex.eps}")
    if picture is not None:
        lines += ["", f"![counterexample]({picture.name})", "",
                  "Left: the test digit; middle: an input within eps that the BNN misclassifies; right: the "
                  "change (red up, blue down)."]
    return rows, lines + [""]


def _explain_section(model, data, out: Path) -> tuple[dict, list[str]]:
    """A subset-minimal set of pixels that, kept at their values, forces the prediction for
    every input within eps 2 (the robust abductive explanation), checked by a second solver."""
    from .explain import Explainer, save_explanation_png

    i, eps = 4, 3
    x = data.X_test.reshape(len(data.X_test), -1)[i]
    ex = Explainer(model.ir, x, eps=eps, timeout=30)
    try:
        e = ex.abductive(method="quickxplain")
    except UserError as exc:  # a solver call gave up: say so, keep the rest of the report
        return {"index": i, "eps": eps, "status": "unknown"}, ["## Why (a formal explanation)", "",
                                                               f"Not found within the time limit: {exc}", ""]
    finally:
        ex.close()
    save_explanation_png(str(out / "explanation.png"), model.ir.coding, x, e.features,
                         f"digit {e.prediction}: {e.size} pixels suffice")
    info = {"index": i, "eps": eps, "prediction": e.prediction, "features": e.features, "size": e.size,
            "verified": e.verified, "time_s": e.time_s}
    return info, ["## Why (a formal explanation)", "",
                  f"Test digit #{i} is predicted {e.prediction}. Keeping these {e.size} of 64 pixels at their "
                  f"values forces that prediction for every input within eps {eps} of it, whatever the other "
                  f"pixels do within eps; no pixel can be dropped from the set (subset-minimal, checked by an "
                  f"independent solver: {e.verified}; {e.time_s:.2f} s).", "",
                  "![explanation](explanation.png)", ""]
