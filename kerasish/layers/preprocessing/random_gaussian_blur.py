"""`RandomGaussianBlur`."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kerasish.layers.preprocessing.base_augmentation import check_factor_pair
from kerasish.layers.preprocessing.base_transform import BaseTransformAugmentation
from kerasish.layers.preprocessing.base_transform import as_tensor


def check_kernel_size(kernel_size, name: str = "kernel_size") -> tuple:
    """Keras's rule: an odd number `k` -> `(k, k)`, or a pair of odd numbers."""
    error = f"{name} must be an odd number. Received: {name}={kernel_size}"
    if isinstance(kernel_size, (tuple, list)):
        if len(kernel_size) != 2:
            raise ValueError(f"The `{name}` argument should be a number (or a list of two numbers) "
                             f"Received: {name}={kernel_size}")
        if kernel_size[0] % 2 == 0 or kernel_size[1] % 2 == 0:
            raise ValueError(error)
        return tuple(kernel_size)
    if isinstance(kernel_size, (int, float)) and not isinstance(kernel_size, bool):
        if kernel_size % 2 == 0:
            raise ValueError(error)
        return (kernel_size, kernel_size)
    raise ValueError(error)


def gaussian_blur_nchw(images: torch.Tensor, kernel_size: tuple, sigma: torch.Tensor) -> torch.Tensor:
    """Keras's torch `gaussian_blur` with a tensor `sigma = (sx, sy)`: the
    kernel is `outer(g(ky, sy), g(kx, sx))` laid out as `(kx, ky)` (the
    same for square kernels), zero padding keeps the size."""
    k0, k1 = int(kernel_size[0]), int(kernel_size[1])

    def kernel1d(size, s):
        t = torch.arange(size, dtype=images.dtype, device=images.device) - (size - 1) / 2
        g = torch.exp(-0.5 * (t / s) ** 2)
        return g / g.sum()

    kernel = torch.outer(kernel1d(k1, sigma[1]), kernel1d(k0, sigma[0])).reshape(k0, k1)
    channels = images.shape[1]
    return F.conv2d(images, kernel.expand(channels, 1, k0, k1), padding=(k0 // 2, k1 // 2), groups=channels)


class RandomGaussianBlur(BaseTransformAugmentation):
    """Randomly blurs images with a Gaussian kernel during training
    (`keras.layers.RandomGaussianBlur`).

    Each image is blurred with probability `p`, itself drawn per image from
    `factor`'s range (so the default `factor=1.0` blurs about half of the
    images, `factor=(1, 1)` all of them); one `(sigma_x, sigma_y)` pair is
    drawn per batch from `sigma`'s range. The result is clipped to
    `value_range`. In inference mode the input is returned cast to the
    compute dtype.

    Args:
        factor: A float `f` (the range `(0, f)`) or a pair in `[0, 1]`.
            Defaults to 1.0.
        kernel_size: An odd integer or a pair of odd integers. Defaults to 3.
        sigma: A float `s` (the range `(0, s)`) or a pair in `[0, 1]` (Keras
            3.15 bounds sigma to `[0, 1]`). Defaults to 1.0.
        value_range: `(low, high)` of the pixel values. Defaults to `(0, 255)`.
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".
        seed: Integer seed for a reproducible layer. Defaults to None.

    Input: a 4-D image batch or a 3-D image. Output: same shape.

    Example:
        >>> layer = keras.layers.RandomGaussianBlur(factor=(1, 1), sigma=(0.8, 0.8))
        >>> y = layer(torch.rand(2, 8, 8, 3) * 255, training=True)
    """

    def __init__(self, factor=1.0, kernel_size=3, sigma=1.0, value_range=(0, 255), data_format=None, seed=None,
                 **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = check_factor_pair(factor, "factor", (0, 1))
        self.kernel_size = check_kernel_size(kernel_size)
        self.sigma = check_factor_pair(sigma, "sigma", (0, 1))
        self.value_range = value_range

    def get_random_transformation(self, data, training=True, seed=None):
        if not training:
            return None
        batch = data.shape[0]
        probability = self._uniform_range((batch,), self.factor[0], self.factor[1], data)
        threshold = self._uniform_range((batch,), 0.0, 1.0, data)
        sigma = self._uniform_range((2,), self.sigma[0], self.sigma[1], data) + 1e-6
        return {"should_apply_blur": threshold < probability, "blur_factor": sigma}

    def transform_images(self, images, transformation=None, training=True):
        if not training or transformation is None:
            return images
        sigma = as_tensor(transformation["blur_factor"], images, images.dtype)
        apply = as_tensor(transformation["should_apply_blur"], images, torch.bool).reshape(-1, 1, 1, 1)
        x = images.permute(0, 3, 1, 2) if self._channels_last else images
        blurred = gaussian_blur_nchw(x, self.kernel_size, sigma)
        if self._channels_last:
            blurred = blurred.permute(0, 2, 3, 1)
        return torch.where(apply, blurred, images).clamp(self.value_range[0], self.value_range[1])

    def get_config(self):
        config = super().get_config()
        config.update({"factor": self.factor, "kernel_size": self.kernel_size, "sigma": self.sigma,
                       "value_range": self.value_range, "seed": self.seed})
        return config
