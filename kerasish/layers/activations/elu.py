"""`ELU`: exponential linear unit."""

from __future__ import annotations

import torch.nn.functional as F

from kerasish.layers.layer import Layer


class ELU(Layer):
    """Applies an Exponential Linear Unit function to an output.

    `f(x) = alpha * (exp(x) - 1)` for `x < 0`, `x` for `x >= 0`.

    Args:
        alpha: Scale of the negative part. Defaults to `1.0`.

    Input shape: arbitrary. Output shape: same as the input.

    Example:
        >>> keras.layers.ELU()(torch.tensor([0.0, 1.0]))
        tensor([0., 1.])
    """

    _float_inputs = True  # integer/bool inputs are cast to the compute dtype (torch's kernels take floats)

    def __init__(self, alpha=1.0, **kwargs):
        super().__init__(**kwargs)
        self.alpha = alpha
        self.supports_masking = True
        self.built = True

    def call(self, inputs):
        return F.elu(inputs, self.alpha)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["alpha"] = self.alpha
        return config
