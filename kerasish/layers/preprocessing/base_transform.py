"""`BaseTransformAugmentation`: image layers written the Keras 3 way, as a
random *transformation* (a dict of tensors) drawn by
`get_random_transformation` and applied by `transform_images`.

Keras 3's `BaseImagePreprocessingLayer` splits every layer in those two
steps. kerasish's newer image layers (AugMix, CutMix, MixUp, Solarization,
...) keep that split and the same dict keys, so that:

- a transformation drawn by real Keras (`keras_layer.get_random_transformation`)
  can be fed to the kerasish layer's `transform_images` and give Keras's
  numbers (the parity tests do exactly that);
- composite layers (AugMix, RandAugment, RandomColorJitter) draw and apply
  their parts' transformations.

On top of `BaseImageAugmentation` (training-mode only, `seed=` through a
`torch.Generator`, 3-D or 4-D images, both data formats) this base adds:

- dict inputs `{"images": ..., "labels": ...}` as Keras takes them (labels
  change only in MixUp and CutMix); bounding boxes and segmentation masks
  are not supported and raise a ValueError;
- `_ALWAYS_ACTIVE` for the layers Keras applies in inference too
  (AutoContrast, ContrastLimitedAdaptiveHistogramEqualization);
- the value-range helpers and the extra distributions (integers,
  permutations, Beta, Gamma) the layers draw from.

`transform_images` always receives a 4-D batch (a single image is batched
first, as Keras's `transform_single_image` does).
"""

from __future__ import annotations

import torch

from kerasish.layers.preprocessing.base_augmentation import BaseImageAugmentation

_VALUE_RANGE_ERROR = "The `value_range` argument should be a list of two numbers. "


def check_value_range(value_range, sort: bool = True):
    """Keras's `_set_value_range`: a list/tuple of two numbers, stored sorted
    (as a list) by most layers; `sort=False` keeps it as given."""
    if not isinstance(value_range, (tuple, list)) or len(value_range) != 2:
        raise ValueError(_VALUE_RANGE_ERROR + f"Received: value_range={value_range}")
    return sorted(value_range) if sort else value_range


def transform_value_range(images: torch.Tensor, original_range, target_range) -> torch.Tensor:
    """Keras's `_transform_value_range`: a linear map of `original_range`
    onto `target_range` (no clipping); the identity when they are equal."""
    if original_range[0] == target_range[0] and original_range[1] == target_range[1]:
        return images
    unit = (images - original_range[0]) / (original_range[1] - original_range[0])
    return unit * (target_range[1] - target_range[0]) + target_range[0]


def as_tensor(value, like: torch.Tensor, dtype=None) -> torch.Tensor:
    """A transformation entry (a torch tensor, NumPy array or number, e.g.
    drawn by real Keras) as a tensor on `like`'s device."""
    return torch.as_tensor(value, device=like.device, dtype=dtype)


