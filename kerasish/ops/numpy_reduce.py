"""Reductions, statistics, sorting and cumulative `keras.ops`.

Keras conventions: `axis` is None (all axes), an int or a tuple/list;
`keepdims` keeps reduced axes as size 1; `sum`/`prod` of bool or small
integers give int32 (JAX's rule, which Keras follows); `mean`/`std`/`var`
of integers give `floatx()`; index results (`argmax`, `argsort`) are int32.
"""

from __future__ import annotations

import torch

from kerasish.backend import dtypes as _dtypes
from kerasish.ops.operation import keras_op
from kerasish.backend.promotion import to_tensor

_SMALL_INTS = (torch.bool, torch.uint8, torch.int8, torch.int16)


def _dims(axis):
    if axis is None:
        return None
    if isinstance(axis, int):
        return (axis,)
    return tuple(int(a) for a in axis)


def _floatx():
    return _dtypes.to_torch_dtype(_dtypes.floatx())


def _as_float(x):
    return x if x.is_floating_point() or x.is_complex() else x.to(_floatx())


def _reduce(fn, x, axis, keepdims):
    dims = _dims(axis)
    if dims == ():
        return x
    if dims is None:
        out = fn(x)
        return out.reshape((1,) * x.ndim) if keepdims else out
    return fn(x, dim=dims, keepdim=keepdims)


@keras_op
def sum(x, axis=None, keepdims=False):  # noqa: A001 - Keras name
    """Sum over `axis` (all axes by default); bool/int8/int16/uint8 give int32."""
    x = to_tensor(x)
    if x.dtype in _SMALL_INTS:
        x = x.to(torch.int32)
    return _reduce(torch.sum, x, axis, keepdims).to(x.dtype)


@keras_op
def prod(x, axis=None, keepdims=False, dtype=None):
    """Product over `axis`; bool/int8/int16/uint8 give int32."""
    x = to_tensor(x)
    if dtype is not None:
        x = x.to(_dtypes.to_torch_dtype(dtype))
    elif x.dtype in _SMALL_INTS:
        x = x.to(torch.int32)
    out_dtype = torch.int32 if x.dtype == torch.int64 and dtype is None else x.dtype
    dims = _dims(axis)
    if dims is None:
        out = torch.prod(x)
        return (out.reshape((1,) * x.ndim) if keepdims else out).to(out_dtype)
    for d in sorted((d % x.ndim for d in dims), reverse=True):
        x = torch.prod(x, dim=d, keepdim=keepdims)
    return x.to(out_dtype)


@keras_op
def mean(x, axis=None, keepdims=False):
    """Mean over `axis`; integer and bool inputs give `floatx()`."""
    x = _as_float(to_tensor(x))
    return _reduce(torch.mean, x, axis, keepdims)


def _minmax(x, axis, keepdims, initial, fn, combine):
    x = to_tensor(x)
    dims = _dims(axis)
    if x.numel() == 0 and initial is None:
        raise ValueError("Cannot compute the max/min of an empty tensor without `initial`.")
    if dims is None:
        out = fn(x)
        if keepdims:
            out = out.reshape((1,) * x.ndim)
    elif dims == ():
        out = x
    else:
        out = fn(x, dim=dims, keepdim=keepdims)
    if initial is not None:
        out = combine(out, torch.as_tensor(initial, dtype=out.dtype, device=out.device))
    return out


@keras_op
def max(x, axis=None, keepdims=False, initial=None):  # noqa: A001 - Keras name
    """Maximum over `axis`; `initial` is a lower bound on the result."""
    return _minmax(x, axis, keepdims, initial, torch.amax, torch.maximum)


@keras_op
def min(x, axis=None, keepdims=False, initial=None):  # noqa: A001 - Keras name
    """Minimum over `axis`; `initial` is an upper bound on the result."""
    return _minmax(x, axis, keepdims, initial, torch.amin, torch.minimum)


@keras_op
def amax(x, axis=None, keepdims=False):
    """Maximum over `axis` (same as `max`)."""
    return _minmax(x, axis, keepdims, None, torch.amax, torch.maximum)


@keras_op
def amin(x, axis=None, keepdims=False):
    """Minimum over `axis` (same as `min`)."""
    return _minmax(x, axis, keepdims, None, torch.amin, torch.minimum)


@keras_op
def all(x, axis=None, keepdims=False):  # noqa: A001 - Keras name
    """Whether all elements over `axis` are true."""
    x = to_tensor(x).to(torch.bool)
    return _reduce(torch.all, x, axis, keepdims)


@keras_op
def any(x, axis=None, keepdims=False):  # noqa: A001 - Keras name
    """Whether any element over `axis` is true."""
    x = to_tensor(x).to(torch.bool)
    return _reduce(torch.any, x, axis, keepdims)


def _var(x, axis, keepdims, fn=torch.var):
    x = _as_float(to_tensor(x))
    dims = _dims(axis)
    if dims is None:
        dims = tuple(range(x.ndim))
    return fn(x, dim=dims, correction=0, keepdim=keepdims)


