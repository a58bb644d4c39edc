"""Array creation and shape manipulation `keras.ops` (NumPy-style).

Creation ops default to `floatx()` (`zeros`, `ones`, `eye`, `linspace`) or
to the Keras type of their arguments (`arange(3)` is int32, `full(s, 1)` is
int32), as Keras 3 does on torch.
"""

from __future__ import annotations

import builtins

import torch

from kerasish.backend import dtypes as _dtypes
from kerasish.ops.operation import keras_op
from kerasish.backend.promotion import dtype_of
from kerasish.backend.promotion import result_type
from kerasish.backend.promotion import to_tensor


def _td(dtype):
    return _dtypes.to_torch_dtype(dtype)


def _shape(shape):
    if isinstance(shape, int):
        return (shape,)
    return tuple(int(s) for s in shape)


@keras_op
def arange(start, stop=None, step=None, dtype=None):
    """Evenly spaced values in `[start, stop)`; int32 for int arguments."""
    if stop is None:
        start, stop = 0, start
    if step is None:
        step = 1
    if dtype is None:
        dtype = result_type(*(dtype_of(v) for v in (start, stop, step)))
    return torch.arange(start, stop, step, dtype=_td(dtype))


@keras_op
def array(x, dtype=None):
    """`x` as a tensor (same as `convert_to_tensor`)."""
    return to_tensor(x, dtype)


@keras_op
def zeros(shape, dtype=None):
    """A tensor of zeros; `floatx()` by default."""
    return torch.zeros(_shape(shape), dtype=_td(dtype))


@keras_op
def ones(shape, dtype=None):
    """A tensor of ones; `floatx()` by default."""
    return torch.ones(_shape(shape), dtype=_td(dtype))


@keras_op
def empty(shape, dtype=None):
    """An uninitialised tensor (zeros here, for reproducibility)."""
    return torch.zeros(_shape(shape), dtype=_td(dtype))


@keras_op
def full(shape, fill_value, dtype=None):
    """A tensor filled with `fill_value`; `floatx()` by default."""
    fill = to_tensor(fill_value).to(_td(dtype))
    return fill.expand(_shape(shape)).clone()


def _like_dtype(x, dtype):
    return x.dtype if dtype is None else _td(dtype)


@keras_op
def zeros_like(x, dtype=None):
    """Zeros with the shape (and by default the dtype) of `x`."""
    x = to_tensor(x)
    return torch.zeros_like(x, dtype=_like_dtype(x, dtype))


@keras_op
def ones_like(x, dtype=None):
    """Ones with the shape (and by default the dtype) of `x`."""
    x = to_tensor(x)
    return torch.ones_like(x, dtype=_like_dtype(x, dtype))


@keras_op
def empty_like(x, dtype=None):
    """An uninitialised tensor like `x` (zeros here)."""
    x = to_tensor(x)
    return torch.zeros_like(x, dtype=_like_dtype(x, dtype))


@keras_op
def full_like(x, fill_value, dtype=None):
    """`fill_value` with the shape (and by default the dtype) of `x`."""
    x = to_tensor(x)
    dt = _like_dtype(x, dtype)
    return to_tensor(fill_value).to(dtype=dt, device=x.device).expand(x.shape).clone()


@keras_op
def eye(N, M=None, k=0, dtype=None):  # noqa: N803 - Keras names
    """An `N x M` matrix with ones on the `k`-th diagonal."""
    M = N if M is None else M  # noqa: N806
    return torch.ones(N, M, dtype=_td(dtype)).triu(k).tril(k)


@keras_op
def identity(n, dtype=None):
    """The `n x n` identity matrix."""
    return torch.eye(n, dtype=_td(dtype))


@keras_op
def tri(N, M=None, k=0, dtype=None):  # noqa: N803 - Keras names
    """Ones at and below the `k`-th diagonal of an `N x M` matrix."""
    M = N if M is None else M  # noqa: N806
    return torch.ones(N, M, dtype=_td(dtype)).tril(k)


