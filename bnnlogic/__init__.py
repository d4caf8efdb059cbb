"""bnnlogic: binarized neural networks that are small, fast and provable.

``bnnlogic.load(path)`` reads a model, ``model.predict(X)`` runs it on the bit-packed engine,
``bnnlogic.verify(model, x, eps=...)`` proves robustness or returns a replayed counterexample
(a ``VerifyResult``; the rest of the verification API lives in the ``bnnlogic.verify`` module:
``from bnnlogic.verify import robustness_radius, verify_region, equivalent``; note that
``import bnnlogic.verify as m`` binds the function, not the module).
"""
from . import jit

jit.apply()  # numba's settings, before the first submodule defines a compiled loop
from .errors import UserError  # noqa: E402
from .model import Model, load  # noqa: E402
from .verify import VerifyResult, verify  # noqa: E402  (the function shadows its module's name here)

__version__ = "0.1.0"
__all__ = ["Model", "UserError", "VerifyResult", "load", "verify", "__version__"]
