"""`RandomHue`."""

from __future__ import annotations

import torch

from kerasish.layers.preprocessing.base_augmentation import check_factor_pair
from kerasish.layers.preprocessing.base_transform import BaseTransformAugmentation
from kerasish.layers.preprocessing.base_transform import as_tensor
from kerasish.layers.preprocessing.base_transform import transform_value_range


class RandomHue(BaseTransformAugmentation):
    """Randomly rotates the hue of images during training
    (`keras.layers.RandomHue`).

    Each image's HSV hue is shifted by `±f / 2` (a turn is 1), with `f`
    drawn from `factor`'s range and the sign drawn with even odds; the
    result is clipped to `value_range`. `factor=(0.5, 0.5)` shifts by a
    quarter turn either way. Inputs have 3 channels. In inference mode the
    input is returned cast to the compute dtype.

    Args:
        factor: A float `f` (the range `(0, f)`) or a pair in `[0, 1]`.
        value_range: `(low, high)` of the pixel values. Defaults to `(0, 255)`.
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".
        seed: Integer seed for a reproducible layer. Defaults to None.

    Input: a 4-D image batch or a 3-D image. Output: same shape.

    Example:
        >>> layer = keras.layers.RandomHue(0.2, value_range=(0, 1), seed=0)
        >>> y = layer(torch.rand(2, 8, 8, 3), training=True)
    """

    def __init__(self, factor, value_range=(0, 255), data_format=None, seed=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = check_factor_pair(factor, "factor", (0, 1))
        self.value_range = value_range

    def get_random_transformation(self, data, training=True, seed=None):
        batch = data.shape[0]
        invert = torch.where(self._uniform_range((batch,), 0.0, 1.0, data) > 0.5, -1.0, 1.0)
        factor = self._uniform_range((batch,), self.factor[0], self.factor[1], data)
        return {"factor": invert * factor * 0.5}

    def transform_images(self, images, transformation=None, training=True):
        if not training:
            return images
        from kerasish.ops.image import hsv_to_rgb, rgb_to_hsv  # noqa: PLC0415 (ops import layers)

        shift = as_tensor(transformation["factor"], images, images.dtype).reshape(-1, 1, 1)
        axis = 3 if self._channels_last else 1
        x = transform_value_range(images, self.value_range, (0, 1))
        h, s, v = rgb_to_hsv(x, data_format=self.data_format).unbind(axis)
        h = h + shift
        h = torch.where(h > 1.0, h - 1.0, h)
        h = torch.where(h < 0.0, h + 1.0, h)
        x = hsv_to_rgb(torch.stack([h, s, v], dim=axis), data_format=self.data_format).clamp(0, 1)
        return transform_value_range(x, (0, 1), self.value_range)

    def get_config(self):
        config = super().get_config()
        config.update({"factor": self.factor, "value_range": self.value_range, "seed": self.seed})
        return config
