"""`Conv1D`: 1D convolution (temporal convolution)."""

from __future__ import annotations

from kerasish.layers.convolutional.base_conv import BaseConv


class Conv1D(BaseConv):
    """1D convolution layer, e.g. temporal convolution (`keras.layers.Conv1D`, alias `Convolution1D`).

    Creates a kernel of shape `(kernel_size, in_channels // groups, filters)`
    (Keras layout) convolved with the input, adds a bias and applies
    `activation`. Runs on torch's `F.conv2d` (lifted to the 2-D kernel with a unit height); channels_last
    inputs reach it as a channels-last view, not a copy.

    Args:
        filters: Number of output channels.
        kernel_size: Int or tuple of 1 ints, the window size.
        strides: Int or tuple of 1 ints. Defaults to 1.
        padding: "valid", "same" (TF split: an odd total puts the extra pixel at the end) or "causal" (left padding only, so `output[t]` never sees `input[t + 1:]`). Defaults to "valid".
        data_format: "channels_last" `(batch, steps, channels)` or "channels_first" `(batch, channels, steps)`.
            Defaults to "channels_last".
        dilation_rate: Int or tuple of 1 ints. Defaults to 1.
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

    Input shape: `(batch, steps, channels)` (channels_last) or `(batch, channels, steps)` (channels_first).
    Output shape: `(batch, new_steps, filters)` or `(batch, filters, new_steps)`.

    Example:
        >>> x = torch.randn(2, 10, 3)
        >>> keras.layers.Conv1D(4, 3)(x).shape
        torch.Size(([2, 8, 4]))
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
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
            rank=1,
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
