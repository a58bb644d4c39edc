"""`ActivityRegularization`."""

from __future__ import annotations

from kerasish.layers.layer import Layer
from kerasish.regularizers import L1L2


class ActivityRegularization(Layer):
    """Adds an L1/L2 penalty on its input to `layer.losses` and returns the
    input unchanged (`keras.layers.ActivityRegularization`).

    The penalty is `l1 * sum(|x|) + l2 * sum(x**2)` divided by the batch
    size (Keras 3 behaviour of activity regularizers; Keras 2 did not
    divide).

    Args:
        l1: L1 regularization factor (non-negative float). Defaults to 0.
        l2: L2 regularization factor (non-negative float). Defaults to 0.

    Input shape: any. Output shape: same as the input. Masks pass through.

    Example:
        >>> layer = keras.layers.ActivityRegularization(l1=0.01)
        >>> y = layer(torch.ones(2, 3))
        >>> layer.losses  # [tensor(0.0300)]
    """

    def __init__(self, l1=0.0, l2=0.0, **kwargs):
        kwargs.pop("activity_regularizer", None)
        super().__init__(activity_regularizer=L1L2(l1=l1, l2=l2), **kwargs)
        self.supports_masking = True
        self.l1 = l1
        self.l2 = l2
        self.built = True

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.pop("activity_regularizer", None)
        config.update({"l1": self.l1, "l2": self.l2})
        return config
