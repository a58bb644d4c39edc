"""`Reshape`."""

from __future__ import annotations

import math

from kerasish.layers.layer import Layer


def _validate_target_shape(target_shape: tuple) -> None:
    """Keras's `validate_reshape_shape`: ints >= 0 and at most one -1."""
    neg_one = 0
    for dim in target_shape:
        if dim is None:  # Keras resolves a None entry like -1
            neg_one += 1
            continue
        if not isinstance(dim, int) or isinstance(dim, bool):
            raise TypeError(
                f"Each dimension in `target_shape` must be an integer. Received: target_shape={target_shape}."
            )
        if dim < -1:
            raise ValueError(
                "Each dimension in `target_shape` must be a non-negative integer, or `-1` for a single "
                f"unknown dimension. Received: target_shape={target_shape}."
            )
        neg_one += dim == -1
    if neg_one > 1:
        raise ValueError(
            f"There must be at most one unknown dimension (-1) in `target_shape`. Received: target_shape={target_shape}."
        )


class Reshape(Layer):
    """Reshapes the non-batch dimensions to `target_shape`
    (`keras.layers.Reshape`).

    Args:
        target_shape: Tuple of ints, the output shape without the batch
            axis. One entry may be -1 (or None), inferred from the input's
            size.

    Input shape: `(batch, ...)`. Output shape: `(batch, *target_shape)`.
    An input whose size does not fit raises ValueError with Keras's
    message. Masks are not propagated (as in Keras).

    Example:
        >>> keras.layers.Reshape((3, -1))(torch.ones(2, 12)).shape
        torch.Size([2, 3, 4])
    """

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        target_shape = tuple(int(d) if hasattr(d, "__index__") and not isinstance(d, bool) else d for d in target_shape)
        _validate_target_shape(target_shape)
        self.target_shape = target_shape
        self._unknown = next((i for i, d in enumerate(target_shape) if d is None or d == -1), None)
        self._known = math.prod(d for d in target_shape if d is not None and d != -1)
        self.built = True

    def _resolve(self, rest: tuple) -> tuple:
        """The target shape for non-batch input dims `rest` (Keras's
        `compute_reshape_output_shape`); None where unknown."""
        if any(d is None for d in rest):
            return tuple(None if d is None or d == -1 else d for d in self.target_shape)
        size = math.prod(rest)
        if self._unknown is None:
            if size != self._known:
                raise ValueError(
                    "The total size of the tensor must be unchanged. Received: "
                    f"input_shape={rest}, target_shape={self.target_shape}"
                )
            return self.target_shape
        if self._known == 0 or size % self._known != 0:
            raise ValueError(
                "The total size of the tensor must be unchanged, however, the input size cannot by divided "
                f"by the specified dimensions in target_shape. Received: input_shape={rest}, "
                f"target_shape={self.target_shape}"
            )
        out = list(self.target_shape)
        out[self._unknown] = size // self._known
        return tuple(out)

    def call(self, inputs):
        return inputs.reshape(inputs.shape[0], *self._resolve(tuple(inputs.shape[1:])))

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self._resolve(tuple(input_shape[1:])))

    def get_config(self):
        config = super().get_config()
        config["target_shape"] = self.target_shape
        return config
