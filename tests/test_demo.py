"""The demo runs end to end on embedded digits and writes its report and pictures."""
import json

from bnnlogic.demo import run_demo


def test_demo_writes_report_with_verification_and_explanation(tmp_path):
    rep = run_demo(tmp_path / "demo", epochs=5, progress=False, log=lambda *_: None)
    assert rep["ir_agreement"] == 1.0
    assert len(rep["verification"]) == 6
    assert all(s in ("robust", "counterexample", "unknown") for r in rep["verification"] for s in r["status"].values())
    assert "features" in rep["explanation"] or rep["explanation"].get("status") == "unknown"
    text = (tmp_path / "demo" / "report.md").read_text()
    assert "## Robustness (SAT)" in text and "## Why" in text
    # the engine's warm time and numba's one-off compile (or cache load) are reported apart
    assert rep["inference_seconds"] >= 0 and rep["compile_seconds"] >= 0
    assert "warm" in text and "engine compile" in text
    assert json.loads((tmp_path / "demo" / "report.json").read_text())["accuracy"] == rep["accuracy"]
