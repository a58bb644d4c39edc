"""`Bidirectional`: runs a recurrent layer forwards and a copy backwards and
merges the two outputs."""

from __future__ import annotations

import copy

import torch

from kerasish.layers.layer import Layer
from kerasish.layers.rnn.stacked_rnn_cells import deserialize_layer

_MERGE_MODES = ("sum", "mul", "ave", "concat", None)


def _renamed_copy(layer, prefix: str, go_backwards: bool | None = None):
    from kerasish.saving import serialize_keras_object

    config = serialize_keras_object(layer)
    config["config"]["name"] = f"{prefix}{layer.name.removeprefix(prefix)}"
    if go_backwards is not None:
        config["config"]["go_backwards"] = go_backwards
    return deserialize_layer(config)


class Bidirectional(Layer):
    """Bidirectional wrapper for RNNs.

    Args:
        layer: A recurrent layer instance (`LSTM`, `GRU`, `SimpleRNN`, `RNN`,
            `ConvLSTM2D`...). A fresh copy (named `forward_<name>`) is used as
            the forward layer.
        merge_mode: How forward and backward outputs are combined: "sum",
            "mul", "concat", "ave" or None (a list of both). Defaults to
            "concat".
        weights: Optional initial weights (forward half, then backward half).
        backward_layer: Optional layer for the backward direction (must have
            `go_backwards=True` and the same `return_sequences`,
            `return_state` and `stateful` as `layer`). Defaults to a copy of
            `layer` with `go_backwards=True`, named `backward_<name>`.

    Call arguments:
        inputs: `(batch, timesteps, ...)`.
        initial_state: List of initial states: the forward layer's, then the
            backward layer's.
        mask, training: Passed to both layers.

    With `return_state=True` the output is `(merged, *forward_states,
    *backward_states)` (`(forward, backward, *states)` with merge_mode None).
    Weights: forward layer's, then backward layer's, as in Keras.

    Example:
        >>> layer = keras.layers.Bidirectional(keras.layers.LSTM(4, return_sequences=True))
        >>> layer(torch.randn(2, 5, 3)).shape
        torch.Size([2, 5, 8])
    """

    _no_mode_watch = True  # (`no_mode_warning`: it passes its resolved `training` to its two layers)

    def _no_mode_matters(self):
        return self.forward_layer._no_mode_matters() or self.backward_layer._no_mode_matters()

    _keras_module = "keras.layers"

    def __init__(self, layer, merge_mode="concat", weights=None, backward_layer=None, **kwargs):
        if not isinstance(layer, Layer):
            raise ValueError(
                f"Please initialize `Bidirectional` layer with a `keras.layers.Layer` instance. Received: {layer}"
            )
        if backward_layer is not None and not isinstance(backward_layer, Layer):
            raise ValueError(
                f"`backward_layer` need to be a `keras.layers.Layer` instance. Received: {backward_layer}"
            )
        if merge_mode not in _MERGE_MODES:
            raise ValueError(
                f"Invalid merge mode. Received: {merge_mode}. Merge mode should be one of "
                '{"sum", "mul", "ave", "concat", None}'
            )
        super().__init__(**kwargs)
        self.forward_layer = _renamed_copy(layer, "forward_")
        if backward_layer is None:
            backward_layer = _renamed_copy(layer, "backward_", go_backwards=True)
        self.backward_layer = backward_layer
        if hasattr(layer, "use_cudnn"):
            self.forward_layer.use_cudnn = layer.use_cudnn
            self.backward_layer.use_cudnn = layer.use_cudnn
        self._verify_layer_config()
        for sub in (self.forward_layer, self.backward_layer):
            if getattr(sub, "zero_output_for_mask", None) is not None:
                sub.zero_output_for_mask = sub.return_sequences
        self.merge_mode = merge_mode
        if weights:
            half = len(weights) // 2
            self.forward_layer.__dict__["_initial_weights"] = list(weights[:half])
            self.backward_layer.__dict__["_initial_weights"] = list(weights[half:])
        self.stateful = layer.stateful
        self.return_sequences = layer.return_sequences
        self.return_state = layer.return_state
        self.supports_masking = True
        self.input_spec = layer.input_spec

    def _verify_layer_config(self):
        fwd, bwd = self.forward_layer, self.backward_layer
        if fwd.go_backwards == bwd.go_backwards:
            raise ValueError(
                "Forward layer and backward layer should have different `go_backwards` value. Received: "
                f"forward_layer.go_backwards {fwd.go_backwards}, backward_layer.go_backwards={bwd.go_backwards}"
            )
        for attr in ("stateful", "return_sequences", "return_state"):
            a, b = getattr(fwd, attr), getattr(bwd, attr)
            if a != b:
                raise ValueError(
                    "Forward layer and backward layer are expected to have the same value for attribute "
                    f'"{attr}", got "{a}" for forward layer and "{b}" for backward layer'
                )

    def build(self, sequences_shape, initial_state_shape=None):
        for sub in (self.forward_layer, self.backward_layer):
            if not sub.built:
                sub.build(sequences_shape)

    def compute_output_shape(self, sequences_shape, initial_state_shape=None):
        output_shape = self.forward_layer.compute_output_shape(sequences_shape)
        state_shape = ()
        if self.return_state:
            output_shape, state_shape = output_shape[0], tuple(output_shape[1:])
        if self.merge_mode == "concat":
            output_shape = (*output_shape[:-1], None if output_shape[-1] is None else output_shape[-1] * 2)
        elif self.merge_mode is None:
            output_shape = [output_shape, output_shape]
        if self.return_state:
            if self.merge_mode is None:
                return (*output_shape, *state_shape, *state_shape)
            return (output_shape, *state_shape, *state_shape)
        return tuple(output_shape) if self.merge_mode is not None else output_shape

    def compute_mask(self, inputs, mask=None):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if self.return_sequences:
            output_mask = [mask, mask] if not self.merge_mode else mask
        else:
            output_mask = [None, None] if not self.merge_mode else None
        if self.return_state:
            n_states = len(getattr(self.forward_layer, "_state_structure", ()))
            head = output_mask if isinstance(output_mask, list) else [output_mask]
            return head + [None] * (2 * n_states)
        return output_mask

    def call(self, sequences, initial_state=None, mask=None, training=None):
        kwargs = {}
        if self.forward_layer._call_has_training:
            kwargs["training"] = training
        if self.forward_layer._call_has_mask:
            kwargs["mask"] = mask
        forward_state = backward_state = None
        if initial_state is not None:
            initial_state = list(initial_state)
            half = len(initial_state) // 2
            forward_state, backward_state = initial_state[:half], initial_state[half:]
        y = self.forward_layer(sequences, initial_state=forward_state, **kwargs)
        y_rev = self.backward_layer(sequences, initial_state=backward_state, **kwargs)
        states = ()
        if self.return_state:
            states = (*y[1:], *y_rev[1:])
            y, y_rev = y[0], y_rev[0]
        if self.return_sequences:
            y_rev = y_rev.flip(1)
        mode = self.merge_mode
        if mode == "concat":
            output = torch.cat([y, y_rev], dim=-1)
        elif mode == "sum":
            output = y + y_rev
        elif mode == "ave":
            output = (y + y_rev) / 2
        elif mode == "mul":
            output = y * y_rev
        else:
            output = (y, y_rev)
        if self.return_state:
            return (*output, *states) if mode is None else (output, *states)
        return output

    @property
    def states(self):
        fwd, bwd = self.forward_layer.states, self.backward_layer.states
        if fwd and bwd:
            return tuple(fwd + bwd)
        return None

    def reset_state(self):
        if not self.stateful:
            raise AttributeError("Layer must be stateful.")
        self.forward_layer.reset_state()
        self.backward_layer.reset_state()

    def reset_states(self, states=None):
        """Keras 2 name of `reset_state`, with Keras 2's `states`: a list of the forward layer's state
        values followed by the backward layer's (None zeroes them)."""
        if states is None:
            self.reset_state()
            return
        if not self.stateful:
            raise AttributeError("Layer must be stateful.")
        if not isinstance(states, (list, tuple)):
            raise ValueError(
                f"Unrecognized value for `states`. Expected `states` to be list or tuple. Received: {states}"
            )
        half = len(states) // 2
        self.forward_layer.reset_states(list(states[:half]))
        self.backward_layer.reset_states(list(states[half:]))

    def get_config(self) -> dict:
        from kerasish.saving import serialize_keras_object

        config = {
            "merge_mode": self.merge_mode,
            "layer": serialize_keras_object(self.forward_layer),
            "backward_layer": serialize_keras_object(self.backward_layer),
        }
        return {**super().get_config(), **config}

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = copy.deepcopy(config)
        config["layer"] = deserialize_layer(config["layer"])
        backward = config.pop("backward_layer", None)
        if backward is not None:
            config["backward_layer"] = deserialize_layer(backward)
        return cls(**config)
