"""The documentation is built and tested like code: the site builds in strict mode (broken
links and missing references fail), the CLI reference is generated from the parsers, and every
```python example of the guide and the README runs (each page's examples in order, in one
namespace, in a fresh folder)."""
from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "hooks" not in p.parts) + [ROOT / "README.md"]
BLOCK = re.compile(r"^```python\n(.*?)^```", re.M | re.S)


def python_blocks(page: Path) -> list[str]:
    return BLOCK.findall(page.read_text())


@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)], ids=lambda p: str(p.relative_to(ROOT)))
def test_the_examples_of_a_page_run(page, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    namespace = {"__name__": "__docs__"}
    for i, code in enumerate(python_blocks(page)):
        exec(compile(code, f"{page.relative_to(ROOT)} (python block {i + 1})", "exec"), namespace)


def test_the_site_builds_in_strict_mode(tmp_path):
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1", PYTHONPATH=str(ROOT))
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                         cwd=ROOT, env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr[-4000:]
    html = (tmp_path / "site" / "cli" / "index.html").read_text()
    assert "bnnlogic explain" in html and "--call-timeout" in html  # the generated CLI reference
    api = (tmp_path / "site" / "api" / "verification" / "index.html").read_text()
    assert "robustness_radius" in api  # the API reference, from the docstrings


def _hook():
    spec = importlib.util.spec_from_file_location("cli_reference", DOCS / "hooks" / "cli_reference.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_the_cli_reference_has_every_command_and_argument():
    from bnnlogic.cli import build_parser

    text = _hook().render()
    root = build_parser()
    sub = next(a for a in root._actions if a.__class__.__name__ == "_SubParsersAction")
    for name, parser in sub.choices.items():
        assert f"## `bnnlogic {name}`" in text
        for action in parser._actions:
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert f"`{flag}" in text, (name, flag)
    assert "<!-- cli-reference -->" in (DOCS / "cli.md").read_text()


def test_every_page_is_in_the_nav():
    nav = (ROOT / "mkdocs.yml").read_text()
    for page in PAGES[:-1]:
        assert str(page.relative_to(DOCS)) in nav, f"{page} is not in mkdocs.yml's nav"
