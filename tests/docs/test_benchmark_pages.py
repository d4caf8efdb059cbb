"""Benchmark tables come from records, not from hands: the committed pages and README tables
equal what benchmarks/render.py makes of the newest records, and a table names its record,
command and machine."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_render():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    spec = importlib.util.spec_from_file_location("render", ROOT / "benchmarks" / "render.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_committed_pages_and_readme_tables_are_rendered_from_the_newest_records():
    render = load_render()
    stale = [str(p.relative_to(ROOT)) for p, text in render.outputs(plots=False).items()
             if not p.exists() or p.read_text() != text]
    assert not stale, f"out of date, run `python benchmarks/render.py`: {stale}"


def fake_record(folder: Path, name: str, date: str, rows: list, summary: dict) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    rec = {"benchmark": name, "schema": 1, "command": f"python benchmarks/x.py --{date}", "git_revision": "a" * 40,
           "git_dirty": False, "date": date, "machine": {"cpu": "TestCPU", "cores": 2, "memory_gb": 1.0,
                                                         "load_avg_1m_start": 0.5, "load_avg_1m_end": 0.7},
           "summary": summary, "rows": rows}
    (folder / f"{date}.json").write_text(json.dumps(rec))


def test_a_page_shows_the_newest_record_with_its_provenance_and_lists_the_rest(tmp_path, monkeypatch):
    render = load_render()
    monkeypatch.setattr(render, "RECORDS", tmp_path)
    monkeypatch.setattr(render, "ROOT", tmp_path)
    rows = [{"model": "m", "config": "default", "eps": 1, "n": 2, "robust": 1, "counterexample": 1, "unknown": 0,
             "median_time_s": 0.123, "mean_time_s": 0.2, "median_variables": 7, "median_clauses": 9}]
    summary = {"rows": rows, "speedup_median_vs_naive_per_model": {"m": 42.0}, "disagreements": [],
               "unknown_eps_le5": 0}
    fake_record(tmp_path / "verify-x", "verify-x", "2026-01-01T00:00:00Z", [], summary | {"rows": []})
    fake_record(tmp_path / "verify-x", "verify-x", "2026-02-01T00:00:00Z", [], summary)
    page = render.render_page("verification.md", plots=False)
    assert "## `verify-x`" in page and "| m | default | 1 | 2 | 1 | 1 | 0 | 0.123 |" in page
    assert "python benchmarks/x.py --2026-02-01T00:00:00Z" in page and "TestCPU, 2 cores" in page
    assert "m 42.0x" in page and "Earlier records: 2026-01-01T00:00:00Z" in page
    assert "No record yet" in render.render_page("inference.md", plots=False)  # no infer record here


def test_readme_headlines_fall_back_and_say_when_nothing_is_recorded(tmp_path, monkeypatch):
    render = load_render()
    monkeypatch.setattr(render, "RECORDS", tmp_path)
    text = "a\n<!-- headline:inference -->\nold numbers\n<!-- /headline:inference -->\nb\n"
    out = render.render_readme(text)
    assert "old numbers" not in out and "No record yet: `python benchmarks/infer.py --quick --record`" in out
    assert out.startswith("a\n<!-- headline:inference -->\n") and out.endswith("<!-- /headline:inference -->\nb\n")


def test_the_hard_headline_takes_each_net_and_config_from_the_newest_record_that_ran_it(tmp_path, monkeypatch):
    """Beside the default's verdicts, the one-core schedule's unknowns and mean; each model's
    rows of each config come from the newest ``hard*`` record that ran them over the same
    images and eps (a net or a config re-run alone replaces only its own rows), named under
    the table; a run with another time limit is not the same run."""
    render = load_render()
    monkeypatch.setattr(render, "RECORDS", tmp_path)
    monkeypatch.setattr(render, "ROOT", tmp_path)
    row = lambda model, config, n, unknown: {"model": model, "config": config, "eps": 3, "n": n,  # noqa: E731
                                             "robust": 1, "counterexample": n - 1 - unknown, "unknown": unknown,
                                             "median_time_s": 0.5, "mean_time_s": 7.5}
    fake_record(tmp_path / "hard-m-k", "hard-m-k", "2026-01-01T00:00:00Z", [],
                {"rows": [row(m, cfg, 10, u) for m in "mk" for cfg, u in (("default", 2), ("one-core", 4))]})
    main = render.newest_exact("hard-m-k")
    out = "\n".join(render.hard_headline(main))
    assert "| m | 3 | 10 | 1 | 7 | 2 | 0.5 | 7.5 | 4 | 7.5 |" in out and "| k | 3 | 10 | 1 | 7 | 2 |" in out
    assert "- m default, m one-core, k default, k one-core: `python benchmarks/x.py --2026-01-01" in out
    fake_record(tmp_path / "hard-m-k-one-core", "hard-m-k-one-core", "2026-02-01T00:00:00Z", [],
                {"rows": [row("m", "one-core", 10, 3)]})
    fake_record(tmp_path / "hard-k", "hard-k", "2026-03-01T00:00:00Z", [],
                {"rows": [row("k", "default", 10, 1), row("k", "one-core", 5, 0)]})  # one-core over 5 images: not k's
    fake_record(tmp_path / "hard-k", "hard-k", "2026-04-01T00:00:00Z", [],
                {"rows": [row("k", "default", 10, 0)], "settings": {"timeout": 30}})  # another time limit
    out = "\n".join(render.hard_headline(main))
    assert "| m | 3 | 10 | 1 | 7 | 2 | 0.5 | 7.5 | 3 | 7.5 |" in out
    assert "| k | 3 | 10 | 1 | 8 | 1 | 0.5 | 7.5 | 4 | 7.5 |" in out
    assert "- m default, k one-core: `python benchmarks/x.py --2026-01-01" in out
    assert "- m one-core: `python benchmarks/x.py --2026-02-01" in out
    assert "- k default: `python benchmarks/x.py --2026-03-01" in out and "TestCPU, 2 cores" in out
