"""The ``bnnlogic`` command: one sub-command per module of this package.

Each module ``bnnlogic/cli/<name>.py`` defines ``register(subparsers)``, which adds its
sub-command and sets ``func`` (``args -> exit code``).  Sub-commands are thin layers over the
Python API; a ``UserError`` becomes one line on stderr and exit status 2.
"""
from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from ..errors import UserError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="bnnlogic",
        description="Train binarized neural networks, run them fast, and prove things about them with SAT.",
        epilog="Run `bnnlogic demo` for a tour; `bnnlogic CMD --help` explains each command.")
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"bnnlogic {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if not info.name.startswith("_"):
            module = importlib.import_module(f"{__name__}.{info.name}")
            if hasattr(module, "register"):
                module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
