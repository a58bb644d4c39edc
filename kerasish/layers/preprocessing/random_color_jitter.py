"""`RandomColorJitter`."""

from __future__ import annotations

from kerasish.layers.preprocessing.base_transform import BaseTransformAugmentation


class RandomColorJitter(BaseTransformAugmentation):
    """Randomly changes brightness, contrast, saturation and hue during
    training (`keras.layers.RandomColorJitter`).

    Applies, in this order, `RandomBrightness(brightness_factor)`,
    `RandomContrast(contrast_factor)`, `RandomSaturation(saturation_factor)`
    and `RandomHue(hue_factor)`, each only when its factor is given (see
    those layers for the factor rules). In inference mode the input is
    returned cast to the compute dtype.

    Note: Keras 3.15 builds the inner layers without the `data_format`, so
    its channels_first results are wrong for contrast, saturation and hue;
    kerasish passes the `data_format` on.

    Args:
        value_range: `(low, high)` of the pixel values. Defaults to `(0, 255)`.
        brightness_factor: Factor of `RandomBrightness`, or None. Defaults
            to None.
        contrast_factor: Factor of `RandomContrast`, or None. Defaults to None.
        saturation_factor: Factor of `RandomSaturation`, or None. Defaults
            to None.
        hue_factor: Factor of `RandomHue`, or None. Defaults to None.
        seed: Integer seed for a reproducible layer. Defaults to None.
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".

    Input: a 4-D image batch or a 3-D image. Output: same shape.

    Example:
        >>> layer = keras.layers.RandomColorJitter(value_range=(0, 1), brightness_factor=0.1,
        ...                                        saturation_factor=(0.4, 0.6), seed=0)
        >>> y = layer(torch.rand(2, 8, 8, 3), training=True)
    """

    def __init__(self, value_range=(0, 255), brightness_factor=None, contrast_factor=None, saturation_factor=None,
                 hue_factor=None, seed=None, data_format=None, **kwargs):
        super().__init__(seed=seed, data_format=data_format, **kwargs)
        from kerasish.layers.preprocessing.random_brightness import RandomBrightness  # noqa: PLC0415
        from kerasish.layers.preprocessing.random_contrast import RandomContrast  # noqa: PLC0415
        from kerasish.layers.preprocessing.random_hue import RandomHue  # noqa: PLC0415
        from kerasish.layers.preprocessing.random_saturation import RandomSaturation  # noqa: PLC0415

        self.value_range = value_range
        self.brightness_factor = brightness_factor
        self.contrast_factor = contrast_factor
        self.saturation_factor = saturation_factor
        self.hue_factor = hue_factor
        common = {"value_range": value_range, "seed": seed, "data_format": self.data_format,
                  "dtype": self.dtype_policy}
        self.random_brightness = None if brightness_factor is None else RandomBrightness(brightness_factor, **common)
        self.random_contrast = None if contrast_factor is None else RandomContrast(contrast_factor, **common)
        self.random_saturation = None if saturation_factor is None else RandomSaturation(saturation_factor, **common)
        self.random_hue = None if hue_factor is None else RandomHue(hue_factor, **common)

    def transform_images(self, images, transformation=None, training=True):
        if not training:
            return images
        for layer in (self.random_brightness, self.random_contrast, self.random_saturation, self.random_hue):
            if layer is not None:
                images = layer._augment(images)
        return images

    def get_config(self):
        config = super().get_config()
        config.update({"value_range": self.value_range, "brightness_factor": self.brightness_factor,
                       "contrast_factor": self.contrast_factor, "saturation_factor": self.saturation_factor,
                       "hue_factor": self.hue_factor, "seed": self.seed})
        return config
