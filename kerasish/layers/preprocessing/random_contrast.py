"""`RandomContrast`."""

from __future__ import annotations

from kerasish.layers.preprocessing.base_augmentation import BaseImageAugmentation
from kerasish.layers.preprocessing.base_augmentation import check_factor_pair


class RandomContrast(BaseImageAugmentation):
    """Randomly adjusts contrast during training (`keras.layers.RandomContrast`).

    For each image, `(x - mean) * c + mean` with the per-channel spatial mean
    and `c` drawn from `[1 - factor[0], 1 + factor[1]]`, then clipped to
    `value_range`. In inference mode the input is returned cast to the
    compute dtype.

    Note (Keras 3 behaviour, kept for parity): a single number `f` becomes
    `factor=(0, f)` (the bounds are `[0, 1]`), so contrast is only ever
    *increased*, `c` in `[1, 1 + f]`; pass `factor=(f, f)` for `[1 - f, 1 + f]`.

    Args:
        factor: A float or a pair of floats in `[0, 1]`.
        value_range: `(min, max)` of the pixel values. Defaults to `(0, 255)`.
        seed: Integer seed for a reproducible layer. Defaults to None.
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".

    Input: a 4-D image batch or a 3-D image. Output: same shape.

    Example:
        >>> layer = keras.layers.RandomContrast((0.2, 0.2), value_range=(0, 1), seed=0)
        >>> y = layer(torch.rand(2, 8, 8, 3), training=True)
    """

    def __init__(self, factor, value_range=(0, 255), seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = check_factor_pair(factor, "factor", (0, 1))
        self.value_range = value_range

    def _augment(self, images):
        return self._apply_drawn(images, self._draw(images))

    def _draw(self, images):
        return self._uniform_range((images.shape[0], 1, 1, 1), 1.0 - self.factor[0], 1.0 + self.factor[1], images)

    def _apply_drawn(self, images, c):
        c = c.to(images.dtype)
        mean = images.mean(dim=self._h_axis, keepdim=True).mean(dim=self._w_axis, keepdim=True)
        out = (images - mean) * c + mean
        return out.clamp(self.value_range[0], self.value_range[1])

    def get_config(self):
        config = super().get_config()
        config.update({"factor": self.factor, "value_range": self.value_range, "seed": self.seed})
        return config
