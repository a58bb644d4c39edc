"""`GlobalAveragePooling3D`: global average pooling over 3D volumetric data."""

from __future__ import annotations

from kerasish.layers.pooling.base_global_pooling import GlobalAveragePoolingBase


class GlobalAveragePooling3D(GlobalAveragePoolingBase):
    """Global average pooling for 3D volumetric data (`keras.layers.GlobalAveragePooling3D`, alias
    `GlobalAvgPool3D`).

    Takes the mean over all spatial dimensions.

    Args:
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".
        keepdims: Keep the spatial dimensions with size 1. Defaults to False.

    Input shape: `(batch, d1, d2, d3, channels)` or `(batch, channels, d1, d2, d3)`.
    Output shape: `(batch, channels)`, or with `keepdims=True`
    `(batch, 1, 1, 1, channels)` / `(batch, channels, 1, 1, 1)`.

    Example:
        >>> x = torch.randn(2, 4, 4, 4, 3)
        >>> keras.layers.GlobalAveragePooling3D()(x).shape
        torch.Size([2, 3])
    """

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(pool_dimensions=3, data_format=data_format, keepdims=keepdims, **kwargs)