@keras_op
def var(x, axis=None, keepdims=False):
    """Population variance over `axis`."""
    return _var(x, axis, keepdims)


@keras_op
def std(x, axis=None, keepdims=False):
    """Population standard deviation over `axis` (torch's fused `std`, as Keras's torch
    backend: `sqrt(var)` differs from it by an ulp)."""
    return _var(x, axis, keepdims, fn=torch.std)


def _arg(fn, x, axis, keepdims):
    x = to_tensor(x)
    if x.dtype == torch.bool:
        x = x.to(torch.int32)
    if axis is None:
        out = fn(x.reshape(-1))
        if keepdims:
            out = out.reshape((1,) * x.ndim)
        return out.to(torch.int32)
    return fn(x, dim=axis, keepdim=keepdims).to(torch.int32)


@keras_op
def argmax(x, axis=None, keepdims=False):
    """Index (int32) of the maximum along `axis` (of the flat tensor if None)."""
    return _arg(torch.argmax, x, axis, keepdims)


@keras_op
def argmin(x, axis=None, keepdims=False):
    """Index (int32) of the minimum along `axis` (of the flat tensor if None)."""
    return _arg(torch.argmin, x, axis, keepdims)


def _nan_arg(fn, fill, x, axis, keepdims):
    x = _as_float(to_tensor(x))
    return _arg(fn, torch.where(torch.isnan(x), torch.full_like(x, fill), x), axis, keepdims)


@keras_op
def nanargmax(x, axis=None, keepdims=False):
    """`argmax` ignoring NaNs."""
    return _nan_arg(torch.argmax, float("-inf"), x, axis, keepdims)


@keras_op
def nanargmin(x, axis=None, keepdims=False):
    """`argmin` ignoring NaNs."""
    return _nan_arg(torch.argmin, float("inf"), x, axis, keepdims)


@keras_op
def count_nonzero(x, axis=None):
    """Number (int32) of non-zero elements over `axis`."""
    x = to_tensor(x)
    dims = _dims(axis)
    if dims == ():
        return (x != 0).to(torch.int32)
    return torch.count_nonzero(x, dim=dims).to(torch.int32)


@keras_op
def ptp(x, axis=None, keepdims=False):
    """Range (max - min) over `axis`."""
    x = to_tensor(x)
    return _reduce(torch.amax, x, axis, keepdims) - _reduce(torch.amin, x, axis, keepdims)


@keras_op
def average(x, axis=None, weights=None):
    """Weighted mean over `axis` (plain mean without `weights`)."""
    x = _as_float(to_tensor(x))
    if weights is None:
        return _reduce(torch.mean, x, axis, False)
    w = to_tensor(weights).to(x.dtype)
    if axis is not None and w.ndim == 1 and x.ndim > 1:
        shape = [1] * x.ndim
        shape[axis] = -1
        w = w.reshape(shape)
    return _reduce(torch.sum, x * w, axis, False) / _reduce(torch.sum, w.expand_as(x), axis, False)


def _cum(fn, x, axis, dtype):
    x = to_tensor(x)
    if dtype is not None:
        x = x.to(_dtypes.to_torch_dtype(dtype))
    elif x.dtype == torch.bool:
        x = x.to(torch.int32)
    if axis is None:
        x, axis = x.reshape(-1), 0
    return fn(x, dim=axis).to(x.dtype)


@keras_op
def cumsum(x, axis=None, dtype=None):
    """Cumulative sum along `axis` (of the flat tensor if None)."""
    return _cum(torch.cumsum, x, axis, dtype)


@keras_op
def cumprod(x, axis=None, dtype=None):
    """Cumulative product along `axis` (of the flat tensor if None)."""
    return _cum(torch.cumprod, x, axis, dtype)


@keras_op
def sort(x, axis=-1):
    """Sorted copy of `x` along `axis`."""
    return torch.sort(to_tensor(x), dim=axis).values


@keras_op
def argsort(x, axis=-1):
    """Indices (int32) that sort `x` along `axis` (stable)."""
    x = to_tensor(x)
    if axis is None:
        x, axis = x.reshape(-1), 0
    if x.dtype == torch.bool:
        x = x.to(torch.int32)
    return torch.argsort(x, dim=axis, stable=True).to(torch.int32)


@keras_op
def argpartition(x, kth, axis=-1):
    """Indices (int32) that partition `x` around its `kth` element (a full
    stable argsort, which is one valid partition)."""
    return argsort.__wrapped_op__(x, axis)


def _quantile(x, q, axis, method, keepdims, nan):
    x = _as_float(to_tensor(x))
    q = to_tensor(q).to(dtype=x.dtype, device=x.device)
    fn = torch.nanquantile if nan else torch.quantile
    dims = _dims(axis)
    if dims is None:
        out = fn(x.reshape(-1), q, dim=0, interpolation=method)
        if keepdims:
            out = out.reshape(q.shape + (1,) * x.ndim)
        return out
    if len(dims) == 1:
        return fn(x, q, dim=dims[0], keepdim=keepdims, interpolation=method)
    dims = tuple(d % x.ndim for d in dims)
    rest = [d for d in range(x.ndim) if d not in dims]
    moved = x.permute(*rest, *dims).reshape([x.shape[d] for d in rest] + [-1])
    out = fn(moved, q, dim=-1, interpolation=method)
    if keepdims:
        shape = list(out.shape[: out.ndim - len(rest)]) + [1 if d in dims else x.shape[d] for d in range(x.ndim)]
        out = out.reshape(shape)
    return out


