"""`RandomGrayscale`."""

from __future__ import annotations

import torch

from kerasish.layers.preprocessing.base_augmentation import BaseImageAugmentation

# ITU-R 601 luma weights, as Keras's torch backend (and torchvision) use
_LUMA = (0.2989, 0.587, 0.114)


class RandomGrayscale(BaseImageAugmentation):
    """Randomly converts images to grayscale during training
    (`keras.layers.RandomGrayscale`).

    Each image is converted with probability `factor` to
    `0.2989 R + 0.587 G + 0.114 B`, repeated over the 3 channels (the
    output keeps the input's shape). Inputs need 1 or 3 channels. In
    inference mode the input is returned cast to the compute dtype.

    Args:
        factor: Probability in `[0, 1]` of converting an image. Defaults to 0.5.
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".
        seed: Integer seed for a reproducible layer. Defaults to None.

    Input: a 4-D image batch or a 3-D image. Output: same shape.

    Example:
        >>> gray = keras.layers.RandomGrayscale(factor=1.0)
        >>> y = gray(torch.rand(2, 4, 4, 3), training=True)
    """

    def __init__(self, factor=0.5, data_format=None, seed=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor < 0 or factor > 1:
            raise ValueError(f"`factor` should be between 0 and 1. Received: factor={factor}")
        self.factor = factor
        self._channel_axis = 3 if self._channels_last else 1

    def _augment(self, images):
        axis = self._channel_axis
        if images.shape[axis] not in (1, 3):
            raise ValueError(
                f"Layer {self.name}: invalid channel size, expected 3 (RGB) or 1 (grayscale). "
                f"Received input with shape: images.shape={tuple(images.shape)}"
            )
        if images.shape[axis] == 3:
            r, g, b = images.unbind(dim=axis)
            gray = (_LUMA[0] * r + _LUMA[1] * g + _LUMA[2] * b).to(images.dtype).unsqueeze(axis)
        else:
            gray = images
        apply = (self._uniform_range((images.shape[0],), 0.0, 1.0, images) < self.factor).view(-1, 1, 1, 1)
        return torch.where(apply, gray, images)

    def get_config(self):
        config = super().get_config()
        config.update({"factor": self.factor, "seed": self.seed})
        return config
