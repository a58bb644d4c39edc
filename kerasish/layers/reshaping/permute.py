"""`Permute`."""

from __future__ import annotations

from kerasish.layers.input_spec import InputSpec
from kerasish.layers.layer import Layer


class Permute(Layer):
    """Permutes the non-batch dimensions (`keras.layers.Permute`).

    Args:
        dims: Tuple of ints, the permutation of the non-batch axes,
            1-indexed (Keras's convention): `(2, 1)` swaps the first two.

    Input shape: rank `len(dims) + 1`. Output shape: the input's axes
    reordered. The output is a torch view (no copy).

    Example:
        >>> keras.layers.Permute((2, 1))(torch.ones(2, 3, 4)).shape
        torch.Size([2, 4, 3])
    """

    def __init__(self, dims, **kwargs):
        super().__init__(**kwargs)
        self.dims = tuple(dims)
        if sorted(self.dims) != list(range(1, len(self.dims) + 1)):
            raise ValueError(
                "Invalid permutation argument `dims` for Permute Layer. The set of indices in `dims` must be "
                f"consecutive and start from 1. Received dims={dims}"
            )
        self.input_spec = InputSpec(ndim=len(self.dims) + 1)
        self._perm = (0, *self.dims)

    def call(self, inputs):
        return inputs.permute(self._perm)

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[d] for d in self._perm)

    def get_config(self):
        config = super().get_config()
        config["dims"] = self.dims
        return config
