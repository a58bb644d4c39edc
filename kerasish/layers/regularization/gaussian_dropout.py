"""`GaussianDropout`."""

from __future__ import annotations

import math

from kerasish.layers.regularization.base_random import BaseRandomLayer
from kerasish.layers.regularization.base_random import check_rate


class GaussianDropout(BaseRandomLayer):
    """Multiplies the input by 1-centred Gaussian noise in training mode
    (`keras.layers.GaussianDropout`); inference mode returns the input.

    The noise has standard deviation `sqrt(rate / (1 - rate))`, as in Keras.

    Args:
        rate: Float between 0 and 1, the drop probability of the equivalent
            Bernoulli dropout.
        seed: Integer seed for reproducible noise. Defaults to None (the
            global torch RNG).

    Input shape: any. Output shape: same as the input. Masks pass through.

    Example:
        >>> y = keras.layers.GaussianDropout(0.2)(torch.ones(2, 3), training=True)
    """

    _no_mode_watch = "rate"  # (`no_mode_warning`: watched while `rate` > 0)

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        check_rate(rate)
        self.rate = rate
        self.supports_masking = True
        self.built = True
        if rate > 0:
            self._init_seed_generator()
        # rate == 1 gives an infinite stddev, as in Keras
        self._stddev = math.sqrt(rate / (1.0 - rate)) if rate < 1 else math.inf

    def call(self, inputs, training=False):
        if not training or self.rate == 0:
            return inputs
        return inputs * self._normal(inputs.shape, inputs, 1.0, self._stddev)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"rate": self.rate, "seed": self.seed})
        return config