@keras_op
def linspace(start, stop, num=50, endpoint=True, retstep=False, dtype=None, axis=0):
    """`num` evenly spaced values from `start` to `stop`, rounded as Keras's
    torch backend rounds them: scalar ends go through `torch.linspace`; tensor
    or array ends (0-d too) are `start + (k / (num - 1)) * (stop - start)`;
    without the endpoint, `stop` first moves back by one step. Unlike Keras's
    torch backend, `axis` may be given and `num=1` gives `start` (not NaN)."""
    dt = _td(dtype)
    work = _work_dtype(dt)
    if _scalar_ends(start, stop):  # Python / NumPy scalars: their own arithmetic, as Keras does it
        span = stop - start
        step = span / (num - 1) if endpoint and num > 1 else span / num if not endpoint and num > 0 else float("nan")
        if not endpoint and num > 1:
            stop = stop - span / num
        out = torch.linspace(float(start), float(stop), num, dtype=work, device=_device_of(start, stop))
        out = out.to(dt)
        return (out, step) if retstep else out  # (the step as Keras gives it: a Python float here)
    start_t = to_tensor(start).to(work)
    stop_t = to_tensor(stop).to(work)
    span = stop_t - start_t
    div = (num - 1) if endpoint else num
    step = span / div if div > 0 else torch.full_like(span, float("nan"))
    if not endpoint and num > 1:
        stop_t = stop_t - span / num
    out = spaced_grid(start_t, stop_t, num)
    out = torch.moveaxis(out, 0, axis) if out.ndim > 1 else out
    out = out.to(dt)
    return (out, step) if retstep else out


@keras_op
def logspace(start, stop, num=50, endpoint=True, base=10, dtype=None, axis=0):
    """`base ** linspace(start, stop, num)`, rounded as Keras's torch backend
    rounds it: scalar ends through `torch.logspace`, tensor or array ends as
    `base ** (start + k / (num - 1) * (stop - start))`."""
    dt = _td(dtype)
    work = _work_dtype(dt)
    if _scalar_ends(start, stop):
        if not endpoint:
            stop = stop - (stop - start) / num
        out = torch.logspace(float(start), float(stop), num, base=base, dtype=work, device=_device_of(start, stop))
        return out.to(dt)
    start_t, stop_t = to_tensor(start).to(work), to_tensor(stop).to(work)
    if not endpoint:
        stop_t = stop_t - (stop_t - start_t) / num
    return _power_grid(start_t, stop_t, num, base, axis).to(dt)


def _scalar_ends(start, stop) -> bool:
    """Keras's torch backend sends ends that are not both sized (`__len__`: tensors and arrays, 0-d
    ones too) through torch.linspace/logspace; here only 0-d ones can go that way."""
    if hasattr(start, "__len__") and hasattr(stop, "__len__"):
        return False
    return all(getattr(v, "ndim", 0) == 0 for v in (start, stop))


def _device_of(*values):
    return next((v.device for v in values if isinstance(v, torch.Tensor)), None)


def _work_dtype(dt):
    """The dtype the spacing ops compute in: float32 for half precision and non-float results."""
    return torch.float32 if dt in (torch.float16, torch.bfloat16) or not dt.is_floating_point else dt


def spaced_grid(start_t: torch.Tensor, stop_t: torch.Tensor, num: int) -> torch.Tensor:
    """`start + (k / (num - 1)) * (stop - start)` for k in [0, num), stacked on a new first axis:
    Keras's torch-backend linspace of tensor ends, which rounds differently from `torch.linspace`
    (num=1: `start`, where Keras divides by zero)."""
    if num == 1:
        return torch.broadcast_to(start_t, torch.broadcast_shapes(start_t.shape, stop_t.shape))[None]
    ndim = builtins.max(start_t.ndim, stop_t.ndim)
    frac = (torch.arange(num, dtype=start_t.dtype, device=start_t.device) / (num - 1)).reshape((num,) + (1,) * ndim)
    return start_t[None] + frac * (stop_t - start_t)[None]


def _power_grid(start_t, stop_t, num, base, axis):
    """`base ** spaced_grid(start, stop, num)`, the grid's axis moved to `axis`."""
    out = base ** spaced_grid(start_t, stop_t, num)
    return torch.moveaxis(out, 0, axis) if out.ndim > 1 else out


