"""Products, searching, counting and window `keras.ops` (NumPy-style)."""

from __future__ import annotations

import torch

from kerasish.backend import dtypes as _dtypes
from kerasish.ops.operation import keras_op
from kerasish.backend.promotion import result_type
from kerasish.backend.promotion import to_tensor


def _td(dtype):
    return _dtypes.to_torch_dtype(dtype)


def _product_pair(x1, x2):
    """Both operands in their promoted dtype; integer products are computed
    in float on devices without integer matmul kernels, then cast back."""
    a, b = to_tensor(x1), to_tensor(x2)
    dt = a.dtype if a.dtype == b.dtype else _td(result_type(a.dtype, b.dtype))
    if dt == torch.bool:
        dt = torch.int32
    return a.to(dt), b.to(dt), dt


def _int_safe(fn, a, b, dt):
    if dt.is_floating_point or dt.is_complex:
        return fn(a, b)
    return fn(a.to(torch.float64), b.to(torch.float64)).round().to(dt)


@keras_op
def matmul(x1, x2):
    """Matrix product of the last two axes, broadcasting the rest. Two int8
    operands give int32, as Keras 3 (and JAX) do: an int8 product would wrap
    around (`100 * 100 * 3` is 48 in int8)."""
    a, b, dt = _product_pair(x1, x2)
    if dt == torch.int8:
        dt = torch.int32
        a, b = a.to(dt), b.to(dt)
    return _int_safe(torch.matmul, a, b, dt)


@keras_op
def dot(x1, x2):
    """NumPy `dot`: scalar multiply, inner product, or sum over the last
    axis of `x1` and the second-to-last of `x2`."""
    a, b, dt = _product_pair(x1, x2)
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    if b.ndim <= 2:
        return _int_safe(torch.matmul, a, b, dt)
    return _int_safe(lambda p, q: torch.tensordot(p, q, dims=([p.ndim - 1], [q.ndim - 2])), a, b, dt)


@keras_op
def tensordot(x1, x2, axes=2):
    """Sum of products over `axes` (an int or a pair of axis lists)."""
    a, b, dt = _product_pair(x1, x2)
    if not isinstance(axes, int):
        axes = [list(ax) if not isinstance(ax, int) else [ax] for ax in axes]
    return _int_safe(lambda p, q: torch.tensordot(p, q, dims=axes), a, b, dt)


@keras_op
def einsum(subscripts, *operands, **kwargs):
    """Einstein summation over `operands` described by `subscripts`."""
    ts = [to_tensor(o) for o in operands]
    dt = _td(result_type(*(t.dtype for t in ts)))
    if all(t.dtype == torch.int8 for t in ts):
        dt = torch.int32  # all-int8 operands sum in int32, as Keras 3 (and JAX): no wrap-around
    ts = [t.to(dt) for t in ts]
    if dt.is_floating_point or dt.is_complex:
        return torch.einsum(subscripts, *ts)
    return torch.einsum(subscripts, *(t.to(torch.float64) for t in ts)).round().to(dt)


@keras_op
def outer(x1, x2):
    """Outer product of the flattened inputs."""
    a, b, _ = _product_pair(x1, x2)
    return torch.outer(a.reshape(-1), b.reshape(-1))


@keras_op
def inner(x1, x2):
    """Sum of products over the last axes."""
    a, b, dt = _product_pair(x1, x2)
    if a.ndim == 0 or b.ndim == 0:
        return a * b
    return _int_safe(torch.inner, a, b, dt)


@keras_op
def vdot(x1, x2):
    """Dot product of the flattened inputs (conjugating `x1`)."""
    a, b, dt = _product_pair(x1, x2)
    return _int_safe(lambda p, q: torch.vdot(p.reshape(-1), q.reshape(-1)), a, b, dt)


@keras_op
def kron(x1, x2):
    """Kronecker product."""
    a, b, _ = _product_pair(x1, x2)
    return torch.kron(a, b)


@keras_op
def cross(x1, x2, axisa=-1, axisb=-1, axisc=-1, axis=None):
    """Cross product of 3-vectors (2-vectors are padded with a zero z)."""
    a, b, _ = _product_pair(x1, x2)
    if axis is not None:
        axisa = axisb = axisc = axis
    a, b = torch.movedim(a, axisa, -1), torch.movedim(b, axisb, -1)
    two = a.shape[-1] == 2 and b.shape[-1] == 2
    if a.shape[-1] == 2:
        a = torch.nn.functional.pad(a, (0, 1))
    if b.shape[-1] == 2:
        b = torch.nn.functional.pad(b, (0, 1))
    a, b = torch.broadcast_tensors(a, b)
    out = torch.linalg.cross(a, b, dim=-1)
    if two:
        return out[..., 2]
    return torch.movedim(out, -1, axisc)


