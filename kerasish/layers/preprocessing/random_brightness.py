"""`RandomBrightness`."""

from __future__ import annotations

from kerasish.layers.preprocessing.base_augmentation import BaseImageAugmentation
from kerasish.layers.preprocessing.base_augmentation import check_factor_pair

_VALUE_RANGE_ERROR = "The `value_range` argument should be a list of two numbers. "


class RandomBrightness(BaseImageAugmentation):
    """Randomly shifts brightness during training (`keras.layers.RandomBrightness`).

    Each image gets `x + d * (max - min)` with `d` drawn from
    `[factor[0], factor[1]]` and `(min, max) = value_range`, then is clipped
    to `value_range`. In inference mode the input is returned cast to the
    compute dtype.

    Args:
        factor: A float `f` (the range `[-f, f]`) or a pair `(low, high)` in
            `[-1, 1]`, as a fraction of the value range.
        value_range: `[min, max]` of the pixel values. Defaults to `(0, 255)`.
        seed: Integer seed for a reproducible layer. Defaults to None.
        data_format: "channels_last" or "channels_first" (brightness does not
            depend on it). Defaults to "channels_last".

    Input: a 4-D image batch or a 3-D image. Output: same shape.

    Example:
        >>> layer = keras.layers.RandomBrightness(0.1, value_range=(0, 1), seed=0)
        >>> y = layer(torch.rand(2, 8, 8, 3), training=True)
    """

    def __init__(self, factor, value_range=(0, 255), seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = check_factor_pair(factor, "factor", (-1, 1))
        if not isinstance(value_range, (tuple, list)) or len(value_range) != 2:
            raise ValueError(_VALUE_RANGE_ERROR + f"Received: value_range={value_range}")
        self.value_range = sorted(value_range)

    def _augment(self, images):
        return self._apply_drawn(images, self._draw(images))

    def _draw(self, images):
        return self._uniform_range((images.shape[0], 1, 1, 1), self.factor[0], self.factor[1], images)

    def _apply_drawn(self, images, delta):
        low, high = self.value_range
        return (images + (delta * (high - low)).to(images.dtype)).clamp(low, high)

    def get_config(self):
        config = super().get_config()
        config.update({"factor": self.factor, "value_range": self.value_range, "seed": self.seed})
        return config
