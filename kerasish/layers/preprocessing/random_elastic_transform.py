"""`RandomElasticTransform`."""

from __future__ import annotations

import torch

from kerasish.layers.preprocessing.base_augmentation import check_factor_pair
from kerasish.layers.preprocessing.base_transform import BaseTransformAugmentation
from kerasish.layers.preprocessing.base_transform import as_tensor

_INTERPOLATIONS = ("nearest", "bilinear")
_FILL_MODES = ("constant", "nearest", "wrap", "mirror", "reflect")


class RandomElasticTransform(BaseTransformAugmentation):
    """Randomly distorts images with a smooth displacement field during
    training (`keras.layers.RandomElasticTransform`).

    Each image is transformed with probability `p` (drawn per image from
    `factor`'s range). One distortion `d` is drawn per batch from `scale`'s
    range; the field is Gaussian noise blurred with
    `sigma = 0.05 * d * min(H, W)` and scaled by `alpha = 0.1 * d * max(H, W)`
    (see `keras.ops.image.elastic_transform`); the result is clipped to
    `value_range`. In inference mode the input is returned cast to the
    compute dtype.

    Draws as Keras 3 on torch: `p`, the thresholds and `d` come from the
    layer's seed generator (equal to Keras's with `seed=` or after
    `keras.utils.set_random_seed`); the displacement noise comes from torch's
    global RNG, as Keras's torch backend draws it (its elastic transform
    ignores the seed), so `seed=` alone does not fix the field:
    `torch.manual_seed` or `keras.utils.set_random_seed` does.

    Args:
        factor: A float `f` (the range `(0, f)`) or a pair in `[0, 1]`.
            Defaults to 1.0.
        scale: A float `s` (the range `(0, s)`) or a pair in `[0, 1]`.
            Defaults to 1.0.
        interpolation: "bilinear" or "nearest". Defaults to "bilinear".
        fill_mode: "reflect", "mirror", "wrap", "constant" or "nearest".
            Defaults to "reflect".
        fill_value: Value outside the image with "constant". Defaults to 0.
        value_range: `(low, high)` of the pixel values. Defaults to `(0, 255)`.
        seed: Integer seed for a reproducible layer. Defaults to None.
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".

    Input: a 4-D image batch or a 3-D image. Output: same shape.

    Example:
        >>> layer = keras.layers.RandomElasticTransform(factor=(1, 1), scale=0.5, seed=0)
        >>> y = layer(torch.rand(2, 16, 16, 3) * 255, training=True)
    """

    def __init__(self, factor=1.0, scale=1.0, interpolation="bilinear", fill_mode="reflect", fill_value=0.0,
                 value_range=(0, 255), seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = check_factor_pair(factor, "factor", (0, 1))
        self.scale = check_factor_pair(scale, "scale", (0, 1))
        if interpolation not in _INTERPOLATIONS:
            raise NotImplementedError(f"Unknown `interpolation` {interpolation}. Expected of one {_INTERPOLATIONS}.")
        if fill_mode not in _FILL_MODES:
            raise NotImplementedError(f"Unknown `fill_mode` {fill_mode}. Expected of one {set(_FILL_MODES)}.")
        self.interpolation = interpolation
        self.fill_mode = fill_mode
        self.fill_value = fill_value
        self.value_range = value_range

    def get_random_transformation(self, data, training=True, seed=None):
        if not training or self.scale[1] == 0 or self.factor[1] == 0:
            return None
        batch = data.shape[0]
        probability = self._uniform_range((batch,), self.factor[0], self.factor[1], data)
        threshold = self._uniform_range((batch,), 0.0, 1.0, data)
        distortion = self._uniform_range((), self.scale[0], self.scale[1], data)
        return {"apply_transform": threshold < probability, "distortion_factor": distortion, "seed": None}

    def transform_images(self, images, transformation=None, training=True):
        if not training or transformation is None:
            return images
        from kerasish.ops.image_resample import elastic_warp  # noqa: PLC0415 (ops import layers)

        height, width = images.shape[self._h_axis], images.shape[self._w_axis]
        distortion = float(transformation["distortion_factor"])
        alpha, sigma = max(height, width) * 0.1 * distortion, min(height, width) * 0.05 * distortion
        x = images if self._channels_last else images.permute(0, 2, 3, 1)
        # Keras's torch backend: two standard-normal fields from torch's global RNG
        # (a given `transformation["seed"]` is not used there either)
        noise = [torch.normal(0.0, 1.0, size=tuple(x.shape[:3]), dtype=x.dtype, device=x.device) for _ in range(2)]
        warped = elastic_warp(x, noise[0], noise[1], alpha, sigma, self.interpolation, self.fill_mode,
                              self.fill_value)
        warped = warped if self._channels_last else warped.permute(0, 3, 1, 2)
        apply = as_tensor(transformation["apply_transform"], images, torch.bool).reshape(-1, 1, 1, 1)
        return torch.where(apply, warped, images).clamp(self.value_range[0], self.value_range[1])

    def get_config(self):
        config = super().get_config()
        config.update({"factor": self.factor, "scale": self.scale, "interpolation": self.interpolation,
                       "fill_mode": self.fill_mode, "fill_value": self.fill_value, "value_range": self.value_range,
                       "seed": self.seed})
        return config
