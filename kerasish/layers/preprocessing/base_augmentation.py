"""`BaseImageAugmentation`: the plumbing shared by the random image layers
(`RandomFlip`, `RandomRotation`, `RandomZoom`, ...).

Keras 3's image augmentation layers draw one random transformation per image
and apply it with backend ops. Here they are torch modules that:

- are active only in training mode (an explicit `training=True`, an outer
  training call, `layer.train()` or `fit()`); in inference mode the images
  are only cast to the compute dtype. (Keras 3 defaults `training=True`
  when such a layer is called on its own; kerasish layers start in
  inference mode, so call with `training=True` to augment outside `fit`.)
- own Keras's `SeedGenerator` and draw as `BaseRandomLayer` does: with
  `seed=`, or with `seed=None` after `keras.utils.set_random_seed`, from a
  fresh generator per draw seeded with `seed + counter`, which gives Keras's
  transformations bit for bit on the CPU for most layers (see
  `tests/random/test_keras_seed_parity.py`); otherwise
  from the global torch RNG;
- take a 4-D batch or a 3-D single image, `channels_last` or
  `channels_first`.

Keras's dict inputs (`{"images", "labels", "bounding_boxes", ...}`) are not
supported: pass the image tensor.
"""

from __future__ import annotations

import torch

from kerasish.layers.preprocessing.image_affine import FILL_MODES
from kerasish.layers.preprocessing.image_affine import INTERPOLATIONS
from kerasish.layers.preprocessing.image_affine import affine_transform
from kerasish.layers.regularization.base_random import BaseRandomLayer
from kerasish.layers.reshaping.base_utils import standardize_data_format
from kerasish.random.seed_generator import make_default_seed


def check_factor_pair(factor, name: str, bounds=(-1.0, 1.0), layer: str = "", message: str = "") -> tuple:
    """Keras's `factor` rule: a number `f` -> `(max(-|f|, low), |f|)`, a pair
    -> sorted; both within `bounds` (ValueError otherwise)."""
    low, high = bounds
    error = message or (
        f"The `{name}` argument should be a number (or a list of two numbers) in the range [{low}, {high}]. "
    )
    error += f"Received: {name}={factor}" + (f" (layer {layer})" if layer else "")
    if isinstance(factor, (tuple, list)):
        if len(factor) != 2 or not all(isinstance(f, (int, float)) and not isinstance(f, bool) for f in factor):
            raise ValueError(error)
        if factor[0] > high or factor[1] < low:  # Keras's check, exactly
            raise ValueError(error)
        return tuple(sorted(factor))
    if isinstance(factor, (int, float)) and not isinstance(factor, bool):
        if factor < low or factor > high:
            raise ValueError(error)
        factor = abs(factor)
        return (max(-factor, low), factor)
    raise ValueError(error)


def check_fill_and_interpolation(fill_mode, interpolation) -> None:
    """Keras raises NotImplementedError for an unknown fill mode / interpolation."""
    if fill_mode not in FILL_MODES:
        raise NotImplementedError(f"Unknown `fill_mode` {fill_mode}. Expected of one {FILL_MODES}.")
    if interpolation not in INTERPOLATIONS:
        raise NotImplementedError(f"Unknown `interpolation` {interpolation}. Expected of one {INTERPOLATIONS}.")


class BaseImageAugmentation(BaseRandomLayer):
    """A random image layer (see module doc). Subclasses implement
    `_augment(images)` on a 4-D batch in `self.data_format`."""

    # Python-random draws Keras's constructor makes with seed=None (its
    # SeedGenerator's default seed; RandomCrop makes two; AutoContrast and
    # Equalization, which draw nothing, have no SeedGenerator: none)
    _keras_default_seed_draws = 1

    def __init__(self, seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if seed is None:
            for _ in range(self._keras_default_seed_draws - 1):
                make_default_seed()  # (RandomCrop's extra default seed)
        # Keras's `self.generator = SeedGenerator(seed)`: a default seed drawn from
        # Python's random now, as Keras does, so the layers built after this one get
        # Keras's seeds after set_random_seed
        if seed is not None or self._keras_default_seed_draws:
            self._init_seed_generator()
        self.data_format = standardize_data_format(data_format)
        self._channels_last = self.data_format == "channels_last"
        # axes of a 4-D batch
        self._h_axis, self._w_axis = (1, 2) if self._channels_last else (2, 3)
        self.built = True

    def _check_rank(self, inputs):
        if inputs.ndim not in (3, 4):
            raise ValueError(
                f"Layer {self.name} expected an image tensor of rank 3 (single image) or 4 (batch of images). "
                f"Received: inputs.shape={tuple(inputs.shape)}"
            )

    def call(self, inputs, training=True):
        self._check_rank(inputs)
        images = inputs.to(self._compute_torch_dtype)
        if not training:
            return images
        if images.ndim == 3:
            return self._augment(images.unsqueeze(0)).squeeze(0)
        return self._augment(images)

    def _augment(self, images: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    # `_augment` split into its draw and its application (RandAugment/AugMix draw
    # every operation's transformation first, as Keras does); not all layers have it
    def _draw(self, images: torch.Tensor):
        raise NotImplementedError

    def _apply_drawn(self, images: torch.Tensor, transformation) -> torch.Tensor:
        raise NotImplementedError

    def _uniform_range(self, shape, low, high, like) -> torch.Tensor:
        """Uniform draws in `[low, high)` (float32 for low-precision inputs,
        as Keras draws in float32)."""
        dtype = like.dtype if like.dtype in (torch.float32, torch.float64) else torch.float32
        gen = self._generator(like.device)
        u = torch.rand(shape, generator=gen, device=like.device, dtype=dtype)
        return u * (high - low) + low

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"data_format": self.data_format})
        return config


class BaseAffineAugmentation(BaseImageAugmentation):
    """A random layer that resamples images through an affine transform
    (`fill_mode`, `interpolation`, `fill_value`; see `image_affine`)."""

    def __init__(self, fill_mode="reflect", interpolation="bilinear", seed=None, fill_value=0.0, data_format=None,
                 **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        check_fill_and_interpolation(fill_mode, interpolation)
        self.fill_mode = fill_mode
        self.interpolation = interpolation
        self.fill_value = fill_value

    def _transforms(self, images: torch.Tensor) -> torch.Tensor:
        """`(B, 8)` output-to-input transforms for this batch."""
        raise NotImplementedError

    def _augment(self, images):
        return self._apply_drawn(images, self._transforms(images))

    def _draw(self, images):
        return self._transforms(images)

    def _apply_drawn(self, images, transforms):
        return affine_transform(images, transforms, self.interpolation, self.fill_mode, self.fill_value,
                                self._channels_last)

    def get_config(self):
        config = super().get_config()
        config.update({"fill_mode": self.fill_mode, "interpolation": self.interpolation, "seed": self.seed,
                       "fill_value": self.fill_value})
        return config