class BaseTransformAugmentation(BaseImageAugmentation):
    """An image layer split into `get_random_transformation` and
    `transform_images` (see module doc)."""

    _ALWAYS_ACTIVE = False  # True: applied in inference mode too (Keras ignores `training`)

    def call(self, inputs, training=True):
        if isinstance(inputs, dict):
            return self._call_dict(inputs, training)
        self._check_rank(inputs)
        images = inputs.to(self._compute_torch_dtype)
        if not (training or self._ALWAYS_ACTIVE):
            return images
        batched = images.ndim == 4
        if not batched:
            images = images.unsqueeze(0)
        transformation = self.get_random_transformation(images, training=True)
        out = self.transform_images(images, transformation, training=True)
        return out if batched else out.squeeze(0)

    def _call_dict(self, data, training):
        unknown = set(data) - {"images", "labels"}
        if "images" not in data or unknown:
            raise ValueError(
                f"Layer {self.name} takes an image tensor or a dict with the keys 'images' and (optionally) "
                f"'labels'; bounding boxes and segmentation masks are not supported in kerasish. "
                f"Received keys: {sorted(data)}"
            )
        images = torch.as_tensor(data["images"])
        self._check_rank(images)
        images = images.to(self._compute_torch_dtype)
        out = dict(data)
        if not (training or self._ALWAYS_ACTIVE):
            out["images"] = images
            return out
        batched = images.ndim == 4
        if not batched:
            images = images.unsqueeze(0)
        transformation = self.get_random_transformation(images, training=True)
        result = self.transform_images(images, transformation, training=True)
        out["images"] = result if batched else result.squeeze(0)
        if "labels" in data:
            labels = torch.as_tensor(data["labels"], device=images.device)
            labels = labels if batched else labels.unsqueeze(0)
            labels = self.transform_labels(labels, transformation, training=True)
            out["labels"] = labels if batched else labels.squeeze(0)
        return out

    def _augment(self, images):
        """Draw and apply a transformation to a 4-D batch (used by the
        composite layers and `BaseImageAugmentation`)."""
        return self.transform_images(images, self.get_random_transformation(images, training=True), training=True)

    def _draw(self, images):
        return self.get_random_transformation(images, training=True)

    def _apply_drawn(self, images, transformation):
        return self.transform_images(images, transformation, training=True)

    def get_random_transformation(self, data, training=True, seed=None):
        """The random parameters for this batch (a dict of tensors), or None.
        `seed` is accepted for Keras's signature; draws come from the layer's
        own generator."""
        return None

    def transform_images(self, images, transformation=None, training=True):
        raise NotImplementedError

    def transform_labels(self, labels, transformation=None, training=True):
        return labels

    # -- extra distributions ---------------------------------------------------

    def _randint(self, shape, low: int, high: int, like: torch.Tensor) -> torch.Tensor:
        """Integers in `[low, high)` (int64)."""
        return torch.randint(int(low), int(high), shape, generator=self._generator(like.device), device=like.device)

    def _permutation(self, n: int, like: torch.Tensor) -> torch.Tensor:
        """A random order of `range(n)`, drawn as Keras's torch `random.shuffle`
        (the argsort of `n` uniform draws)."""
        return torch.rand((n,), generator=self._generator(like.device), device=like.device).argsort(0)

    def _sample(self, distribution, like: torch.Tensor) -> torch.Tensor:
        """One sample of a `torch.distributions` object (whose parameters
        live on `like`'s device). torch's Beta/Gamma samplers take no
        generator: a seeded layer draws a seed from its generator and samples
        under a forked, reseeded global RNG (the caller's RNG is untouched)."""
        if self.__dict__.get("seed_generator") is not None:
            # Keras's torch beta/gamma: the global RNG reseeded with this draw's seed
            # (seed + counter), then restored
            seed = self._keras_seed()
            if seed is None:
                return distribution.sample()
        else:
            gen = self._generator(like.device)
            if gen is None:
                return distribution.sample()
            seed = int(torch.randint(0, 2**62, (1,), generator=gen, device=like.device))
        devices = [like.device] if like.device.type != "cpu" else []
        with torch.random.fork_rng(devices=devices, device_type=like.device.type if devices else "cuda"):
            torch.manual_seed(seed)
            return distribution.sample()

    def _beta(self, shape, alpha, like: torch.Tensor) -> torch.Tensor:
        """Beta(alpha, alpha) draws; `alpha` a number or a 0-d tensor."""
        a = torch.as_tensor(alpha, dtype=torch.float32, device=like.device).expand(shape)
        return self._sample(torch.distributions.Beta(a, a), like)

    def _gamma(self, shape, alpha, like: torch.Tensor) -> torch.Tensor:
        a = torch.as_tensor(alpha, dtype=torch.float32, device=like.device).expand(shape)
        return self._sample(torch.distributions.Gamma(a, torch.ones_like(a)), like)
