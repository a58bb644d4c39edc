"""`ZeroPadding2D`."""

from __future__ import annotations

from kerasish.layers.reshaping.base_spatial import BaseZeroPadding
from kerasish.layers.reshaping.base_utils import standardize_data_format
from kerasish.layers.reshaping.base_utils import standardize_pairs


class ZeroPadding2D(BaseZeroPadding):
    """Zero-padding of the rows and columns of an image
    (`keras.layers.ZeroPadding2D`).

    Args:
        padding: Int (same everywhere), tuple of 2 ints
            `(symmetric_height_pad, symmetric_width_pad)` or tuple of 2
            tuples of 2 ints `((top, bottom), (left, right))`.
            Defaults to `(1, 1)`.
        data_format: "channels_last" `(batch, height, width, channels)` or
            "channels_first" `(batch, channels, height, width)`. Defaults to
            the global image data format ("channels_last").

    Input shape: 4D. Output shape: 4D with padded rows and columns.

    Example:
        >>> keras.layers.ZeroPadding2D(((1, 0), (2, 2)))(torch.ones(1, 3, 3, 2)).shape
        torch.Size([1, 4, 7, 2])
    """

    def __init__(self, padding=(1, 1), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.padding = standardize_pairs(padding, 2, "padding", "ZeroPadding2D")
        self._setup(self.padding, standardize_data_format(data_format), 2)
