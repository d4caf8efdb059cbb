"""The ``bnnlogic`` command: one sub-command per module of this package.

Each module ``bnnlogic/cli/<name>.py`` defines ``register(subparsers)``, which adds its
sub-command and sets ``func`` (``args -> exit code``).  Sub-commands are thin layers over the
Python API; a ``UserError`` becomes one line on stderr and exit status 2.  An interrupt
(Ctrl-C; SIGTERM is turned into one) becomes one line and exit status 130, whatever raised
it: Python's KeyboardInterrupt or a solver binding's ``RuntimeError: Program interrupted by
user.`` (Exact).  Long commands (explain, count, compile) catch it themselves and report their
best result so far first.
"""
from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import signal
import sys

from ..budget import interruption
from ..errors import UserError
from ..heap import bound_heap
from ._common import EXIT_INTERRUPTED


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


def _terminate_as_interrupt() -> None:
    """SIGTERM raises KeyboardInterrupt in this process (so it ends like Ctrl-C: one line, the
    best result so far); a forked child keeps the default action (the parent ends it)."""
    pid = os.getpid()

    def handler(signum, frame):
        if os.getpid() != pid:
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        raise KeyboardInterrupt

    try:
        signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (main() called from a thread): leave SIGTERM alone
        pass


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    bound_heap()
    previous = signal.getsignal(signal.SIGTERM)
    _terminate_as_interrupt()
    try:
        return int(args.func(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, RuntimeError) as exc:
        if not interruption(exc):
            raise
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    finally:
        if previous is not None:
            try:
                signal.signal(signal.SIGTERM, previous)
            except ValueError:
                pass
