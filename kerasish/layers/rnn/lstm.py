"""`LSTM`: Long Short-Term Memory layer (Hochreiter 1997) on `torch._VF.lstm`."""

from __future__ import annotations

from kerasish.layers.rnn.base_rnn_layer import BaseRNNLayer
from kerasish.layers.rnn.lstm_cell import LSTMCell


class LSTM(BaseRNNLayer):
    """Long Short-Term Memory layer.

    Weights (Keras layout, `get_weights()` order): `cell.kernel`
    `(features, 4 * units)`, `cell.recurrent_kernel` `(units, 4 * units)`,
    `cell.bias` `(4 * units,)`; gate order i, f, c, o (torch's i, f, g, o).
    The kernels' storage is torch's layout (see `LSTMCell`): they are not
    contiguous tensors; `kerasish.utils.contiguous_weights(model)` lays
    them back for FSDP2/safetensors.

    Args:
        units: Positive integer, dimensionality of the output space.
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
        dropout: Fraction of the inputs to drop (one mask for all time steps).
            Defaults to 0.
        recurrent_dropout: Fraction of the recurrent state to drop. Defaults to 0.
        seed: Seed for the dropout masks. Defaults to None.
        return_sequences, return_state, go_backwards, stateful, unroll: See
            `RNN`. Default to False.
        use_cudnn: "auto" uses the fused kernel when the configuration allows
            it; False always uses the time loop; True raises when the fused
            kernel cannot be used. Defaults to "auto".

    Input shape: `(batch, timesteps, features)`. Output: `(batch, units)` or
    `(batch, timesteps, units)`; with `return_state` also `h` and `c`.

    Speed: with tanh/sigmoid and no recurrent dropout in training, the whole
    sequence is one `torch._VF.lstm` call (cuDNN on GPU), also for
    right-/left-padded masks (eager). Masks with holes, other activations and
    recurrent dropout use a Python time loop (documented in `RNN`).

    Example:
        >>> lstm = keras.layers.LSTM(4, return_sequences=True, return_state=True)
        >>> seq, h, c = lstm(torch.randn(32, 10, 8))
        >>> seq.shape, h.shape
        (torch.Size([32, 10, 4]), torch.Size([32, 4]))
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
        unroll=False,
        use_cudnn="auto",
        **kwargs,
    ):
        cell = LSTMCell(
            units,
            activation=activation,
            recurrent_activation=recurrent_activation,
            use_bias=use_bias,
            kernel_initializer=kernel_initializer,
            unit_forget_bias=unit_forget_bias,
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
            dtype=kwargs.get("dtype"),
            trainable=kwargs.get("trainable", True),
            name="lstm_cell",
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
        config["unit_forget_bias"] = self.cell.unit_forget_bias
        config["seed"] = self.cell.seed
        return config
