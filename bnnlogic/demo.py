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
from .evaluate import evaluate
from .fileio import write_json, write_text
from .summary import summarize

DEMO_ARCH = "mlp:100"
DEMO_EPOCHS = 40


def run_demo(out_dir: str | Path = "bnnlogic-demo", epochs: int = DEMO_EPOCHS, seed: int = 0,
             progress: bool = True, log=print) -> dict[str, Any]:
    """Train a BNN on digits, evaluate it and report; returns the numbers in the report."""
    from .nn import train

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    data = load_dataset("digits")
    log(f"[1/2] training {DEMO_ARCH} on digits ({len(data.X_train)} train / {len(data.X_test)} test images, "
        f"values 0..16, thermometer input coding)")
    t0 = time.perf_counter()
    model = train(data, DEMO_ARCH, epochs=epochs, seed=seed, progress=progress)
    train_s = time.perf_counter() - t0
    model_path = out / "digits.bnn"
    model.save(model_path)

    log("[2/2] evaluating the exact integer form (IR) against the trained network")
    ev = evaluate(model, "digits")
    summary = summarize(model)
    pred = model.predict(data.X_test)
    confusion = np.zeros((10, 10), dtype=int)
    np.add.at(confusion, (data.y_test, pred), 1)

    report: dict[str, Any] = {
        "model": str(model_path), "arch": DEMO_ARCH, "epochs": epochs,
        "accuracy": ev["accuracy"], "n": ev["n"], "ir_agreement": ev["ir_agreement"],
        "train_seconds": train_s, "parameters": summary["parameters"],
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
        f"| inference on the test split (bit-packed engine) | {ev['seconds'] * 1e3:.2f} ms |", "",
        "Confusion matrix (rows: true digit, columns: predicted):", "",
        "| | " + " | ".join(map(str, range(10))) + " |", "|---" * 11 + "|",
        *[f"| **{i}** | " + " | ".join(map(str, row)) + " |" for i, row in enumerate(confusion)], "",
    ]
    report["seconds"] = time.perf_counter() - t_start
    lines.append(f"Total demo time: {report['seconds']:.1f} s.")
    write_text(out / "report.md", "\n".join(lines) + "\n")
    write_json(out / "report.json", report)
    log(f"test accuracy {ev['accuracy']:.4f}, IR agreement {ev['ir_agreement']:.4f}; "
        f"report written to {out / 'report.md'}")
    return report
