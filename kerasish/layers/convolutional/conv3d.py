"""`Conv3D`: 3D convolution (spatial convolution over volumes)."""

from __future__ import annotations

from kerasish.layers.convolutional.base_conv import BaseConv


class Conv3D(BaseConv):
    """3D convolution layer (`keras.layers.Conv3D`, alias `Convolution3D`).

    Creates a kernel of shape `(kd, kh, kw, in_channels // groups, filters)`
    (Keras layout) convolved with the input, adds a bias and applies
    `activation`. Runs on torch's `F.conv3d`; channels_last
    inputs reach it as a channels-last view, not a copy.

    Args:
        filters: Number of output channels.
        kernel_size: Int or tuple of 3 ints, the window size.
        strides: Int or tuple of 3 ints. Defaults to (1, 1, 1).
        padding: "valid" or "same" (TF split: an odd total puts the extra pixel at the end). Defaults to "valid".
        data_format: "channels_last" `(batch, d1, d2, d3, channels)` or "channels_first" `(batch, channels, d1, d2, d3)`.
            Defaults to "channels_last".
        dilation_rate: Int or tuple of 3 ints. Defaults to (1, 1, 1).
        groups: Channel groups; input channels and `filters` must be divisible
            by it. Defaults to 1.
        activation: Output activation. Defaults to None (linear).
        use_bias: Whether to add a bias. Defaults to True.
        kernel_initializer: Defaults to "glorot_uniform".
        bias_initializer: Defaults to "zeros".
        kernel_regularizer: Defaults to None.
        bias_regularizer: Defaults to None.
        activity_regularizer: Defaults to None.
        kernel_constraint: Defaults to None.
        bias_constraint: Defaults to None.
        **kwargs: Base layer arguments (`name`, `dtype`, ...), and `lora_rank`
            / `lora_alpha` (LoRA built in, as Keras; see `enable_lora`).

    Input shape: `(batch, d1, d2, d3, channels)` (channels_last) or `(batch, channels, d1, d2, d3)` (channels_first).
    Output shape: `(batch, new_d1, new_d2, new_d3, filters)` or `(batch, filters, new_d1, new_d2, new_d3)`.

    Example:
        >>> x = torch.randn(2, 5, 5, 5, 3)
        >>> keras.layers.Conv3D(4, 3)(x).shape
        torch.Size(([2, 3, 3, 3, 4]))
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1, 1),
        padding="valid",
        data_format=None,
        dilation_rate=(1, 1, 1),
        groups=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(
            rank=3,
            filters=filters,
            kernel_size=kernel_size,
            strides=strides,
            padding=padding,
            data_format=data_format,
            dilation_rate=dilation_rate,
            groups=groups,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint,
            bias_constraint=bias_constraint,
            **kwargs,
        )
