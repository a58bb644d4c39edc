"""`Cropping3D`."""

from __future__ import annotations

from kerasish.layers.reshaping.base_spatial import BaseCropping
from kerasish.layers.reshaping.base_utils import standardize_data_format
from kerasish.layers.reshaping.base_utils import standardize_pairs


class Cropping3D(BaseCropping):
    """Crops the three spatial dimensions of a volume (`keras.layers.Cropping3D`).

    Args:
        cropping: Int, tuple of 3 ints (symmetric per dimension) or tuple
            of 3 tuples of 2 ints `((left_dim1, right_dim1), ...)`,
            non-negative. Defaults to `((1, 1), (1, 1), (1, 1))`.
        data_format: "channels_last" `(batch, d1, d2, d3, channels)` or
            "channels_first" `(batch, channels, d1, d2, d3)`. Defaults to
            the global image data format ("channels_last").

    Input shape: 5D. Output shape: 5D with cropped spatial dimensions
    (a view, no copy).

    Example:
        >>> keras.layers.Cropping3D(1)(torch.ones(1, 4, 4, 4, 2)).shape
        torch.Size([1, 2, 2, 2, 2])
    """

    def __init__(self, cropping=((1, 1), (1, 1), (1, 1)), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.cropping = standardize_pairs(cropping, 3, "cropping", "Cropping3D")
        self._setup(self.cropping, standardize_data_format(data_format), 3)
