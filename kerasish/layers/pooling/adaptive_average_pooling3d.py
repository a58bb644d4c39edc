"""`AdaptiveAveragePooling3D`."""

from __future__ import annotations

from kerasish.layers.pooling.base_adaptive_pooling import BaseAdaptivePooling


class AdaptiveAveragePooling3D(BaseAdaptivePooling):
    """Adaptive average pooling for volumetric (5D) inputs (`keras.layers.AdaptiveAveragePooling3D`).

    Pools each of the 3 spatial dimension(s) into exactly `output_size`
    cells, whatever the input size: cell `i` of an axis of length `L` pooled
    to `n` takes the mean over input indices `[floor(i*L/n), ceil((i+1)*L/n))`
    (torch's `F.adaptive_avg_pool3d`, as Keras's torch backend uses).

    Args:
        output_size: Integer or tuple of 3 integers `(depth, height, width)`, the output
            size of the spatial dimension(s).
        data_format: "channels_last" `(batch, depth, height, width, channels)`
            or "channels_first" `(batch, channels, depth, height, width)`.
            Defaults to "channels_last".

    Output shape: `(batch, out_depth, out_height, out_width, channels)` for channels_last.

    Example:
        >>> keras.layers.AdaptiveAveragePooling3D(2)(torch.rand(1, 5, 5, 5, 4)).shape
        torch.Size([1, 2, 2, 2, 4])
    """

    _mode = "average"
    _rank = 3
