"""`ZeroPadding1D`."""

from __future__ import annotations

from kerasish.layers.reshaping.base_spatial import BaseZeroPadding
from kerasish.layers.reshaping.base_utils import standardize_data_format
from kerasish.layers.reshaping.base_utils import standardize_tuple


class ZeroPadding1D(BaseZeroPadding):
    """Zero-padding of the time axis of a 1D input (`keras.layers.ZeroPadding1D`).

    Args:
        padding: Int (same on both sides) or tuple of 2 ints
            `(left_pad, right_pad)`. Defaults to 1.
        data_format: "channels_last" `(batch, axis_to_pad, features)` or
            "channels_first" `(batch, features, axis_to_pad)`. Defaults to
            the global image data format ("channels_last").

    Input shape: 3D. Output shape: 3D, the padded axis grown by
    `left_pad + right_pad`.

    Example:
        >>> keras.layers.ZeroPadding1D(2)(torch.ones(1, 3, 4)).shape
        torch.Size([1, 7, 4])
    """

    def __init__(self, padding=1, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.padding = standardize_tuple(padding, 2, "padding", allow_zero=True)
        self._setup((self.padding,), standardize_data_format(data_format), 1)
