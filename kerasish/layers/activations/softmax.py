"""`Softmax`: softmax over one or more axes, with Keras's mask handling."""

from __future__ import annotations

import torch

from kerasish.utils.argument_validation import check_axis_range
from kerasish.utils.argument_validation import check_axis_type

from kerasish import activations
from kerasish.layers.layer import Layer


def large_negative_number(dtype: torch.dtype) -> float:
    """The value Keras puts at masked positions before a softmax: -3e4 for
    float16 (which overflows at -1e9), -1e9 otherwise."""
    return -3e4 if dtype == torch.float16 else -1e9


class Softmax(Layer):
    """Softmax activation layer.

    Args:
        axis: Integer or tuple/list of integers, the axis/axes over which to
            normalize. Defaults to `-1`.

    Call arguments:
        inputs: The logits.
        mask: Boolean (or 0/1) tensor broadcastable to `inputs`; True/1
            means keep. Masked positions are replaced by a large negative
            number (-1e9, or -3e4 in float16) before the softmax and set to 0
            after it, exactly as Keras 3 does, so a fully masked row gives 0s.

    Input shape: arbitrary. Output shape: same as the input.

    Example:
        >>> keras.layers.Softmax()(torch.tensor([1.0, 1.0]), mask=torch.tensor([True, False]))
        tensor([1., 0.])
    """

    _float_inputs = True  # integer/bool inputs are cast to the compute dtype (torch's kernels take floats)

    def __init__(self, axis=-1, **kwargs):
        super().__init__(**kwargs)
        check_axis_type(axis, "axis", "Softmax")
        self.axis = axis
        self.supports_masking = True
        self.built = True

    def call(self, inputs, mask=None):
        if mask is not None:
            if mask.ndim > inputs.ndim:
                raise ValueError(
                    "The `mask` must be broadcastable to `inputs` and must not have more dimensions. "
                    f"Received: inputs.shape={tuple(inputs.shape)}, mask.shape={tuple(mask.shape)}"
                )
            for m, i in zip(reversed(mask.shape), reversed(inputs.shape)):
                if m != 1 and m != i:
                    raise ValueError(
                        "The `mask` must be broadcastable to `inputs`. Each mask dimension must be 1 or "
                        f"match the corresponding input dimension. Received: inputs.shape={tuple(inputs.shape)}, "
                        f"mask.shape={tuple(mask.shape)}"
                    )
            if mask.dtype != torch.bool:
                mask = mask > 0.5
            inputs = torch.where(mask, inputs, large_negative_number(inputs.dtype))
        try:
            if isinstance(self.axis, (tuple, list)) and len(self.axis) > 1:
                outputs = torch.exp(inputs - torch.logsumexp(inputs, dim=tuple(self.axis), keepdim=True))
            else:
                axis = self.axis[0] if isinstance(self.axis, (tuple, list)) else self.axis
                outputs = activations.softmax(inputs, axis=axis)
        except (IndexError, RuntimeError):  # torch's "Dimension out of range" / repeated dim
            check_axis_range(self.axis, "axis", inputs.ndim, self.name, inputs.shape)
            axes = [a % inputs.ndim for a in self.axis] if isinstance(self.axis, (list, tuple)) else []
            if len(set(axes)) != len(axes):
                raise ValueError(
                    f"Layer '{self.name}': `axis` names the same axis twice for inputs of shape "
                    f"{tuple(inputs.shape)}. Received: axis={self.axis}"
                ) from None
            raise
        if mask is not None:
            outputs = torch.where(mask, outputs, 0.0)
        return outputs

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["axis"] = self.axis
        return config
