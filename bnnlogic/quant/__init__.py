"""Float networks without torch: K-bit quantization and exact compilation into the IR."""
from .compile import compile_quant, estimate_size, ir_scores_blas, ir_size
from .graph import BatchNorm, Conv2d, Flatten, FloatNet, Linear, MaxPool2d, ReLU
from .quantization import QuantNet, quantize

__all__ = ["BatchNorm", "Conv2d", "Flatten", "FloatNet", "Linear", "MaxPool2d", "QuantNet", "ReLU",
           "compile_quant", "estimate_size", "ir_scores_blas", "ir_size", "quantize"]
