"""Fuzzed inputs for the CLI, shared by tests/test_fuzz.py and benchmarks/reliability.py.

``fuzz_files(folder, model, rng)`` writes broken variants of a valid model file, input file
and property file (truncated, bytes flipped, wrong dtype, NaN / inf, huge values, wrong
shapes, a zip bomb, foreign formats, an unreadable path) and yields CLI argument lists that
use them.  ``run_cli(argv)`` runs one in a subprocess: a good run exits 0; a bad input must
exit non-zero with one ``error:`` line and no traceback, within the time limit, leaving no
partial output file.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np


def _model_variants(model: bytes, rng: np.random.Generator) -> dict[str, bytes]:
    flipped = bytearray(model)
    for i in rng.integers(0, len(model), 8):
        flipped[i] ^= 0xFF
    bomb = io.BytesIO()
    with zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("header.json", b" " * (64 << 20))  # 64 MB of spaces
    foreign = io.BytesIO()
    with zipfile.ZipFile(foreign, "w") as zf:
        zf.writestr("model.onnx", b"\x08\x07")
    with zipfile.ZipFile(io.BytesIO(model)) as zf:
        header = json.loads(zf.read("header.json"))
        members = {n: zf.read(n) for n in zf.namelist()}
    variants = {"truncated": model[: int(rng.integers(1, len(model)))], "flipped": bytes(flipped),
                "empty": b"", "bomb": bomb.getvalue(), "foreign": foreign.getvalue(), "text": b"hello\n"}
    for name, change in (("bad-kind", lambda h: h["layers"][0].update(kind="lstm")),
                         ("huge-scale", lambda h: h["output"].update(scale=10 ** 30)),
                         ("no-layers", lambda h: h.pop("layers")), ("neg-shape", lambda h: h["coding"].update(feature_shape=[-4]))):
        h = json.loads(json.dumps(header))
        change(h)
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for n, b in members.items():
                zf.writestr(n, json.dumps(h) if n == "header.json" else b)
        variants[name] = buf.getvalue()
    for name, arr in (("float-weights", np.full((3, 3), 0.5)), ("big-weights", np.full((3, 3), 7, np.int64))):
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            for n, b in members.items():
                if n == "layers.0.A.npy":
                    a = io.BytesIO()
                    np.save(a, arr)
                    b = a.getvalue()
                zf.writestr(n, b)
        variants[name] = buf.getvalue()
    return variants


def _input_variants(d: int, lo: int, hi: int) -> dict[str, object]:
    return {"nan": np.full(d, np.nan), "inf": np.full(d, np.inf), "huge": np.full(d, 10 ** 18, np.int64),
            "negative": np.full(d, lo - 5), "float": np.full(d, 0.5), "short": np.zeros(d - 1, np.int64),
            "long": np.zeros(d + 3, np.int64), "strings": np.array(["a"] * d), "complex": np.zeros(d, complex),
            "object": np.array([{}] * d, dtype=object), "empty": np.zeros(0), "bool": np.ones(d, bool) * (hi >= 1)}


def fuzz_files(folder: Path, model_path: Path, x: np.ndarray, rng: np.random.Generator) -> list[list[str]]:
    """Broken files under ``folder`` and the CLI calls that use them (see the module docstring)."""
    from bnnlogic import load

    folder.mkdir(parents=True, exist_ok=True)
    m = load(model_path)
    c = m.ir.coding
    calls = []
    good_x = folder / "x.npy"
    np.save(good_x, x)
    for name, data in _model_variants(model_path.read_bytes(), rng).items():
        (folder / f"{name}.bnn").write_bytes(data)
        calls.append(["verify", str(folder / f"{name}.bnn"), "--input", str(good_x), "--eps", "1"])
        calls.append(["eval", str(folder / f"{name}.bnn")])
    for name, arr in _input_variants(c.n_features, c.lo, c.hi).items():
        p = folder / f"in-{name}.npy"
        np.save(p, arr, allow_pickle=True)
        calls.append(["verify", str(model_path), "--input", str(p), "--eps", "1"])
        calls.append(["predict", str(model_path), "--input", str(p)])
    for name, text in (("truncated", '{"pre": {"norm": "linf", "eps"'), ("no-post", '{"pre": {"norm": "linf"}}'),
                       ("bad-class", '{"pre": {"norm": "linf", "eps": 1}, "post": {"in": [99]}}'),
                       ("bad-mask", '{"pre": {"norm": "linf", "eps": 1, "mask": [10000]}, "post": {"in": [0]}}'),
                       ("bad-norm", '{"pre": {"norm": "l7", "eps": 1}, "post": {"in": [0]}}'),
                       ("huge-eps", '{"pre": {"norm": "linf", "eps": 1e300}, "post": {"in": [0]}}'),
                       ("nan-eps", '{"pre": {"norm": "linf", "eps": NaN}, "post": {"in": [0]}}'),
                       ("box-shape", '{"pre": {"norm": "box", "lo": [0, 0], "hi": [1]}, "post": {"in": [0]}}'),
                       ("list", '[1, 2, 3]'), ("binary", "\x00\x01\x02")):
        p = folder / f"prop-{name}.json"
        p.write_text(text)
        calls.append(["verify", str(model_path), "--input", str(good_x), "--property", str(p)])
    unreadable = folder / "unreadable.bnn"
    unreadable.write_bytes(model_path.read_bytes())
    os.chmod(unreadable, 0)
    calls += [["verify", str(unreadable), "--input", str(good_x)], ["verify", str(folder), "--input", str(good_x)],
              ["verify", str(folder / "missing.bnn"), "--input", str(good_x)]]
    for args in (["--eps", "-3"], ["--eps", "1e9"], ["--eps", "abc"], ["--eps", "nan"], ["--timeout", "-1"],
                 ["--backend", "cnf:nosuch:totalizer"], ["--backend", "nosuch"], ["--target", "99"], ["--label", "-4"],
                 ["--norm", "l0", "--eps", "100000"], ["--eps", "1,2"], ["--max-eps", "-2", "--min-eps"],
                 ["--equivalent", str(folder / "truncated.bnn")], ["--data", "digits", "--out", str(folder / "b.jsonl"),
                                                                     "--indices", "5:2"]):
        calls.append(["verify", str(model_path), "--input", str(good_x)] + args)
    calls += [["check", str(folder / "truncated.bnn")], ["check", str(folder / "bomb.bnn")],
              ["encode", str(model_path), "--input", str(folder / "in-nan.npy"), "--out", str(folder / "q.cnf")]]
    return calls


def run_cli(argv: list[str], timeout: float = 120) -> tuple[int, str, str]:
    """Run ``python -m bnnlogic argv``; (exit code, stdout, stderr)."""
    p = subprocess.run([sys.executable, "-m", "bnnlogic", *argv], capture_output=True, text=True, timeout=timeout,
                       env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    return p.returncode, p.stdout, p.stderr


def bad_outcome(code: int, out: str, err: str) -> str | None:
    """Why a run on a bad input is not a clean refusal (None if it is one, or a clean success)."""
    if "Traceback" in err or "Traceback" in out:
        return "traceback: " + err.strip().splitlines()[-1] if err.strip() else "traceback"
    if code == 0 or (code == 1 and out.startswith("INVALID: ")):  # `check`: a refuted certificate
        return None
    lines = [l for l in err.strip().splitlines() if l.strip()]
    usage = lines and lines[0].startswith("usage: ") and ": error: " in lines[-1]  # argparse's own
    if not usage and (len(lines) != 1 or not lines[0].startswith("error: ")):
        return f"exit {code} without one error line: {err.strip()[:200]!r}"
    return None


def run_inprocess(argv: list[str]) -> tuple[int, str, str]:
    """``bnnlogic.cli.main(argv)`` with its output captured; an exception it lets through
    propagates (a crash)."""
    import contextlib

    from bnnlogic.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else 2
    return code, out.getvalue(), err.getvalue()
