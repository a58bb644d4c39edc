"""`RandomZoom`."""

from __future__ import annotations

import torch

from kerasish.layers.preprocessing.base_augmentation import BaseAffineAugmentation
from kerasish.layers.preprocessing.base_augmentation import check_factor_pair

_FACTOR_ERROR = (
    "The `height_factor` and `width_factor` arguments should be a number (or a list of two numbers) "
    "in the range (-1.0, 1.0]. "
)


def check_zoom_factor(factor, name):
    """Keras's zoom factor rule: like the base rule on `(-1, 1]` (-1 itself
    would zoom to a point)."""
    values = factor if isinstance(factor, (tuple, list)) else [factor]
    for v in values:
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v <= -1.0:
            raise ValueError(_FACTOR_ERROR + f"Received: {name}={factor}")
    pair = check_factor_pair(factor, name, (-1.0, 1.0), message=_FACTOR_ERROR)
    return (-abs(factor), abs(factor)) if not isinstance(factor, (tuple, list)) else pair


class RandomZoom(BaseAffineAugmentation):
    """Randomly zooms images during training (`keras.layers.RandomZoom`).

    Each image is scaled about its centre: the sampling grid is stretched by
    `1 + h` vertically and `1 + w` horizontally, with `h` drawn from
    `height_factor`'s range and `w` from `width_factor`'s (or `w = h` when
    `width_factor` is None). A positive factor zooms *out* (the image shrinks,
    `fill_mode` fills the border), a negative one zooms in (Keras's
    convention). In inference mode the input is returned cast to the compute
    dtype.

    Args:
        height_factor: A float `f` (the range `[-f, f]`) or a pair
            `(low, high)` in `(-1, 1]`.
        width_factor: Same for the width, or None to keep the aspect ratio.
            Defaults to None.
        fill_mode: "reflect", "wrap", "constant" or "nearest". Defaults to
            "reflect".
        interpolation: "bilinear" or "nearest". Defaults to "bilinear".
        seed: Integer seed for a reproducible layer. Defaults to None.
        fill_value: Value outside the image with "constant". Defaults to 0.
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".

    Input: a 4-D image batch or a 3-D image. Output: same shape.

    Example:
        >>> zoom = keras.layers.RandomZoom((-0.2, 0.2), seed=1)
        >>> y = zoom(torch.rand(2, 16, 16, 3), training=True)
    """

    def __init__(self, height_factor, width_factor=None, fill_mode="reflect", interpolation="bilinear", seed=None,
                 fill_value=0.0, data_format=None, **kwargs):
        super().__init__(fill_mode=fill_mode, interpolation=interpolation, seed=seed, fill_value=fill_value,
                         data_format=data_format, **kwargs)
        self.height_factor = height_factor
        self.height_lower, self.height_upper = check_zoom_factor(height_factor, "height_factor")
        self.width_factor = width_factor
        if width_factor is not None:
            self.width_lower, self.width_upper = check_zoom_factor(width_factor, "width_factor")

    def _transforms(self, images):
        batch = images.shape[0]
        height, width = images.shape[self._h_axis], images.shape[self._w_axis]
        zoom_h = self._uniform_range((batch,), 1.0 + self.height_lower, 1.0 + self.height_upper, images)
        if self.width_factor is not None:
            zoom_w = self._uniform_range((batch,), 1.0 + self.width_lower, 1.0 + self.width_upper, images)
        else:
            zoom_w = zoom_h
        zeros = torch.zeros_like(zoom_h)
        # scale about the centre ((W-1)/2, (H-1)/2), as Keras's `_get_zoom_matrix`
        x_offset = (width - 1.0) / 2.0 * (1.0 - zoom_w)
        y_offset = (height - 1.0) / 2.0 * (1.0 - zoom_h)
        return torch.stack([zoom_w, zeros, x_offset, zeros, zoom_h, y_offset, zeros, zeros], dim=1)

    def get_config(self):
        config = super().get_config()
        config.update({"height_factor": self.height_factor, "width_factor": self.width_factor})
        return config
