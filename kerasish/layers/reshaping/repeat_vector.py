"""`RepeatVector`."""

from __future__ import annotations

from kerasish.layers.input_spec import InputSpec
from kerasish.layers.layer import Layer


class RepeatVector(Layer):
    """Repeats a 2D input `n` times along a new axis 1
    (`keras.layers.RepeatVector`).

    Args:
        n: Positive integer, the repetition factor.

    Input shape: `(batch, features)`. Output shape: `(batch, n, features)`.

    Example:
        >>> keras.layers.RepeatVector(3)(torch.ones(2, 4)).shape
        torch.Size([2, 3, 4])
    """

    def __init__(self, n, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(n, int) or isinstance(n, bool):
            raise TypeError(f"Expected an integer value for `n`, got {type(n)}.")
        if n <= 0:
            raise ValueError(f"Argument `n` should be a positive integer. Received: n={n}")
        self.n = n
        self.input_spec = InputSpec(ndim=2)

    def call(self, inputs):
        # a real copy (as Keras's `repeat`), so in-place ops on it are safe
        return inputs.unsqueeze(1).repeat(1, self.n, 1)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.n, input_shape[1])

    def get_config(self):
        config = super().get_config()
        config["n"] = self.n
        return config
