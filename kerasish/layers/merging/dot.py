"""`Dot`: the batchwise dot product of two inputs."""

from __future__ import annotations

import math

import torch

from kerasish.utils.argument_validation import check_axis_range

from kerasish.layers.merging.base_merge import Merge

# Keras normalizes with `ops.normalize`: `x * min(rsqrt(sum(x**2)), 1 / epsilon)`,
# epsilon = 1e-7 (`F.normalize`'s `x / max(norm, eps)` differs in the last bit).
_NORMALIZE_EPSILON = 1e-7


def batch_dot(x: torch.Tensor, y: torch.Tensor, axes) -> torch.Tensor:
    """Keras's `batch_dot` over (non-batch) axes `axes = (ax, ay)`, as one
    `torch.matmul` after moving the contracted axes into place.

    The output is `x`'s shape without `ax`, then `y`'s without its batch axis
    and `ay`; a rank-1 result becomes `(batch, 1)`.
    """
    x_ndim, y_ndim = x.ndim, y.ndim
    if x_ndim < 2 or y_ndim < 2:
        raise ValueError(
            f"Cannot do batch_dot on inputs with rank < 2. Received inputs with shapes {tuple(x.shape)} and {tuple(y.shape)}."
        )
    if x.shape[0] != y.shape[0]:
        raise ValueError(
            "Cannot do batch_dot on inputs with different batch sizes. "
            f"Received inputs with shapes {tuple(x.shape)} and {tuple(y.shape)}."
        )
    ax, ay = axes
    if 0 in (ax, ay):
        raise ValueError(
            "Cannot perform batch_dot over axis 0. If your inputs are not batched, add a dummy batch "
            "dimension to your inputs using keras.ops.expand_dims(x, 0)"
        )
    if x.shape[ax] != y.shape[ay]:
        raise ValueError(
            f"Cannot do batch_dot on inputs with shapes {tuple(x.shape)} and {tuple(y.shape)} with axes={list(axes)}. "
            f"x.shape[{ax}] != y.shape[{ay}] ({x.shape[ax]} != {y.shape[ay]})."
        )
    if ax != x_ndim - 1:  # (already in place: no movedim, which is an op even then)
        x = torch.movedim(x, ax, -1)  # (b, *x_rest, k)
    if ay != 1:
        y = torch.movedim(y, ay, 1)  # (b, k, *y_rest)
    x_rest, y_rest = x.shape[1:-1], y.shape[2:]
    # explicit sizes, not -1: torch cannot infer a -1 next to a 0 (an empty batch)
    out = torch.bmm(
        x.reshape(x.shape[0], math.prod(x_rest), x.shape[-1]), y.reshape(y.shape[0], y.shape[1], math.prod(y_rest))
    )
    # (a rank-1 result is (batch, 1): one reshape)
    return out.reshape(out.shape[0], *x_rest, *y_rest) if x_rest or y_rest else out.reshape(out.shape[0], 1)


class Dot(Merge):
    """Computes the dot product between samples in two tensors.

    For inputs of shape `(batch, n)` the output is `(batch, 1)` with
    `output[i] = sum(a[i] * b[i])`.

    Args:
        axes: Integer or pair of integers: the axis (or axes, one per input)
            to contract. Negative values count from the end.
        normalize: Whether to L2-normalize the samples along the dot axes
            first (the output is then the cosine proximity). Defaults to
            `False`.

    Masks are not propagated (output mask None), as in Keras.

    Example:
        >>> x, y = torch.ones(2, 5), torch.ones(2, 5)
        >>> keras.layers.Dot(axes=1)([x, y])
        tensor([[5.],
                [5.]])
    """

    def __init__(self, axes, normalize=False, **kwargs):
        super().__init__(**kwargs)
        if not isinstance(axes, int):
            if not isinstance(axes, (list, tuple)):
                raise TypeError(f"Invalid type for argument `axes`: it should be a list or an int. Received: axes={axes}")
            if len(axes) != 2:
                raise ValueError(f"Invalid format for argument `axes`: it should contain two elements. Received: axes={axes}")
            if not isinstance(axes[0], int) or not isinstance(axes[1], int):
                raise ValueError(
                    f"Invalid format for argument `axes`: list elements should be integers. Received: axes={axes}"
                )
        self.axes = axes
        self.normalize = normalize

    def _resolve_axes(self, ndim1: int, ndim2: int):
        axes = (self.axes, self.axes) if isinstance(self.axes, int) else self.axes
        return [axes[0] % ndim1 if axes[0] < 0 else axes[0], axes[1] % ndim2 if axes[1] < 0 else axes[1]]

    def build(self, input_shape):
        if not isinstance(input_shape, (list, tuple)) or len(input_shape) != 2 or not isinstance(input_shape[0], (tuple, list)):
            raise ValueError(f"A `Dot` layer should be called on a list of 2 inputs. Received: input_shape={input_shape}")
        shape1, shape2 = input_shape
        if shape1 is None or shape2 is None:
            return
        axes = (self.axes, self.axes) if isinstance(self.axes, int) else self.axes
        check_axis_range(axes[0], "axes", len(shape1), self.name, shape1)
        check_axis_range(axes[1], "axes", len(shape2), self.name, shape2)
        a1, a2 = self._resolve_axes(len(shape1), len(shape2))
        if shape1[a1] != shape2[a2]:
            raise ValueError(
                f"Incompatible input shapes: axis values {shape1[a1]} (at axis {a1}) != {shape2[a2]} (at axis {a2}). "
                f"Full input shapes: {shape1}, {shape2}"
            )

    def _merge_function(self, inputs, masks=None):
        if len(inputs) != 2:
            raise ValueError(f"A `Dot` layer should be called on exactly 2 inputs. Received: inputs={inputs}")
        x1, x2 = inputs
        axes = self._resolve_axes(x1.ndim, x2.ndim)
        if self.normalize:
            from kerasish.ops.nn import normalize  # kerasish.ops imports the layers

            x1 = normalize(x1, axis=axes[0], order=2, epsilon=_NORMALIZE_EPSILON)
            x2 = normalize(x2, axis=axes[1], order=2, epsilon=_NORMALIZE_EPSILON)
        return batch_dot(x1, x2, axes)

    def compute_output_shape(self, input_shape):
        if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 2:
            raise ValueError(f"A `Dot` layer should be called on a list of 2 inputs. Received: input_shape={input_shape}")
        shape1, shape2 = list(input_shape[0]), list(input_shape[1])
        a1, a2 = self._resolve_axes(len(shape1), len(shape2))
        shape1.pop(a1)
        shape2.pop(a2)
        shape2.pop(0)
        out = shape1 + shape2
        if len(out) == 1:
            out.append(1)
        return tuple(out)

    def compute_mask(self, inputs, mask=None):
        return None

    _hot_compute_mask = compute_mask  # (an unmasked call takes the hot path: `Merge`)

    def get_config(self):
        config = super().get_config()
        config.update({"axes": self.axes, "normalize": self.normalize})
        return config


def dot(inputs, axes=-1, **kwargs):
    """Functional interface to the `Dot` layer.

    Args:
        inputs: A list of two input tensors.
        axes: Integer or pair of integers: the axes to contract. Defaults
            to `-1`.
        normalize: Whether to L2-normalize along the dot axes first.
        **kwargs: Standard layer keyword arguments.
    """
    return Dot(axes=axes, **kwargs)(inputs)
