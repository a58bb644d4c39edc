"""`AugMix`."""

from __future__ import annotations

import random as _py_random

import torch

from kerasish.layers.preprocessing.augment_ops import build_augment_layers
from kerasish.layers.preprocessing.base_augmentation import check_factor_pair
from kerasish.layers.preprocessing.base_transform import BaseTransformAugmentation
from kerasish.layers.regularization.base_random import draw_from
from kerasish.layers.regularization.base_random import keras_exact_draws

AUGMENT_LAYERS = ["random_shear", "random_translation", "random_rotation", "random_posterization", "solarization",
                  "auto_contrast", "equalization"]
AUGMENT_LAYERS_ALL = AUGMENT_LAYERS[:3] + ["random_posterization", "solarization", "auto_contrast", "equalization",
                                           "random_brightness", "random_color_degeneration", "random_contrast",
                                           "random_sharpness"]


class AugMix(BaseTransformAugmentation):
    """AugMix augmentation during training (`keras.layers.AugMix`).

    `num_chains` chains of up to `chain_depth` random operations (shear,
    translation, rotation, posterization, solarization, auto-contrast,
    equalization and, with `all_ops`, brightness, colour degeneration,
    contrast and sharpness; each step picks one of them or nothing) are
    applied to copies of the batch; the chains are mixed with Dirichlet
    weights and the mix is blended with the original by a Beta(alpha, alpha)
    weight, then clipped to `value_range`. In inference mode the input is
    returned cast to the compute dtype.

    The operations of a call are the same for the whole batch (their random
    parameters are drawn per image by each operation), as in Keras. With
    `seed=` or after `keras.utils.set_random_seed` it draws as Keras 3 on
    torch: the Dirichlet/Beta weights and every picked operation's parameters
    from the layer's seed generator, the operations picked with Python's
    global `random` (so `seed=` alone does not fix the picks; `random.seed`
    or `set_random_seed` does). Otherwise (and under `torch.compile`) the
    picks come from the layer's generator and each operation draws from its
    own.

    Args:
        value_range: `(low, high)` of the pixel values. Defaults to `(0, 255)`.
        num_chains: Number of chains. Defaults to 3.
        chain_depth: Maximum operations per chain. Defaults to 3.
        factor: Strength of the operations, a float `f` (the range
            `(0, f)`) or a pair in `[0, 1]`. Defaults to 0.3.
        alpha: Dirichlet and Beta parameter. Defaults to 1.0.
        all_ops: Whether to use the four colour operations too. Defaults to
            True.
        interpolation: "bilinear" or "nearest" for the geometric operations.
            Defaults to "bilinear".
        seed: Integer seed for a reproducible layer. Defaults to None.
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".

    Input: a 4-D image batch or a 3-D image. Output: same shape.

    Example:
        >>> layer = keras.layers.AugMix(value_range=(0, 1), seed=0)
        >>> y = layer(torch.rand(2, 16, 16, 3), training=True)
    """

    def __init__(self, value_range=(0, 255), num_chains=3, chain_depth=3, factor=0.3, alpha=1.0, all_ops=True,
                 interpolation="bilinear", seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        self.value_range = value_range
        self.num_chains = num_chains
        self.chain_depth = chain_depth
        self.factor = check_factor_pair(factor, "factor", (0, 1))
        self.alpha = alpha
        self.all_ops = all_ops
        self.interpolation = interpolation
        self._augment_layers = AUGMENT_LAYERS_ALL if all_ops else AUGMENT_LAYERS
        self.__dict__["_ops"] = build_augment_layers(self, self._augment_layers, self.factor, value_range,
                                                     interpolation, seed, self.data_format)

    def get_random_transformation(self, data, training=True, seed=None):
        if not training:
            return None
        gamma = self._gamma((self.num_chains,), self.alpha, data)
        chain_weights = gamma / gamma.sum(-1, keepdim=True)
        weight_sample = self._beta((), self.alpha, data)
        if keras_exact_draws(self):
            # Keras: the operations picked with Python's `random.choice` (None: nothing),
            # each drawing its transformation now from this layer's seed generator
            options = [*self._augment_layers, None]
            chains = []
            with draw_from(self._ops.values(), self.seed_generator):
                for _ in range(self.num_chains):
                    names = (_py_random.choice(options) for _ in range(self.chain_depth))
                    chains.append([(name, self._ops[name]._draw(data)) for name in names if name is not None])
            return {"chain_mixing_weights": chain_weights, "weight_sample": weight_sample,
                    "chain_transforms": chains}
        # the operations are picked on the host (no device sync): index len(ops) means "nothing"
        cpu = torch.device("cpu")
        picks = torch.randint(0, len(self._augment_layers) + 1, (self.num_chains, self.chain_depth),
                              generator=self._generator(cpu)).tolist()
        chains = [[self._augment_layers[i] for i in chain if i < len(self._augment_layers)] for chain in picks]
        return {"chain_mixing_weights": chain_weights, "weight_sample": weight_sample, "chain_layers": chains}

    def transform_images(self, images, transformation=None, training=True):
        if not training or transformation is None:
            return images
        weights = transformation["chain_mixing_weights"].to(images.dtype)
        blend = transformation["weight_sample"].to(images.dtype)
        mixed = torch.zeros_like(images)
        drawn = transformation.get("chain_transforms")
        for index, chain in enumerate(transformation["chain_layers"] if drawn is None else drawn):
            chained = images
            for step in chain:
                if drawn is None:
                    chained = self._ops[step]._augment(chained)
                else:
                    chained = self._ops[step[0]]._apply_drawn(chained, step[1])
            mixed = mixed + chained * weights[index]
        out = blend * images + (1 - blend) * mixed
        return out.clamp(self.value_range[0], self.value_range[1])

    def get_config(self):
        config = super().get_config()
        config.update({"value_range": self.value_range, "num_chains": self.num_chains,
                       "chain_depth": self.chain_depth, "factor": self.factor, "alpha": self.alpha,
                       "all_ops": self.all_ops, "interpolation": self.interpolation, "seed": self.seed})
        return config
