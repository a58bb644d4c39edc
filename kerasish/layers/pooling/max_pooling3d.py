"""`MaxPooling3D`: max pooling over 3D volumetric data."""

from __future__ import annotations

from kerasish.layers.pooling.base_pooling import BasePooling


class MaxPooling3D(BasePooling):
    """Max pooling for 3D volumetric data (`keras.layers.MaxPooling3D`, alias `MaxPool3D`).

    Takes the maximum over windows of `pool_size`, moved by `strides`.

    Args:
        pool_size: Int or tuple of 3 ints. Defaults to (2, 2, 2).
        strides: Int, tuple of 3 ints or None (= `pool_size`). Defaults to None.
        padding: "valid" or "same" (TF/Keras "same": the extra pixel of an odd
            total goes at the end). Defaults to "valid".
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".

    Input shape: `(batch, d1, d2, d3, channels)` or `(batch, channels, d1, d2, d3)`.
    Output shape: the same with pooled spatial sizes:
    "valid": `(n - pool_size) // strides + 1`; "same": `(n - 1) // strides + 1`.

    Example:
        >>> x = torch.randn(2, 4, 4, 4, 3)
        >>> keras.layers.MaxPooling3D()(x).shape
        torch.Size(([2, 2, 2, 2, 3]))
    """

    def __init__(
        self,
        pool_size=(2, 2, 2),
        strides=None,
        padding="valid",
        data_format=None,
        name=None,
        **kwargs,
    ):
        super().__init__(
            pool_size,
            strides,
            pool_dimensions=3,
            pool_mode="max",
            padding=padding,
            data_format=data_format,
            name=name,
            **kwargs,
        )
