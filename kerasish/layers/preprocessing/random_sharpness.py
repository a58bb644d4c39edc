"""`RandomSharpness`."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kerasish.layers.preprocessing.base_augmentation import check_factor_pair
from kerasish.layers.preprocessing.base_transform import BaseTransformAugmentation
from kerasish.layers.preprocessing.base_transform import as_tensor
from kerasish.layers.preprocessing.base_transform import check_value_range

# Keras's smoothing kernel: 1/13 around a 5/13 centre (PIL's ImageFilter.SMOOTH)
_EDGE, _CENTRE = 1.0 / 13.0, 5.0 / 13.0


class RandomSharpness(BaseTransformAugmentation):
    """Randomly sharpens or blurs images during training
    (`keras.layers.RandomSharpness`).

    With `s = 2 f` (`f` drawn per image from `factor`'s range) the output is
    `x + (1 - s) * (smooth(x) - x)`, clipped to `value_range`, where
    `smooth` is a 3x3 smoothing filter with zero padding: `f = 0.5` keeps
    the image, smaller values blur, larger values sharpen. In inference mode
    the input is returned cast to the compute dtype.

    Args:
        factor: A float `f` (the range `(0, f)`) or a pair in `[0, 1]`.
        value_range: `(low, high)` of the pixel values. Defaults to `(0, 255)`.
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".
        seed: Integer seed for a reproducible layer. Defaults to None.

    Input: a 4-D image batch or a 3-D image. Output: same shape.

    Example:
        >>> layer = keras.layers.RandomSharpness((0.9, 0.9), seed=0)
        >>> y = layer(torch.rand(2, 8, 8, 3) * 255, training=True)  # sharper
    """

    def __init__(self, factor, value_range=(0, 255), data_format=None, seed=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = check_factor_pair(factor, "factor", (0, 1))
        self.value_range = check_value_range(value_range)

    def get_random_transformation(self, data, training=True, seed=None):
        return {"factor": self._uniform_range((data.shape[0],), self.factor[0], self.factor[1], data)}

    def transform_images(self, images, transformation=None, training=True):
        if not training:
            return images
        sharpness = (as_tensor(transformation["factor"], images) * 2).to(images.dtype).reshape(-1, 1, 1, 1)
        x = images.permute(0, 3, 1, 2) if self._channels_last else images
        channels = x.shape[1]
        kernel = torch.full((3, 3), _EDGE, dtype=images.dtype, device=images.device)
        kernel[1, 1] = _CENTRE
        smooth = F.conv2d(x, kernel.expand(channels, 1, 3, 3), padding=1, groups=channels)
        if self._channels_last:
            smooth = smooth.permute(0, 2, 3, 1)
        return (images + (1.0 - sharpness) * (smooth - images)).clamp(self.value_range[0], self.value_range[1])

    def get_config(self):
        config = super().get_config()
        config.update({"factor": self.factor, "value_range": self.value_range, "seed": self.seed})
        return config
