"""Activation functions, as `keras.activations`, on torch's fused ops.

Every function takes a tensor (or anything `torch.as_tensor` accepts) and
returns a tensor of the same shape and dtype.
"""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F


def _t(x) -> torch.Tensor:
    if torch.is_tensor(x) or hasattr(x, "_keras_history"):
        return x  # (a KerasTensor: the torch functions below record graph ops on it, as Keras's ops do)
    return torch.as_tensor(x)


def relu(x, negative_slope: float = 0.0, max_value: float | None = None, threshold: float = 0.0) -> torch.Tensor:
    """Rectified linear unit, with Keras's optional leak, cap and threshold.

    `x` above `threshold` passes (capped at `max_value`); below it the output
    is `negative_slope * (x - threshold)`.

    Args:
        x: Input tensor.
        negative_slope: Slope below the threshold. Defaults to `0.0`.
        max_value: Upper cap, or `None`. Defaults to `None`.
        threshold: Values at or below it are damped/zeroed. Defaults to `0.0`.
    """
    x = _t(x)
    if negative_slope == 0.0 and max_value is None and threshold == 0:
        return F.relu(x)
    if negative_slope != 0.0:
        if max_value is None and threshold == 0:
            return F.leaky_relu(x, negative_slope)
        negative_part = F.relu(threshold - x) if threshold != 0 else F.relu(-x)
    clip_max = max_value is not None
    if threshold != 0:
        y = torch.where(x > threshold, x, torch.zeros((), dtype=x.dtype, device=x.device))
    elif max_value == 6:
        y = F.relu6(x)
        clip_max = False
    else:
        y = F.relu(x)
    if clip_max:
        y = torch.clamp(y, 0, max_value)
    if negative_slope != 0.0:
        y = y - negative_slope * negative_part
    return y


def leaky_relu(x, negative_slope: float = 0.2) -> torch.Tensor:
    """Leaky ReLU: `x` if `x >= 0` else `negative_slope * x`.

    Args:
        x: Input tensor.
        negative_slope: Slope for negative inputs. Defaults to `0.2`.
    """
    return F.leaky_relu(_t(x), negative_slope)


def relu6(x) -> torch.Tensor:
    """ReLU capped at 6: `min(max(x, 0), 6)`.

    Args:
        x: Input tensor.
    """
    return F.relu6(_t(x))


def _over_axes(fn, x: torch.Tensor, axis) -> torch.Tensor:
    """Applies a last-axis `fn` over `axis` (int, tuple of ints or None)."""
    if axis is None:
        return fn(x.reshape(-1)).reshape(x.shape)
    if isinstance(axis, int):
        return fn(x.movedim(axis, -1)).movedim(-1, axis) if axis not in (-1, x.ndim - 1) else fn(x)
    axes = sorted(a % x.ndim for a in axis)
    keep = [d for d in range(x.ndim) if d not in axes]
    moved = x.permute(*keep, *axes)
    out = fn(moved.reshape(*[x.shape[d] for d in keep], -1)).reshape(moved.shape)
    inverse = [0] * x.ndim
    for i, d in enumerate(keep + axes):
        inverse[d] = i
    return out.permute(*inverse)


def _symbolic(x) -> bool:
    return hasattr(x, "_keras_history") and not torch.is_tensor(x)


def _softmax_like(x, axis, fn) -> torch.Tensor:
    if _symbolic(x):  # a KerasTensor: the `keras.ops` node Keras records
        from kerasish import ops

        return (ops.softmax if fn is F.softmax else ops.log_softmax)(x, axis=axis)
    x = _t(x)
    if isinstance(axis, int) and -x.ndim <= axis < x.ndim and x.shape[axis] == 1:
        warnings.warn(
            f"You are using a softmax over axis {axis} of a tensor of shape {tuple(x.shape)}. "
            "This axis has size 1. The softmax operation will always return the value 1, "
            "which is likely not what you intended. Did you mean to use a sigmoid instead?",
            stacklevel=3,
        )
    dtype = x.dtype
    if dtype == torch.float16 and x.device.type == "cpu":
        x = x.float()  # as Keras: no float16 softmax kernels on CPU
    if isinstance(axis, int):  # torch's kernel over that axis, as Keras calls it (moving it last rounds differently)
        return fn(x, dim=axis).to(dtype)
    return _over_axes(lambda t: fn(t, dim=-1), x, axis).to(dtype)


