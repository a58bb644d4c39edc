"""`GlobalMaxPooling2D`: global max pooling over 2D spatial data."""

from __future__ import annotations

from kerasish.layers.pooling.base_global_pooling import GlobalMaxPoolingBase


class GlobalMaxPooling2D(GlobalMaxPoolingBase):
    """Global max pooling for 2D spatial data (`keras.layers.GlobalMaxPooling2D`, alias
    `GlobalMaxPool2D`).

    Takes the maximum over all spatial dimensions.

    Args:
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".
        keepdims: Keep the spatial dimensions with size 1. Defaults to False.

    Input shape: `(batch, height, width, channels)` or `(batch, channels, height, width)`.
    Output shape: `(batch, channels)`, or with `keepdims=True`
    `(batch, 1, 1, channels)` / `(batch, channels, 1, 1)`.

    Example:
        >>> x = torch.randn(2, 6, 6, 3)
        >>> keras.layers.GlobalMaxPooling2D()(x).shape
        torch.Size([2, 3])
    """

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(pool_dimensions=2, data_format=data_format, keepdims=keepdims, **kwargs)
