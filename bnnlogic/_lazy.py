"""Lazy public names of a package (PEP 562).

``bnnlogic`` and ``bnnlogic.logic`` name their API at the top level (``bnnlogic.verify``,
``bnnlogic.logic.Query``) without importing the modules behind it: a process that needs little
(the CLI's parent of a batch, ``--help``) then loads no numba, scipy or solver.  A name is
imported on first use and kept in the package's namespace.
"""
from __future__ import annotations

import importlib
import sys
from typing import Any, Callable


def lazy_names(package: str, where: dict[str, str]) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``(__getattr__, __dir__)`` for ``package``; ``where``: public name -> the submodule
    (relative to ``package``) that defines it."""
    namespace = vars(sys.modules[package])

    def __getattr__(name: str) -> Any:
        sub = where.get(name)
        if sub is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = namespace[name] = getattr(importlib.import_module(f"{package}.{sub}"), name)
        return value

    def __dir__() -> list[str]:
        return sorted(set(namespace) | set(where))

    return __getattr__, __dir__
