"""`keras.mixed_precision`: dtype policies for mixed-precision training."""

from kerasish.dtype_policies import DTypePolicy
from kerasish.dtype_policies import Policy
from kerasish.dtype_policies import global_policy
from kerasish.dtype_policies import set_global_policy
from kerasish.optimizers.loss_scale_optimizer import LossScaleOptimizer

# Keras 3 names of the same two functions
dtype_policy = global_policy
set_dtype_policy = set_global_policy

__all__ = [
    "DTypePolicy", "LossScaleOptimizer", "Policy", "dtype_policy", "global_policy", "set_dtype_policy",
    "set_global_policy",
]