@keras_op
def nonzero(x):
    """Indices (int32) of the non-zero elements as one `(ndim, n)` tensor
    (what Keras returns on torch; NumPy returns a tuple)."""
    return torch.nonzero(to_tensor(x)).T.to(torch.int32)


@keras_op
def unique(x, sorted=True, return_index=False, return_inverse=False, return_counts=False, axis=None,  # noqa: A002
           size=None, fill_value=None):
    """Unique elements (sorted), optionally with first indices, inverse
    indices and counts; `size` pads/truncates to a static length."""
    x = to_tensor(x)
    flat = x.reshape(-1) if axis is None else x
    vals, inverse, counts = torch.unique(flat, sorted=True, return_inverse=True, return_counts=True, dim=axis)
    outs = [vals]
    if return_index:
        n = flat.shape[0] if axis is None else flat.shape[axis]
        first = torch.full((vals.shape[0] if axis is None else vals.shape[axis],), n, dtype=torch.int64,
                           device=x.device)
        first = first.scatter_reduce(0, inverse.reshape(-1), torch.arange(n, device=x.device), reduce="amin")
        outs.append(first.to(torch.int32))
    if return_inverse:
        outs.append(inverse.reshape(x.shape if axis is None else inverse.shape).to(torch.int32))
    if return_counts:
        outs.append(counts.to(torch.int32))
    if size is not None:
        length = outs[0].shape[0]
        fill = fill_value if fill_value is not None else (vals.reshape(-1)[0] if length else 0)
        if length >= size:
            outs[0] = outs[0][:size]
        else:
            outs[0] = torch.cat([outs[0], torch.full((size - length,), fill, dtype=vals.dtype, device=x.device)])
        if return_counts:
            c = outs[-1]
            outs[-1] = c[:size] if c.shape[0] >= size else torch.cat([c, c.new_zeros(size - c.shape[0])])
    return outs[0] if len(outs) == 1 else tuple(outs)


@keras_op
def searchsorted(sorted_sequence, values, side="left"):
    """Insertion indices (int32) of `values` into the 1-D `sorted_sequence`."""
    if side not in ("left", "right"):
        raise ValueError(f"`side` must be either 'left' or 'right'. Received: side={side}")
    seq, vals = to_tensor(sorted_sequence), to_tensor(values)
    if seq.ndim != 1:
        raise ValueError(f"`searchsorted` only supports 1-D sorted sequences. Received: shape={tuple(seq.shape)}")
    dt = _td(result_type(seq.dtype, vals.dtype))
    return torch.searchsorted(seq.to(dt), vals.to(dt), right=side == "right").to(torch.int32)


@keras_op
def digitize(x, bins):
    """Index (int32) of the bin each value of `x` falls in."""
    x, b = to_tensor(x), to_tensor(bins)
    dt = _td(result_type(x.dtype, b.dtype))
    return torch.bucketize(x.to(dt), b.to(dt), right=True).to(torch.int32)


@keras_op
def bincount(x, weights=None, minlength=0, sparse=False):
    """Counts of each non-negative integer in `x` (per row for 2-D `x`)."""
    if sparse:
        raise ValueError("kerasish ops do not support sparse outputs. Received: sparse=True")
    x = to_tensor(x).to(torch.int64)
    w = None if weights is None else to_tensor(weights)
    length = int(torch.max(x).item()) + 1 if x.numel() else 0
    length = max(length, minlength)
    if x.ndim == 1:
        if w is None:
            return torch.bincount(x, minlength=length).to(torch.int32)
        return torch.zeros(length, dtype=w.dtype, device=x.device).index_add(0, x, w)
    dt = torch.int32 if w is None else w.dtype
    out = torch.zeros(x.shape[0], length, dtype=dt, device=x.device)
    src = torch.ones_like(x, dtype=dt) if w is None else w.to(dt)
    return out.scatter_add(1, x, src)