@keras_op
def quantile(x, q, axis=None, method="linear", keepdims=False):
    """The `q`-th quantiles (q in [0, 1]) over `axis`."""
    return _quantile(x, q, axis, method, keepdims, False)


@keras_op
def percentile(x, q, axis=None, method="linear", keepdims=False):
    """The `q`-th percentiles (q in [0, 100]) over `axis`."""
    return _quantile(x, to_tensor(q) / 100.0, axis, method, keepdims, False)


@keras_op
def nanquantile(x, q, axis=None, method="linear", keepdims=False):
    """`quantile` ignoring NaNs."""
    return _quantile(x, q, axis, method, keepdims, True)


@keras_op
def nanpercentile(x, q, axis=None, method="linear", keepdims=False):
    """`percentile` ignoring NaNs."""
    return _quantile(x, to_tensor(q) / 100.0, axis, method, keepdims, True)


@keras_op
def median(x, axis=None, keepdims=False):
    """Median over `axis` (the mean of the two middle values for even counts)."""
    return _quantile(x, 0.5, axis, "linear", keepdims, False)


@keras_op
def nanmedian(x, axis=None, keepdims=False):
    """`median` ignoring NaNs."""
    return _quantile(x, 0.5, axis, "linear", keepdims, True)


def _nan_filled(x, value):
    x = to_tensor(x)
    if not x.is_floating_point():
        return x
    return torch.where(torch.isnan(x), torch.full_like(x, value), x)


@keras_op
def nansum(x, axis=None, keepdims=False):
    """`sum` treating NaNs as zero."""
    return sum.__wrapped_op__(_nan_filled(x, 0.0), axis, keepdims)


@keras_op
def nanprod(x, axis=None, keepdims=False):
    """`prod` treating NaNs as one."""
    return prod.__wrapped_op__(_nan_filled(x, 1.0), axis, keepdims)


@keras_op
def nanmax(x, axis=None, keepdims=False):
    """`max` ignoring NaNs (NaN where a slice is all NaN)."""
    x = _as_float(to_tensor(x))
    out = _reduce(torch.amax, _nan_filled(x, float("-inf")), axis, keepdims)
    return torch.where(_reduce(torch.all, torch.isnan(x), axis, keepdims), torch.nan, out)


@keras_op
def nanmin(x, axis=None, keepdims=False):
    """`min` ignoring NaNs (NaN where a slice is all NaN)."""
    x = _as_float(to_tensor(x))
    out = _reduce(torch.amin, _nan_filled(x, float("inf")), axis, keepdims)
    return torch.where(_reduce(torch.all, torch.isnan(x), axis, keepdims), torch.nan, out)


@keras_op
def nanmean(x, axis=None, keepdims=False):
    """`mean` ignoring NaNs."""
    x = _as_float(to_tensor(x))
    return _reduce(torch.nanmean, x, axis, keepdims)


@keras_op
def nanvar(x, axis=None, keepdims=False):
    """Population variance ignoring NaNs."""
    x = _as_float(to_tensor(x))
    valid = ~torch.isnan(x)
    m = _reduce(torch.nanmean, x, axis, True)
    sq = torch.where(valid, (x - m) ** 2, torch.zeros_like(x))
    return _reduce(torch.sum, sq, axis, keepdims) / _reduce(torch.sum, valid.to(x.dtype), axis, keepdims)


@keras_op
def nanstd(x, axis=None, keepdims=False):
    """Population standard deviation ignoring NaNs."""
    return torch.sqrt(nanvar.__wrapped_op__(x, axis, keepdims))


@keras_op
def nancumsum(x, axis=None, dtype=None):
    """`cumsum` treating NaNs as zero."""
    return _cum(torch.cumsum, _nan_filled(x, 0.0), axis, dtype)


@keras_op
def nancumprod(x, axis=None, dtype=None):
    """`cumprod` treating NaNs as one."""
    return _cum(torch.cumprod, _nan_filled(x, 1.0), axis, dtype)


@keras_op
def logsumexp(x, axis=None, keepdims=False):
    """`log(sum(exp(x)))` over `axis`, computed stably."""
    x = _as_float(to_tensor(x))
    dims = _dims(axis)
    if dims is None:
        dims = tuple(range(x.ndim))
    return torch.logsumexp(x, dim=dims, keepdim=keepdims)


@keras_op
def trace(x, offset=0, axis1=0, axis2=1):
    """Sum along a diagonal; bool/small ints give int32."""
    x = to_tensor(x)
    if x.dtype in _SMALL_INTS:
        x = x.to(torch.int32)
    return torch.sum(torch.diagonal(x, offset=offset, dim1=axis1, dim2=axis2), dim=-1).to(x.dtype)
