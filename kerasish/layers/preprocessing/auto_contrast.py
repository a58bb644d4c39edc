"""`AutoContrast`."""

from __future__ import annotations

import torch

from kerasish.layers.preprocessing.base_transform import BaseTransformAugmentation
from kerasish.layers.preprocessing.base_transform import check_value_range
from kerasish.layers.preprocessing.base_transform import transform_value_range


class AutoContrast(BaseTransformAugmentation):
    """Stretches each image's values over the whole `value_range`
    (`keras.layers.AutoContrast`).

    Per image and per slice, `(x - min) * 255 / (max - min)` computed in
    `[0, 255]` and mapped back to `value_range`; a constant slice (where that
    would be NaN) is returned unchanged. Active in training *and* inference,
    as in Keras.

    Note (Keras 3.15 behaviour, kept for parity): the minimum and maximum
    are taken over axes 1 and 2 whatever the `data_format`, i.e. over
    height and width for channels_last, but over channels and height for
    channels_first input.

    Args:
        value_range: `(low, high)` of the pixel values. Defaults to `(0, 255)`.
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".

    Input: a 4-D image batch or a 3-D image. Output: same shape.

    Example:
        >>> layer = keras.layers.AutoContrast(value_range=(0, 1))
        >>> y = layer(torch.rand(2, 8, 8, 3) * 0.5)  # each channel now spans [0, 1]
    """

    _keras_default_seed_draws = 0  # Keras's layer has no SeedGenerator

    _ALWAYS_ACTIVE = True

    def __init__(self, value_range=(0, 255), data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.value_range = check_value_range(value_range)

    def transform_images(self, images, transformation=None, training=True):
        original = images
        x = transform_value_range(images, self.value_range, (0, 255))
        low = x.amin(dim=(1, 2), keepdim=True)
        high = x.amax(dim=(1, 2), keepdim=True)
        scale = 255.0 / (high - low)
        out = (x * scale - low * scale).clamp(0.0, 255.0)
        out = transform_value_range(out, (0, 255), self.value_range)
        return torch.where(torch.isnan(out), original, out)

    def get_config(self):
        config = super().get_config()
        config.update({"value_range": self.value_range})
        return config
