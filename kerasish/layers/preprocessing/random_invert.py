"""`RandomInvert`."""

from __future__ import annotations

import torch

from kerasish.layers.preprocessing.base_augmentation import BaseImageAugmentation
from kerasish.layers.preprocessing.base_augmentation import check_factor_pair


class RandomInvert(BaseImageAugmentation):
    """Randomly inverts images during training (`keras.layers.RandomInvert`).

    An inverted image is `value_range[1] - x`. Each image draws an inversion
    probability `p` from `[factor[0], factor[1]]` and is inverted when a
    second uniform draw is below `p` (Keras 3's rule). Note, as in Keras: a
    single number `f` becomes the range `(0, f)`, so the default
    `factor=1.0` inverts half of the images; `factor=(1, 1)` always
    inverts. In inference mode the input is returned cast to the compute
    dtype.

    Args:
        factor: A float or a pair of floats in `[0, 1]`. Defaults to 1.0.
        value_range: `(min, max)` of the pixel values. Defaults to `(0, 255)`.
        seed: Integer seed for a reproducible layer. Defaults to None.
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".

    Input: a 4-D image batch or a 3-D image. Output: same shape.

    Example:
        >>> layer = keras.layers.RandomInvert(factor=(1, 1), value_range=(0, 1))
        >>> y = layer(torch.rand(2, 4, 4, 3), training=True)  # 1 - x
    """

    def __init__(self, factor=1.0, value_range=(0, 255), seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = check_factor_pair(factor, "factor", (0, 1))
        self.value_range = value_range

    def _augment(self, images):
        batch = images.shape[0]
        probability = self._uniform_range((batch,), self.factor[0], self.factor[1], images)
        threshold = self._uniform_range((batch,), 0.0, 1.0, images)
        apply = (threshold < probability).view(batch, 1, 1, 1)
        return torch.where(apply, self.value_range[1] - images, images)

    def get_config(self):
        config = super().get_config()
        config.update({"factor": self.factor, "value_range": self.value_range, "seed": self.seed})
        return config
