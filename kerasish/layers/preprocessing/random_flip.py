"""`RandomFlip`."""

from __future__ import annotations

import torch

from kerasish.layers.preprocessing.base_augmentation import BaseImageAugmentation

HORIZONTAL = "horizontal"
VERTICAL = "vertical"
HORIZONTAL_AND_VERTICAL = "horizontal_and_vertical"
_MODES = (HORIZONTAL, VERTICAL, HORIZONTAL_AND_VERTICAL)


class RandomFlip(BaseImageAugmentation):
    """Randomly flips images during training (`keras.layers.RandomFlip`).

    Each image is flipped with probability 1/2. With
    "horizontal_and_vertical" one draw decides both flips, so an image is
    either flipped along both axes or left as is (Keras 3's behaviour). In
    inference mode the input is returned cast to the compute dtype.

    Args:
        mode: "horizontal" (left-right), "vertical" (up-down) or
            "horizontal_and_vertical". Defaults to "horizontal_and_vertical".
        seed: Integer seed for a reproducible layer. Defaults to None (the
            global torch RNG).
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".

    Input: a 4-D image batch or a 3-D image. Output: same shape.

    Example:
        >>> flip = keras.layers.RandomFlip("horizontal", seed=1)
        >>> y = flip(torch.rand(2, 8, 8, 3), training=True)
    """

    def __init__(self, mode=HORIZONTAL_AND_VERTICAL, seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if mode not in _MODES:
            raise ValueError(f"RandomFlip layer {self.name} received an unknown mode argument {mode}")
        self.mode = mode
        axes = []
        if mode in (HORIZONTAL, HORIZONTAL_AND_VERTICAL):
            axes.append(self._w_axis)
        if mode in (VERTICAL, HORIZONTAL_AND_VERTICAL):
            axes.append(self._h_axis)
        self._flip_axes = tuple(axes)

    def _augment(self, images):
        flips = self._uniform_range((images.shape[0], 1, 1, 1), 0.0, 1.0, images) <= 0.5
        return torch.where(flips, torch.flip(images, self._flip_axes), images)

    def get_config(self):
        config = super().get_config()
        config.update({"seed": self.seed, "mode": self.mode})
        return config
