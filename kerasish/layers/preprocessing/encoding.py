"""Integer indices -> Keras's `output_mode` encodings, shared by
`Discretization`, the lookup layers and `Hashing`.

"int" returns the indices; "one_hot" replaces a trailing axis of size 1 by
(or else appends) a `depth` axis; "multi_hot" and "count" reduce over axis 1
of a batch (axis 0 of a rank-1 input), as Keras's
`numerical_utils.encode_categorical_inputs` on its torch backend.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

OUTPUT_MODES = ("int", "one_hot", "multi_hot", "count")


def check_output_mode(output_mode, layer: str, allowed=OUTPUT_MODES) -> str:
    if output_mode not in allowed:
        raise ValueError(
            f"The `output_mode` argument of {layer} must be one of {', '.join(repr(m) for m in allowed)}. "
            f"Received: output_mode={output_mode!r}"
        )
    return output_mode


def encode(indices: torch.Tensor, output_mode: str, depth: int, dtype, count_weights=None) -> torch.Tensor:
    """Encodes integer `indices` in `[0, depth)` (negative ones give zero rows)."""
    if output_mode == "int":
        return indices.to(dtype)
    if indices.ndim == 0:
        indices = indices.reshape(1)
    if output_mode == "one_hot" and indices.ndim > 1 and indices.shape[-1] == 1:
        indices = indices.squeeze(-1)
    x = indices.long()
    hot = F.one_hot(x.clamp(min=0), depth) * (x >= 0).unsqueeze(-1)
    if output_mode == "one_hot":
        return hot.to(dtype)
    axis = 1 if indices.ndim > 1 else 0
    if output_mode == "multi_hot":
        return torch.amax(hot, dim=axis).to(dtype)
    if count_weights is not None:
        weights = torch.as_tensor(count_weights, device=hot.device)
        return (hot.to(weights.dtype) * weights.unsqueeze(-1)).sum(dim=axis)
    return hot.sum(dim=axis).to(dtype)


def encoded_shape(input_shape, output_mode: str, depth: int) -> tuple:
    """Keras's output shape for `encode`."""
    input_shape = tuple(input_shape)
    if output_mode == "int":
        return input_shape
    if output_mode == "one_hot":
        if len(input_shape) > 1 and input_shape[-1] == 1:
            return input_shape[:-1] + (depth,)
        return input_shape + (depth,)
    if len(input_shape) >= 2:
        return (input_shape[0],) + input_shape[2:] + (depth,)
    return (depth,)
