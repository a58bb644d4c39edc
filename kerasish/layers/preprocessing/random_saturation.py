"""`RandomSaturation`."""

from __future__ import annotations

import torch

from kerasish.backend.config import epsilon
from kerasish.layers.preprocessing.base_augmentation import check_factor_pair
from kerasish.layers.preprocessing.base_transform import BaseTransformAugmentation
from kerasish.layers.preprocessing.base_transform import as_tensor
from kerasish.layers.preprocessing.base_transform import check_value_range


class RandomSaturation(BaseTransformAugmentation):
    """Randomly scales the saturation of images during training
    (`keras.layers.RandomSaturation`).

    A draw `f` from `factor`'s range becomes the multiplier
    `f / (1 - f + epsilon)` of the HSV saturation: `f = 0.5` keeps the
    image, `0` makes it gray, values near 1 saturate fully. Inputs have 3
    channels. In inference mode the input is returned cast to the compute
    dtype.

    Note (Keras 3.15 behaviour, kept for parity): the HSV conversion is
    applied to the raw pixel values, and the scaled saturation is clipped to
    `value_range` (not to `[0, 1]`); a number `f` becomes the range
    `(-f, f)` (factor bounds `[-1, 1]`), so pass a pair such as
    `(0.3, 0.7)` for a sensible range.

    Args:
        factor: A float `f` (the range `(-f, f)`) or a pair in `[-1, 1]`.
        value_range: `(low, high)` of the pixel values. Defaults to `(0, 255)`.
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".
        seed: Integer seed for a reproducible layer. Defaults to None.

    Input: a 4-D image batch or a 3-D image. Output: same shape.

    Example:
        >>> layer = keras.layers.RandomSaturation((0.6, 0.8), value_range=(0, 1))
        >>> y = layer(torch.rand(2, 8, 8, 3), training=True)
    """

    def __init__(self, factor, value_range=(0, 255), data_format=None, seed=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = check_factor_pair(factor, "factor", (-1, 1))
        self.value_range = check_value_range(value_range)

    def get_random_transformation(self, data, training=True, seed=None):
        factor = self._uniform_range((data.shape[0],), self.factor[0], self.factor[1], data)
        return {"factor": factor / (1 - factor + epsilon())}

    def transform_images(self, images, transformation=None, training=True):
        if not training:
            return images
        from kerasish.ops.image import hsv_to_rgb, rgb_to_hsv  # noqa: PLC0415 (ops import layers)

        factor = as_tensor(transformation["factor"], images, images.dtype).reshape(-1, 1, 1)
        axis = 3 if self._channels_last else 1
        h, s, v = rgb_to_hsv(images, data_format=self.data_format).unbind(axis)
        s = (s * factor).clamp(self.value_range[0], self.value_range[1])
        return hsv_to_rgb(torch.stack([h, s, v], dim=axis), data_format=self.data_format)

    def get_config(self):
        config = super().get_config()
        config.update({"factor": self.factor, "value_range": self.value_range, "seed": self.seed})
        return config
