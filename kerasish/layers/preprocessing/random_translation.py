"""`RandomTranslation`."""

from __future__ import annotations

import torch

from kerasish.layers.preprocessing.base_augmentation import BaseAffineAugmentation
from kerasish.layers.preprocessing.base_augmentation import check_factor_pair

_FACTOR_ERROR = "The `factor` argument should be a number (or a list of two numbers) in the range [-1.0, 1.0]. "


class RandomTranslation(BaseAffineAugmentation):
    """Randomly shifts images during training (`keras.layers.RandomTranslation`).

    Each image is shifted by `dy * height` rows and `dx * width` columns, with
    `dy` drawn from `height_factor`'s range and `dx` from `width_factor`'s
    (positive: down / right); uncovered areas follow `fill_mode`. In inference
    mode the input is returned cast to the compute dtype.

    Args:
        height_factor: A float `f` (the range `[-f, f]`) or a pair
            `(low, high)` in `[-1, 1]`, as fractions of the height.
        width_factor: The same for the width.
        fill_mode: "reflect", "wrap", "constant" or "nearest". Defaults to
            "reflect".
        interpolation: "bilinear" or "nearest". Defaults to "bilinear".
        seed: Integer seed for a reproducible layer. Defaults to None.
        fill_value: Value outside the image with "constant". Defaults to 0.
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".

    Input: a 4-D image batch or a 3-D image. Output: same shape.

    Example:
        >>> shift = keras.layers.RandomTranslation(0.1, 0.1, seed=2)
        >>> y = shift(torch.rand(2, 16, 16, 3), training=True)
    """

    def __init__(self, height_factor, width_factor, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(fill_mode=fill_mode, interpolation=interpolation, seed=seed, fill_value=fill_value,
                         data_format=data_format, **kwargs)
        self.height_factor = height_factor
        self.height_lower, self.height_upper = self._factor(height_factor, "height_factor")
        self.width_factor = width_factor
        self.width_lower, self.width_upper = self._factor(width_factor, "width_factor")

    @staticmethod
    def _factor(factor, name):
        pair = check_factor_pair(factor, name, (-1.0, 1.0), message=_FACTOR_ERROR)
        values = factor if isinstance(factor, (tuple, list)) else [factor]
        if any(v < -1.0 or v > 1.0 for v in values):
            raise ValueError(_FACTOR_ERROR + f"Received: {name}={factor}")
        return pair if isinstance(factor, (tuple, list)) else (-abs(factor), abs(factor))

    def _transforms(self, images):
        batch = images.shape[0]
        height, width = images.shape[self._h_axis], images.shape[self._w_axis]
        dy = self._uniform_range((batch,), self.height_lower, self.height_upper, images) * height
        dx = self._uniform_range((batch,), self.width_lower, self.width_upper, images) * width
        ones, zeros = torch.ones_like(dx), torch.zeros_like(dx)
        # output pixel (x, y) reads input (x - dx, y - dy), as Keras's `_get_translation_matrix`
        return torch.stack([ones, zeros, -dx, zeros, ones, -dy, zeros, zeros], dim=1)

    def get_config(self):
        config = super().get_config()
        config.update({"height_factor": self.height_factor, "width_factor": self.width_factor})
        return config
