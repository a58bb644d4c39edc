"""`Solarization`."""

from __future__ import annotations

import torch

from kerasish.layers.preprocessing.base_transform import BaseTransformAugmentation
from kerasish.layers.preprocessing.base_transform import as_tensor
from kerasish.layers.preprocessing.base_transform import check_value_range
from kerasish.layers.preprocessing.base_transform import transform_value_range

_FACTOR_ERROR = (
    "The `addition_factor` and `threshold_factor` arguments should be a number (or a list of two numbers) "
    "in the range [0, 1]. "
)


def check_unit_pair(factor, name: str) -> tuple:
    """Solarization's factor rule: a number `f` -> `(0, f)`, a pair ->
    sorted; every number in `[0, 1]`."""
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2:
            raise ValueError(_FACTOR_ERROR + f"Received: {name}={factor}")
        values = list(factor)
    elif isinstance(factor, (int, float)) and not isinstance(factor, bool):
        values = [0, factor]
    else:
        raise ValueError(_FACTOR_ERROR + f"Received: {name}={factor}")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v > 1.0 or v < 0:
            raise ValueError(_FACTOR_ERROR + f"Received: {name}={factor}")
    return tuple(sorted(values)) if isinstance(factor, (tuple, list)) else (0, factor)


class Solarization(BaseTransformAugmentation):
    """Inverts the pixels above a threshold during training
    (`keras.layers.Solarization`).

    In `[0, 255]` terms: `y = clip(x + a, 0, 255)`, then `255 - y` where
    `y >= t` (else `y`), with `a` and `t` drawn per image. With the defaults
    every pixel is inverted. In inference mode the input is returned cast to
    the compute dtype.

    Note (Keras 3.15 behaviour, kept for parity): `a` is drawn from
    `[addition_factor[0], addition_factor[1] * 255]` and `t` from
    `[threshold_factor[0], threshold_factor[1] * 255]` (only the upper
    bounds are scaled to 255); `threshold_factor=(0.5, 0.5)` therefore
    draws from `[0.5, 127.5]`.

    Args:
        addition_factor: A float `f` (the range `(0, f)`) or a pair in
            `[0, 1]`. Defaults to 0.
        threshold_factor: A float `f` (the range `(0, f)`) or a pair in
            `[0, 1]`. Defaults to 0.
        value_range: `(low, high)` of the pixel values. Defaults to `(0, 255)`.
        seed: Integer seed for a reproducible layer. Defaults to None.
        data_format: "channels_last" or "channels_first" (unused by the
            maths). Defaults to "channels_last".

    Input: a 4-D image batch or a 3-D image. Output: same shape.

    Example:
        >>> layer = keras.layers.Solarization(value_range=(0, 1))
        >>> y = layer(torch.rand(2, 8, 8, 3), training=True)  # 1 - x
    """

    def __init__(self, addition_factor=0.0, threshold_factor=0.0, value_range=(0, 255), seed=None, data_format=None,
                 **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.addition_factor = check_unit_pair(addition_factor, "addition_factor")
        self.threshold_factor = check_unit_pair(threshold_factor, "threshold_factor")
        self.value_range = check_value_range(value_range)

    def get_random_transformation(self, data, training=True, seed=None):
        if not training:
            return None
        shape = (data.shape[0], 1, 1, 1)
        additions = self._uniform_range(shape, self.addition_factor[0], self.addition_factor[1] * 255, data)
        thresholds = self._uniform_range(shape, self.threshold_factor[0], self.threshold_factor[1] * 255, data)
        return {"additions": additions, "thresholds": thresholds}

    def transform_images(self, images, transformation=None, training=True):
        if not training or transformation is None:
            return images
        additions = as_tensor(transformation["additions"], images, images.dtype)
        thresholds = as_tensor(transformation["thresholds"], images, images.dtype)
        x = transform_value_range(images, self.value_range, (0, 255))
        x = (x + additions).clamp(0, 255)
        x = torch.where(x < thresholds, x, 255 - x)
        return transform_value_range(x, (0, 255), self.value_range)

    def get_config(self):
        config = super().get_config()
        config.update({"value_range": self.value_range, "addition_factor": self.addition_factor,
                       "threshold_factor": self.threshold_factor, "seed": self.seed})
        return config
