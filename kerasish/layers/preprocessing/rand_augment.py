"""`RandAugment`."""

from __future__ import annotations

import torch

from kerasish.layers.preprocessing.augment_ops import build_augment_layers
from kerasish.layers.preprocessing.base_augmentation import check_factor_pair
from kerasish.layers.preprocessing.base_transform import BaseTransformAugmentation
from kerasish.layers.regularization.base_random import draw_from
from kerasish.layers.regularization.base_random import keras_exact_draws

AUGMENT_LAYERS = ["random_shear", "random_translation", "random_rotation", "random_brightness",
                  "random_color_degeneration", "random_contrast", "random_sharpness", "random_posterization",
                  "solarization", "auto_contrast", "equalization"]


class RandAugment(BaseTransformAugmentation):
    """RandAugment during training (`keras.layers.RandAugment`).

    `num_ops` times, one of eleven operations (shear, translation, rotation,
    brightness, colour degeneration, contrast, sharpness, posterization,
    solarization, auto-contrast, equalization), picked uniformly, is applied
    to the batch, with strengths drawn from `factor`'s range. In inference
    mode the input is returned cast to the compute dtype.

    The picks are the same for the whole batch (the operations' parameters
    are drawn per image), as in Keras. With `seed=` or after
    `keras.utils.set_random_seed` it draws as Keras 3 on torch: the picks,
    then every operation's parameters (picked or not, in the order above),
    from the layer's seed generator. kerasish runs only the picked
    operations (Keras computes all eleven and selects; on torch its
    RandomBrightness also adds its delta in place whether picked or not,
    a Keras 3.15 bug kerasish does not reproduce).

    Args:
        value_range: `(low, high)` of the pixel values. Defaults to `(0, 255)`.
        num_ops: Number of operations per call. Defaults to 2.
        factor: Strength of the operations, a float `f` (the range
            `(0, f)`) or a pair in `[0, 1]`. Defaults to 0.5.
        interpolation: "bilinear" or "nearest" for the geometric operations.
            Defaults to "bilinear".
        seed: Integer seed for a reproducible layer. Defaults to None.
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".

    Input: a 4-D image batch or a 3-D image. Output: same shape.

    Example:
        >>> layer = keras.layers.RandAugment(value_range=(0, 1), num_ops=2, seed=0)
        >>> y = layer(torch.rand(2, 16, 16, 3), training=True)
    """

    def __init__(self, value_range=(0, 255), num_ops=2, factor=0.5, interpolation="bilinear", seed=None,
                 data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.value_range = value_range
        self.num_ops = num_ops
        self.factor = check_factor_pair(factor, "factor", (0, 1))
        self.interpolation = interpolation
        self.__dict__["_ops"] = build_augment_layers(self, AUGMENT_LAYERS, self.factor, value_range, interpolation,
                                                     seed, self.data_format)

    def get_random_transformation(self, data, training=True, seed=None):
        if not training:
            return None
        # picked on the host (no device sync)
        picks = torch.randint(0, len(AUGMENT_LAYERS), (self.num_ops,),
                              generator=self._generator(torch.device("cpu"))).tolist()
        names = [AUGMENT_LAYERS[i] for i in picks]
        if not keras_exact_draws(self):
            return {"layer_names": names}
        # Keras: every operation draws its transformation once per batch, from this
        # layer's seed generator, in AUGMENT_LAYERS order (a pick repeated reuses it)
        with draw_from(self._ops.values(), self.seed_generator):
            transforms = {name: op._draw(data) for name, op in self._ops.items()}
        return {"layer_names": names, "transforms": transforms}

    def transform_images(self, images, transformation=None, training=True):
        if not training or transformation is None:
            return images
        transforms = transformation.get("transforms")
        for name in transformation["layer_names"]:
            op = self._ops[name]
            images = op._augment(images) if transforms is None else op._apply_drawn(images, transforms[name])
        return images

    def get_config(self):
        config = super().get_config()
        config.update({"value_range": self.value_range, "num_ops": self.num_ops, "factor": self.factor,
                       "interpolation": self.interpolation, "seed": self.seed})
        return config
