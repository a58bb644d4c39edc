"""`GaussianNoise`."""

from __future__ import annotations

from kerasish.layers.regularization.base_random import BaseRandomLayer
from kerasish.layers.regularization.base_random import check_rate


class GaussianNoise(BaseRandomLayer):
    """Adds zero-centred Gaussian noise in training mode
    (`keras.layers.GaussianNoise`); inference mode returns the input.

    Args:
        stddev: Float in [0, 1], the noise's standard deviation (Keras 3
            rejects values outside [0, 1]).
        seed: Integer seed for reproducible noise. Defaults to None (the
            global torch RNG).

    Input shape: any. Output shape: same as the input. Masks pass through.

    Example:
        >>> y = keras.layers.GaussianNoise(0.1)(torch.zeros(2, 3), training=True)
    """

    _no_mode_watch = "stddev"  # (`no_mode_warning`: watched while `stddev` > 0)

    def __init__(self, stddev, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        check_rate(stddev, "stddev")
        self.stddev = stddev
        self.supports_masking = True
        self.built = True
        if stddev > 0:
            self._init_seed_generator()

    def call(self, inputs, training=False):
        if not training or self.stddev == 0:
            return inputs
        return inputs + self._normal(inputs.shape, inputs, 0.0, self.stddev)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"stddev": self.stddev, "seed": self.seed})
        return config
