"""`UnitNormalization`: L2-normalizes along axes with Keras's formula (`ops.normalize`)."""

from __future__ import annotations

from kerasish.layers.layer import Layer
from kerasish.layers.normalization.base_normalization import canonical_axes
from kerasish.layers.normalization.base_normalization import check_axis_arg

# Keras's `ops.normalize(..., epsilon=1e-12)`: x * min(rsqrt(sum(x^2)), 1/eps).
# torch's `F.normalize` (x / max(||x||, eps)) differs from it in the last bit.
_UNIT_NORM_EPSILON = 1e-12


class UnitNormalization(Layer):
    """Scales each input so that its L2 norm along `axis` is 1.

    Args:
        axis: Integer or list of integers, the axes to normalize over.
            Defaults to -1.

    Input shape: arbitrary. Output shape: same as input.

    Example:
        >>> y = keras.layers.UnitNormalization()(torch.randn(2, 3))
    """

    _float_inputs = True  # integer inputs are cast to the compute dtype

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        if not (isinstance(axis, (list, tuple, int)) and not isinstance(axis, bool)):
            raise TypeError(
                f"Invalid value for `axis` argument: expected an int or a list/tuple of ints. Received: axis={axis}"
            )
        self.axis = check_axis_arg("UnitNormalization", axis)
        self._dim = tuple(self.axis) if isinstance(self.axis, list) else self.axis
        self.supports_masking = True
        self.built = True

    def call(self, inputs):
        from kerasish.ops.nn import normalize  # kerasish.ops imports the layers

        return normalize(inputs, axis=self._dim, order=2, epsilon=_UNIT_NORM_EPSILON)

    def compute_output_shape(self, input_shape):
        canonical_axes("UnitNormalization", self.axis, input_shape)
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"axis": self.axis})
        return config
