"""`Maximum`: the element-wise maximum of the inputs."""

from __future__ import annotations

import torch

from kerasish.layers.merging.base_merge import Merge


class Maximum(Merge):
    """Computes the element-wise maximum of the inputs.

    Takes a list of tensors of the same shape (or broadcastable after the
    batch axis) and returns one tensor of that shape. Masks are combined
    with a logical OR, and a masked-out value never wins over an unmasked
    one (Keras 3 behaviour).

    Example:
        >>> x1, x2 = torch.ones(2, 3), torch.full((2, 3), 3.0)
        >>> keras.layers.Maximum()([x1, x2]).shape
        torch.Size([2, 3])
    """

    def _merge_function(self, inputs, masks=None):
        return self._apply_merge_op_and_or_mask(torch.maximum, inputs, masks)


def maximum(inputs, **kwargs):
    """Functional interface to the `Maximum` layer: `Maximum(**kwargs)(inputs)`.

    Args:
        inputs: A list of input tensors.
        **kwargs: Standard layer keyword arguments.
    """
    return Maximum(**kwargs)(inputs)
