"""`Add`: the sum of the inputs."""

from __future__ import annotations

from kerasish.layers.merging.base_merge import Merge


class Add(Merge):
    """Computes the sum of the inputs.

    Takes a list of tensors of the same shape (or broadcastable after the
    batch axis) and returns one tensor of that shape. Masks are combined
    with a logical OR, as in Keras.

    Example:
        >>> x1, x2 = torch.ones(2, 3), torch.full((2, 3), 3.0)
        >>> keras.layers.Add()([x1, x2]).shape
        torch.Size([2, 3])
    """

    def _merge_function(self, inputs, masks=None):
        output = inputs[0]
        for x in inputs[1:]:
            output = output + x
        return output


def add(inputs, **kwargs):
    """Functional interface to the `Add` layer: `Add(**kwargs)(inputs)`.

    Args:
        inputs: A list of input tensors.
        **kwargs: Standard layer keyword arguments.
    """
    return Add(**kwargs)(inputs)
