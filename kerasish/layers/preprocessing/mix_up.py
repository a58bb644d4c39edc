"""`MixUp`."""

from __future__ import annotations

import torch

from kerasish.layers.preprocessing.base_transform import BaseTransformAugmentation
from kerasish.layers.preprocessing.base_transform import as_tensor


def mix_labels(labels: torch.Tensor, transformation, dtype) -> torch.Tensor:
    """`w * y + (1 - w) * y[permutation]` per sample (MixUp and CutMix)."""
    weight = as_tensor(transformation["mix_weight"], labels).reshape(-1, 1)
    order = as_tensor(transformation["permutation_order"], labels, torch.int64)
    labels = labels if labels.is_floating_point() else labels.to(dtype)
    weight = weight.to(labels.dtype)
    return weight * labels + (1.0 - weight) * labels.index_select(0, order)


class MixUp(BaseTransformAugmentation):
    """MixUp augmentation during training (`keras.layers.MixUp`).

    Each sample is blended with another sample of the batch (a random
    permutation): `w * x + (1 - w) * x[perm]` with `w ~ Beta(alpha, alpha)`
    per sample; labels passed as `{"images": x, "labels": y}` (one-hot or
    soft) are blended with the same weights. In inference mode the input is
    returned cast to the compute dtype.

    Args:
        alpha: Beta distribution parameter. Defaults to 0.2.
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".
        seed: Integer seed for a reproducible layer. Defaults to None.

    Input: a 4-D image batch (or a 3-D image), or a dict with "images" and
    "labels". Output: same structure and shapes.

    Example:
        >>> layer = keras.layers.MixUp(alpha=0.2, seed=0)
        >>> out = layer({"images": torch.rand(4, 8, 8, 3), "labels": torch.eye(4)}, training=True)
    """

    def __init__(self, alpha=0.2, data_format=None, seed=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.alpha = alpha

    def get_random_transformation(self, data, training=True, seed=None):
        batch = data.shape[0]
        order = self._permutation(batch, data)
        return {"mix_weight": self._beta((batch,), self.alpha, data), "permutation_order": order}

    def transform_images(self, images, transformation=None, training=True):
        if not training:
            return images
        weight = as_tensor(transformation["mix_weight"], images, images.dtype).reshape(-1, 1, 1, 1)
        order = as_tensor(transformation["permutation_order"], images, torch.int64)
        return weight * images + (1.0 - weight) * images.index_select(0, order)

    def transform_labels(self, labels, transformation=None, training=True):
        if not training:
            return labels
        return mix_labels(labels, transformation, self._compute_torch_dtype)

    def get_config(self):
        config = super().get_config()
        config.update({"alpha": self.alpha, "seed": self.seed})
        return config
