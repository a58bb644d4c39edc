"""`SpatialDropout1D`, `SpatialDropout2D`, `SpatialDropout3D`: dropout of whole
feature maps (one mask entry per sample and channel)."""

from __future__ import annotations

from kerasish.layers.input_spec import InputSpec
from kerasish.layers.regularization.dropout import Dropout
from kerasish.layers.reshaping.base_utils import standardize_data_format


class BaseSpatialDropout(Dropout):
    """Dropout whose mask is `(batch, 1, ..., channels)` (or channels first).

    Its `get_config` writes Keras's keys (`rate`, `seed`, `name`, `dtype`,
    plus `data_format`), with `dtype` the policy name.
    """

    _rank = 3

    def __init__(self, rate, data_format=None, seed=None, name=None, dtype=None, **kwargs):
        super().__init__(rate, seed=seed, name=name, dtype=dtype, **kwargs)
        self.data_format = standardize_data_format(data_format)
        self.input_spec = InputSpec(ndim=self._rank)
        # which input axes the mask keeps (batch and channels)
        channel_axis = 1 if self.data_format == "channels_first" else self._rank - 1
        self._kept_axes = (0, channel_axis)
        self._elementwise = False

    def _noise_shape(self, inputs):
        shape = inputs.shape
        return tuple(shape[i] if i in self._kept_axes else 1 for i in range(self._rank))

    def get_config(self):
        # Keras 3 writes exactly these keys (no `trainable`, no `noise_shape`)
        return {"rate": self.rate, "seed": self.seed, "name": self.name, "dtype": self.dtype_policy.name}


class SpatialDropout1D(BaseSpatialDropout):
    """Spatial 1D dropout (`keras.layers.SpatialDropout1D`): drops entire 1D
    feature maps (the same channels at every timestep).

    Args:
        rate: Float between 0 and 1, the fraction of channels to drop.
        seed: Integer seed for reproducible masks. Defaults to None.

    Input shape: 3D `(batch, timesteps, channels)`. Output shape: same.
    Keras 2 accepted (and ignored) extra `**kwargs`; so does this layer.

    Example:
        >>> y = keras.layers.SpatialDropout1D(0.5)(torch.ones(2, 5, 4), training=True)
    """

    _rank = 3

    def __init__(self, rate, seed=None, name=None, dtype=None, **kwargs):
        super().__init__(rate, data_format="channels_last", seed=seed, name=name, dtype=dtype, **kwargs)


class SpatialDropout2D(BaseSpatialDropout):
    """Spatial 2D dropout (`keras.layers.SpatialDropout2D`): drops entire 2D
    feature maps.

    Args:
        rate: Float between 0 and 1, the fraction of channels to drop.
        data_format: "channels_last" `(batch, rows, cols, channels)` or
            "channels_first" `(batch, channels, rows, cols)`. Defaults to
            the global image data format ("channels_last").
        seed: Integer seed for reproducible masks. Defaults to None.

    Input shape: 4D. Output shape: same.

    Example:
        >>> y = keras.layers.SpatialDropout2D(0.5)(torch.ones(2, 4, 4, 3), training=True)
    """

    _rank = 4

    def get_config(self):
        config = super().get_config()
        config["data_format"] = self.data_format
        return config


class SpatialDropout3D(BaseSpatialDropout):
    """Spatial 3D dropout (`keras.layers.SpatialDropout3D`): drops entire 3D
    feature maps.

    Args:
        rate: Float between 0 and 1, the fraction of channels to drop.
        data_format: "channels_last" `(batch, d1, d2, d3, channels)` or
            "channels_first" `(batch, channels, d1, d2, d3)`. Defaults to
            the global image data format ("channels_last").
        seed: Integer seed for reproducible masks. Defaults to None.

    Input shape: 5D. Output shape: same.

    Example:
        >>> y = keras.layers.SpatialDropout3D(0.5)(torch.ones(1, 2, 2, 2, 3), training=True)
    """

    _rank = 5

    def get_config(self):
        config = super().get_config()
        config["data_format"] = self.data_format
        return config
