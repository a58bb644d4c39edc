"""`Cropping2D`."""

from __future__ import annotations

from kerasish.layers.reshaping.base_spatial import BaseCropping
from kerasish.layers.reshaping.base_utils import standardize_data_format
from kerasish.layers.reshaping.base_utils import standardize_pairs


class Cropping2D(BaseCropping):
    """Crops the rows and columns of an image (`keras.layers.Cropping2D`).

    Args:
        cropping: Int (same everywhere), tuple of 2 ints
            `(symmetric_height_crop, symmetric_width_crop)` or tuple of 2
            tuples of 2 ints `((top, bottom), (left, right))`, non-negative.
            Defaults to `((0, 0), (0, 0))`.
        data_format: "channels_last" `(batch, height, width, channels)` or
            "channels_first" `(batch, channels, height, width)`. Defaults to
            the global image data format ("channels_last").

    Input shape: 4D. Output shape: 4D with cropped rows and columns. The
    output is a view (no copy). Cropping a whole dimension away raises
    ValueError (Keras's message).

    Example:
        >>> keras.layers.Cropping2D(((1, 1), (0, 2)))(torch.ones(1, 5, 5, 3)).shape
        torch.Size([1, 3, 3, 3])
    """

    def __init__(self, cropping=((0, 0), (0, 0)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.cropping = standardize_pairs(cropping, 2, "cropping", "Cropping2D")
        self._setup(self.cropping, standardize_data_format(data_format), 2)
