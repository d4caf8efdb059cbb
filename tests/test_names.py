"""One public path per name: no package-level attribute shadows a submodule of the same name
(``from bnnlogic import verify`` once gave the function, and ``bnnlogic.verify.robustness_radius``
failed with an AttributeError), as in scikit-learn."""
import importlib
import pkgutil
import subprocess
import sys

import pytest

import bnnlogic
from tests.helpers import loaded_modules


def submodules(pkg):
    for info in pkgutil.iter_modules(pkg.__path__):
        if info.name != "__main__":
            yield pkg, info.name, info.ispkg


def every_submodule():
    out, todo = [], [bnnlogic]
    while todo:
        pkg = todo.pop()
        for parent, name, ispkg in submodules(pkg):
            out.append(f"{parent.__name__}.{name}")
            if ispkg:
                todo.append(importlib.import_module(f"{parent.__name__}.{name}"))
    return sorted(out)


@pytest.mark.parametrize("full", every_submodule())
def test_no_package_attribute_shadows_a_submodule(full):
    parent, name = full.rsplit(".", 1)
    module = importlib.import_module(full)
    package = importlib.import_module(parent)
    for public in getattr(package, "__all__", []):  # resolving the lazy public names changes nothing
        getattr(package, public)
    attr = getattr(package, name)
    assert attr is module, f"{parent}.{name} is a {type(attr).__name__}, not the module {full}"


def test_lazy_names_resolve_in_any_order():
    """``bnnlogic`` and ``bnnlogic.logic`` import their public names on first use: the name is
    the function or class of its module whether that module was imported first or not."""
    code = ("import bnnlogic.logic.encoding as m, bnnlogic.logic as L, bnnlogic as B, bnnlogic.verification as v; "
            "assert L.encode is m.encode and L.Query.__module__ == 'bnnlogic.logic.query'; "
            "assert B.verify is v.verify and 'verify' in dir(B) and 'Query' in dir(L)")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_import_alone_loads_no_numba_scipy_or_solver():
    """The CLI's parent of a batch and ``--help`` need none of them (memory, start-up time)."""
    assert loaded_modules("import bnnlogic, bnnlogic.logic, bnnlogic.cli; bnnlogic.cli.build_parser()",
                          ["numba", "scipy", "ortools", "exact", "pysat", "torch", "sklearn"]) == []


def test_the_verification_api_is_at_the_top_level_and_in_its_module():
    from bnnlogic import verification

    for name in ("verify", "verify_region", "robustness_radius", "equivalent", "make_region"):
        assert getattr(bnnlogic, name) is getattr(verification, name)
