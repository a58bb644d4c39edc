"""`ReLU`: rectified linear unit with Keras's leak, cap and threshold."""

from __future__ import annotations

from kerasish import activations
from kerasish.layers.layer import Layer


class ReLU(Layer):
    """Rectified Linear Unit activation function layer.

    `f(x) = max_value` if `x >= max_value`; `x` if `threshold <= x <
    max_value`; `negative_slope * (x - threshold)` otherwise.

    Args:
        max_value: Maximum activation value, non-negative, or `None` (no
            cap). Defaults to `None`.
        negative_slope: Non-negative slope below the threshold. Defaults to `0.0`.
        threshold: Non-negative threshold. Defaults to `0.0`.

    Input shape: arbitrary. Output shape: same as the input.

    Example:
        >>> keras.layers.ReLU(max_value=1.0)(torch.tensor([-1.0, 0.5, 2.0]))
        tensor([0.0000, 0.5000, 1.0000])
    """

    _float_inputs = True  # integer/bool inputs are cast to the compute dtype (torch's kernels take floats)

    def __init__(self, max_value=None, negative_slope=0.0, threshold=0.0, **kwargs):
        super().__init__(**kwargs)
        for arg, value in (("max_value", max_value), ("negative_slope", negative_slope), ("threshold", threshold)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise TypeError(f"`ReLU`: `{arg}` must be a number. Received: {arg}={value!r}")
        if max_value is not None and max_value < 0.0:
            raise ValueError(f"max_value of a ReLU layer cannot be a negative value. Received: max_value={max_value}")
        if negative_slope is None or negative_slope < 0.0:
            raise ValueError(
                f"negative_slope of a ReLU layer cannot be None or a negative value. Received: negative_slope={negative_slope}"
            )
        if threshold is None or threshold < 0.0:
            raise ValueError(
                f"threshold of a ReLU layer cannot be None or a negative value. Received: threshold={threshold}"
            )
        self.max_value = max_value
        self.negative_slope = negative_slope
        self.threshold = threshold
        self.supports_masking = True
        self.built = True

    def call(self, inputs):
        return activations.relu(
            inputs, negative_slope=self.negative_slope, max_value=self.max_value, threshold=self.threshold
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update({"max_value": self.max_value, "negative_slope": self.negative_slope, "threshold": self.threshold})
        return config
