"""`Equalization`."""

from __future__ import annotations

import torch

from kerasish.layers.preprocessing.base_transform import BaseTransformAugmentation
from kerasish.layers.preprocessing.base_transform import check_value_range
from kerasish.layers.preprocessing.base_transform import transform_value_range


def equalize(images: torch.Tensor, bins: int, channel_axis: int) -> torch.Tensor:
    """Keras 3.15's histogram equalization of `[0, 255]` images, one
    histogram per channel *over the whole batch* (as Keras computes it).

    Values are binned by `int((bins - 1) * x / 255)`; the lookup table is
    `round((cdf - cdf_min) * 255 / (cdf[-1] - cdf_min))` with `cdf_min` the
    first non-zero cdf entry; a channel whose values fill at most one bin is
    left unchanged.
    """
    x = images.movedim(channel_axis, 0)
    channels = x.shape[0]
    flat = x.reshape(channels, -1)
    offsets = torch.arange(channels, device=x.device).unsqueeze(1) * bins
    index = (flat.to(torch.float32) * (bins - 1) / 255.0).to(torch.int32).clamp(0, bins - 1)
    # a fixed-size scatter rather than bincount: static shapes under torch.compile
    keys = (index + offsets).reshape(-1).to(torch.int64)
    hist = torch.zeros(channels * bins, dtype=torch.int64, device=x.device)
    hist = hist.scatter_add(0, keys, torch.ones_like(keys)).reshape(channels, bins)
    cdf = hist.cumsum(1)
    cdf_min = cdf.gather(1, (cdf > 0).to(torch.int8).argmax(1, keepdim=True))
    denominator = cdf[:, -1:] - cdf_min
    denominator = torch.where(denominator == 0, torch.ones_like(denominator), denominator)
    table = torch.round((cdf - cdf_min) * 255 / denominator).clamp(0, 255)
    lookup = (flat / 255.0 * (bins - 1)).clamp(0, bins - 1).to(torch.int64)
    equalized = table.gather(1, lookup).to(images.dtype)
    keep = (hist > 0).sum(1, keepdim=True) <= 1
    out = torch.where(keep, flat, equalized)
    return out.reshape(x.shape).movedim(0, channel_axis)


class Equalization(BaseTransformAugmentation):
    """Histogram-equalizes images during training (`keras.layers.Equalization`).

    Each channel's values are remapped through the cumulative histogram
    (`bins` bins over `value_range`) so that they spread over the whole
    range. In inference mode the input is returned cast to the compute
    dtype (Keras's `training` rule for this layer).

    Note (Keras 3.15 behaviour, kept for parity): the histogram of a channel
    is taken over the whole batch, not per image.

    Args:
        value_range: `(low, high)` of the pixel values. Defaults to `(0, 255)`.
        bins: Number of histogram bins. Defaults to 256.
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".

    Input: a 4-D image batch or a 3-D image. Output: same shape.

    Example:
        >>> layer = keras.layers.Equalization(value_range=(0, 1))
        >>> y = layer(torch.rand(2, 8, 8, 3) * 0.3, training=True)
    """

    _keras_default_seed_draws = 0  # Keras's layer has no SeedGenerator

    def __init__(self, value_range=(0, 255), bins=256, data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.bins = bins
        self.value_range = check_value_range(value_range)

    def transform_images(self, images, transformation=None, training=True):
        if not training:
            return images
        x = transform_value_range(images, self.value_range, (0, 255))
        x = equalize(x, self.bins, 3 if self._channels_last else 1)
        return transform_value_range(x, (0, 255), self.value_range)

    def get_config(self):
        config = super().get_config()
        config.update({"bins": self.bins, "value_range": self.value_range})
        return config
