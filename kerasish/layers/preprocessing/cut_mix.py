"""`CutMix`."""

from __future__ import annotations

import torch

from kerasish.layers.preprocessing.base_augmentation import check_factor_pair
from kerasish.layers.preprocessing.base_transform import BaseTransformAugmentation
from kerasish.layers.preprocessing.base_transform import as_tensor
from kerasish.layers.preprocessing.mix_up import mix_labels
from kerasish.layers.preprocessing.random_erasing import box_masks
from kerasish.layers.preprocessing.random_erasing import crop_bounds


class CutMix(BaseTransformAugmentation):
    """CutMix augmentation during training (`keras.layers.CutMix`).

    A rectangle of each image is replaced by the same rectangle of another
    image of the batch (a random permutation). Its sides are
    `sqrt(1 - w)` times the image's, with `w ~ Beta(a, a)` per sample and
    `a` drawn per batch from `factor`'s range; labels passed as
    `{"images": x, "labels": y}` are mixed in proportion to the pasted area.
    A single (unbatched) image is returned unchanged, as in Keras. In
    inference mode the input is returned cast to the compute dtype.

    Args:
        factor: A float `f` (the range `(0, f)`) or a pair in `[0, 1]`: the
            range of the Beta parameter. Defaults to 1.0.
        seed: Integer seed for a reproducible layer. Defaults to None.
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".

    Input: a 4-D image batch (or a 3-D image), or a dict with "images" and
    "labels". Output: same structure and shapes.

    Example:
        >>> layer = keras.layers.CutMix(seed=0)
        >>> out = layer({"images": torch.rand(4, 8, 8, 3), "labels": torch.eye(4)}, training=True)
    """

    def __init__(self, factor=1.0, seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.factor = check_factor_pair(factor, "factor", (0, 1))

    def call(self, inputs, training=True):
        images = inputs["images"] if isinstance(inputs, dict) else inputs
        if getattr(images, "ndim", 4) == 3:  # Keras draws no transformation for a single image
            training = False
        return super().call(inputs, training=training)

    def get_random_transformation(self, data, training=True, seed=None):
        if not training:
            return None
        batch = data.shape[0]
        height, width = data.shape[self._h_axis], data.shape[self._w_axis]
        alpha = self._uniform_range((), self.factor[0], self.factor[1], data) + 1e-6
        weight = self._beta((batch,), alpha, data).to(alpha.dtype)
        ratio = torch.sqrt(1.0 - weight)
        x0, x1 = crop_bounds(self, data, batch, width, ratio)
        y0, y1 = crop_bounds(self, data, batch, height, ratio)
        masks = box_masks(self, data, x0, x1, y0, y1)
        order = self._permutation(batch, data)
        mix_weight = (1.0 - (x1 - x0) * (y1 - y0) / (width * height)).view(-1, 1, 1, 1)  # Keras's shape
        return {"permutation_order": order, "batch_masks": masks, "mix_weight": mix_weight}

    def transform_images(self, images, transformation=None, training=True):
        if not training or transformation is None:
            return images
        masks = as_tensor(transformation["batch_masks"], images, torch.bool)
        order = as_tensor(transformation["permutation_order"], images, torch.int64)
        return torch.where(masks, images.index_select(0, order), images)

    def transform_labels(self, labels, transformation=None, training=True):
        if not training or transformation is None:
            return labels
        return mix_labels(labels, transformation, self._compute_torch_dtype)

    def get_config(self):
        config = super().get_config()
        config.update({"factor": self.factor, "seed": self.seed})
        return config
