"""`Dropout`."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kerasish.layers.regularization.base_random import BaseRandomLayer
from kerasish.layers.regularization.base_random import check_rate
from kerasish.layers.regularization.base_random import concrete_noise_shape
from kerasish.layers.regularization.base_random import keras_seeded_dropout
from kerasish.layers.regularization.base_random import validate_noise_shape


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
