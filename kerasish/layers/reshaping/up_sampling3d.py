"""`UpSampling3D`."""

from __future__ import annotations

from kerasish.layers.reshaping.base_spatial import BaseUpSampling
from kerasish.layers.reshaping.base_utils import standardize_data_format
from kerasish.layers.reshaping.base_utils import standardize_tuple


class UpSampling3D(BaseUpSampling):
    """Nearest up-sampling of a volume: repeats each element `size[i]` times
    along spatial dimension `i` (`keras.layers.UpSampling3D`).

    Args:
        size: Int or tuple of 3 positive ints. Defaults to `(2, 2, 2)`.
        data_format: "channels_last" `(batch, d1, d2, d3, channels)` or
            "channels_first" `(batch, channels, d1, d2, d3)`. Defaults to
            the global image data format ("channels_last").

    Input shape: 5D. Output shape: 5D with each spatial dim multiplied.

    Example:
        >>> keras.layers.UpSampling3D(2)(torch.ones(1, 1, 2, 3, 4)).shape
        torch.Size([1, 2, 4, 6, 4])
    """

    def __init__(self, size=(2, 2, 2), data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.size = standardize_tuple(size, 3, "size")
        self._setup(self.size, standardize_data_format(data_format), 3)

    def get_config(self):
        config = super().get_config()
        config.update({"size": self.size, "data_format": self.data_format})
        return config
