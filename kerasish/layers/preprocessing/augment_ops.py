"""The operation set shared by `AugMix` and `RandAugment`: Keras 3.15 builds
the same eleven inner layers from one `factor` range."""

from __future__ import annotations


def build_augment_layers(owner, names, factor, value_range, interpolation, seed, data_format) -> dict:
    """`{name: layer}` for the requested operation names, configured as
    Keras's AugMix/RandAugment configure them (and registered on `owner` as
    sublayers)."""
    from kerasish.layers import preprocessing as P  # noqa: PLC0415 (this module is imported by it)

    common = {"seed": seed, "data_format": data_format, "dtype": owner.dtype_policy}
    colour = dict(common, value_range=value_range)
    makers = {
        "random_shear": lambda: P.RandomShear(x_factor=factor, y_factor=factor, interpolation=interpolation,
                                              **common),
        "random_translation": lambda: P.RandomTranslation(height_factor=factor, width_factor=factor,
                                                          interpolation=interpolation, **common),
        "random_rotation": lambda: P.RandomRotation(factor=factor, interpolation=interpolation, **common),
        "random_brightness": lambda: P.RandomBrightness(factor=factor, **colour),
        "random_color_degeneration": lambda: P.RandomColorDegeneration(factor=factor, **colour),
        "random_contrast": lambda: P.RandomContrast(factor=factor, **colour),
        "random_sharpness": lambda: P.RandomSharpness(factor=factor, **colour),
        "random_posterization": lambda: P.RandomPosterization(factor=max(1, int(8 * factor[1])), **colour),
        "solarization": lambda: P.Solarization(addition_factor=factor, threshold_factor=factor, **colour),
        "auto_contrast": lambda: P.AutoContrast(value_range=value_range, data_format=data_format,
                                                dtype=owner.dtype_policy),
        "equalization": lambda: P.Equalization(value_range=value_range, data_format=data_format,
                                               dtype=owner.dtype_policy),
    }
    layers = {}
    for name in names:
        layers[name] = makers[name]()
        setattr(owner, name, layers[name])
    return layers
