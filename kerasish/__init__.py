"""kerasish: Keras layers, models and training, running natively on PyTorch.

    import kerasish as keras
"""

from kerasish import activations
from kerasish import backend
from kerasish import callbacks
from kerasish import config
from kerasish import constraints
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
from kerasish import random
from kerasish import regularizers
from kerasish import saving
from kerasish import utils
from kerasish.dtype_policies import DTypePolicy
from kerasish.layers import Input
from kerasish.layers import InputSpec
from kerasish.layers import Layer
from kerasish.losses import Loss
from kerasish.models import Model
from kerasish.models import Sequential
from kerasish.variables import Variable

__version__ = "0.1.0"

__all__ = [
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
    "random",
    "regularizers",
    "saving",
    "utils",
]
