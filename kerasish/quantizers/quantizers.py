"""Quantizer functions and classes of `keras.quantizers`, on torch.

The maths follows Keras 3.15 step by step (same operation order, same
rounding: `torch.round` is round-half-to-even like `ops.round`), so that
quantized values and scales are bit-identical to Keras on the torch backend.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from kerasish.backend import dtypes

_EPSILON = 1e-7  # Keras's `backend.epsilon()` default, captured at definition

# The largest finite value of each float8 format (`ml_dtypes.finfo(...).max`)
FLOAT8_MAX = {"float8_e4m3fn": 448.0, "float8_e5m2": 57344.0}
_FLOAT8_TORCH = {"float8_e4m3fn": torch.float8_e4m3fn, "float8_e5m2": torch.float8_e5m2}


def _tensor(x, dtype=None) -> torch.Tensor:
    """A tensor from a tensor, an array or Python numbers (floats become
    `floatx()`, as Keras's `convert_to_tensor`)."""
    if isinstance(x, torch.Tensor):
        return x if dtype is None else x.to(dtype)
    if isinstance(x, np.ndarray) or np.isscalar(x) and isinstance(x, np.generic):
        return torch.as_tensor(np.asarray(x), dtype=dtype)
    arr = np.asarray(x)
    if dtype is None and arr.dtype == np.float64:
        dtype = dtypes.to_torch_dtype(dtypes.floatx())
    return torch.as_tensor(arr, dtype=dtype)


def _axes(axis, ndim):
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    return tuple(a % ndim for a in axes)


class Quantizer:
    """Base class of quantizers: `quantizer(x)` returns the quantized input
    (the base class returns `x` unchanged).

    Args:
        output_dtype: dtype name of the quantized values. Defaults to `"int8"`.
    """

    def __init__(self, output_dtype="int8"):
        self.output_dtype = output_dtype

    def __call__(self, x):
        return x

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def get_config(self):
        raise NotImplementedError(f"{self} does not implement get_config()")


def abs_max_quantize(inputs, axis, value_range=(-127, 127), dtype="int8", epsilon=_EPSILON, to_numpy=False):
    """Quantizes `inputs` with the absolute-maximum scheme.

    `scale = value_range[1] / (max(|inputs|, axis) + epsilon)` (kept dims) and
    `outputs = clip(round(inputs * scale), *value_range)` cast to `dtype`.
    `to_numpy` is accepted for Keras compatibility (kerasish computes on the
    input's device either way; the result is identical).

    Returns:
        `(outputs, scale)`; `scale` has the input's float dtype.
    """
    x = _tensor(inputs)
    if not x.is_floating_point():
        x = x.to(dtypes.to_torch_dtype(dtypes.floatx()))
    axes = _axes(axis, x.dim())
    # a true division (torch's `scalar / tensor` multiplies by a reciprocal: 1 ulp off Keras)
    amax = torch.amax(x.abs(), dim=axes, keepdim=True) + epsilon
    scale = torch.div(torch.tensor(value_range[1], dtype=amax.dtype, device=amax.device), amax)
    scale = scale.to(x.dtype)
    outputs = torch.clamp(torch.round(x * scale), value_range[0], value_range[1])
    return outputs.to(dtypes.to_torch_dtype(dtype)), scale


def compute_quantization_parameters(
    x, *, bits, symmetric=False, per_channel=False, group_size=-1, compute_dtype="float32", epsilon=0.0, signed=False
):
    """Scale and zero point of a `(out_features, in_features)` weight for
    per-tensor, per-channel or grouped (`group_size > 0`) quantization, as
    Keras computes them. Returns `(scale, zero, maxq)`; zero is int8 when
    `signed` (range `[-2^(b-1), 2^(b-1)-1]`), uint8 otherwise."""
    x = _tensor(x)
    if x.dim() < 2:
        raise ValueError(f"Input weight tensor must have a rank of at least 2, but got rank {x.dim()}.")
    if x.numel() == 0:
        raise ValueError("Input tensor 'x' cannot be empty.")
    out_features, in_features = x.shape[0], x.shape[1]
    n_groups = (in_features + group_size - 1) // group_size if per_channel and group_size > 0 else 1
    if n_groups > 1:
        remainder = in_features % group_size
        if remainder:
            x = torch.nn.functional.pad(x, (0, group_size - remainder))
        grouped = x.reshape(out_features, n_groups, group_size)
        min_values, max_values = grouped.amin(dim=2), grouped.amax(dim=2)
    else:
        flat = x.reshape(out_features, -1) if per_channel else x.reshape(1, -1)
        min_values, max_values = flat.amin(dim=1), flat.amax(dim=1)
    if symmetric:
        max_abs = torch.maximum(min_values.abs(), max_values)
        min_values = torch.where(min_values < 0, -max_abs, min_values)
        max_values = max_abs
    same = min_values == max_values
    min_values = torch.where(same, min_values - 1, min_values)
    max_values = torch.where(same, max_values + 1, max_values)
    maxq = torch.tensor(2**bits - 1, dtype=dtypes.to_torch_dtype(compute_dtype))
    range_values = max_values - min_values
    if epsilon > 0:
        range_values = range_values + epsilon
    scale = range_values / maxq
    scale = torch.where(scale <= 0, torch.tensor(1e-8, dtype=scale.dtype), scale)
    if signed:
        qmin, qmax = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
        if symmetric:
            zero = torch.full_like(scale, float((maxq + 1) / 2 + qmin))
        else:
            zero = torch.round(-min_values / scale) + qmin
        zero = torch.clamp(zero, qmin, qmax)
    else:
        zero = torch.full_like(scale, float((maxq + 1) / 2)) if symmetric else torch.round(-min_values / scale)
    if n_groups == 1:
        if per_channel:
            scale, zero = scale.reshape(-1, 1), zero.reshape(-1, 1)
        else:
            scale = scale.reshape(1, 1).tile(out_features, 1)
            zero = zero.reshape(1, 1).tile(out_features, 1)
    return scale, zero.to(torch.int8 if signed else torch.uint8), maxq


def abs_max_quantize_grouped_with_zero_point(
    inputs, block_size, value_range=(-8, 7), dtype="int8", epsilon=_EPSILON, to_numpy=False
):
    """Grouped asymmetric quantization of a 2D `(input_dim, output_dim)`
    tensor: each group of `block_size` rows gets a scale and a zero point
    per column.

    Returns:
        `(quantized, scale, zero_point)`: quantized has the input's shape and
        `dtype`; scale and zero_point (int8) are `(ceil(input_dim /
        block_size), output_dim)`. `to_numpy=True` follows Keras's host
        path (used by `layer.quantize`), the default its tensor path (which
        also widens a constant group's range by ±1); both are reproduced.
    """
    x = _tensor(inputs)
    input_dim, output_dim = x.shape
    qmin, qmax = value_range
    n_groups = math.ceil(input_dim / block_size)
    padded = n_groups * block_size
    x_padded = torch.cat([x, x.new_zeros(padded - input_dim, output_dim)]) if padded > input_dim else x
    groups = x_padded.reshape(n_groups, block_size, output_dim)
    if to_numpy:
        min_val = groups.amin(dim=1, keepdim=True)
        max_val = groups.amax(dim=1, keepdim=True)
        scale = torch.div(max_val - min_val + epsilon, torch.tensor(qmax - qmin, dtype=max_val.dtype))
        zero = torch.clamp(torch.round(-min_val / scale) + qmin, qmin, qmax)
    else:
        bits = int(math.log2(qmax - qmin + 1))
        scale_t, zero_t, _ = compute_quantization_parameters(
            x.T, bits=bits, symmetric=False, per_channel=True, group_size=block_size,
            compute_dtype=dtypes.standardize_dtype(x.dtype), epsilon=epsilon, signed=True,
        )
        scale = scale_t.T.reshape(n_groups, 1, output_dim)
        zero = zero_t.T.reshape(n_groups, 1, output_dim).to(scale.dtype)
    outputs = torch.clamp(torch.round(groups / scale) + zero, qmin, qmax).to(dtypes.to_torch_dtype(dtype))
    outputs = outputs.reshape(padded, output_dim)[:input_dim]
    return outputs, scale.squeeze(1).to(x.dtype), zero.squeeze(1).to(torch.int8)


class AbsMaxQuantizer(Quantizer):
    """Absolute-max quantizer: `quantizer(x, axis=-1)` returns
    `abs_max_quantize(x, axis, value_range, output_dtype, epsilon)`.

    Args:
        axis: Deprecated (pass `axis` to the call); the default axis of calls.
        value_range: `(min, max)` of the quantized values. Defaults to
            `(-127, 127)`.
        epsilon: Defaults to `1e-7`.
        output_dtype: Defaults to `"int8"`.
    """

    def __init__(self, axis=None, value_range=(-127, 127), epsilon=_EPSILON, output_dtype="int8"):
        Quantizer.__init__(self, output_dtype=output_dtype)
        self.axis = None if axis is None else ((axis,) if isinstance(axis, int) else tuple(axis))
        self.value_range = value_range
        self.epsilon = epsilon
        if output_dtype == "int8" and (value_range[0] < -128 or value_range[1] > 127):
            raise ValueError(
                "Quantizer with output_dtype='int8' requires value_range to be within the interval "
                f"[-128, 127]. Received: value_range={value_range}"
            )

    def __call__(self, x, axis=None, to_numpy=False):
        if axis is None:
            axis = self.axis if self.axis is not None else -1
        return abs_max_quantize(x, axis, self.value_range, self.output_dtype, self.epsilon, to_numpy)

    def get_config(self):
        config = {"value_range": self.value_range, "epsilon": self.epsilon, "output_dtype": self.output_dtype}
        if self.axis is not None:
            config["axis"] = self.axis
        return config


# ------------------------------------------------------------------ fake quant
def _adjust_and_nudge(min_range, max_range, num_bits, narrow_range):
    quant_max = (1 << num_bits) - 1
    quant_min = 1 if narrow_range else 0
    diff = max_range - min_range
    scale = torch.div(diff, torch.tensor(quant_max - quant_min, dtype=diff.dtype, device=diff.device))
    inv_scale = torch.div(torch.tensor(quant_max - quant_min, dtype=diff.dtype, device=diff.device), diff)
    zero_point = torch.clamp(quant_min - min_range / scale, quant_min, quant_max)
    nudged_zero = torch.round(zero_point)
    return (quant_min - nudged_zero) * scale, (quant_max - nudged_zero) * scale, scale, inv_scale


class _FakeQuant(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, min_val, max_val, num_bits, narrow_range, axis):
        compute = torch.promote_types(min_val.dtype, torch.float32)
        nudged_min, nudged_max, scale, inv_scale = _adjust_and_nudge(
            min_val.to(compute), max_val.to(compute), num_bits, narrow_range
        )
        quant_zero = torch.floor(-nudged_min * inv_scale + 0.5)
        clamped = torch.clamp(x.to(compute), nudged_min, nudged_max)
        result = torch.floor((clamped - nudged_min) * inv_scale - quant_zero + 0.5) * scale
        ctx.save_for_backward(x, nudged_min, nudged_max)
        ctx.axis = axis
        ctx.shapes = (min_val.shape, max_val.shape)
        return result.to(x.dtype)

    @staticmethod
    def backward(ctx, upstream):
        x, nudged_min, nudged_max = ctx.saved_tensors
        zero = upstream.new_zeros(())
        dx = torch.where((x >= nudged_min) & (x <= nudged_max), upstream, zero)
        reduce = [i for i in range(dx.dim()) if i != ctx.axis] if ctx.axis is not None else list(range(dx.dim()))
        grad_min = torch.where(x <= nudged_min, upstream, zero).sum(dim=reduce).reshape(ctx.shapes[0])
        grad_max = torch.where(x >= nudged_max, upstream, zero).sum(dim=reduce).reshape(ctx.shapes[1])
        return dx, grad_min, grad_max, None, None, None


def fake_quant_with_min_max_vars(inputs, min_vals, max_vals, num_bits=8, narrow_range=False, axis=None):
    """Per-tensor (`axis=None`) or per-channel fake quantization into
    `[min_vals, max_vals]` (nudged so that zero is exact), as TensorFlow's
    `fake_quant_with_min_max_vars`. Differentiable: the gradient passes to
    `inputs` inside the range and to `min_vals` / `max_vals` outside it
    (a straight-through estimator), as in Keras."""
    from kerasish.backend.keras_tensor import KerasTensor

    if isinstance(inputs, KerasTensor):
        return KerasTensor(inputs.shape, dtype=inputs.dtype)
    x = _tensor(inputs)
    min_vals = _tensor(min_vals)
    max_vals = _tensor(max_vals)
    if axis is not None:
        if not -x.dim() <= axis < x.dim():
            raise ValueError(f"axis {axis} is out of bounds for an input of rank {x.dim()}")
        axis = axis % x.dim()
    return _FakeQuant.apply(x, min_vals, max_vals, int(num_bits), bool(narrow_range), axis)


# ---------------------------------------------------------------------- float8
def compute_float8_scale(amax, scale, dtype_max, margin=0):
    """The new float8 scale from the amax of the history (Transformer
    Engine's recipe): `1 / ((dtype_max / amax) / 2**margin)`, keeping the old
    scale where `amax` is zero or not finite."""
    amax, scale, dtype_max = _tensor(amax), _tensor(scale), _tensor(dtype_max)
    old = torch.reciprocal(scale)
    sf = (dtype_max / amax) / 2**margin
    sf = torch.where(amax > 0.0, sf, old)
    sf = torch.where(torch.isfinite(amax), sf, old)
    return torch.reciprocal(sf)


def compute_float8_amax_history(x, amax_history):
    """`amax_history` rolled left by one, with `max(|x|)` written at index 0."""
    x, amax_history = _tensor(x), _tensor(amax_history)
    new = torch.roll(amax_history, shifts=-1, dims=0).clone()
    new[0] = x.abs().max().to(amax_history.dtype)
    return new


def quantize_and_dequantize(inputs, scale, quantized_dtype, compute_dtype):
    """`inputs / scale` clipped to the quantized float range, rounded to
    `quantized_dtype` ("float8_e4m3fn" or "float8_e5m2") and scaled back, in
    `compute_dtype`."""
    if quantized_dtype not in FLOAT8_MAX:
        raise ValueError(
            f"`quantized_dtype` must be one of {sorted(FLOAT8_MAX)}. Received: quantized_dtype={quantized_dtype}"
        )
    compute = dtypes.to_torch_dtype(compute_dtype)
    qmax = torch.tensor(FLOAT8_MAX[quantized_dtype], dtype=compute)
    scale = _tensor(scale).to(compute)
    x = _tensor(inputs) / scale
    x = torch.clamp(x, -qmax, qmax).to(_FLOAT8_TORCH[quantized_dtype])
    return x.to(compute) * scale


# ------------------------------------------------------------------------ int4
def pack_int4(arr, axis=0, dtype="int8"):
    """Packs int4 values (int8/uint8 in `[-8, 7]`) two per byte along `axis`:
    the first of each pair in the low nibble, the second in the high nibble
    (an odd length is zero-padded).

    Returns:
        `(packed, packed_shape, orig_len)`.
    """
    if dtype not in ("int8", "uint8"):
        raise ValueError(f"Expected dtype to be 'int8' or 'uint8', but got '{dtype}'.")
    arr = _tensor(arr)
    got = dtypes.standardize_dtype(arr.dtype)
    if got != dtype:
        raise TypeError(f"Expected {dtype} tensor for packing, got {got}.")
    axis = axis % arr.dim()
    moved = arr.movedim(axis, 0).to(torch.int16)
    n = moved.shape[0]
    if n % 2:
        moved = torch.cat([moved, moved.new_zeros((1, *moved.shape[1:]))])
    packed = ((moved[::2] & 0x0F) | ((moved[1::2] & 0x0F) << 4)).to(torch.uint8)
    if dtype == "int8":
        packed = packed.view(torch.int8)
    packed = packed.movedim(0, axis).contiguous()
    return packed, tuple(packed.shape), n


def unpack_int4(packed, orig_len, axis=0, dtype="int8"):
    """Inverse of `pack_int4`: the int4 values (as `dtype`; signed `[-8, 7]`
    for int8, raw nibbles `[0, 15]` for uint8) with the padding removed."""
    if dtype not in ("int8", "uint8"):
        raise ValueError(f"Expected dtype to be 'int8' or 'uint8', but got '{dtype}'.")
    packed = _tensor(packed)
    if packed.dtype not in (torch.int8, torch.uint8):
        raise TypeError(f"Expected int8 or uint8 tensor for unpacking, got {packed.dtype}")
    axis = axis % packed.dim()
    moved = packed.movedim(axis, 0).to(torch.int16)
    low, high = moved & 0x0F, (moved >> 4) & 0x0F
    if dtype == "int8":
        low, high = (low ^ 8) - 8, (high ^ 8) - 8
    out_dtype = dtypes.to_torch_dtype(dtype)
    unpacked = torch.stack([low, high], dim=1).reshape(-1, *moved.shape[1:])[:orig_len]
    return unpacked.to(out_dtype).movedim(0, axis)


def dequantize_with_sz_map(weights_matrix, scale, zero, g_idx, group_axis=-1):
    """`(weights - zero[g]) * scale[g]` with each position's group `g` read
    from `g_idx` along `group_axis` of `scale` / `zero`."""
    groups = _tensor(g_idx).to(torch.int64)
    scales = torch.index_select(scale, group_axis % scale.dim(), groups)
    zeros = torch.index_select(zero, group_axis % zero.dim(), groups).to(scales.dtype)
    return (weights_matrix - zeros) * scales
