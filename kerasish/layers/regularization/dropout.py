"""`Dropout`."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kerasish.layers.regularization.base_random import BaseRandomLayer
from kerasish.layers.regularization.base_random import check_rate
from kerasish.layers.regularization.base_random import concrete_noise_shape
from kerasish.layers.regularization.base_random import keras_seeded_dropout
from kerasish.layers.regularization.base_random import validate_noise_shape
from kerasish.random.seed_generator import _RANDOM_SEED as _KERAS_SEED  # set by `set_random_seed`


class Dropout(BaseRandomLayer):
    """Applies dropout to the input (`keras.layers.Dropout`).

    In training mode, sets input units to 0 with frequency `rate` and scales
    the others by `1 / (1 - rate)`; in inference mode returns the input
    unchanged. Layers start in inference mode: pass `training=True`, call
    `layer.train()`, or run inside `fit()`.

    Args:
        rate: Float between 0 and 1, the fraction of input units to drop.
        noise_shape: Shape of the binary dropout mask, broadcast against the
            input; None entries take the input's size (e.g. `(None, 1, F)`
            drops the same features at every timestep). Defaults to None
            (the input's shape).
        seed: Integer seed of the layer's `seed_generator`: its masks are
            Keras 3's (see `base_random`). Defaults to None (the fused
            `F.dropout` on torch's global RNG, as Keras's torch backend).

    Input shape: any. Output shape: same as the input. Masks pass through.

    Example:
        >>> layer = keras.layers.Dropout(0.5, noise_shape=(None, 1, 8))
        >>> y = layer(torch.ones(2, 3, 8), training=True)

    Differs from torch: `nn.Dropout` follows `module.training` only and
    starts in training mode; this layer starts in inference mode and follows
    Keras's `training` resolution. Without `noise_shape` and `seed` the fused
    `F.dropout` kernel runs, as Keras's torch backend does.
    """

    _no_mode_watch = "rate"  # (`no_mode_warning`: watched while `rate` > 0)
    # set by a symbolic call: Keras's torch backend hands this layer channels-first memory
    _keras_cf_input = False

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        check_rate(rate)
        self.rate = rate
        self.noise_shape = validate_noise_shape(noise_shape)
        # an independent draw per element: torch's fused F.dropout can run
        self._elementwise = self.noise_shape is None
        self.supports_masking = True
        self.built = True
        if rate > 0:
            self._init_seed_generator()

    def compute_output_spec(self, inputs, *args, **kwargs):
        # a symbolic call (Sequential, functional): note the memory order Keras's torch backend gives this
        # input, which decides the masks an unseeded dropout draws (see `_keras_channels_first_memory`)
        if getattr(inputs, "_keras_history", None) is not None:  # (a graph edge, not a bare shape query)
            layouts = self.__dict__.setdefault("_input_layouts", set())
            layouts.add(_keras_channels_first_memory(inputs))
            # (a layer called on inputs of both kinds keeps torch's order: no single Keras order to follow)
            self._keras_cf_input = layouts == {True}
        return super().compute_output_spec(inputs, *args, **kwargs)

    def _noise_shape(self, inputs):
        if self.noise_shape is None:
            return inputs.shape
        return concrete_noise_shape(self.noise_shape, inputs)

    def call(self, inputs, training=False):
        rate = self.rate
        if not training or rate == 0:
            return inputs
        if rate == 1:
            return torch.zeros_like(inputs)
        if self._elementwise and self.seed is None:
            # Keras's torch backend: F.dropout on the global RNG here, also after set_random_seed
            if self._keras_cf_input and _KERAS_SEED[0] is not None and inputs.dim() > 2:
                # after `set_random_seed` (Keras's draws asked for): the mask in Keras's memory order
                return _dropout_channels_first(inputs, rate)
            return F.dropout(inputs, p=rate, training=True)
        gen = self._generator(inputs.device)
        if gen is None:
            if self._elementwise:
                return F.dropout(inputs, p=rate, training=True)
            keep = self._keep_mask(self._noise_shape(inputs), rate, inputs)
            return torch.where(keep, inputs / (1.0 - rate), torch.zeros((), dtype=inputs.dtype, device=inputs.device))
        return keras_seeded_dropout(inputs, rate, gen, self._noise_shape(inputs))

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed, "noise_shape": self.noise_shape})
        return config


def _keras_channels_first_memory(x, depth: int = 0) -> bool:
    """Whether Keras 3's torch backend holds the KerasTensor `x` in channels-first memory (a permuted view):
    the output of a layer marked `_keras_channels_first_output` (its pooling layers, its rank-1 and
    transposed convolutions on channels_last data copy their input to channels-first and permute the output
    back), seen through layers that keep their input's memory order (elementwise activations,
    BatchNormalization, Dropout; checked against Keras 3.15). kerasish's own outputs there are channels_last in memory (no copy; see
    `kerasish.layers.convolutional.conv_utils`): only a Dropout after them needs Keras's order."""
    from kerasish.layers.core.activation import Activation
    from kerasish.layers.activations.elu import ELU
    from kerasish.layers.activations.leaky_relu import LeakyReLU
    from kerasish.layers.activations.relu import ReLU
    from kerasish.layers.normalization.batch_normalization import BatchNormalization

    history = getattr(x, "_keras_history", None)
    if history is None or depth > 32:
        return False
    op = history.operation
    if getattr(op, "_keras_channels_first_output", False):
        return True
    if isinstance(op, Activation) and getattr(op.activation, "__name__", None) in ("softmax", "log_softmax"):
        return False  # (Keras's softmax returns a new contiguous tensor)
    if isinstance(op, (Activation, ReLU, LeakyReLU, ELU, BatchNormalization, Dropout)):
        nodes = op.__dict__.get("_inbound_nodes") or ()
        if history.node_index < len(nodes) and nodes[history.node_index].input_tensors:
            return _keras_channels_first_memory(nodes[history.node_index].input_tensors[0], depth + 1)
    return False


def _dropout_channels_first(inputs: torch.Tensor, rate: float) -> torch.Tensor:
    """`F.dropout` with its mask drawn over the channels-first memory Keras's torch backend has here: torch
    fills the mask in memory order, so the same global RNG state gives Keras's mask only in Keras's order.

    On the CPU, torch's dropout is `input * empty_like(input).bernoulli_(1 - p).div_(1 - p)`: the same three
    operations run here with the noise allocated channels-first and viewed channels_last, so the values
    and gradients are Keras's, bit for bit, with no copy of the input. Elsewhere (CUDA's fused kernel) the
    input is copied to channels-first for `F.dropout`, and the result is seen channels_last, as in Keras."""
    nd = inputs.dim()
    to_cf = (0, nd - 1, *range(1, nd - 1))
    back = (0, *range(2, nd), 1)
    if inputs.device.type == "cpu":
        shape = inputs.shape
        noise = torch.empty((shape[0], shape[-1], *shape[1:-1]), dtype=inputs.dtype, device=inputs.device)
        noise.bernoulli_(1.0 - rate).div_(1.0 - rate)
        return inputs * noise.permute(back)
    return F.dropout(inputs.permute(to_cf).contiguous(), p=rate, training=True).permute(back)
