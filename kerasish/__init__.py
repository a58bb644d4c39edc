"""kerasish: Keras layers, models and training, running natively on PyTorch.

    import kerasish as keras
"""

from kerasish import activations
from kerasish import applications
from kerasish import backend
from kerasish import callbacks
from kerasish import config
from kerasish import constraints
from kerasish import datasets
from kerasish import distillation
from kerasish import distribution
from kerasish import dtype_policies
from kerasish import initializers
from kerasish import layers
from kerasish import losses
from kerasish import metrics
from kerasish import models
from kerasish import mixed_precision
from kerasish import ops
from kerasish import optimizers
from kerasish import preprocessing
from kerasish import quantizers
from kerasish import random
from kerasish import regularizers
from kerasish import saving
from kerasish import tree
from kerasish import utils
from kerasish import visualization
from kerasish.dtype_policies import DTypePolicy
from kerasish.layers import Input
from kerasish.layers import InputSpec
from kerasish.layers import Layer
from kerasish.losses import Loss
from kerasish.models import Model
from kerasish.models import Sequential
from kerasish.variables import Variable

__version__ = "0.1.0"

# Keras's top-level aliases of classes that live in submodules (resolved lazily)
_LAZY = {
    "FloatDTypePolicy": ("kerasish.dtype_policies", "FloatDTypePolicy"),
    "Initializer": ("kerasish.initializers", "Initializer"),
    "KerasTensor": ("kerasish.backend.keras_tensor", "KerasTensor"),
    "Metric": ("kerasish.metrics", "Metric"),
    "Optimizer": ("kerasish.optimizers", "Optimizer"),
    "Quantizer": ("kerasish.quantizers", "Quantizer"),
    "Regularizer": ("kerasish.regularizers", "Regularizer"),
    "Function": ("kerasish.ops.base_operation", "Function"),
    "Operation": ("kerasish.ops.base_operation", "Operation"),
    "RematScope": ("kerasish.backend.remat", "RematScope"),
    "remat": ("kerasish.backend.remat", "remat"),
    "StatelessScope": ("kerasish.backend.stateless_scope", "StatelessScope"),
    "SymbolicScope": ("kerasish.backend.stateless_scope", "SymbolicScope"),
    "device": ("kerasish.backend.device_scope", "device"),
    "name_scope": ("kerasish.utils.naming", "NameScope"),
}


def __getattr__(name):
    if name in ("engine", "objectives"):  # Keras 2 module paths (kerasish/utils/keras2_modules.py)
        import importlib

        value = importlib.import_module(f"kerasish.{name}")
        globals()[name] = value
        return value
    if name == "wrappers":  # scikit-learn wrappers: imported on first use, never by `import kerasish`
        import importlib

        value = importlib.import_module("kerasish.wrappers")
        globals()[name] = value
        return value
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kerasish' has no attribute '{name}'")


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | {"wrappers"})


def version() -> str:
    """kerasish's version string (`keras.version()`)."""
    return __version__

__all__ = [
    *_LAZY,
    "version",
    "DTypePolicy",
    "Input",
    "InputSpec",
    "Layer",
    "Loss",
    "Model",
    "Sequential",
    "Variable",
    "activations",
    "backend",
    "callbacks",
    "config",
    "constraints",
    "datasets",
    "distillation",
    "distribution",
    "dtype_policies",
    "initializers",
    "layers",
    "losses",
    "metrics",
    "models",
    "mixed_precision",
    "ops",
    "optimizers",
    "preprocessing",
    "quantizers",
    "random",
    "regularizers",
    "saving",
    "tree",
    "utils",
    "visualization",
]
