"""`Conv1DTranspose`: 1D transposed convolution."""

from __future__ import annotations

from kerasish.layers.convolutional.base_conv_transpose import BaseConvTranspose


class Conv1DTranspose(BaseConvTranspose):
    """1D transposed convolution layer (`keras.layers.Conv1DTranspose`, alias `Convolution1DTranspose`).

    The gradient of a `Conv1D` with respect to its input: maps something with
    the shape of a convolution's output back to the shape of its input. The
    kernel is `(kernel_size, filters, in_channels)` (Keras layout). Output sizes and
    the placement of "same" padding follow Keras/TF exactly (plain torch
    `ConvTranspose1d` pads symmetrically and differs for odd totals).

    Args:
        filters: Number of output channels.
        kernel_size: Int or tuple of 1 ints.
        strides: Int or tuple of 1 ints. Defaults to 1.
        padding: "valid" or "same". Defaults to "valid".
        output_padding: Int or tuple of 1 ints (each < the stride) added at
            the end of each spatial dimension. Defaults to None.
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".
        dilation_rate: Int or tuple of 1 ints. Defaults to 1.
        activation: Output activation. Defaults to None (linear).
        use_bias: Whether to add a bias. Defaults to True.
        kernel_initializer: Defaults to "glorot_uniform".
        bias_initializer: Defaults to "zeros".
        kernel_regularizer: Defaults to None.
        bias_regularizer: Defaults to None.
        activity_regularizer: Defaults to None.
        kernel_constraint: Defaults to None.
        bias_constraint: Defaults to None.

    Output length per spatial dimension (dk = dilated kernel size):
    "valid": `(n - 1) * s + dk + (output_padding or max(dk, s) - dk)`;
    "same": `n * s` or, with `output_padding`, `(n - 1) * s + dk % 2 + output_padding`.

    Input shape: `(batch, steps, channels)` or `(batch, channels, steps)`.
    Output shape: `(batch, new_steps, filters)` or `(batch, filters, new_steps)`.

    Example:
        >>> x = torch.randn(2, 5, 3)
        >>> keras.layers.Conv1DTranspose(4, 3, strides=2, padding="same")(x).shape
        torch.Size(([2, 10, 4]))
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        output_padding=None,
        data_format=None,
        dilation_rate=1,
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
            output_padding=output_padding,
            data_format=data_format,
            dilation_rate=dilation_rate,
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
