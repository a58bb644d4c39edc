"""`GlobalMaxPooling1D`: global max pooling over 1D temporal data."""

from __future__ import annotations

from kerasish.layers.pooling.base_global_pooling import GlobalMaxPoolingBase


class GlobalMaxPooling1D(GlobalMaxPoolingBase):
    """Global max pooling for 1D temporal data (`keras.layers.GlobalMaxPooling1D`, alias
    `GlobalMaxPool1D`).

    Takes the maximum over all spatial dimensions.

    Args:
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".
        keepdims: Keep the spatial dimensions with size 1. Defaults to False.

    Input shape: `(batch, steps, channels)` or `(batch, channels, steps)`.
    Output shape: `(batch, channels)`, or with `keepdims=True`
    `(batch, 1, channels)` / `(batch, channels, 1)`.

    Example:
        >>> x = torch.randn(2, 6, 3)
        >>> keras.layers.GlobalMaxPooling1D()(x).shape
        torch.Size([2, 3])
    """

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(pool_dimensions=1, data_format=data_format, keepdims=keepdims, **kwargs)
