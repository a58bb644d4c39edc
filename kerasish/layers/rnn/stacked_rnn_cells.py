"""`StackedRNNCells`: several cells run as one, each feeding the next."""

from __future__ import annotations

import torch

from kerasish.layers.layer import Layer


def deserialize_layer(config):
    from kerasish.layers import deserialize

    return deserialize(config)


class StackedRNNCells(Layer):
    """Wrapper allowing a stack of RNN cells to behave as a single cell.

    Args:
        cells: List of RNN cell instances (objects with `call` and
            `state_size`).

    The states are the list of each cell's states; the output is the last
    cell's output. `RNN([cell_1, cell_2])` builds one of these.

    Example:
        >>> cells = [keras.layers.LSTMCell(8), keras.layers.GRUCell(4)]
        >>> rnn = keras.layers.RNN(keras.layers.StackedRNNCells(cells))
        >>> rnn(torch.randn(2, 5, 3)).shape
        torch.Size([2, 4])
    """

    _keras_module = "keras.layers"

    def __init__(self, cells, **kwargs):
        super().__init__(**kwargs)
        for cell in cells:
            if "call" not in dir(cell):
                raise ValueError(f"All cells must have a `call` method. Received cell without a `call` method: {cell}")
            if "state_size" not in dir(cell):
                raise ValueError(
                    f"All cells must have a `state_size` attribute. Received cell without a `state_size`: {cell}"
                )
        self.cells = list(cells)

    @property
    def state_size(self):
        return [c.state_size for c in self.cells]

    @property
    def output_size(self):
        last = self.cells[-1]
        if getattr(last, "output_size", None) is not None:
            return last.output_size
        if isinstance(last.state_size, (list, tuple)):
            return last.state_size[0]
        return last.state_size

    def get_initial_state(self, batch_size=None):
        states = []
        for cell in self.cells:
            fn = getattr(cell, "get_initial_state", None)
            if fn is not None:
                states.append(fn(batch_size=batch_size))
            elif isinstance(cell.state_size, int):
                states.append(torch.zeros((batch_size, cell.state_size), dtype=self._compute_torch_dtype))
            else:
                states.append([torch.zeros((batch_size, d), dtype=self._compute_torch_dtype) for d in cell.state_size])
        return states

    def build(self, input_shape):
        for cell in self.cells:
            if isinstance(cell, Layer) and not cell.built:
                cell.build(input_shape)
            out = getattr(cell, "output_size", None)
            if out is None:
                out = cell.state_size[0] if isinstance(cell.state_size, (list, tuple)) else cell.state_size
            input_shape = (input_shape[0], out)

    def call(self, inputs, states, training=False):
        new_states = []
        for cell, state in zip(self.cells, states):
            nested = isinstance(state, (list, tuple))
            state = list(state) if nested else [state]
            if isinstance(cell, Layer) and cell._call_has_training:
                inputs, state = cell(inputs, state, training=training)
            else:
                inputs, state = cell(inputs, state)
            if not nested and isinstance(state, (list, tuple)) and len(state) == 1:
                state = state[0]
            new_states.append(state)
        if len(new_states) == 1:
            new_states = new_states[0]
        return inputs, new_states

    def get_config(self) -> dict:
        from kerasish.saving import serialize_keras_object

        return {**super().get_config(), "cells": [serialize_keras_object(c) for c in self.cells]}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        cells = [deserialize_layer(c) for c in config.pop("cells")]
        return cls(cells, **config)