def softmax(x, axis: int | tuple[int, ...] | None = -1) -> torch.Tensor:
    """Softmax: `exp(x) / sum(exp(x))` over `axis`.

    Args:
        x: Input tensor.
        axis: Axis, tuple of axes (normalized jointly) or `None` (all).
            Defaults to `-1`.
    """
    return _softmax_like(x, axis, F.softmax)


def log_softmax(x, axis: int | tuple[int, ...] | None = -1) -> torch.Tensor:
    """Log of the softmax over `axis`, computed stably.

    Args:
        x: Input tensor.
        axis: Axis, tuple of axes or `None`. Defaults to `-1`.
    """
    return _softmax_like(x, axis, F.log_softmax)


def elu(x, alpha: float = 1.0) -> torch.Tensor:
    """Exponential linear unit: `x` if `x > 0` else `alpha * (exp(x) - 1)`.

    Args:
        x: Input tensor.
        alpha: Scale of the negative part. Defaults to `1.0`.
    """
    return F.elu(_t(x), alpha)


def selu(x) -> torch.Tensor:
    """Scaled ELU with `alpha=1.67326324`, `scale=1.05070098`.

    Args:
        x: Input tensor.
    """
    return F.selu(_t(x))


def softplus(x) -> torch.Tensor:
    """Softplus: `log(exp(x) + 1)`.

    Uses `torch.nn.functional.softplus` (as Keras's torch backend does),
    which returns `x` itself for `x > 20`; the difference from the exact
    value there is below float32 resolution.

    Args:
        x: Input tensor.
    """
    return F.softplus(_t(x))


def softsign(x) -> torch.Tensor:
    """Softsign: `x / (|x| + 1)`.

    Args:
        x: Input tensor.
    """
    return F.softsign(_t(x))


def soft_shrink(x, threshold: float = 0.5) -> torch.Tensor:
    """Soft shrinkage: `x - threshold` above `threshold`, `x + threshold`
    below `-threshold`, else 0.

    Args:
        x: Input tensor.
        threshold: Shrinkage threshold. Defaults to `0.5`.
    """
    return F.softshrink(_t(x), threshold)


def hard_shrink(x, threshold: float = 0.5) -> torch.Tensor:
    """Hard shrinkage: `x` where `|x| > threshold`, else 0.

    Args:
        x: Input tensor.
        threshold: Threshold. Defaults to `0.5`.
    """
    return F.hardshrink(_t(x), threshold)


def sparse_plus(x) -> torch.Tensor:
    """SparsePlus: 0 for `x <= -1`, `(x + 1)**2 / 4` for `-1 < x < 1`, `x` above.

    Args:
        x: Input tensor.
    """
    x = _t(x)
    return torch.where(x <= -1, torch.zeros_like(x), torch.where(x < 1, 0.25 * (x + 1) ** 2, x))


def silu(x) -> torch.Tensor:
    """SiLU / swish: `x * sigmoid(x)`.

    Args:
        x: Input tensor.
    """
    return F.silu(_t(x))


swish = silu


def squareplus(x, b: float = 4) -> torch.Tensor:
    """Squareplus: `(x + sqrt(x**2 + b)) / 2`.

    Args:
        x: Input tensor.
        b: Smoothness near 0. Defaults to `4`.
    """
    x = _t(x)
    return (x + torch.sqrt(x * x + b)) / 2


def gelu(x, approximate: bool = False) -> torch.Tensor:
    """Gaussian error linear unit: `x * Phi(x)`.

    Args:
        x: Input tensor.
        approximate: Use the tanh approximation. Defaults to `False`.
    """
    return F.gelu(_t(x), approximate="tanh" if approximate else "none")


def celu(x, alpha: float = 1.0) -> torch.Tensor:
    """Continuously differentiable ELU: `max(x, 0) + alpha * min(0, exp(x / alpha) - 1)`.

    Args:
        x: Input tensor.
        alpha: Scale of the negative part. Defaults to `1.0`.
    """
    return F.celu(_t(x), alpha)


