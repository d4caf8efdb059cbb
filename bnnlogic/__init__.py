"""bnnlogic: binarized neural networks that are small, fast and provable.

``bnnlogic.load(path)`` reads a model, ``model.predict(X)`` runs it on the bit-packed engine,
``bnnlogic.verify(model, x, eps=...)`` proves robustness or returns a replayed counterexample
(a ``VerifyResult``); ``bnnlogic.import_model(source)`` reads a BNN trained elsewhere (PyTorch,
Brevitas, QONNX) into its exact IR (``bnnlogic.interop``).  The verification API is also here at the top level
(``robustness_radius``, ``verify_region``, ``equivalent``, ``make_region``); it lives in the
module ``bnnlogic.verification``, so no package-level function shadows a module of the same
name (one public path per name, as in scikit-learn).  Each name is imported on first use
(``bnnlogic._lazy``): ``import bnnlogic`` alone loads no numba, scipy or solver.
"""
from typing import TYPE_CHECKING

from . import jit
from ._lazy import lazy_names

jit.apply()  # numba's settings, before any submodule defines a compiled loop (numba is not imported here)
from .errors import UserError  # noqa: E402

if TYPE_CHECKING:  # the names below, for type checkers; at run time each is imported on first use
    from .interop import import_model
    from .model import Model, load
    from .verification import (EquivalenceResult, RadiusResult, VerifyResult, equivalent, make_region,
                               robustness_radius, verify, verify_region)

__version__ = "0.1.0"
__all__ = ["EquivalenceResult", "Model", "RadiusResult", "UserError", "VerifyResult", "equivalent", "import_model", "load",
           "make_region", "robustness_radius", "verify", "verify_region", "__version__"]
__getattr__, __dir__ = lazy_names(__name__, {
    "import_model": "interop", "Model": "model", "load": "model",
    **{n: "verification" for n in ("EquivalenceResult", "RadiusResult", "VerifyResult", "equivalent", "make_region",
                                   "robustness_radius", "verify", "verify_region")}})
