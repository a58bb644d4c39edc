"""`Concatenate`: joins a list of inputs along one axis."""

from __future__ import annotations

import torch

from kerasish.utils.argument_validation import check_axis_range
from kerasish.utils.argument_validation import check_axis_type

from kerasish.layers.merging.base_merge import Merge


class Concatenate(Merge):
    """Concatenates a list of inputs along `axis`.

    All inputs must have the same shape except along the concatenation axis.

    Args:
        axis: Axis along which to concatenate. Defaults to `-1`.

    Masks (Keras 3 behaviour): when any input is masked, an unmasked input
    counts as all-True, each mask is broadcast to its input's shape, the
    masks are concatenated along `axis` and reduced with `any` over the last
    axis.

    Example:
        >>> x1, x2 = torch.ones(2, 3), torch.zeros(2, 4)
        >>> keras.layers.Concatenate()([x1, x2]).shape
        torch.Size([2, 7])
    """

    def __init__(self, axis=-1, **kwargs):
        check_axis_type(axis, "axis", "Concatenate", allow_list=False)
        super().__init__(**kwargs)
        self.axis = axis

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) < 1 or not isinstance(input_shape[0], (tuple, list)):
            raise ValueError(
                f"A `Concatenate` layer should be called on a list of at least 1 input. Received: input_shape={input_shape}"
            )
        if all(shape is None for shape in input_shape):
            return
        for shape in input_shape:
            if shape is not None:
                check_axis_range(self.axis, "axis", len(shape), self.name, shape)
        reduced = set()
        for shape in input_shape:
            shape = list(shape)
            if len(shape) > self.axis:
                del shape[self.axis]
            reduced.add(tuple(shape))
        if len(reduced) != 1:
            message = (
                "A `Concatenate` layer requires inputs with matching shapes except for the concatenation "
                f"axis. Received: input_shape={input_shape}"
            )
            ranks = {len(s) for s in reduced}
            if len(ranks) != 1:
                raise ValueError(message)
            for i in range(ranks.pop()):
                if len({s[i] for s in reduced if s[i] is not None}) > 1:
                    raise ValueError(message)

    def _merge_function(self, inputs, masks=None):
        return torch.cat(inputs, dim=self.axis)

    def compute_output_shape(self, input_shape):
        if not isinstance(input_shape, (tuple, list)) or not isinstance(input_shape[0], (tuple, list)):
            raise ValueError(f"A `Concatenate` layer should be called on a list of inputs. Received: input_shape={input_shape}")
        out = list(input_shape[0])
        for shape in input_shape[1:]:
            if out[self.axis] is None or shape[self.axis] is None:
                out[self.axis] = None
                break
            out[self.axis] += shape[self.axis]
        return tuple(out)

    def compute_mask(self, inputs, mask=None):
        if mask is None:
            return None
        if not isinstance(mask, (tuple, list)):
            raise ValueError(f"`mask` should be a list. Received mask={mask}")
        if not isinstance(inputs, (tuple, list)):
            raise ValueError(f"`inputs` should be a list. Received: inputs={inputs}")
        if len(mask) != len(inputs):
            raise ValueError(
                "The lists `inputs` and `mask` should have the same length. "
                f"Received: inputs={inputs} of length {len(inputs)}, and mask={mask} of length {len(mask)}"
            )
        if all(m is None for m in mask):
            return None
        masks = []
        for x, m in zip(inputs, mask):
            if m is None:
                masks.append(torch.ones(x.shape, dtype=torch.bool, device=x.device))
            elif m.ndim < x.ndim:
                masks.append(m.unsqueeze(-1).expand(x.shape))
            else:
                masks.append(m)
        return torch.any(torch.cat(masks, dim=self.axis), dim=-1)

    # no input masked: no output mask, so an unmasked call takes the layer call's hot path (`Merge`)
    _hot_compute_mask = compute_mask

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config


def concatenate(inputs, axis=-1, **kwargs):
    """Functional interface to the `Concatenate` layer.

    Args:
        inputs: A list of input tensors.
        axis: Concatenation axis. Defaults to `-1`.
        **kwargs: Standard layer keyword arguments.
    """
    return Concatenate(axis=axis, **kwargs)(inputs)
