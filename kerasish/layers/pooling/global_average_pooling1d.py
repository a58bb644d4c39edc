"""`GlobalAveragePooling1D`: global average pooling over 1D temporal data."""

from __future__ import annotations

import torch

from kerasish.layers.pooling.base_global_pooling import GlobalAveragePoolingBase


class GlobalAveragePooling1D(GlobalAveragePoolingBase):
    """Global average pooling for 1D temporal data (`keras.layers.GlobalAveragePooling1D`, alias
    `GlobalAvgPool1D`).

    Takes the mean over all spatial dimensions.
    With a mask `(batch, steps)` only the unmasked steps are averaged; the
    output carries no mask.

    Args:
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".
        keepdims: Keep the spatial dimensions with size 1. Defaults to False.

    Input shape: `(batch, steps, channels)` or `(batch, channels, steps)`.
    Output shape: `(batch, channels)`, or with `keepdims=True`
    `(batch, 1, channels)` / `(batch, channels, 1)`.

    Example:
        >>> x = torch.randn(2, 6, 3)
        >>> keras.layers.GlobalAveragePooling1D()(x).shape
        torch.Size([2, 3])
    """

    def __init__(self, data_format=None, keepdims=False, **kwargs):
        super().__init__(pool_dimensions=1, data_format=data_format, keepdims=keepdims, **kwargs)

        self.supports_masking = True
        self._mask_axis = 2 if self.data_format == "channels_last" else 1

    def call(self, inputs, mask=None):
        if mask is None:
            return self._reduce(inputs)
        # average over the unmasked steps only (Keras behaviour)
        keep = mask.unsqueeze(self._mask_axis).bool()
        axis = self._axes[0]
        total = torch.sum(torch.where(keep, inputs, 0), dim=axis, keepdim=self.keepdims)
        return total / torch.sum(keep.to(inputs.dtype), dim=axis, keepdim=self.keepdims)

    def compute_mask(self, inputs, mask=None):
        return None
