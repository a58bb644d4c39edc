"""`UpSampling2D`."""

from __future__ import annotations

from kerasish.layers.preprocessing.base_image import check_interpolation
from kerasish.layers.preprocessing.base_image import resize
from kerasish.layers.reshaping.base_spatial import BaseUpSampling
from kerasish.layers.reshaping.base_utils import standardize_data_format
from kerasish.layers.reshaping.base_utils import standardize_tuple


class UpSampling2D(BaseUpSampling):
    """Up-samples images by integer factors (`keras.layers.UpSampling2D`).

    Args:
        size: Int or tuple of 2 positive ints, the factors for rows and
            columns. Defaults to `(2, 2)`.
        data_format: "channels_last" `(batch, rows, cols, channels)` or
            "channels_first" `(batch, channels, rows, cols)`. Defaults to
            the global image data format ("channels_last").
        interpolation: "nearest" (each pixel repeated), "bilinear" or
            "bicubic" (`F.interpolate` with `align_corners=False`, what
            Keras's torch backend runs). Defaults to "nearest".

    Input shape: 4D. Output shape: 4D with rows and columns multiplied.

    Example:
        >>> keras.layers.UpSampling2D((2, 3), interpolation="bilinear")(torch.ones(1, 2, 2, 1)).shape
        torch.Size([1, 4, 6, 1])
    """

    def __init__(self, size=(2, 2), data_format=None, interpolation="nearest", **kwargs):
        super().__init__(**kwargs)
        self.size = standardize_tuple(size, 2, "size")
        self.interpolation = check_interpolation(interpolation, ("nearest", "bilinear", "bicubic"))
        self._setup(self.size, standardize_data_format(data_format), 2)

    def call(self, inputs):
        if self.interpolation == "nearest":
            return super().call(inputs)
        h_axis, w_axis = self._axes
        size = (inputs.shape[h_axis] * self.size[0], inputs.shape[w_axis] * self.size[1])
        return resize(inputs, size, self.data_format, interpolation=self.interpolation)

    def get_config(self):
        config = super().get_config()
        config.update({"size": self.size, "data_format": self.data_format, "interpolation": self.interpolation})
        return config
