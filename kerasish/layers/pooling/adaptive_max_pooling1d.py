"""`AdaptiveMaxPooling1D`."""

from __future__ import annotations

from kerasish.layers.pooling.base_adaptive_pooling import BaseAdaptivePooling


class AdaptiveMaxPooling1D(BaseAdaptivePooling):
    """Adaptive max pooling for temporal (3D) inputs (`keras.layers.AdaptiveMaxPooling1D`).

    Pools each of the 1 spatial dimension(s) into exactly `output_size`
    cells, whatever the input size: cell `i` of an axis of length `L` pooled
    to `n` takes the max over input indices `[floor(i*L/n), ceil((i+1)*L/n))`
    (torch's `F.adaptive_max_pool1d`, as Keras's torch backend uses).

    Args:
        output_size: Integer or tuple of 1 integers `(length,)`, the output
            size of the spatial dimension(s).
        data_format: "channels_last" `(batch, steps, features)`
            or "channels_first" `(batch, features, steps)`.
            Defaults to "channels_last".

    Output shape: `(batch, output_length, features)` for channels_last.

    Example:
        >>> keras.layers.AdaptiveMaxPooling1D(4)(torch.rand(2, 10, 3)).shape
        torch.Size([2, 4, 3])
    """

    _mode = "max"
    _rank = 1
