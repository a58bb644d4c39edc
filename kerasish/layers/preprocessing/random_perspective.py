"""`RandomPerspective`."""

from __future__ import annotations

import torch

from kerasish.layers.preprocessing.base_augmentation import check_factor_pair
from kerasish.layers.preprocessing.base_transform import BaseTransformAugmentation
from kerasish.layers.preprocessing.base_transform import as_tensor

_INTERPOLATIONS = ("nearest", "bilinear")


class RandomPerspective(BaseTransformAugmentation):
    """Randomly warps the perspective of images during training
    (`keras.layers.RandomPerspective`).

    Each image is warped with probability `p` (drawn per image from
    `factor`'s range): its corners `(x, y)` move to `(x, y) * (1 + d)` with
    `d` drawn from `[-scale / 2, scale / 2]` per coordinate, and the image
    follows that homography; areas outside the input get `fill_value`. In
    inference mode the input is returned cast to the compute dtype.

    Args:
        factor: A float `f` (the range `(0, f)`) or a pair in `[0, 1]`.
            Defaults to 1.0.
        scale: Strength of the distortion, in `[0, 1]`. Defaults to 1.0.
        interpolation: "bilinear" or "nearest". Defaults to "bilinear".
        fill_value: Value outside the image. Defaults to 0.
        seed: Integer seed for a reproducible layer. Defaults to None.
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".

    Input: a 4-D image batch or a 3-D image. Output: same shape.

    Example:
        >>> layer = keras.layers.RandomPerspective(factor=(1, 1), scale=0.3, seed=0)
        >>> y = layer(torch.rand(2, 16, 16, 3), training=True)
    """

    def __init__(self, factor=1.0, scale=1.0, interpolation="bilinear", fill_value=0.0, seed=None, data_format=None,
                 **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = check_factor_pair(factor, "factor", (0, 1))
        if isinstance(scale, bool) or not isinstance(scale, (int, float)) or scale < 0.0 or scale > 1.0:
            raise ValueError(f"The `scale` argument should be a number in the range [0,1]. Received: scale={scale}")
        if interpolation not in _INTERPOLATIONS:
            raise NotImplementedError(f"Unknown `interpolation` {interpolation}. Expected of one {_INTERPOLATIONS}.")
        self.scale = scale
        self.fill_value = fill_value
        self.interpolation = interpolation

    def get_random_transformation(self, data, training=True, seed=None):
        if not training:
            return None
        batch = data.shape[0]
        height, width = data.shape[self._h_axis], data.shape[self._w_axis]
        probability = self._uniform_range((batch,), self.factor[0], self.factor[1], data)
        threshold = self._uniform_range((batch,), 0.0, 1.0, data)
        offsets = self._uniform_range((batch, 4, 2), -0.5 * self.scale, 0.5 * self.scale, data)
        corners = [[0.0, 0.0], [width - 1, 0.0], [0.0, height - 1], [width - 1, height - 1]]
        start = torch.tensor(corners, dtype=offsets.dtype, device=data.device).expand(batch, 4, 2)
        return {"apply_perspective": threshold < probability, "start_points": start,
                "end_points": start + start * offsets, "input_shape": tuple(data.shape)}

    def transform_images(self, images, transformation=None, training=True):
        if not training or transformation is None:
            return images
        from kerasish.ops.image import perspective_transform  # noqa: PLC0415 (ops import layers)

        start = as_tensor(transformation["start_points"], images)
        end = as_tensor(transformation["end_points"], images)
        apply = as_tensor(transformation["apply_perspective"], images, torch.bool).reshape(-1, 1, 1, 1)
        warped = perspective_transform(images, start, end, interpolation=self.interpolation,
                                       fill_value=self.fill_value, data_format=self.data_format)
        return torch.where(apply, warped, images)

    def get_config(self):
        config = super().get_config()
        config.update({"factor": self.factor, "scale": self.scale, "interpolation": self.interpolation,
                       "fill_value": self.fill_value, "seed": self.seed})
        return config
