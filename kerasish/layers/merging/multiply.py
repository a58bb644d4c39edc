"""`Multiply`: the elementwise product of the inputs."""

from __future__ import annotations

import torch

from kerasish.layers.merging.base_merge import Merge
from kerasish.layers.merging.base_merge import expand_mask


class Multiply(Merge):
    """Performs elementwise multiplication of a list of inputs.

    Takes a list of tensors of the same shape (or broadcastable after the
    batch axis). With masks on every input (Keras 3 behaviour), masked-out
    values count as 1 in the product and positions masked in all inputs
    give 0; the output mask is the OR of the masks.

    Example:
        >>> x1, x2 = torch.full((2, 3), 2.0), torch.full((2, 3), 3.0)
        >>> keras.layers.Multiply()([x1, x2])[0]
        tensor([6., 6., 6.])
    """

    def _merge_function(self, inputs, masks=None):
        if masks is None:
            masks = [None] * len(inputs)
        has_output_mask = all(m is not None for m in masks)
        output, output_mask = None, None
        for x, mask in zip(inputs, masks):
            if mask is not None:
                mask = expand_mask(mask, x)
                x = torch.where(mask, x, torch.ones((), dtype=x.dtype, device=x.device))
                if has_output_mask:
                    output_mask = mask if output_mask is None else torch.logical_or(output_mask, mask)
            output = x if output is None else output * x
        if has_output_mask:
            output = torch.where(output_mask, output, torch.zeros((), dtype=output.dtype, device=output.device))
        return output


def multiply(inputs, **kwargs):
    """Functional interface to the `Multiply` layer: `Multiply(**kwargs)(inputs)`.

    Args:
        inputs: A list of input tensors.
        **kwargs: Standard layer keyword arguments.
    """
    return Multiply(**kwargs)(inputs)