@keras_op
def histogram(x, bins=10, range=None):  # noqa: A002 - Keras name
    """Counts (float32, as Keras returns) of `x` in `bins` equal bins over
    `range`, and the bin edges."""
    x = to_tensor(x).to(torch.float32)
    lo, hi = (x.min().item(), x.max().item()) if range is None else range
    edges = torch.linspace(lo, hi, bins + 1, device=x.device)
    idx = torch.clamp(torch.bucketize(x, edges, right=True) - 1, 0, bins - 1)
    inside = (x >= lo) & (x <= hi)
    hits = idx[inside]
    counts = torch.zeros(bins, dtype=torch.float32, device=x.device)
    counts = counts.index_add(0, hits, torch.ones_like(hits, dtype=torch.float32))
    return counts, edges


@keras_op
def isin(x1, x2, assume_unique=False, invert=False):
    """Whether each element of `x1` is in `x2`."""
    a, b = to_tensor(x1), to_tensor(x2)
    dt = _td(result_type(a.dtype, b.dtype))
    return torch.isin(a.to(dt), b.to(dt), assume_unique=assume_unique, invert=invert)


@keras_op
def unravel_index(indices, shape):
    """Flat `indices` as a tuple of coordinate tensors for `shape`."""
    idx = to_tensor(indices)
    return tuple(i.to(idx.dtype) for i in torch.unravel_index(idx.to(torch.int64), tuple(shape)))


@keras_op
def diff(a, n=1, axis=-1):
    """`n`-th discrete difference along `axis`."""
    return torch.diff(to_tensor(a), n=n, dim=axis)


@keras_op
def correlate(x1, x2, mode="valid"):
    """Cross-correlation of two 1-D sequences ("valid", "same" or "full")."""
    if mode not in ("valid", "same", "full"):
        raise ValueError(f"`mode` must be one of 'valid', 'same', 'full'. Received: mode={mode}")
    a, b = to_tensor(x1), to_tensor(x2)
    dt = _td(result_type(a.dtype, b.dtype, "float32")) if not a.is_floating_point() else _td(
        result_type(a.dtype, b.dtype))
    a, b = a.to(dt), b.to(dt)
    na, nb = a.shape[0], b.shape[0]
    pad = {"valid": 0, "full": nb - 1, "same": nb // 2}[mode]
    if mode == "same":
        out = torch.nn.functional.conv1d(a.view(1, 1, -1), b.view(1, 1, -1), padding=nb - 1).view(-1)
        start = (out.shape[0] - max(na, nb)) // 2
        return out[start:start + max(na, nb)]
    return torch.nn.functional.conv1d(a.view(1, 1, -1), b.view(1, 1, -1), padding=pad).view(-1)


@keras_op
def vander(x, N=None, increasing=False):  # noqa: N803 - Keras name
    """Vandermonde matrix of the 1-D `x`."""
    return torch.vander(to_tensor(x), N=N, increasing=increasing)


@keras_op
def trapezoid(y, x=None, dx=1.0, axis=-1):
    """Integral of `y` by the trapezoidal rule along `axis`."""
    y = to_tensor(y)
    if not y.is_floating_point():
        y = y.to(_td(_dtypes.floatx()))
    if x is None:
        return torch.trapezoid(y, dx=dx, dim=axis)
    return torch.trapezoid(y, to_tensor(x).to(y.dtype), dim=axis)


@keras_op
def corrcoef(x):
    """Pearson correlation coefficients of the rows of `x`."""
    x = to_tensor(x)
    if not x.is_floating_point():
        x = x.to(_td(_dtypes.floatx()))
    return torch.corrcoef(x)


def _window(name, fn):
    def window(x):
        return fn(int(x)).to(_td(_dtypes.floatx()))

    window.__name__ = window.__qualname__ = name
    window.__doc__ = f"The {name} window of `x` points (NumPy's symmetric window)."
    return keras_op(window, name=name)


bartlett = _window("bartlett", lambda m: torch.bartlett_window(m, periodic=False, dtype=torch.float64))
blackman = _window("blackman", lambda m: torch.blackman_window(m, periodic=False, dtype=torch.float64))
hamming = _window("hamming", lambda m: torch.hamming_window(m, periodic=False, dtype=torch.float64))
hanning = _window("hanning", lambda m: torch.hann_window(m, periodic=False, dtype=torch.float64))


@keras_op
def kaiser(x, beta):
    """The Kaiser window of `x` points with shape parameter `beta`."""
    return torch.kaiser_window(int(x), periodic=False, beta=float(beta), dtype=torch.float64).to(
        _td(_dtypes.floatx()))


@keras_op
def polar(abs_, angle):
    """Complex numbers from magnitudes and angles."""
    a, t = to_tensor(abs_), to_tensor(angle)
    if not a.is_floating_point():
        a = a.to(_td(_dtypes.floatx()))
    return torch.polar(a, t.to(a.dtype))