@keras_op
def geomspace(start, stop, num=50, endpoint=True, dtype=None, axis=0):
    """`num` values spaced evenly on a log scale from `start` to `stop`, as
    Keras computes them: `sign(start) * 10 ** linspace(log10|start|, log10|stop|)`
    (so negative ends work too)."""
    dt = _td(dtype)
    work = _work_dtype(dt)
    start_t, stop_t = to_tensor(start).to(work), to_tensor(stop).to(work)
    log_start, log_stop = torch.log10(torch.abs(start_t)), torch.log10(torch.abs(stop_t))
    if not endpoint:
        log_stop = log_stop - (log_stop - log_start) / num
    out = _power_grid(log_start, log_stop, num, 10, 0) * torch.sign(start_t)
    out = torch.moveaxis(out, 0, axis) if out.ndim > 1 else out
    return out.to(dt)


@keras_op
def reshape(x, newshape):
    """`x` with shape `newshape` (one entry may be -1)."""
    return torch.reshape(to_tensor(x), _shape(newshape))


@keras_op
def transpose(x, axes=None):
    """Permutes the axes of `x` (reverses them by default)."""
    x = to_tensor(x)
    if axes is None:
        return x.permute(*range(x.ndim - 1, -1, -1))
    return x.permute(*axes)


@keras_op
def expand_dims(x, axis):
    """Inserts size-1 axes at `axis` (an int or a tuple)."""
    x = to_tensor(x)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    ndim = x.ndim + len(axes)
    for a in sorted(a % ndim for a in axes):
        x = x.unsqueeze(a)
    return x


@keras_op
def squeeze(x, axis=None):
    """Removes size-1 axes (all, or those in `axis`)."""
    x = to_tensor(x)
    if axis is None:
        return torch.squeeze(x)
    axes = (axis,) if isinstance(axis, int) else tuple(axis)
    for a in axes:
        if x.shape[a] != 1:
            raise ValueError(f"Cannot squeeze axis {a}, because the dimension is not 1. Received: axis={axis}")
    return torch.squeeze(x, dim=axes)


def _promoted(xs):
    ts = [to_tensor(x) for x in xs]
    dt = _td(result_type(*(t.dtype for t in ts))) if len({t.dtype for t in ts}) > 1 else ts[0].dtype
    return [t.to(dt) for t in ts]


@keras_op
def concatenate(xs, axis=0):
    """Joins tensors along an existing `axis` (None: flattened first)."""
    ts = _promoted(xs)
    if axis is None:
        return torch.cat([t.reshape(-1) for t in ts])
    return torch.cat(ts, dim=axis)


@keras_op
def stack(x, axis=0):
    """Joins tensors along a new `axis`."""
    return torch.stack(_promoted(x), dim=axis)


@keras_op
def hstack(xs):
    """Stacks tensors horizontally (column-wise)."""
    return torch.hstack(_promoted(xs))


@keras_op
def vstack(xs):
    """Stacks tensors vertically (row-wise)."""
    return torch.vstack(_promoted(xs))


@keras_op
def dstack(xs):
    """Stacks tensors along the third axis."""
    return torch.dstack(_promoted(xs))


@keras_op
def append(x1, x2, axis=None):
    """`x2` appended to `x1` along `axis` (flattened if None)."""
    a, b = _promoted([x1, x2])
    if axis is None:
        return torch.cat([a.reshape(-1), b.reshape(-1)])
    return torch.cat([a, b], dim=axis)


def _split(x, indices_or_sections, axis, strict):
    x = to_tensor(x)
    if isinstance(indices_or_sections, int):
        n, size = indices_or_sections, x.shape[axis]
        if strict and size % n:
            raise ValueError(
                f"array split does not result in an equal division: {size} elements on axis {axis} "
                f"into {n} sections. Received: indices_or_sections={indices_or_sections}"
            )
        base, extra = divmod(size, n)
        return list(torch.split(x, [base + 1] * extra + [base] * (n - extra), dim=axis))
    bounds = [0, *[int(i) for i in indices_or_sections], x.shape[axis]]
    return list(torch.split(x, [builtins.max(b - a, 0) for a, b in zip(bounds[:-1], bounds[1:])], dim=axis))


@keras_op
def split(x, indices_or_sections, axis=0):
    """Splits `x` into equal sections or at the given indices."""
    return _split(x, indices_or_sections, axis, True)


@keras_op
def array_split(x, indices_or_sections, axis=0):
    """Like `split`, but sections may differ in size by one."""
    return _split(x, indices_or_sections, axis, False)


@keras_op
def hsplit(x, indices_or_sections):
    """`split` along axis 1 (axis 0 for 1-D inputs)."""
    x = to_tensor(x)
    return _split(x, indices_or_sections, 0 if x.ndim == 1 else 1, True)


@keras_op
def vsplit(x, indices_or_sections):
    """`split` along axis 0."""
    return _split(x, indices_or_sections, 0, True)


@keras_op
def dsplit(x, indices_or_sections):
    """`split` along axis 2."""
    return _split(x, indices_or_sections, 2, True)


@keras_op
def tile(x, repeats):
    """Repeats `x` as a whole `repeats` times along each axis."""
    return torch.tile(to_tensor(x), (repeats,) if isinstance(repeats, int) else tuple(repeats))


@keras_op
def repeat(x, repeats, axis=None):
    """Repeats each element `repeats` times along `axis` (flattened if None)."""
    x = to_tensor(x)
    if axis is None:
        x, axis = x.reshape(-1), 0
    reps = repeats if isinstance(repeats, int) else to_tensor(repeats).to(torch.int64)
    return torch.repeat_interleave(x, reps, dim=axis)


@keras_op
def flip(x, axis=None):
    """Reverses the order of elements along `axis` (all axes if None)."""
    x = to_tensor(x)
    dims = tuple(range(x.ndim)) if axis is None else ((axis,) if isinstance(axis, int) else tuple(axis))
    return torch.flip(x, dims)


@keras_op
def fliplr(x):
    """Reverses axis 1."""
    return torch.flip(to_tensor(x), (1,))


@keras_op
def flipud(x):
    """Reverses axis 0."""
    return torch.flip(to_tensor(x), (0,))


@keras_op
def roll(x, shift, axis=None):
    """Rolls elements by `shift` along `axis` (of the flat tensor if None)."""
    x = to_tensor(x)
    if axis is None:
        return torch.roll(x.reshape(-1), shift).reshape(x.shape)
    return torch.roll(x, shift, dims=axis)


@keras_op
def rot90(array, k=1, axes=(0, 1)):
    """Rotates `array` by 90 degrees `k` times in the plane of `axes`."""
    return torch.rot90(to_tensor(array), k, tuple(axes))


@keras_op
def moveaxis(x, source, destination):
    """Moves axes `source` to positions `destination`."""
    return torch.movedim(to_tensor(x), source, destination)


@keras_op
def swapaxes(x, axis1, axis2):
    """Swaps two axes."""
    return torch.swapaxes(to_tensor(x), axis1, axis2)


@keras_op
def broadcast_to(x, shape):
    """Broadcasts `x` to `shape`."""
    return torch.broadcast_to(to_tensor(x), _shape(shape))


@keras_op
def ravel(x):
    """`x` flattened to 1-D."""
    return torch.reshape(to_tensor(x), (-1,))


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "symmetric": None, "edge": "replicate",
              "wrap": "circular"}


@keras_op
def pad(x, pad_width, mode="constant", constant_values=None):
    """Pads `x`; `pad_width` is `((before, after), ...)` per axis (NumPy form).

    Modes: "constant", "edge", "reflect", "symmetric", "wrap".
    """
    x = to_tensor(x)
    if mode not in _PAD_MODES:
        raise ValueError(f"`mode` must be one of {sorted(_PAD_MODES)}. Received: mode={mode}")
    if constant_values is not None and mode != "constant":
        raise ValueError(
            "Argument `constant_values` can only be provided when `mode == 'constant'`. "
            f"Received: mode={mode}"
        )
    width = [[int(p), int(p)] if isinstance(p, int) else [int(v) for v in p] for p in (
        [pad_width] * x.ndim if isinstance(pad_width, int) else pad_width)]
    if len(width) == 1 and x.ndim > 1:
        width = width * x.ndim
    if mode == "constant":
        flat = [v for pair in reversed(width) for v in pair]
        return torch.nn.functional.pad(x, flat, value=0 if constant_values is None else constant_values)
    for axis, (before, after) in enumerate(width):
        if before == 0 and after == 0:
            continue
        size = x.shape[axis]
        if mode == "edge":
            idx = torch.clamp(torch.arange(-before, size + after), 0, size - 1)
        elif mode == "wrap":
            idx = torch.remainder(torch.arange(-before, size + after), size)
        else:
            period = 2 * size - 2 if mode == "reflect" else 2 * size
            i = torch.remainder(torch.arange(-before, size + after), period)
            if mode == "reflect":
                idx = torch.where(i < size, i, period - i)
            else:
                idx = torch.where(i < size, i, period - 1 - i)
        x = torch.index_select(x, axis, idx.to(x.device))
    return x


@keras_op
def take(x, indices, axis=None):
    """Elements of `x` at `indices` along `axis` (flattened if None);
    negative indices count from the end."""
    x = to_tensor(x)
    idx = to_tensor(indices).to(torch.int64)
    if axis is None:
        x, axis = x.reshape(-1), 0
    axis = axis % x.ndim
    idx = torch.where(idx < 0, idx + x.shape[axis], idx)
    out = torch.index_select(x, axis, idx.reshape(-1))
    return out.reshape(x.shape[:axis] + idx.shape + x.shape[axis + 1:])


@keras_op
def take_along_axis(x, indices, axis=None):
    """`x` gathered at `indices` along `axis` (indices broadcast to `x`)."""
    x = to_tensor(x)
    idx = to_tensor(indices).to(torch.int64)
    if axis is None:
        x, axis = x.reshape(-1), 0
    axis = axis % x.ndim
    idx = torch.where(idx < 0, idx + x.shape[axis], idx)
    shape = list(torch.broadcast_shapes(x.shape[:axis] + (1,) + x.shape[axis + 1:],
                                        idx.shape[:axis] + (1,) + idx.shape[axis + 1:]))
    x_shape, i_shape = list(shape), list(shape)
    x_shape[axis], i_shape[axis] = x.shape[axis], idx.shape[axis]
    return torch.gather(x.expand(x_shape), axis, idx.expand(i_shape))


@keras_op
def get_item(x, key):
    """`x[key]`."""
    return to_tensor(x)[key]


@keras_op
def diag(x, k=0):
    """The `k`-th diagonal of a matrix, or a matrix with `x` on it."""
    return torch.diag(to_tensor(x), k)


@keras_op
def diagflat(x, k=0):
    """A matrix with the flattened `x` on its `k`-th diagonal."""
    return torch.diagflat(to_tensor(x), k)


@keras_op
def diagonal(x, offset=0, axis1=0, axis2=1):
    """The diagonal over `axis1`/`axis2`, as the last axis."""
    return torch.diagonal(to_tensor(x), offset=offset, dim1=axis1, dim2=axis2)


@keras_op
def tril(x, k=0):
    """Lower triangle of (the last two axes of) `x`."""
    return torch.tril(to_tensor(x), k)


@keras_op
def triu(x, k=0):
    """Upper triangle of (the last two axes of) `x`."""
    return torch.triu(to_tensor(x), k)


@keras_op
def meshgrid(*x, indexing="xy"):
    """Coordinate grids from 1-D coordinate vectors."""
    if indexing not in ("xy", "ij"):
        raise ValueError(f"Valid values for `indexing` are 'xy' and 'ij'. Received: indexing={indexing}")
    return list(torch.meshgrid(*(to_tensor(v) for v in x), indexing=indexing))


@keras_op
def ndim(x):
    """Number of axes of `x` (an int)."""
    return to_tensor(x).ndim


@keras_op
def size(x):
    """Number of elements of `x`, as a 0-d int64 tensor (Keras on torch)."""
    x = to_tensor(x)
    return torch.tensor(x.numel(), device=x.device)


@keras_op
def view(x, dtype=None):
    """`x` reinterpreted as `dtype` (same bytes)."""
    x = to_tensor(x)
    return x if dtype is None else x.view(_td(dtype))


@keras_op
def view_as_complex(x):
    """A real `(..., 2)` tensor read as complex."""
    return torch.view_as_complex(to_tensor(x).contiguous())


@keras_op
def view_as_real(x):
    """A complex tensor read as real `(..., 2)`."""
    return torch.view_as_real(to_tensor(x))
