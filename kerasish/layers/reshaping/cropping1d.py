"""`Cropping1D`."""

from __future__ import annotations

from kerasish.layers.reshaping.base_spatial import BaseCropping
from kerasish.layers.reshaping.base_utils import standardize_tuple


class Cropping1D(BaseCropping):
    """Crops the time axis of a 1D input (`keras.layers.Cropping1D`).

    Args:
        cropping: Int (same on both sides) or tuple of 2 ints
            `(crop_start, crop_end)`, non-negative. Defaults to `(1, 1)`.

    Input shape: `(batch, axis_to_crop, features)`. Output shape:
    `(batch, cropped_axis, features)`. The output is a view (no copy).

    Example:
        >>> keras.layers.Cropping1D((1, 2))(torch.ones(1, 6, 3)).shape
        torch.Size([1, 3, 3])
    """

    def __init__(self, cropping=(1, 1), **kwargs):
        super().__init__(**kwargs)
        self.cropping = standardize_tuple(cropping, 2, "cropping", allow_zero=True)
        self._setup((self.cropping,), "channels_last", 1)

    def _error(self, shape, what: str) -> str:
        return (
            "`cropping` parameter of `Cropping1D` layer must be smaller than the input length. "
            f"Received: {what}={shape}, cropping={self.cropping}"
        )

    def get_config(self):
        config = super().get_config()
        del config["data_format"]
        return config
