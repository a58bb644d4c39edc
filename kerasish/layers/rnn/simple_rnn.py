"""`SimpleRNN`: fully-connected RNN whose output is fed back as its state."""

from __future__ import annotations

from kerasish.layers.rnn.base_rnn_layer import BaseRNNLayer
from kerasish.layers.rnn.simple_rnn_cell import SimpleRNNCell


class SimpleRNN(BaseRNNLayer):
    """Fully-connected RNN where the output is fed back as the new state.

    Args:
        units: Positive integer, dimensionality of the output space.
        activation: Defaults to "tanh".
        use_bias: Defaults to True.
        kernel_initializer: Defaults to "glorot_uniform".
        recurrent_initializer: Defaults to "orthogonal".
        bias_initializer: Defaults to "zeros".
        kernel_regularizer, recurrent_regularizer, bias_regularizer,
        activity_regularizer, kernel_constraint, recurrent_constraint,
        bias_constraint: Default to None.
        dropout: Fraction of the inputs to drop (one mask per sequence).
            Defaults to 0.
        recurrent_dropout: Fraction of the recurrent state to drop. Defaults to 0.
        return_sequences, return_state, go_backwards, stateful, unroll: See
            `RNN`. Default to False.
        seed: Seed for the dropout masks. Defaults to None.

    Input shape: `(batch, timesteps, features)`. Output shape: `(batch, units)`
    or `(batch, timesteps, units)`; plus the final state with `return_state`.

    With a tanh or relu activation (and no recurrent dropout in training)
    the sequence runs in one `torch._VF.rnn_tanh`/`rnn_relu` call (see `RNN`).
    Keras's `get_config()` for SimpleRNN has no `seed` key; kerasish follows.

    Example:
        >>> layer = keras.layers.SimpleRNN(4)
        >>> layer(torch.randn(32, 10, 8)).shape
        torch.Size([32, 4])
    """

    _has_use_cudnn = False

    def __init__(
        self,
        units,
        activation="tanh",
        use_bias=True,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        kernel_regularizer=None,
        recurrent_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        seed=None,
        **kwargs,
    ):
        cell = SimpleRNNCell(
            units,
            activation=activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            recurrent_initializer=recurrent_initializer,
            bias_initializer=bias_initializer,
            kernel_regularizer=kernel_regularizer,
            recurrent_regularizer=recurrent_regularizer,
            bias_regularizer=bias_regularizer,
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name="simple_rnn_cell",
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )
