"""`AdaptiveMaxPooling2D`."""

from __future__ import annotations

from kerasish.layers.pooling.base_adaptive_pooling import BaseAdaptivePooling


class AdaptiveMaxPooling2D(BaseAdaptivePooling):
    """Adaptive max pooling for image (4D) inputs (`keras.layers.AdaptiveMaxPooling2D`).

    Pools each of the 2 spatial dimension(s) into exactly `output_size`
    cells, whatever the input size: cell `i` of an axis of length `L` pooled
    to `n` takes the max over input indices `[floor(i*L/n), ceil((i+1)*L/n))`
    (torch's `F.adaptive_max_pool2d`, as Keras's torch backend uses).

    Args:
        output_size: Integer or tuple of 2 integers `(height, width)`, the output
            size of the spatial dimension(s).
        data_format: "channels_last" `(batch, height, width, channels)`
            or "channels_first" `(batch, channels, height, width)`.
            Defaults to "channels_last".

    Output shape: `(batch, out_height, out_width, channels)` for channels_last.

    Example:
        >>> keras.layers.AdaptiveMaxPooling2D((2, 3))(torch.rand(1, 7, 9, 3)).shape
        torch.Size([1, 2, 3, 3])
    """

    _mode = "max"
    _rank = 2
