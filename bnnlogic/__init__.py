"""bnnlogic: binarized neural networks that are small, fast and provable.

``bnnlogic.load(path)`` reads a model, ``model.predict(X)`` runs it on the bit-packed engine,
``bnnlogic.verify(model, x, eps=...)`` proves robustness or returns a replayed counterexample
(a ``VerifyResult``); ``bnnlogic.import_model(source)`` reads a BNN trained elsewhere (PyTorch,
Brevitas, QONNX) into its exact IR (``bnnlogic.interop``).  The verification API is also here at the top level
(``robustness_radius``, ``verify_region``, ``equivalent``, ``make_region``); it lives in the
module ``bnnlogic.verification``, so no package-level function shadows a module of the same
name (one public path per name, as in scikit-learn).
"""
from . import jit

jit.apply()  # numba's settings, before the first submodule defines a compiled loop
from .errors import UserError  # noqa: E402
from .interop import import_model  # noqa: E402
from .model import Model, load  # noqa: E402
from .verification import (EquivalenceResult, RadiusResult, VerifyResult, equivalent, make_region,  # noqa: E402
                           robustness_radius, verify, verify_region)

__version__ = "0.1.0"
__all__ = ["EquivalenceResult", "Model", "RadiusResult", "UserError", "VerifyResult", "equivalent", "import_model", "load",
           "make_region", "robustness_radius", "verify", "verify_region", "__version__"]
