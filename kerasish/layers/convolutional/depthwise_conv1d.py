"""`DepthwiseConv1D`: 1D depthwise convolution."""

from __future__ import annotations

from kerasish.layers.convolutional.base_depthwise_conv import BaseDepthwiseConv


class DepthwiseConv1D(BaseDepthwiseConv):
    """1D depthwise convolution layer (`keras.layers.DepthwiseConv1D`).

    Each input channel is convolved with its own `depth_multiplier` filters;
    the outputs are stacked channel by channel (output channel
    `c * depth_multiplier + m`). Kernel `(kernel_size, in_channels,
    depth_multiplier)` in Keras's layout; runs on torch's grouped
    `F.conv2d` (`groups=in_channels`), lifted to 2-D with a unit height.

    Args:
        kernel_size: Int or tuple of 1 ints.
        strides: Int or tuple of 1 ints. Defaults to 1.
        padding: "valid" or "same" (TF split: the extra pixel at the end).
            Defaults to "valid".
        depth_multiplier: Output channels per input channel. Defaults to 1.
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".
        dilation_rate: Int or tuple of 1 ints. Defaults to 1.
        activation: Output activation. Defaults to None (linear).
        use_bias: Whether to add a bias. Defaults to True.
        depthwise_initializer: Defaults to "glorot_uniform".
        bias_initializer: Defaults to "zeros".
        depthwise_regularizer: Defaults to None.
        bias_regularizer: Defaults to None.
        activity_regularizer: Defaults to None.
        depthwise_constraint: Defaults to None.
        bias_constraint: Defaults to None.

    Input shape: `(batch, steps, channels)` or `(batch, channels, steps)`.
    Output shape: the same with `channels * depth_multiplier` channels and the
    convolved spatial sizes.

    Example:
        >>> x = torch.randn(2, 10, 3)
        >>> keras.layers.DepthwiseConv1D(3, depth_multiplier=2)(x).shape
        torch.Size(([2, 8, 6]))
    """

    def __init__(
        self,
        kernel_size,
        strides=1,
        padding="valid",
        depth_multiplier=1,
        data_format=None,
        dilation_rate=1,
        activation=None,
        use_bias=True,
        depthwise_initializer="glorot_uniform",
        bias_initializer="zeros",
        depthwise_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        depthwise_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(
            rank=1,
            depth_multiplier=depth_multiplier,
            kernel_size=kernel_size,
            strides=strides,
            padding=padding,
            data_format=data_format,
            dilation_rate=dilation_rate,
            activation=activation,
            use_bias=use_bias,
            depthwise_initializer=depthwise_initializer,
            bias_initializer=bias_initializer,
            depthwise_regularizer=depthwise_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            depthwise_constraint=depthwise_constraint,
            bias_constraint=bias_constraint,
            **kwargs,
        )
