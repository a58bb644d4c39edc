"""`Resizing`."""

from __future__ import annotations

from kerasish.layers.layer import Layer
from kerasish.layers.preprocessing.base_image import check_interpolation
from kerasish.layers.preprocessing.base_image import resize
from kerasish.layers.reshaping.base_utils import standardize_data_format


class Resizing(Layer):
    """Resizes images to `(height, width)` (`keras.layers.Resizing`).

    Runs what Keras's torch backend runs (`F.interpolate`, see
    `base_image`), so "bilinear", "nearest" and "bicubic" outputs match
    Keras on torch.

    Args:
        height: Integer, the output height.
        width: Integer, the output width.
        interpolation: "bilinear", "nearest" (half-pixel centres, torch's
            "nearest-exact"), "bicubic" or "area" (torch's "area", i.e.
            adaptive average pooling; Keras's torch backend has no "area",
            TF's differs slightly). Defaults to "bilinear".
        crop_to_aspect_ratio: If True, first takes the largest centred crop
            with the target aspect ratio. Defaults to False.
        pad_to_aspect_ratio: If True, first pads (with `fill_value`)
            symmetrically to the target aspect ratio. Defaults to False.
        fill_mode: Only "constant" (as Keras's torch backend).
        fill_value: Padding value for `pad_to_aspect_ratio`. Defaults to 0.
        antialias: Antialiasing when down-sampling ("bilinear" and
            "bicubic" only). Defaults to False.
        data_format: "channels_last" `(..., height, width, channels)` or
            "channels_first" `(..., channels, height, width)`. Defaults to
            the global image data format ("channels_last").

    Input: a 4D batch or a 3D single image. Integer images keep their dtype
    (computed in float32, rounded and cast back, as Keras); float16 /
    bfloat16 are computed in float32. Output shape: the input's with
    height and width replaced.

    Example:
        >>> keras.layers.Resizing(4, 6)(torch.rand(2, 8, 8, 3)).shape
        torch.Size([2, 4, 6, 3])
    """

    def __init__(
        self,
        height,
        width,
        interpolation="bilinear",
        crop_to_aspect_ratio=False,
        pad_to_aspect_ratio=False,
        fill_mode="constant",
        fill_value=0.0,
        antialias=False,
        data_format=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for arg, value in (("height", height), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"`{arg}` must be a positive integer. Received: {arg}={value}")
        if interpolation in ("lanczos3", "lanczos5"):
            raise ValueError(
                "Resizing with Lanczos interpolation is not supported by the PyTorch backend. "
                f"Received: interpolation={interpolation}."
            )
        check_interpolation(interpolation)
        if fill_mode != "constant":
            raise ValueError(
                f"Invalid value for argument `fill_mode`. Only `'constant'` is supported. Received: fill_mode={fill_mode}"
            )
        if pad_to_aspect_ratio and crop_to_aspect_ratio:
            raise ValueError("Only one of `pad_to_aspect_ratio` & `crop_to_aspect_ratio` can be `True`.")
        self.height = height
        self.width = width
        self.interpolation = interpolation
        self.data_format = standardize_data_format(data_format)
        self.crop_to_aspect_ratio = crop_to_aspect_ratio
        self.pad_to_aspect_ratio = pad_to_aspect_ratio
        self.fill_mode = fill_mode
        self.fill_value = fill_value
        self.antialias = bool(antialias)
        self._options = {
            "interpolation": interpolation.lower(),
            "antialias": self.antialias,
            "crop_to_aspect_ratio": crop_to_aspect_ratio,
            "pad_to_aspect_ratio": pad_to_aspect_ratio,
            "fill_value": fill_value,
        }
        self.built = True

    def call(self, inputs):
        if inputs.ndim not in (3, 4):
            raise ValueError(
                "Invalid images rank: expected rank 3 (single image) or rank 4 (batch of images). "
                f"Received input with shape: images.shape={tuple(inputs.shape)}"
            )
        return resize(inputs, (self.height, self.width), self.data_format, **self._options)

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        offset = 1 if len(shape) == 4 else 0
        h_axis = offset + (1 if self.data_format == "channels_first" else 0)
        shape[h_axis], shape[h_axis + 1] = self.height, self.width
        return tuple(shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "data_format": self.data_format,
                "height": self.height,
                "width": self.width,
                "interpolation": self.interpolation,
                "crop_to_aspect_ratio": self.crop_to_aspect_ratio,
                "pad_to_aspect_ratio": self.pad_to_aspect_ratio,
                "fill_mode": self.fill_mode,
                "fill_value": self.fill_value,
                "antialias": self.antialias,
            }
        )
        return config