def glu(x, axis: int = -1) -> torch.Tensor:
    """Gated linear unit: splits `x` in halves `a, b` on `axis`, returns `a * sigmoid(b)`.

    Args:
        x: Input tensor; `axis` must have even size.
        axis: The axis to split. Defaults to `-1`.
    """
    x = _t(x)
    if x.shape[axis] % 2 != 0:
        raise ValueError(
            "axis size must be divisible by 2. "
            f"Received: x.shape={tuple(x.shape)} with axis={axis}"
        )
    return F.glu(x, dim=axis)


def tanh(x) -> torch.Tensor:
    """Hyperbolic tangent.

    Args:
        x: Input tensor.
    """
    return torch.tanh(_t(x))


def tanh_shrink(x) -> torch.Tensor:
    """Tanh shrink: `x - tanh(x)`.

    Args:
        x: Input tensor.
    """
    return F.tanhshrink(_t(x))


def hard_tanh(x) -> torch.Tensor:
    """Hard tanh: `clip(x, -1, 1)`.

    Args:
        x: Input tensor.
    """
    return F.hardtanh(_t(x), -1.0, 1.0)


def threshold(x, threshold: float, default_value: float) -> torch.Tensor:
    """`x` where `x > threshold`, else `default_value`.

    Args:
        x: Input tensor.
        threshold: The threshold.
        default_value: Value for elements at or below `threshold`.
    """
    return F.threshold(_t(x), threshold, default_value)


def sigmoid(x) -> torch.Tensor:
    """Sigmoid: `1 / (1 + exp(-x))`.

    Args:
        x: Input tensor.
    """
    return torch.sigmoid(_t(x))


def sparse_sigmoid(x) -> torch.Tensor:
    """Sparse sigmoid: 0 for `x <= -1`, 1 for `x >= 1`, `(x + 1) / 2` between.

    Args:
        x: Input tensor.
    """
    return torch.clamp(0.5 * (_t(x) + 1), 0.0, 1.0)


def exponential(x) -> torch.Tensor:
    """Exponential: `exp(x)`.

    Args:
        x: Input tensor.
    """
    return torch.exp(_t(x))


def hard_sigmoid(x) -> torch.Tensor:
    """Hard sigmoid, Keras 3 formula: `relu6(x + 3) / 6`.

    Keras 2 used `clip(0.2 * x + 0.5, 0, 1)`; models ported from Keras 2
    that relied on it give different values.

    Args:
        x: Input tensor.
    """
    return F.hardsigmoid(_t(x))


def hard_silu(x) -> torch.Tensor:
    """Hard SiLU / hard swish: `x * relu6(x + 3) / 6`.

    Args:
        x: Input tensor.
    """
    return F.hardswish(_t(x))


hard_swish = hard_silu


def linear(x):
    """Identity: returns `x` unchanged.

    Args:
        x: Input tensor.
    """
    return x


def mish(x) -> torch.Tensor:
    """Mish: `x * tanh(softplus(x))`.

    Args:
        x: Input tensor.
    """
    return F.mish(_t(x))


def log_sigmoid(x) -> torch.Tensor:
    """Log-sigmoid: `-softplus(-x)`, computed stably.

    Args:
        x: Input tensor.
    """
    return F.logsigmoid(_t(x))


def sparsemax(x, axis: int = -1) -> torch.Tensor:
    """Sparsemax: Euclidean projection of `x` onto the simplex along `axis`.

    Outputs are non-negative, sparse and sum to 1 along `axis`
    (Martins & Astudillo, 2016).

    Args:
        x: Input tensor.
        axis: The axis to normalize. Defaults to `-1`.
    """
    if _symbolic(x):
        from kerasish import ops

        return ops.sparsemax(x, axis=axis)
    x = _t(x)
    z = x.movedim(axis, -1)
    z_sorted = torch.sort(z, dim=-1, descending=True).values
    cumsum = torch.cumsum(z_sorted, dim=-1)
    k = torch.arange(1, z.shape[-1] + 1, dtype=z.dtype, device=z.device)
    support = z_sorted - (cumsum - 1) / k > 0
    support_size = support.sum(dim=-1, keepdim=True)
    # tau = (sum of the k largest - 1) / k. (Keras 3.15's backends sum all
    # the support's partial sums instead, which leaves the simplex; we keep
    # the published definition.)
    tau = (cumsum.gather(-1, support_size - 1) - 1) / support_size.to(z.dtype)
    return torch.clamp(z - tau, min=0.0).movedim(-1, axis)
