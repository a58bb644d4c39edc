"""`AveragePooling2D`: average pooling over 2D spatial data."""

from __future__ import annotations

from kerasish.layers.pooling.base_pooling import BasePooling


class AveragePooling2D(BasePooling):
    """Average pooling for 2D spatial data (`keras.layers.AveragePooling2D`, alias `AvgPool2D`).

    Takes the mean over windows of `pool_size`, moved by `strides`.
    With "same" padding the padded positions are excluded from each mean
    (TF / Keras 2 definition; Keras 3's torch backend counts them, a bug).

    Args:
        pool_size: Int or tuple of 2 ints. Required (Keras 3).
        strides: Int, tuple of 2 ints or None (= `pool_size`). Defaults to None.
        padding: "valid" or "same" (TF/Keras "same": the extra pixel of an odd
            total goes at the end). Defaults to "valid".
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".

    Input shape: `(batch, height, width, channels)` or `(batch, channels, height, width)`.
    Output shape: the same with pooled spatial sizes:
    "valid": `(n - pool_size) // strides + 1`; "same": `(n - 1) // strides + 1`.

    Example:
        >>> x = torch.randn(2, 6, 6, 3)
        >>> keras.layers.AveragePooling2D(2)(x).shape
        torch.Size(([2, 3, 3, 3]))
    """

    def __init__(
        self,
        pool_size,
        strides=None,
        padding="valid",
        data_format=None,
        name=None,
        **kwargs,
    ):
        super().__init__(
            pool_size,
            strides,
            pool_dimensions=2,
            pool_mode="average",
            padding=padding,
            data_format=data_format,
            name=name,
            **kwargs,
        )
