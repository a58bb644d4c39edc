"""`AlphaDropout`."""

from __future__ import annotations

import torch

from kerasish.layers.regularization.base_random import BaseRandomLayer
from kerasish.layers.regularization.base_random import check_rate
from kerasish.layers.regularization.base_random import concrete_noise_shape

# SELU's constants (Klambauer et al., 2017), as Keras writes them
_SELU_ALPHA = 1.6732632423543772848170429916717
_SELU_SCALE = 1.0507009873554804934193349852946


class AlphaDropout(BaseRandomLayer):
    """Dropout that keeps SELU's self-normalizing property
    (`keras.layers.AlphaDropout`).

    In training mode dropped units are set to SELU's negative saturation
    value `-alpha * scale`, then an affine map `a * x + b` restores the mean
    and variance of the inputs (Keras's formula). Inference mode returns the
    input. With `rate=1` training mode returns zeros (Keras raises
    ZeroDivisionError).

    Args:
        rate: Float between 0 and 1, the drop probability.
        noise_shape: Shape of the binary keep mask, broadcast against the
            input; None entries take the input's size. Defaults to None.
        seed: Integer seed for reproducible masks. Defaults to None.

    Input shape: any. Output shape: same as the input. Masks pass through.

    Example:
        >>> y = keras.layers.AlphaDropout(0.1)(torch.randn(4, 8), training=True)
    """

    _no_mode_watch = "rate"  # (`no_mode_warning`: watched while `rate` > 0)

    def __init__(self, rate, noise_shape=None, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        check_rate(rate)
        self.rate = rate
        self.noise_shape = noise_shape
        self.supports_masking = True
        self.built = True
        if rate > 0:
            self._init_seed_generator()
        alpha_p = -_SELU_ALPHA * _SELU_SCALE
        self._alpha_p = alpha_p
        if rate < 1:
            self._a = ((1 - rate) * (1 + rate * alpha_p**2)) ** -0.5
            self._b = -self._a * alpha_p * rate

    def call(self, inputs, training=False):
        rate = self.rate
        if not training or rate == 0:
            return inputs
        if rate == 1:  # Keras raises ZeroDivisionError here; everything is dropped
            return torch.zeros_like(inputs)
        shape = inputs.shape if self.noise_shape is None else concrete_noise_shape(self.noise_shape, inputs)
        kept = self._keep_mask(shape, rate, inputs).to(inputs.dtype)
        x = inputs * kept + self._alpha_p * (1 - kept)
        return self._a * x + self._b

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed, "noise_shape": self.noise_shape})
        return config
