"""`Average`: the average of the inputs."""

from __future__ import annotations

from kerasish.layers.merging.base_merge import Merge


class Average(Merge):
    """Computes the average of the inputs.

    Takes a list of tensors of the same shape (or broadcastable after the
    batch axis) and returns one tensor of that shape. Masks are combined
    with a logical OR, as in Keras.

    Example:
        >>> x1, x2 = torch.ones(2, 3), torch.full((2, 3), 3.0)
        >>> keras.layers.Average()([x1, x2]).shape
        torch.Size([2, 3])
    """

    def _merge_function(self, inputs, masks=None):
        output = inputs[0]
        for x in inputs[1:]:
            output = output + x
        return output / len(inputs)


def average(inputs, **kwargs):
    """Functional interface to the `Average` layer: `Average(**kwargs)(inputs)`.

    Args:
        inputs: A list of input tensors.
        **kwargs: Standard layer keyword arguments.
    """
    return Average(**kwargs)(inputs)
