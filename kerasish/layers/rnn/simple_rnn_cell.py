"""`SimpleRNNCell`: one step of a fully-connected RNN, `h = act(x W + h U + b)`."""

from __future__ import annotations

import torch

from kerasish.layers.rnn.base_rnn_cell import BaseRNNCell


class SimpleRNNCell(BaseRNNCell):
    """Cell class for `SimpleRNN`: processes one time step.

    Args:
        units: Positive integer, dimensionality of the output space.
        activation: Activation function. Defaults to "tanh".
        use_bias: Whether the cell has a bias vector. Defaults to True.
        kernel_initializer: Initializer for `kernel` `(input_dim, units)`.
            Defaults to "glorot_uniform".
        recurrent_initializer: Initializer for `recurrent_kernel`
            `(units, units)`. Defaults to "orthogonal".
        bias_initializer: Initializer for `bias` `(units,)`. Defaults to "zeros".
        kernel_regularizer, recurrent_regularizer, bias_regularizer:
            Regularizers of the three weights. Default to None.
        kernel_constraint, recurrent_constraint, bias_constraint:
            Constraints of the three weights. Default to None.
        dropout: Fraction of the inputs to drop (one mask per sequence).
            Defaults to 0.
        recurrent_dropout: Fraction of the recurrent state to drop.
            Defaults to 0.
        seed: Seed for the dropout masks. Defaults to None.

    Call arguments:
        sequence: `(batch, features)` input of one time step.
        states: `[h]` or `h`, `(batch, units)`.
        training: Whether dropout is active.

    Returns `(output, new_states)`, both `(batch, units)` (the states as a
    list when `states` was a list).

    Example:
        >>> rnn = keras.layers.RNN(keras.layers.SimpleRNNCell(4))
        >>> rnn(torch.randn(2, 10, 8)).shape
        torch.Size([2, 4])
    """

    _seed_generator_first = True

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
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        **kwargs,
    ):
        super().__init__(
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
            **kwargs,
        )

    def _lazy_trainable_weights(self):
        """Trainable weights `build` creates (uninitialized parameters until then)."""
        return ("kernel", "recurrent_kernel", "bias") if self.use_bias else ("kernel", "recurrent_kernel")

    def build(self, input_shape):
        self._add_kernels(input_shape[-1])
        if self.use_bias:
            self._add_bias((self.units,), self.bias_initializer)
        else:
            self.bias = None

    def call(self, sequence, states, training=False):
        prev_output = states[0] if isinstance(states, (list, tuple)) else states
        if training and self.dropout > 0:
            sequence = sequence * self.get_dropout_mask(sequence)
        if training and self.recurrent_dropout > 0:
            prev_output = prev_output * self.get_recurrent_dropout_mask(prev_output)
        h = torch.matmul(sequence, self.kernel)
        if self.bias is not None:
            h = h + self.bias
        output = self.activation(h + torch.matmul(prev_output, self.recurrent_kernel))
        new_state = [output] if isinstance(states, (list, tuple)) else output
        return output, new_state
