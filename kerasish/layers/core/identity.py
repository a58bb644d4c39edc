"""`Identity`: a placeholder layer that returns its input."""

from __future__ import annotations

from kerasish.layers.layer import Layer


class Identity(Layer):
    """Identity layer: returns its (possibly nested) input unchanged.

    Useful as a placeholder, e.g. to switch a block off by configuration.
    Masks pass through.

    Example:
        >>> x = torch.ones(2, 3)
        >>> keras.layers.Identity()(x) is x
        True
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True
        self.built = True

    def call(self, inputs):
        return inputs

    def compute_output_shape(self, input_shape):
        return input_shape
