"""`RandomRotation`."""

from __future__ import annotations

import torch

from kerasish.layers.preprocessing.base_augmentation import BaseAffineAugmentation
from kerasish.layers.preprocessing.base_augmentation import check_factor_pair
from kerasish.layers.preprocessing.image_affine import affine_matrix


class RandomRotation(BaseAffineAugmentation):
    """Randomly rotates images during training (`keras.layers.RandomRotation`).

    Each image is rotated about its centre by an angle drawn uniformly from
    `[factor[0] * 360, factor[1] * 360]` degrees (positive: counter-clockwise
    in Keras's convention); empty areas follow `fill_mode`. In inference mode
    the input is returned cast to the compute dtype.

    Args:
        factor: A float `f` (the range `[-f, f]`) or a pair `(low, high)`, as
            fractions of 2π, in `[-1, 1]`. `factor=(x, x)` rotates by exactly
            `x * 360` degrees.
        fill_mode: "reflect", "wrap", "constant" or "nearest". Defaults to
            "reflect".
        interpolation: "bilinear" or "nearest". Defaults to "bilinear".
        seed: Integer seed for a reproducible layer. Defaults to None.
        fill_value: Value outside the image with "constant". Defaults to 0.
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".

    Input: a 4-D image batch or a 3-D image. Output: same shape.

    Example:
        >>> rot = keras.layers.RandomRotation(0.1, seed=3)
        >>> y = rot(torch.rand(2, 16, 16, 3), training=True)
    """

    def __init__(self, factor, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0,
                 data_format=None, **kwargs):
        super().__init__(fill_mode=fill_mode, interpolation=interpolation, seed=seed, fill_value=fill_value,
                         data_format=data_format, **kwargs)
        self.factor = check_factor_pair(factor, "factor", (-1, 1))

    def _transforms(self, images):
        batch = images.shape[0]
        angle = self._uniform_range((batch,), self.factor[0] * 360.0, self.factor[1] * 360.0, images)
        zeros = torch.zeros_like(angle)
        return affine_matrix(angle, zeros, zeros, torch.ones_like(angle),
                             images.shape[self._h_axis], images.shape[self._w_axis])

    def get_config(self):
        config = super().get_config()
        config.update({"factor": self.factor})
        return config
