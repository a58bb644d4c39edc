"""`GRU`: Gated Recurrent Unit layer (Cho et al. 2014) on `torch._VF.gru`."""

from __future__ import annotations

from kerasish.layers.rnn.base_rnn_layer import BaseRNNLayer
from kerasish.layers.rnn.gru_cell import GRUCell


class GRU(BaseRNNLayer):
    """Gated Recurrent Unit layer.

    Weights (Keras layout, `get_weights()` order): `cell.kernel`
    `(features, 3 * units)`, `cell.recurrent_kernel` `(units, 3 * units)`,
    `cell.bias` `(2, 3 * units)` (input bias, recurrent bias) with
    `reset_after=True` or `(3 * units,)` otherwise; gate order z, r, h
    (torch's order is r, z, n: converted per call for the fused kernel).

    Args:
        units: Positive integer, dimensionality of the output space.
        activation: Defaults to "tanh".
        recurrent_activation: Defaults to "sigmoid".
        use_bias: Defaults to True.
        kernel_initializer: Defaults to "glorot_uniform".
        recurrent_initializer: Defaults to "orthogonal".
        bias_initializer: Defaults to "zeros".
        kernel_regularizer, recurrent_regularizer, bias_regularizer,
        activity_regularizer, kernel_constraint, recurrent_constraint,
        bias_constraint: Default to None.
        dropout: Fraction of the inputs to drop (one mask for all time steps).
            Defaults to 0.
        recurrent_dropout: Fraction of the recurrent state to drop. Defaults to 0.
        seed: Seed for the dropout masks. Defaults to None.
        return_sequences, return_state, go_backwards, stateful, unroll: See
            `RNN`. Default to False.
        reset_after: Reset gate after the recurrent matmul (torch/cuDNN
            convention). Defaults to True.
        use_cudnn: "auto", True or False, as for `LSTM`. Defaults to "auto".

    Speed: with tanh/sigmoid, `reset_after=True` and no recurrent dropout in
    training the sequence is one `torch._VF.gru` call, also with right-/left-
    padded masks (eager). `reset_after=False` (no torch kernel), masks with
    holes and recurrent dropout use a Python time loop.

    Example:
        >>> gru = keras.layers.GRU(4, return_state=True)
        >>> out, h = gru(torch.randn(32, 10, 8))
    """

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
        unroll=False,
        reset_after=True,
        use_cudnn="auto",
        **kwargs,
    ):
        cell = GRUCell(
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
            reset_after=reset_after,
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name="gru_cell",
            seed=seed,
            implementation=kwargs.pop("implementation", 2),
        )
        super().__init__(
            cell,
            use_cudnn=use_cudnn,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            activity_regularizer=activity_regularizer,
            **kwargs,
        )

    def get_config(self) -> dict:
        from kerasish import activations

        config = super().get_config()
        config["recurrent_activation"] = activations.serialize(self.cell.recurrent_activation)
        config["reset_after"] = self.cell.reset_after
        config["seed"] = self.cell.seed
        return config
