"""`ZeroPadding3D`."""

from __future__ import annotations

from kerasish.layers.reshaping.base_spatial import BaseZeroPadding
from kerasish.layers.reshaping.base_utils import standardize_data_format
from kerasish.layers.reshaping.base_utils import standardize_pairs


class ZeroPadding3D(BaseZeroPadding):
    """Zero-padding of the three spatial dimensions of a volume
    (`keras.layers.ZeroPadding3D`).

    Args:
        padding: Int, tuple of 3 ints (symmetric per dimension) or tuple of
            3 tuples of 2 ints `((left_dim1, right_dim1), ...)`.
            Defaults to `((1, 1), (1, 1), (1, 1))`.
        data_format: "channels_last" `(batch, d1, d2, d3, channels)` or
            "channels_first" `(batch, channels, d1, d2, d3)`. Defaults to
            the global image data format ("channels_last").

    Input shape: 5D. Output shape: 5D with padded spatial dimensions.

    Example:
        >>> keras.layers.ZeroPadding3D(1)(torch.ones(1, 2, 2, 2, 3)).shape
        torch.Size([1, 4, 4, 4, 3])
    """

    def __init__(self, padding=((1, 1), (1, 1), (1, 1)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.padding = standardize_pairs(padding, 3, "padding", "ZeroPadding3D")
        self._setup(self.padding, standardize_data_format(data_format), 3)
