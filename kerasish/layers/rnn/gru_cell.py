"""`GRUCell`: one step of a Gated Recurrent Unit (Keras gate order z, r, h;
torch's is r, z, n — see `fused_rnn` for the conversion)."""

from __future__ import annotations

import torch

from kerasish.layers.rnn.base_rnn_cell import BaseRNNCell


class GRUCell(BaseRNNCell):
    """Cell class for the `GRU` layer: processes one time step.

    Weights (Keras layout): `kernel` `(input_dim, 3 * units)`,
    `recurrent_kernel` `(units, 3 * units)`, gates in the order update (z),
    reset (r), candidate (h); `bias` `(2, 3 * units)` (input bias, recurrent
    bias) when `reset_after=True`, else `(3 * units,)`.

    Args:
        units: Positive integer, dimensionality of the output space.
        activation: Defaults to "tanh".
        recurrent_activation: Activation of the gates. Defaults to "sigmoid".
        use_bias: Defaults to True.
        kernel_initializer: Defaults to "glorot_uniform".
        recurrent_initializer: Defaults to "orthogonal".
        bias_initializer: Defaults to "zeros".
        kernel_regularizer, recurrent_regularizer, bias_regularizer,
        kernel_constraint, recurrent_constraint, bias_constraint: Default to None.
        dropout: Fraction of the inputs to drop. Defaults to 0.
        recurrent_dropout: Fraction of the recurrent state to drop. Defaults to 0.
        reset_after: Apply the reset gate after the recurrent matrix
            multiplication (torch's and cuDNN's convention). Defaults to True.
        seed: Seed for the dropout masks. Defaults to None.

    Call arguments:
        inputs: `(batch, features)`.
        states: `[h]` or `h`, `(batch, units)`.
        training: Whether dropout is active.

    Example:
        >>> rnn = keras.layers.RNN(keras.layers.GRUCell(4))
        >>> rnn(torch.randn(2, 10, 8)).shape
        torch.Size([2, 4])
    """

    _gates = 3

    def __init__(
        self,
        units,
        activation="tanh",
        recurrent_activation="sigmoid",
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
        reset_after=True,
        seed=None,
        **kwargs,
    ):
        super().__init__(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
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
        self.reset_after = bool(reset_after)
        if self.implementation == 1:
            self.dropout_mask_count = 3

    def _lazy_trainable_weights(self):
        """Trainable weights `build` creates (uninitialized parameters until then)."""
        return ("kernel", "recurrent_kernel", "bias") if self.use_bias else ("kernel", "recurrent_kernel")

    def build(self, input_shape):
        self._add_kernels(input_shape[-1])
        if self.use_bias:
            shape = (2, 3 * self.units) if self.reset_after else (3 * self.units,)
            self._add_bias(shape, self.bias_initializer)
        else:
            self.bias = None

    def call(self, inputs, states, training=False):
        h_tm1 = states[0] if isinstance(states, (list, tuple)) else states
        u = self.units
        dp = training and 0.0 < self.dropout < 1.0
        rec_dp = training and 0.0 < self.recurrent_dropout < 1.0
        input_bias = recurrent_bias = None
        if self.bias is not None:
            if self.reset_after:
                input_bias, recurrent_bias = self.bias[0], self.bias[1]
            else:
                input_bias = self.bias
        if self.implementation == 1 and (dp or rec_dp):
            # one dropout mask per gate (Keras's implementation 1)
            xs = inputs * self.get_dropout_mask(inputs) if dp else inputs.expand(3, *inputs.shape)
            hs = h_tm1 * self.get_recurrent_dropout_mask(h_tm1) if rec_dp else h_tm1.expand(3, *h_tm1.shape)
            x = torch.einsum("gbi,igu->bgu", xs, self.kernel.unflatten(1, (3, u))).flatten(1)
            h_z, h_r, h_h = hs[0], hs[1], hs[2]
        else:
            if dp:
                inputs = inputs * self.get_dropout_mask(inputs)
            x = torch.matmul(inputs, self.kernel)
            h_z = h_r = h_h = h_tm1
        if input_bias is not None:
            x = x + input_bias
        x_z, x_r, x_h = x.split(u, dim=-1)
        rk = self.recurrent_kernel
        if h_z is h_r:
            inner = torch.matmul(h_tm1, rk if self.reset_after else rk[:, : 2 * u])
        else:
            inner = torch.cat([h_z @ rk[:, :u], h_r @ rk[:, u : 2 * u], h_h @ rk[:, 2 * u :]], dim=-1)
            if not self.reset_after:
                inner = inner[:, : 2 * u]
        if recurrent_bias is not None:
            inner = inner + recurrent_bias[: inner.shape[-1]]
        # (`split`, not slices of `inner`: a slice's backward keeps the batch size, which a scan over
        # the steps of an exported training-mode program with a dynamic batch cannot carry)
        inner = inner.split(u, dim=-1)
        z = self.recurrent_activation(x_z + inner[0])
        r = self.recurrent_activation(x_r + inner[1])
        if self.reset_after:
            recurrent_h = r * inner[2]
        else:
            recurrent_h = torch.matmul(r * h_h, rk[:, 2 * u :])
        hh = self.activation(x_h + recurrent_h)
        h = z * h_tm1 + (1 - z) * hh
        return h, ([h] if isinstance(states, (list, tuple)) else h)

    def get_config(self) -> dict:
        return {**super().get_config(), "reset_after": self.reset_after}
