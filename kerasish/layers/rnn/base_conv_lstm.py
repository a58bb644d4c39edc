"""`ConvLSTMCell` and `ConvLSTM`: the LSTM with convolutions instead of
matrix products, shared by `ConvLSTM1D/2D/3D`.

Kernels keep Keras's layout `(*kernel_size, in, 4 * filters)` (gates i, f,
c, o); each step sees torch's `(out, in, *kernel_size)` as a permuted view and
channels_last data as a channels_last-format view (see `conv_utils`). The
time loop is a Python loop with one `F.conv*d` for the input and one for the
recurrent state per step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kerasish import regularizers
from kerasish.backend.keras_tensor import KerasTensor
from kerasish.layers.convolutional import conv_utils
from kerasish.layers.input_spec import InputSpec
from kerasish.layers.rnn.base_rnn_cell import BaseRNNCell
from kerasish.layers.rnn.base_rnn_cell import check_units
from kerasish.layers.rnn.lstm_cell import _UnitForgetBias
from kerasish.layers.rnn.rnn import RNN


class ConvLSTMCell(BaseRNNCell):
    """One step of a convolutional LSTM (see `ConvLSTM2D` for the arguments;
    `rank` is the number of spatial dimensions, 1 to 3)."""

    _seed_generator_first = True

    _gates = 4

    def __init__(
        self,
        rank,
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
        kernel_constraint=None,
        recurrent_constraint=None,
        bias_constraint=None,
        dropout=0.0,
        recurrent_dropout=0.0,
        seed=None,
        **kwargs,
    ):
        if rank > 3:
            raise ValueError(f"Rank {rank} convolutions are not currently implemented. Received: rank={rank}")
        filters = check_units(filters, "filters")
        super().__init__(
            filters,
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
        self.rank = rank
        self.filters = filters
        self.kernel_size = conv_utils.standardize_tuple(kernel_size, rank, "kernel_size")
        self.strides = conv_utils.standardize_tuple(strides, rank, "strides", allow_zero=True)
        self.padding = conv_utils.standardize_padding(padding)
        self.data_format = conv_utils.standardize_data_format(data_format)
        self.dilation_rate = conv_utils.standardize_tuple(dilation_rate, rank, "dilation_rate")
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                "Specifying `strides > 1` is not compatible with `dilation_rate > 1`. Please provide "
                f"`strides=1` or `dilation_rate=1`. Received: strides={self.strides} and "
                f"dilation_rate={self.dilation_rate}"
            )
        self.unit_forget_bias = bool(unit_forget_bias)
        self.dropout_mask_count = 4
        self.state_size = -1  # states are feature maps (see get_initial_state)
        self._layout = conv_utils.SpatialLayout(rank, self.data_format)
        lay = self._layout
        self._conv = F.conv3d if rank == 3 else F.conv2d
        self._op_strides = lay.op_tuple(self.strides)
        self._op_dilation = lay.op_tuple(self.dilation_rate)
        eff = tuple((k - 1) * d + 1 for k, d in zip(self.kernel_size, self.dilation_rate))
        self._op_eff_kernel = lay.op_tuple(eff)
        # the recurrent conv is "same" with stride 1: a fixed padding
        self._rec_pad, self._rec_padding, _ = conv_utils.static_padding(
            "same", lay.op_tuple(self.kernel_size), (1,) * len(lay.op_tuple(self.kernel_size))
        )
        # kernel (*k, in, out) -> (out, in, *k)
        self._w_perm = (rank + 1, rank, *range(rank))

    def _lazy_trainable_weights(self):
        """Trainable weights `build` creates (uninitialized parameters until then)."""
        return ("kernel", "recurrent_kernel", "bias") if self.use_bias else ("kernel", "recurrent_kernel")

    def build(self, inputs_shape, states_shape=None):
        inputs_shape = tuple(inputs_shape)
        if self.data_format == "channels_first":
            channels, spatial = inputs_shape[1], tuple(inputs_shape[2:])
        else:
            channels, spatial = inputs_shape[-1], tuple(inputs_shape[1:-1])
        if None in spatial:
            raise ValueError(
                "ConvLSTM layers only support static input shapes for the spatial dimension. "
                f"Received invalid input shape: input_shape={inputs_shape}"
            )
        if channels is None:
            raise ValueError(
                "The channel dimension of the inputs (last axis) should be defined. Found None. "
                f"Full input shape received: input_shape={inputs_shape}"
            )
        self.spatial_dims = spatial
        self.input_dim = channels
        self.kernel = self.add_weight(
            shape=(*self.kernel_size, channels, 4 * self.filters),
            initializer=self.kernel_initializer,
            name="kernel",
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
        )
        self.recurrent_kernel = self.add_weight(
            shape=(*self.kernel_size, self.filters, 4 * self.filters),
            initializer=self.recurrent_initializer,
            name="recurrent_kernel",
            regularizer=self.recurrent_regularizer,
            constraint=self.recurrent_constraint,
        )
        if self.use_bias:
            init = _UnitForgetBias(self.filters, self.bias_initializer) if self.unit_forget_bias else self.bias_initializer
            self._add_bias((4 * self.filters,), init)
        else:
            self.bias = None

    def _infer_build_shape(self, weight_shapes: dict):
        return None  # the spatial size is not in the weights

    def _out_spatial(self):
        return tuple(
            conv_utils.conv_output_length(n, k, s, self.padding, d)
            for n, k, s, d in zip(self.spatial_dims, self.kernel_size, self.strides, self.dilation_rate)
        )

    def compute_output_shape(self, inputs_shape, states_shape=None):
        batch = inputs_shape[0]
        spatial = self._out_spatial() if self.built else tuple(
            conv_utils.conv_output_length(n, k, s, self.padding, d)
            for n, k, s, d in zip(
                inputs_shape[2:] if self.data_format == "channels_first" else inputs_shape[1:-1],
                self.kernel_size, self.strides, self.dilation_rate,
            )
        )
        if self.data_format == "channels_first":
            shape = (batch, self.filters, *spatial)
        else:
            shape = (batch, *spatial, self.filters)
        return shape, [shape, shape]

    def get_initial_state(self, batch_size=None):
        shape = self.compute_output_shape((batch_size,))[0]
        device = self.kernel.device if self.built else None
        return [torch.zeros(shape, dtype=self._compute_torch_dtype, device=device) for _ in range(2)]

    def _torch_weight(self, w):
        w = w.permute(self._w_perm)
        return w.unsqueeze(2) if self._layout.lift else w

    def _input_conv(self, x, w, b):
        if self.padding == "same":
            x, pad = conv_utils.pad_same_dynamic(x, self._op_eff_kernel, self._op_strides)
        else:
            pad = 0
        return self._conv(x, w, b, self._op_strides, pad, self._op_dilation)

    def _recurrent_conv(self, h, w):
        if self._rec_pad is not None:
            h = F.pad(h, self._rec_pad)
        return self._conv(h, w, None, 1, self._rec_padding)

    def call(self, inputs, states, training=False):
        lay = self._layout
        h_tm1, c_tm1 = states[0], states[1]
        w = self._torch_weight(self.kernel)
        rw = self._torch_weight(self.recurrent_kernel)
        b = self.bias
        if training and 0.0 < self.dropout < 1.0:
            mask = self.get_dropout_mask(inputs)
            x = torch.cat(
                [self._input_conv(lay.to_torch(inputs * mask[g]), wg, None) for g, wg in enumerate(w.chunk(4, 0))], 1
            )
            if b is not None:
                x = x + b.reshape(1, -1, *([1] * (x.ndim - 2)))
        else:
            x = self._input_conv(lay.to_torch(inputs), w, b)
        if training and 0.0 < self.recurrent_dropout < 1.0:
            rmask = self.get_recurrent_dropout_mask(h_tm1)
            r = torch.cat(
                [self._recurrent_conv(lay.to_torch(h_tm1 * rmask[g]), rg) for g, rg in enumerate(rw.chunk(4, 0))], 1
            )
        else:
            r = self._recurrent_conv(lay.to_torch(h_tm1), rw)
        z_i, z_f, z_c, z_o = (x + r).chunk(4, dim=1)
        i = self.recurrent_activation(z_i)
        f = self.recurrent_activation(z_f)
        c = f * lay.to_torch(c_tm1) + i * self.activation(z_c)
        o = self.recurrent_activation(z_o)
        h = o * self.activation(c)
        h, c = lay.from_torch(h), lay.from_torch(c)
        return h, [h, c]

    def get_config(self) -> dict:
        config = super().get_config()
        del config["units"]
        config.update(
            {
                "filters": self.filters,
                "kernel_size": self.kernel_size,
                "strides": self.strides,
                "padding": self.padding,
                "data_format": self.data_format,
                "dilation_rate": self.dilation_rate,
                "unit_forget_bias": self.unit_forget_bias,
            }
        )
        return config


class ConvLSTM(RNN):
    """Base of `ConvLSTM1D/2D/3D`: an `RNN` over a `ConvLSTMCell`."""

    def __init__(
        self,
        rank,
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
        cell = ConvLSTMCell(
            rank=rank,
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
            kernel_constraint=kernel_constraint,
            recurrent_constraint=recurrent_constraint,
            bias_constraint=bias_constraint,
            dropout=dropout,
            recurrent_dropout=recurrent_dropout,
            seed=seed,
            name="conv_lstm_cell",
            dtype=kwargs.get("dtype"),
        )
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            **kwargs,
        )
        self.input_spec = InputSpec(ndim=rank + 3)
        self._state_structure = [None, None]

    def call(self, sequences, initial_state=None, mask=None, training=False):
        return super().call(sequences, initial_state=initial_state, mask=mask, training=training)

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        batch, steps = sequences_shape[0], sequences_shape[1]
        state = self.cell.compute_output_shape((batch, *sequences_shape[2:]))[0][1:]
        out = (batch, steps, *state) if self.return_sequences else (batch, *state)
        if self.return_state:
            return out, (batch, *state), (batch, *state)
        return out

    def compute_output_spec(self, sequences, initial_state=None, mask=None, training=None):
        # As Keras (whose Layer.compute_output_spec uses an overridden compute_output_shape): the
        # symbolic outputs come from the shapes. Running the cell on meta tensors instead steps
        # through the probe lengths (83 + 89 time steps) when the time axis is unknown: ~0.4 s per
        # layer in a functional model.
        if initial_state is not None or not isinstance(sequences, KerasTensor):
            return super().compute_output_spec(sequences, initial_state=initial_state, mask=mask, training=training)
        shapes = self.compute_output_shape(tuple(sequences.shape))
        if self.return_state:
            return tuple(KerasTensor(shape, dtype=self.compute_dtype) for shape in shapes)
        return KerasTensor(shapes, dtype=self.compute_dtype)

    def get_config(self) -> dict:
        cell = self.cell
        config = {
            **cell.get_config(),
            "activity_regularizer": regularizers.serialize(self.activity_regularizer),
        }
        for key in ("name", "trainable", "dtype"):
            config.pop(key, None)
        base = super().get_config()
        del base["cell"]
        return {**base, **config}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**config)


for _name in (
    "filters", "kernel_size", "strides", "padding", "data_format", "dilation_rate", "activation",
    "recurrent_activation", "use_bias", "kernel_initializer", "recurrent_initializer", "bias_initializer",
    "unit_forget_bias", "kernel_regularizer", "recurrent_regularizer", "bias_regularizer", "kernel_constraint",
    "recurrent_constraint", "bias_constraint", "dropout", "recurrent_dropout",
):
    setattr(ConvLSTM, _name, property(lambda self, n=_name: getattr(self.cell, n)))
