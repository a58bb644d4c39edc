"""`LSTMCell`: one step of a Long Short-Term Memory layer (Keras gate order
i, f, c, o — the same as torch's i, f, g, o)."""

from __future__ import annotations

import torch

from kerasish import initializers
from kerasish.layers.rnn.base_rnn_cell import BaseRNNCell


class _UnitForgetBias:
    """Keras's `unit_forget_bias` initializer: the forget-gate quarter of the
    bias starts at one, the rest from `bias_initializer`."""

    def __init__(self, units, base):
        self.units, self.base = units, base

    def __call__(self, shape, dtype=None):
        u = self.units
        ones = initializers.get("ones")((u,), dtype=dtype)
        return torch.cat([self.base((u,), dtype=dtype), ones, self.base((2 * u,), dtype=dtype)])


class LSTMCell(BaseRNNCell):
    """Cell class for the `LSTM` layer: processes one time step.

    Weights (Keras layout): `kernel` `(input_dim, 4 * units)`,
    `recurrent_kernel` `(units, 4 * units)`, `bias` `(4 * units,)`, gates in
    the order input, forget, cell, output. The two kernels are stored in
    torch's layout (`nn.LSTM`'s `(4 * units, in)`, contiguous; the variables
    are its transposed views, strides `(1, in)`), which the fused kernel
    reads without a copy. Torch tools that refuse non-contiguous parameters
    (FSDP2's `fully_shard`, safetensors) need
    `kerasish.utils.contiguous_weights(model)` first.

    Args:
        units: Positive integer, dimensionality of the output space.
        activation: Defaults to "tanh".
        recurrent_activation: Activation of the gates. Defaults to "sigmoid".
        use_bias: Defaults to True.
        kernel_initializer: Defaults to "glorot_uniform".
        recurrent_initializer: Defaults to "orthogonal".
        bias_initializer: Defaults to "zeros".
        unit_forget_bias: Add 1 to the forget-gate bias at initialization.
            Defaults to True.
        kernel_regularizer, recurrent_regularizer, bias_regularizer,
        kernel_constraint, recurrent_constraint, bias_constraint: Default to None.
        dropout: Fraction of the inputs to drop. Defaults to 0.
        recurrent_dropout: Fraction of the recurrent state to drop. Defaults to 0.
        seed: Seed for the dropout masks. Defaults to None.

    Call arguments:
        inputs: `(batch, features)`.
        states: `[h, c]`, each `(batch, units)`.
        training: Whether dropout is active.

    Returns `(h, [h, c])`.

    Example:
        >>> rnn = keras.layers.RNN(keras.layers.LSTMCell(4), return_state=True)
        >>> out, h, c = rnn(torch.randn(2, 10, 8))
    """

    _gates = 4
    _torch_layout_kernels = True

    def __init__(
        self,
        units,
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
        self.unit_forget_bias = bool(unit_forget_bias)
        if self.implementation == 1:
            self.dropout_mask_count = 4
        self.state_size = [self.units, self.units]

    def _lazy_trainable_weights(self):
        """Trainable weights `build` creates (uninitialized parameters until then)."""
        return ("kernel", "recurrent_kernel", "bias") if self.use_bias else ("kernel", "recurrent_kernel")

    def build(self, input_shape):
        self._add_kernels(input_shape[-1])
        if self.use_bias:
            init = _UnitForgetBias(self.units, self.bias_initializer) if self.unit_forget_bias else self.bias_initializer
            self._add_bias((4 * self.units,), init)
        else:
            self.bias = None

    def call(self, inputs, states, training=False):
        h_tm1, c_tm1 = states[0], states[1]
        dp = training and 0.0 < self.dropout < 1.0
        rec_dp = training and 0.0 < self.recurrent_dropout < 1.0
        if self.implementation == 1 and (dp or rec_dp):
            # one dropout mask per gate (Keras's implementation 1)
            k = self.kernel.unflatten(1, (4, self.units))
            rk = self.recurrent_kernel.unflatten(1, (4, self.units))
            xs = inputs * self.get_dropout_mask(inputs) if dp else inputs.expand(4, *inputs.shape)
            hs = h_tm1 * self.get_recurrent_dropout_mask(h_tm1) if rec_dp else h_tm1.expand(4, *h_tm1.shape)
            z = torch.einsum("gbi,igu->bgu", xs, k) + torch.einsum("gbi,igu->bgu", hs, rk)
            z = z.flatten(1)
        else:
            if dp:
                inputs = inputs * self.get_dropout_mask(inputs)
            z = torch.matmul(inputs, self.kernel) + torch.matmul(h_tm1, self.recurrent_kernel)
        if self.bias is not None:
            z = z + self.bias
        z_i, z_f, z_c, z_o = z.chunk(4, dim=-1)
        i = self.recurrent_activation(z_i)
        f = self.recurrent_activation(z_f)
        c = f * c_tm1 + i * self.activation(z_c)
        o = self.recurrent_activation(z_o)
        h = o * self.activation(c)
        return h, [h, c]

    def get_config(self) -> dict:
        return {**super().get_config(), "unit_forget_bias": self.unit_forget_bias}
