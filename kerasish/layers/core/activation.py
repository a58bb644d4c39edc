"""`Activation`: applies an activation function to its input."""

from __future__ import annotations

from kerasish import activations
from kerasish.layers.layer import Layer


class Activation(Layer):
    """Applies an activation function to an output.

    Args:
        activation: Activation function: a callable or the name of a
            `keras.activations` function (`"relu"`, `"softmax"`...).

    Input shape: arbitrary. Output shape: same as the input. Masks pass through.

    Example:
        >>> layer = keras.layers.Activation("relu")
        >>> layer(torch.tensor([-3.0, 0.0, 2.0]))
        tensor([0., 0., 2.])
    """

    _float_inputs = True  # integer/bool inputs are cast to the compute dtype (torch's kernels take floats)

    def __init__(self, activation, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.activation = activations.get(activation)
        self.built = True

    def call(self, inputs):
        return self.activation(inputs)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["activation"] = activations.serialize(self.activation)
        return config
