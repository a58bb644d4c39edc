"""`ConvLSTM2D`: 2-D convolutional LSTM."""

from __future__ import annotations

from kerasish.layers.rnn.base_conv_lstm import ConvLSTM


class ConvLSTM2D(ConvLSTM):
    """2-D Convolutional LSTM: an LSTM whose input and recurrent
    transformations are 2-D convolutions.

    Args:
        filters: Number of output filters.
        kernel_size: Int or tuple of 2 ints.
        strides: Int or tuple of 2 ints. Defaults to 1.
        padding: "valid" or "same" (Keras/TF "same"). Defaults to "valid".
        data_format: "channels_last" `(batch, time, rows, cols, channels)` or
            "channels_first" `(batch, time, channels, rows, cols)`. Defaults to the
            global image data format ("channels_last").
        dilation_rate: Int or tuple of 2 ints. Defaults to 1.
        activation: Defaults to "tanh".
        recurrent_activation: Defaults to "sigmoid".
        use_bias: Defaults to True.
        kernel_initializer: Defaults to "glorot_uniform".
        recurrent_initializer: Defaults to "orthogonal".
        bias_initializer: Defaults to "zeros".
        unit_forget_bias: Forget-gate bias starts at 1. Defaults to True.
        kernel_regularizer, recurrent_regularizer, bias_regularizer,
        activity_regularizer, kernel_constraint, recurrent_constraint,
        bias_constraint: Default to None.
        dropout: Fraction of the inputs to drop. Defaults to 0.
        recurrent_dropout: Fraction of the recurrent state to drop. Defaults to 0.
        seed: Seed for the dropout masks. Defaults to None.
        return_sequences, return_state, go_backwards, stateful: See `RNN`.
            Default to False.

    Weights (Keras layout): `kernel` `(*kernel_size, channels, 4 * filters)`,
    `recurrent_kernel` `(*kernel_size, filters, 4 * filters)`, `bias`
    `(4 * filters,)`, gates i, f, c, o. The time loop is a Python loop (one
    input and one recurrent `F.conv*d` per step); there is no fused torch
    kernel for convolutional LSTMs.

    Example:
        >>> layer = keras.layers.ConvLSTM2D(4, 3, padding="same")
        >>> layer(torch.randn(2, 5, 8, 8, 3)).shape
        torch.Size([2, 8, 8, 4])
    """

    def __init__(
        self,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
        activation="tanh",
        recurrent_activation="sigmoid",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        **kwargs,
    ):
        super().__init__(
            rank=2,
            filters=filters,
            kernel_size=kernel_size,
            strides=strides,
            padding=padding,
            data_format=data_format,
            dilation_rate=dilation_rate,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            unit_forget_bias=unit_forget_bias,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            **kwargs,
        )
