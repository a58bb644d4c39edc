"""`SeparableConv2D`: 2D separable convolution."""

from __future__ import annotations

from kerasish.layers.convolutional.base_separable_conv import BaseSeparableConv


class SeparableConv2D(BaseSeparableConv):
    """2D separable convolution layer (`keras.layers.SeparableConv2D`, alias
    `SeparableConvolution2D`).

    A depthwise convolution (each input channel with its own
    `depth_multiplier` filters) followed by a pointwise (1x1) convolution to
    `filters` channels, then bias and activation. Weights in Keras's order and
    layout: `depthwise_kernel` `(kh, kw, in, depth_multiplier)`,
    `pointwise_kernel` `(1, 1, in * depth_multiplier, filters)`, `bias`.

    Args:
        filters: Number of output channels.
        kernel_size: Int or tuple of 2 ints (the depthwise window).
        strides: Int or tuple of 2 ints. Defaults to (1, 1).
        padding: "valid" or "same" (TF split: the extra pixel at the end).
            Defaults to "valid".
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".
        dilation_rate: Int or tuple of 2 ints. Defaults to (1, 1).
        depth_multiplier: Depthwise outputs per input channel. Defaults to 1.
        activation: Output activation. Defaults to None (linear).
        use_bias: Whether to add a bias. Defaults to True.
        depthwise_initializer: Defaults to "glorot_uniform".
        pointwise_initializer: Defaults to "glorot_uniform".
        bias_initializer: Defaults to "zeros".
        depthwise_regularizer: Defaults to None.
        pointwise_regularizer: Defaults to None.
        bias_regularizer: Defaults to None.
        activity_regularizer: Defaults to None.
        depthwise_constraint: Defaults to None.
        pointwise_constraint: Defaults to None.
        bias_constraint: Defaults to None.

    Input shape: `(batch, height, width, channels)` or `(batch, channels, height, width)`.
    Output shape: the same with `filters` channels and the convolved spatial sizes.

    Example:
        >>> x = torch.randn(2, 8, 8, 3)
        >>> keras.layers.SeparableConv2D(4, 3)(x).shape
        torch.Size(([2, 6, 6, 4]))
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=(1, 1),
        padding="valid",
        data_format=None,
        dilation_rate=(1, 1),
        depth_multiplier=1,
        activation=None,
        use_bias=True,
        depthwise_initializer="glorot_uniform",
        pointwise_initializer="glorot_uniform",
        bias_initializer="zeros",
        depthwise_regularizer=None,
        pointwise_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        depthwise_constraint=None,
        pointwise_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(
            rank=2,
            depth_multiplier=depth_multiplier,
            filters=filters,
            kernel_size=kernel_size,
            strides=strides,
            padding=padding,
            data_format=data_format,
            dilation_rate=dilation_rate,
            activation=activation,
            use_bias=use_bias,
            depthwise_initializer=depthwise_initializer,
            pointwise_initializer=pointwise_initializer,
            bias_initializer=bias_initializer,
            depthwise_regularizer=depthwise_regularizer,
            pointwise_regularizer=pointwise_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            depthwise_constraint=depthwise_constraint,
            pointwise_constraint=pointwise_constraint,
            bias_constraint=bias_constraint,
            **kwargs,
        )
