"""`RandomShear`."""

from __future__ import annotations

import torch

from kerasish.layers.preprocessing.base_augmentation import check_fill_and_interpolation
from kerasish.layers.preprocessing.base_transform import BaseTransformAugmentation
from kerasish.layers.preprocessing.base_transform import as_tensor
from kerasish.layers.preprocessing.image_affine import affine_transform

_FACTOR_ERROR = "The `factor` argument should be a number (or a list of two numbers) in the range [0, 1.0]. "


def check_shear_factor(factor, name: str) -> tuple:
    """Keras's shear rule: a number `f` in `[0, 1]` -> `(-f, f)`; a pair ->
    sorted. Keras 3.15 wants a pair's numbers in `[0, 1]`, which rejects its
    own configs (`x_factor=0.3` is stored as `(-0.3, 0.3)`); kerasish accepts
    pairs in `[-1, 1]` so that configs round-trip."""
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2:
            raise ValueError(_FACTOR_ERROR + f"Received: {name}={factor}")
        values = list(factor)
    elif isinstance(factor, (int, float)) and not isinstance(factor, bool):
        values = [factor]
    else:
        raise ValueError(_FACTOR_ERROR + f"Received: {name}={factor}")
    low = -1.0 if len(values) == 2 else 0.0
    for v in values:
        if isinstance(v, bool) or not isinstance(v, (int, float)) or v > 1.0 or v < low:
            raise ValueError(_FACTOR_ERROR + f"Received: {name}={factor}")
    if len(values) == 2:
        return tuple(sorted(values))
    return (-abs(factor), abs(factor))


class RandomShear(BaseTransformAugmentation):
    """Randomly shears images during training (`keras.layers.RandomShear`).

    The output pixel `(x, y)` is read from the input at
    `(x + sx * y, sy * x + y)` (a shear about the top-left corner, Keras's
    matrix), with `sx` drawn from `x_factor`'s range, `sy` from
    `y_factor`'s, and both negated together for half of the images; empty
    areas follow `fill_mode`. In inference mode the input is returned cast to
    the compute dtype.

    Args:
        x_factor: A float `f` in `[0, 1]` (the range `(-f, f)`) or a pair
            (Keras: in `[0, 1]`; kerasish also takes negative bounds, so
            that configs round-trip). Defaults to 0.
        y_factor: Same for the vertical shear. Defaults to 0.
        interpolation: "bilinear" or "nearest". Defaults to "bilinear".
        fill_mode: "reflect", "wrap", "constant" or "nearest". Defaults to
            "reflect".
        fill_value: Value outside the image with "constant". Defaults to 0.
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".
        seed: Integer seed for a reproducible layer. Defaults to None.

    Input: a 4-D image batch or a 3-D image. Output: same shape.

    Example:
        >>> layer = keras.layers.RandomShear(x_factor=0.2, seed=0)
        >>> y = layer(torch.rand(2, 16, 16, 3), training=True)
    """

    def __init__(self, x_factor=0.0, y_factor=0.0, interpolation="bilinear", fill_mode="reflect", fill_value=0.0,
                 data_format=None, seed=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.x_factor = check_shear_factor(x_factor, "x_factor")
        self.y_factor = check_shear_factor(y_factor, "y_factor")
        check_fill_and_interpolation(fill_mode, interpolation)
        self.fill_mode = fill_mode
        self.fill_value = fill_value
        self.interpolation = interpolation

    def get_random_transformation(self, data, training=True, seed=None):
        if not training:
            return None
        batch = data.shape[0]
        invert = torch.where(self._uniform_range((batch, 1), 0.0, 1.0, data) > 0.5, -1.0, 1.0)
        shear_y = self._uniform_range((batch, 1), self.y_factor[0], self.y_factor[1], data)
        shear_x = self._uniform_range((batch, 1), self.x_factor[0], self.x_factor[1], data)
        return {"shear_factor": torch.cat([shear_x, shear_y], dim=1) * invert, "input_shape": tuple(data.shape)}

    def transform_images(self, images, transformation=None, training=True):
        if not training or transformation is None:
            return images
        shear = as_tensor(transformation["shear_factor"], images)
        ones, zeros = torch.ones_like(shear[:, 0]), torch.zeros_like(shear[:, 0])
        matrix = torch.stack([ones, shear[:, 0], zeros, shear[:, 1], ones, zeros, zeros, zeros], dim=1)
        return affine_transform(images, matrix, self.interpolation, self.fill_mode, self.fill_value,
                                self._channels_last)

    def get_config(self):
        config = super().get_config()
        config.update({"x_factor": self.x_factor, "y_factor": self.y_factor, "fill_mode": self.fill_mode,
                       "interpolation": self.interpolation, "seed": self.seed, "fill_value": self.fill_value})
        return config
