"""`LeakyReLU`: leaky rectified linear unit."""

from __future__ import annotations

import warnings

import torch.nn.functional as F

from kerasish.layers.layer import Layer


class LeakyReLU(Layer):
    """Leaky version of a Rectified Linear Unit activation layer.

    `f(x) = negative_slope * x` if `x < 0`, `x` otherwise.

    Args:
        negative_slope: Non-negative float, the slope for `x < 0`.
            Defaults to `0.3` (Keras's default; torch's `nn.LeakyReLU`
            uses 0.01).
        alpha: Keras 2 name of `negative_slope`, accepted with Keras 3's
            deprecation warning.

    Input shape: arbitrary. Output shape: same as the input.

    Example:
        >>> keras.layers.LeakyReLU()(torch.tensor([-10.0, 1.0]))
        tensor([-3.,  1.])
    """

    _float_inputs = True  # integer/bool inputs are cast to the compute dtype (torch's kernels take floats)

    def __init__(self, negative_slope=0.3, **kwargs):
        if "alpha" in kwargs:
            negative_slope = kwargs.pop("alpha")
            warnings.warn("Argument `alpha` is deprecated. Use `negative_slope` instead.", stacklevel=2)
        super().__init__(**kwargs)
        if negative_slope is None or negative_slope < 0:
            raise ValueError(
                "The negative_slope value of a Leaky ReLU layer cannot be None or negative value. "
                f"Expected a float. Received: negative_slope={negative_slope}"
            )
        self.negative_slope = negative_slope
        self.supports_masking = True
        self.built = True

    def call(self, inputs):
        return F.leaky_relu(inputs, self.negative_slope)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["negative_slope"] = self.negative_slope
        return config
