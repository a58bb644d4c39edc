"""`CenterCrop`."""

from __future__ import annotations

from kerasish.layers.layer import Layer
from kerasish.layers.preprocessing.base_image import resize
from kerasish.layers.reshaping.base_utils import standardize_data_format


class CenterCrop(Layer):
    """Crops the central `(height, width)` part of images
    (`keras.layers.CenterCrop`).

    An image smaller than the target in either dimension is instead
    cropped to the target aspect ratio and resized bilinearly (Keras's
    `smart_resize`).

    Args:
        height: Integer, the output height.
        width: Integer, the output width.
        data_format: "channels_last" `(..., height, width, channels)` or
            "channels_first" `(..., channels, height, width)`. Defaults to
            the global image data format ("channels_last").

    Input: a 4D batch or a 3D single image, cast to the compute dtype
    (as Keras). Output shape: the input's with height and width replaced.
    The crop is a view of the input (no copy).

    Example:
        >>> keras.layers.CenterCrop(2, 2)(torch.rand(1, 4, 4, 3)).shape
        torch.Size([1, 2, 2, 3])
    """

    def __init__(self, height, width, data_format=None, **kwargs):
        super().__init__(**kwargs)
        for arg, value in (("height", height), ("width", width)):
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"`{arg}` must be a positive integer. Received: {arg}={value}")
        self.height = height
        self.width = width
        self.data_format = standardize_data_format(data_format)
        self.built = True

    def call(self, inputs):
        if inputs.ndim not in (3, 4):
            raise ValueError(
                "`input_shape` must be a non-nested tuple or list of rank-1 with size 3 (unbatched) or 4 "
                f"(batched). Received: inputs.shape={tuple(inputs.shape)}"
            )
        inputs = inputs.to(self._compute_torch_dtype)
        h_axis = inputs.ndim - (2 if self.data_format == "channels_first" else 3)
        h_diff = inputs.shape[h_axis] - self.height
        w_diff = inputs.shape[h_axis + 1] - self.width
        if h_diff >= 0 and w_diff >= 0:
            h0, w0 = h_diff // 2, w_diff // 2
            return inputs.narrow(h_axis, h0, self.height).narrow(h_axis + 1, w0, self.width)
        return resize(
            inputs, (self.height, self.width), self.data_format, interpolation="bilinear", crop_to_aspect_ratio=True
        )

    def compute_output_shape(self, input_shape):
        shape = list(input_shape)
        if len(shape) not in (3, 4):
            raise ValueError(
                "`input_shape` must be a non-nested tuple or list of rank-1 with size 3 (unbatched) or 4 (batched). "
            )
        offset = 1 if len(shape) == 4 else 0
        h_axis = offset + (1 if self.data_format == "channels_first" else 0)
        shape[h_axis], shape[h_axis + 1] = self.height, self.width
        return tuple(shape)

    def get_config(self):
        config = super().get_config()
        config.update({"data_format": self.data_format, "height": self.height, "width": self.width})
        return config
