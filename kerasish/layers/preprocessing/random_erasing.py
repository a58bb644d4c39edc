"""`RandomErasing`, and the box masks it shares with `CutMix`."""

from __future__ import annotations

import torch

from kerasish.layers.preprocessing.base_augmentation import check_factor_pair
from kerasish.layers.preprocessing.base_transform import BaseTransformAugmentation
from kerasish.layers.preprocessing.base_transform import as_tensor

_FILL_ERROR = "The `fill_value` argument should be a number (or a list of three numbers) "


def box_masks(layer, images, x0, x1, y0, y1) -> torch.Tensor:
    """Boolean masks, True where `x0 <= x < x1` and `y0 <= y < y1` (pixel
    indices; one box per image), broadcast over the channels."""
    height, width = images.shape[layer._h_axis], images.shape[layer._w_axis]
    ys = torch.arange(height, dtype=x0.dtype, device=images.device).view(1, height, 1)
    xs = torch.arange(width, dtype=x0.dtype, device=images.device).view(1, 1, width)
    x0, x1, y0, y1 = (v.view(-1, 1, 1) for v in (x0, x1, y0, y1))
    inside = (xs >= x0) & (xs < x1) & (ys >= y0) & (ys < y1)
    return inside.unsqueeze(3 if layer._channels_last else 1).expand_as(images)


def crop_bounds(layer, like, batch: int, length: int, ratio: torch.Tensor):
    """Keras's `_compute_crop_bounds`: a span of `ratio * length` pixels at a
    uniformly drawn start."""
    crop = ratio * length
    start = layer._uniform_range((batch,), 0.0, 1.0, like) * (length - crop)
    return start, start + crop


class RandomErasing(BaseTransformAugmentation):
    """Randomly erases a rectangle of each image during training
    (`keras.layers.RandomErasing`).

    Each image is erased with probability `p`, drawn per image from
    `factor`'s range. The rectangle's sides are `sqrt(s) * width` and
    `sqrt(s') * height` with `s, s'` drawn from `scale`; it is filled with
    `fill_value` or, when None, with Gaussian noise times `value_range[1]`,
    clipped to `value_range`. In inference mode the input is returned cast to
    the compute dtype.

    Args:
        factor: A float `f` (the range `(0, f)`) or a pair in `[0, 1]`.
            Defaults to 1.0.
        scale: A float or a pair in `[0, 1]`: the erased fraction of each
            side, squared. Defaults to `(0.02, 0.33)`.
        fill_value: None (noise), a number, or three numbers (one per
            channel). Defaults to None.
        value_range: `(low, high)` of the pixel values. Defaults to `(0, 255)`.
        seed: Integer seed for a reproducible layer. Defaults to None.
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".

    Input: a 4-D image batch or a 3-D image. Output: same shape.

    Example:
        >>> layer = keras.layers.RandomErasing(factor=(1, 1), fill_value=0, seed=0)
        >>> y = layer(torch.rand(2, 16, 16, 3) * 255, training=True)
    """

    def __init__(self, factor=1.0, scale=(0.02, 0.33), fill_value=None, value_range=(0, 255), seed=None,
                 data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = check_factor_pair(factor, "factor", (0, 1))
        self.scale = check_factor_pair(scale, "scale", (0, 1))
        if fill_value is not None and not (
            (isinstance(fill_value, (tuple, list)) and len(fill_value) == 3)
            or (isinstance(fill_value, (int, float)) and not isinstance(fill_value, bool))
        ):
            raise ValueError(_FILL_ERROR + f"Received: fill_value={fill_value}")
        self.fill_value = fill_value
        self.value_range = value_range

    def _fill(self, images):
        if self.fill_value is None:
            fill = self._normal(images.shape, images) * self.value_range[1]
        elif isinstance(self.fill_value, (tuple, list)):
            shape = (1, 1, 1, 3) if self._channels_last else (1, 3, 1, 1)
            fill = torch.tensor(self.fill_value, dtype=images.dtype, device=images.device).view(shape)
            fill = fill.expand_as(images)
        else:
            fill = torch.full_like(images, float(self.fill_value))
        return fill.clamp(self.value_range[0], self.value_range[1])

    def get_random_transformation(self, data, training=True, seed=None):
        if not training:
            return None
        batch = data.shape[0]
        side = self._uniform_range((batch, 2), self.scale[0], self.scale[1], data).sqrt()
        x0, x1 = crop_bounds(self, data, batch, data.shape[self._w_axis], side[:, 0])
        y0, y1 = crop_bounds(self, data, batch, data.shape[self._h_axis], side[:, 1])
        probability = self._uniform_range((batch,), self.factor[0], self.factor[1], data)
        threshold = self._uniform_range((batch,), 0.0, 1.0, data)
        return {"apply_erasing": threshold < probability, "batch_masks": box_masks(self, data, x0, x1, y0, y1),
                "fill_value": self._fill(data)}

    def transform_images(self, images, transformation=None, training=True):
        if not training:
            return images
        masks = as_tensor(transformation["batch_masks"], images, torch.bool)
        apply = as_tensor(transformation["apply_erasing"], images, torch.bool).reshape(-1, 1, 1, 1)
        fill = as_tensor(transformation["fill_value"], images, images.dtype)
        return torch.where(apply & masks, fill, images)

    def get_config(self):
        config = super().get_config()
        config.update({"factor": self.factor, "scale": self.scale, "fill_value": self.fill_value,
                       "value_range": self.value_range, "seed": self.seed})
        return config
