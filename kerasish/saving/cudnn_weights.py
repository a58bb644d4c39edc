"""Keras 2's `CuDNNLSTM` / `CuDNNGRU` weights in `LSTM` / `GRU` layers.

Keras 2 (and tf.keras 1.x/2.x's `tf.compat.v1.keras.layers`) had GPU-only
`CuDNNLSTM` and `CuDNNGRU` layers. Their `.h5` files load in Keras 2 on a CPU
through the documented path: build the same model with `LSTM` (tanh,
recurrent_activation "sigmoid": the TF 2 defaults) or `GRU(reset_after=True)`
and `load_weights` the file; Keras 2's `hdf5_format` converts the weights on
the way. kerasish does the same conversion here, for `load_weights` and for
`load_model` (whose legacy-config upgrade maps the two classes onto `LSTM` /
`GRU`, see `legacy_config`):

- a cuDNN input kernel stores each gate's `(input_dim, units)` block in
  Fortran order: `block.T.reshape(block.shape, order="F")` gives Keras's;
- a recurrent kernel stores each gate's block transposed;
- `CuDNNLSTM` has an input and a recurrent bias (`8 * units`, both added to
  every gate): `LSTM` holds their sum (`4 * units`); `CuDNNGRU`'s `6 * units`
  biases are `GRU(reset_after=True)`'s `(2, 3 * units)` bias, row by row.

The gate order is the same in both layouts. The conversion is exact.
"""

from __future__ import annotations

import numpy as np


def _per_gate(kernel, fn, n_gates):
    return np.hstack([fn(k) for k in np.hsplit(kernel, n_gates)])


def _from_cudnn_kernels(kernel, recurrent, n_gates):
    kernel = _per_gate(kernel, lambda k: k.T.reshape(k.shape, order="F"), n_gates)
    return kernel, _per_gate(recurrent, lambda k: k.T, n_gates)


def _cell_kind(layer):
    """("lstm" | "gru", units, reset_after) of a plain LSTM/GRU layer, else None."""
    from kerasish.layers.rnn.gru import GRU
    from kerasish.layers.rnn.lstm import LSTM

    if isinstance(layer, LSTM):
        return "lstm", layer.units, None
    if isinstance(layer, GRU):
        return "gru", layer.units, bool(layer.reset_after)
    return None


def _rnn_layers(layer):
    """The recurrent layers whose weights `legacy_weights(layer)` lists, in order."""
    from kerasish.layers.rnn.bidirectional import Bidirectional

    if isinstance(layer, Bidirectional):
        return [layer.forward_layer, layer.backward_layer]
    return [layer]


def convert(layer, weights, datasets, read):
    """The values to assign when `datasets` are cuDNN weights of `layer` (an
    `LSTM`, a `GRU`, or a `Bidirectional` of them, with biases), else None.

    `read(dataset, expected_shape, what)` reads a dataset only when its shape
    is the expected one (None otherwise). Raises `ValueError` for `CuDNNGRU`
    weights loaded into `GRU(reset_after=False)` (a different formula), as
    Keras 2 does."""
    rnns = _rnn_layers(layer)
    kinds = [_cell_kind(r) for r in rnns]
    if any(k is None for k in kinds) or len(weights) != 3 * len(rnns) or len(datasets) != len(weights):
        return None
    values = []
    for i, (kind, units, reset_after) in enumerate(kinds):
        kernel_w, recurrent_w, bias_w = weights[3 * i:3 * i + 3]
        n_gates = 4 if kind == "lstm" else 3
        cudnn_bias = (2 * n_gates * units,)
        (_, kernel_ds), (_, recurrent_ds), (bias_name, bias_ds) = datasets[3 * i:3 * i + 3]
        if tuple(bias_ds.shape) != cudnn_bias or tuple(bias_w.shape) == cudnn_bias:
            return None
        if kind == "gru" and not reset_after:
            raise ValueError(
                f"Layer '{layer.name}': the file holds `CuDNNGRU` weights ('{bias_name}'), which only "
                "`GRU(reset_after=True)` computes (Keras 2 refuses them too); received a GRU with reset_after=False.")
        kernel = read(kernel_ds, tuple(kernel_w.shape), "a cuDNN input kernel")
        recurrent = read(recurrent_ds, tuple(recurrent_w.shape), "a cuDNN recurrent kernel")
        bias = read(bias_ds, cudnn_bias, "cuDNN biases")
        if kernel is None or recurrent is None or bias is None:
            return None
        kernel, recurrent = _from_cudnn_kernels(kernel, recurrent, n_gates)
        bias = np.sum(np.split(bias, 2), axis=0) if kind == "lstm" else bias.reshape(2, -1)
        if tuple(bias.shape) != tuple(bias_w.shape):
            return None
        values += [kernel, recurrent, bias]
    return values


def upgrade_config(class_name, config):
    """A Keras 2 `CuDNNLSTM` / `CuDNNGRU` layer config as the `LSTM` / `GRU`
    computing the same thing (tanh, sigmoid recurrent activation, biases;
    `GRU` with `reset_after=True`); their other keys are LSTM/GRU keys."""
    config = dict(config)
    config.update(activation="tanh", recurrent_activation="sigmoid", use_bias=True)
    if class_name == "CuDNNGRU":
        config["reset_after"] = True
        return "GRU", config
    return "LSTM", config
