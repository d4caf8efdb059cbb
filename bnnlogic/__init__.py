"""bnnlogic: binarized neural networks that are small, fast and provable."""
from .errors import UserError
from .model import Model, load

__version__ = "0.1.0"
__all__ = ["Model", "UserError", "load", "__version__"]
