"""`RandomColorDegeneration`."""

from __future__ import annotations

from kerasish.layers.preprocessing.base_augmentation import check_factor_pair
from kerasish.layers.preprocessing.base_transform import BaseTransformAugmentation
from kerasish.layers.preprocessing.base_transform import as_tensor
from kerasish.layers.preprocessing.base_transform import check_value_range


class RandomColorDegeneration(BaseTransformAugmentation):
    """Randomly blends images with their grayscale version during training
    (`keras.layers.RandomColorDegeneration`).

    `x + f * (gray(x) - x)`, clipped to `value_range`, with `f` drawn per
    image from `factor`'s range (`f = 1` is fully gray). Inputs have 3
    channels. In inference mode the input is returned cast to the compute
    dtype.

    Note (Keras 3.15 behaviour, kept for parity): a number `f` becomes the
    range `(-f, f)` (factor bounds `[-1, 1]`), so half of the draws push the
    colours *away* from gray.

    Args:
        factor: A float `f` (the range `(-f, f)`) or a pair in `[-1, 1]`.
        value_range: `(low, high)` of the pixel values. Defaults to `(0, 255)`.
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".
        seed: Integer seed for a reproducible layer. Defaults to None.

    Input: a 4-D image batch or a 3-D image. Output: same shape.

    Example:
        >>> layer = keras.layers.RandomColorDegeneration((1.0, 1.0))
        >>> y = layer(torch.rand(2, 8, 8, 3) * 255, training=True)  # grayscale
    """

    def __init__(self, factor, value_range=(0, 255), data_format=None, seed=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = check_factor_pair(factor, "factor", (-1, 1))
        self.value_range = check_value_range(value_range)

    def get_random_transformation(self, data, training=True, seed=None):
        return {"factor": self._uniform_range((data.shape[0], 1, 1, 1), self.factor[0], self.factor[1], data)}

    def transform_images(self, images, transformation=None, training=True):
        if not training:
            return images
        from kerasish.ops.image import rgb_to_grayscale  # noqa: PLC0415 (ops import layers)

        factor = as_tensor(transformation["factor"], images, images.dtype)
        gray = rgb_to_grayscale(images, data_format=self.data_format)
        return (images + factor * (gray - images)).clamp(self.value_range[0], self.value_range[1])

    def compute_output_shape(self, input_shape):
        if len(input_shape) not in (3, 4):
            raise ValueError("Invalid images rank: expected rank 3 (single image) or rank 4 (batch of images). "
                             f"Received: input_shape={input_shape}")
        channels = input_shape[-1 if self._channels_last else -3]
        if channels is not None and channels != 3:
            raise ValueError(f"Input images must have 3 channels, but received images with {channels} channels.")
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"factor": self.factor, "value_range": self.value_range, "seed": self.seed})
        return config
