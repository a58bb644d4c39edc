"""`RandomPosterization`."""

from __future__ import annotations

import torch

from kerasish.layers.preprocessing.base_augmentation import check_factor_pair
from kerasish.layers.preprocessing.base_transform import BaseTransformAugmentation
from kerasish.layers.preprocessing.base_transform import as_tensor
from kerasish.layers.preprocessing.base_transform import check_value_range
from kerasish.layers.preprocessing.base_transform import transform_value_range

_MAX_BITS = 8


class RandomPosterization(BaseTransformAugmentation):
    """Keeps only the high bits of each colour value during training
    (`keras.layers.RandomPosterization`).

    In `[0, 255]` terms each value is truncated to an 8-bit integer and its
    low `8 - bits` bits are zeroed, with `bits` drawn per image. In inference
    mode the input is returned cast to the compute dtype.

    Note (Keras 3.15 behaviour, kept for parity): an integer `factor=n`
    becomes the range `(1, n)` and `bits` is drawn from the integers in
    `[1, n)` (the upper end excluded); `factor=(n, n)` always keeps `n` bits.

    Args:
        factor: An integer `n` (the range `(1, n)`) or a pair, in `[1, 8]`.
        value_range: `(low, high)` of the pixel values. Defaults to `(0, 255)`.
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".
        seed: Integer seed for a reproducible layer. Defaults to None.

    Input: a 4-D image batch or a 3-D image. Output: same shape.

    Example:
        >>> layer = keras.layers.RandomPosterization(factor=(2, 2))
        >>> y = layer(torch.rand(2, 8, 8, 3) * 255, training=True)  # values in {0, 64, 128, 192}
    """

    def __init__(self, factor, value_range=(0, 255), data_format=None, seed=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = check_factor_pair(factor, "factor", (1, _MAX_BITS))
        self.value_range = check_value_range(value_range)

    def get_random_transformation(self, data, training=True, seed=None):
        batch = data.shape[0]
        if self.factor[0] != self.factor[1]:
            bits = self._randint((batch,), self.factor[0], self.factor[1], data)
        else:
            bits = torch.full((batch,), int(self.factor[0]), dtype=torch.int64, device=data.device)
        return {"shift_factor": (_MAX_BITS - bits).to(torch.uint8)}

    def transform_images(self, images, transformation=None, training=True):
        if not training:
            return images
        shift = as_tensor(transformation["shift_factor"], images, torch.uint8).reshape(-1, 1, 1, 1)
        x = transform_value_range(images, self.value_range, (0, 255)).to(torch.uint8)  # truncates, as Keras
        x = torch.bitwise_left_shift(torch.bitwise_right_shift(x, shift), shift).to(images.dtype)
        return transform_value_range(x, (0, 255), self.value_range)

    def get_config(self):
        config = super().get_config()
        config.update({"factor": self.factor, "value_range": self.value_range, "seed": self.seed})
        return config
