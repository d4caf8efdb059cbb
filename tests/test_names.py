"""One public path per name: no package-level attribute shadows a submodule of the same name
(``from bnnlogic import verify`` once gave the function, and ``bnnlogic.verify.robustness_radius``
failed with an AttributeError), as in scikit-learn."""
import importlib
import pkgutil

import pytest

import bnnlogic

# logic/encode.py is being changed on other branches; renaming it (to encoding.py) is left to the
# merge, so this one is known: strict, so the test fails once it is fixed and the entry must go
KNOWN = {"bnnlogic.logic.encode"}


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


@pytest.mark.parametrize("full", [pytest.param(m, marks=pytest.mark.xfail(strict=True, reason="known, see KNOWN"))
                                  if m in KNOWN else m for m in every_submodule()])
def test_no_package_attribute_shadows_a_submodule(full):
    parent, name = full.rsplit(".", 1)
    module = importlib.import_module(full)
    attr = getattr(importlib.import_module(parent), name)
    assert attr is module, f"{parent}.{name} is a {type(attr).__name__}, not the module {full}"


def test_the_verification_api_is_at_the_top_level_and_in_its_module():
    from bnnlogic import verification

    for name in ("verify", "verify_region", "robustness_radius", "equivalent", "make_region"):
        assert getattr(bnnlogic, name) is getattr(verification, name)
