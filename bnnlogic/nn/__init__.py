"""PyTorch side of bnnlogic: binarizers, binary layers, training, export.  The only package
that imports torch."""
from .layers import BinaryConv2d, BinaryLinear, Coding, OutputLayer, SignBlock, WeightQuant
from .network import BNN, NetConfig
from .training import build, fit, init_from_float, to_model, train

__all__ = ["BNN", "NetConfig", "BinaryConv2d", "BinaryLinear", "Coding", "OutputLayer", "SignBlock",
           "WeightQuant", "build", "fit", "init_from_float", "to_model", "train"]
