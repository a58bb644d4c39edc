"""`UpSampling1D`."""

from __future__ import annotations

from kerasish.layers.reshaping.base_spatial import BaseUpSampling


class UpSampling1D(BaseUpSampling):
    """Repeats each timestep `size` times (`keras.layers.UpSampling1D`).

    Args:
        size: Positive integer, the up-sampling factor. Defaults to 2.

    Input shape: `(batch, steps, features)`. Output shape:
    `(batch, steps * size, features)`.

    Example:
        >>> keras.layers.UpSampling1D(3)(torch.ones(1, 2, 4)).shape
        torch.Size([1, 6, 4])
    """

    def __init__(self, size=2, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(size, int) or isinstance(size, bool):
            raise TypeError(f"Expected an integer value for `size`, got {type(size)}.")
        if size <= 0:
            raise ValueError(f"Argument `size` should be a positive integer. Received: size={size}")
        self.size = size
        self._setup((size,), "channels_last", 1)

    def get_config(self):
        config = super().get_config()
        config["size"] = self.size
        return config
