"""More of Keras 2's backend functions (`from keras import backend as K`):
the loop functions (`K.rnn`, `K.map_fn`, `K.foldl`, `K.foldr`), the
convolution, pooling and resizing functions (`K.conv1d` ... `K.pool3d`,
`K.resize_images`, `K.spatial_3d_padding`), the batch-normalization helpers
custom normalization layers are written with (`K.batch_normalization`,
`K.normalize_batch_in_training`, `K.moving_average_update`), `K.in_top_k`
and a few state helpers. Each follows its tf.keras 2.x definition (argument
names, defaults, kernel layouts, data formats, "causal" and "same"
padding) on torch tensors; re-exported by `kerasish.backend`.

`K.rnn` runs a Python loop over the time steps calling `step_function`, as
tf.keras 2's unrolled path does: it is how custom recurrent code written
against the backend runs; the built-in recurrent layers use torch's fused
kernels instead.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F

from kerasish.backend import config as _config
from kerasish.backend.keras2 import _t

__all__ = [
    "batch_normalization",
    "conv1d",
    "conv2d",
    "conv2d_transpose",
    "conv3d",
    "depthwise_conv2d",
    "foldl",
    "foldr",
    "in_top_k",
    "learning_phase_scope",
    "manual_variable_initialization",
    "map_fn",
    "moving_average_update",
    "normalize_batch_in_training",
    "pool2d",
    "pool3d",
    "reset_uids",
    "resize_images",
    "resize_volumes",
    "rnn",
    "separable_conv2d",
    "spatial_3d_padding",
    "to_dense",
]


def _data_format(data_format):
    data_format = _config.image_data_format() if data_format is None else data_format
    if data_format not in ("channels_first", "channels_last"):
        raise ValueError(f"Unknown data_format: {data_format}")
    return data_format


def _ops():
    from kerasish.ops import nn_conv

    return nn_conv


# ---------------------------------------------------------------- loops
def _structure_map(fn, value):
    if isinstance(value, (list, tuple)):
        return type(value)(_structure_map(fn, v) for v in value)
    return fn(value)


def _flatten(value):
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _flatten(v)]
    return [value]


def rnn(step_function, inputs, initial_states, go_backwards=False, mask=None, constants=None, unroll=False,
        input_length=None, time_major=False, zero_output_for_mask=False, return_all_outputs=True):
    """Iterates `step_function(input_t, states + constants) -> (output_t, new_states)` over the time
    dimension of `inputs` (`(batch, time, ...)`, or `(time, batch, ...)` with `time_major=True`).

    Where `mask` (`(batch, time)`) is False a step keeps the previous states and repeats the
    previous output (zeros with `zero_output_for_mask=True`), as tf.keras 2 does. `unroll` and
    `input_length` are accepted and change nothing (there is no graph to unroll).

    Returns:
        `(last_output, outputs, new_states)`: `outputs` is `(batch, time, ...)` (time first with
        `time_major=True`; a single step when `return_all_outputs=False`), `new_states` a list.
    """
    del unroll, input_length
    inputs = _structure_map(_t, inputs)
    flat_inputs = _flatten(inputs)
    if any(t.ndim < 3 for t in flat_inputs):
        raise ValueError(f"`K.rnn` expects inputs of rank 3 or more. Received: shapes="
                         f"{[tuple(t.shape) for t in flat_inputs]}")
    if not time_major:
        inputs = _structure_map(lambda t: t.transpose(0, 1), inputs)
    steps = _flatten(inputs)[0].shape[0]
    states = list(initial_states)
    constants = list(constants or [])
    if mask is not None:
        mask = _t(mask).bool()
        if mask.ndim == 2:
            mask = mask.unsqueeze(-1)
        if not time_major:
            mask = mask.transpose(0, 1)
        if not states:
            raise ValueError("`K.rnn`: a `mask` needs states to carry over the masked steps (no initial_states "
                             "were given).")

    def expand(mask_t, like):
        while mask_t.ndim < like.ndim:
            mask_t = mask_t.unsqueeze(-1)
        return mask_t

    order = range(steps - 1, -1, -1) if go_backwards else range(steps)
    outputs, prev = [], None
    for t in order:
        input_t = _structure_map(lambda x, t=t: x[t], inputs)
        output, new_states = step_function(input_t, tuple(states) + tuple(constants))
        new_states = list(new_states) if isinstance(new_states, (list, tuple)) else [new_states]
        if mask is not None:
            mask_t = mask[t]
            if prev is None:
                prev = torch.zeros_like(output)
            fallback = torch.zeros_like(output) if zero_output_for_mask else prev
            output = torch.where(expand(mask_t, output), output, fallback)
            new_states = [torch.where(expand(mask_t, s), s, ps) for s, ps in zip(new_states, states)]
        states = new_states
        prev = output
        if return_all_outputs or not outputs:
            outputs.append(output)
        else:
            outputs[0] = output
    stacked = torch.stack(outputs, 0)
    if not time_major:
        stacked = stacked.transpose(0, 1)
    return outputs[-1], stacked, states


def _unstack(elems):
    if isinstance(elems, (list, tuple)):
        parts = [_unstack(e) for e in elems]
        return [type(elems)(p) for p in zip(*parts)]
    return list(_t(elems).unbind(0))


def _stack(values):
    first = values[0]
    if isinstance(first, (list, tuple)):
        return type(first)(_stack([v[i] for v in values]) for i in range(len(first)))
    return torch.stack([_t(v) for v in values], 0)


def map_fn(fn, elems, name=None, dtype=None):
    """`fn` applied to each slice of `elems` along its first axis, the results stacked
    (TensorFlow's `map_fn`; `elems` may be a tuple of tensors sliced together)."""
    del name
    out = _stack([fn(e) for e in _unstack(elems)])
    if dtype is not None:
        from kerasish.backend.dtypes import to_torch_dtype

        out = _structure_map(lambda t: t.to(to_torch_dtype(dtype)), out)
    return out


def foldl(fn, elems, initializer=None, name=None):
    """`fn(acc, x)` accumulated over `elems` along its first axis, left to right; `initializer`
    defaults to the first element."""
    del name
    items = _unstack(elems)
    acc = initializer
    if acc is None:
        acc, items = items[0], items[1:]
    for x in items:
        acc = fn(acc, x)
    return acc


def foldr(fn, elems, initializer=None, name=None):
    """`foldl` from right to left; `initializer` defaults to the last element."""
    del name
    items = _unstack(elems)[::-1]
    acc = initializer
    if acc is None:
        acc, items = items[0], items[1:]
    for x in items:
        acc = fn(acc, x)
    return acc


# ------------------------------------------------------ convolutions, pooling
def conv1d(x, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    """1D convolution with a Keras `(width, in, out)` kernel; "causal" pads on the left."""
    data_format = _data_format(data_format)
    x, kernel = _t(x), _t(kernel)
    if padding == "causal":
        left = dilation_rate * (kernel.shape[0] - 1)
        pad = (0, 0, left, 0) if data_format == "channels_last" else (left, 0)
        x = F.pad(x, pad)
        padding = "valid"
    return _ops().conv(x, kernel, strides, padding, data_format, dilation_rate)


def conv2d(x, kernel, strides=(1, 1), padding="valid", data_format=None, dilation_rate=(1, 1)):
    """2D convolution with a Keras `(h, w, in, out)` kernel."""
    return _ops().conv(_t(x), _t(kernel), strides, padding, _data_format(data_format), dilation_rate)


def conv3d(x, kernel, strides=(1, 1, 1), padding="valid", data_format=None, dilation_rate=(1, 1, 1)):
    """3D convolution with a Keras `(d, h, w, in, out)` kernel."""
    return _ops().conv(_t(x), _t(kernel), strides, padding, _data_format(data_format), dilation_rate)


def depthwise_conv2d(x, depthwise_kernel, strides=(1, 1), padding="valid", data_format=None, dilation_rate=(1, 1)):
    """Depthwise 2D convolution with a `(h, w, in, multiplier)` kernel."""
    return _ops().depthwise_conv(_t(x), _t(depthwise_kernel), strides, padding, _data_format(data_format),
                                 dilation_rate)


def separable_conv2d(x, depthwise_kernel, pointwise_kernel, strides=(1, 1), padding="valid", data_format=None,
                     dilation_rate=(1, 1)):
    """Depthwise 2D convolution followed by a 1x1 pointwise one."""
    return _ops().separable_conv(_t(x), _t(depthwise_kernel), _t(pointwise_kernel), strides, padding,
                                 _data_format(data_format), dilation_rate)


def conv2d_transpose(x, kernel, output_shape, strides=(1, 1), padding="valid", data_format=None,
                     dilation_rate=(1, 1)):
    """Transposed 2D convolution with a Keras `(h, w, out, in)` kernel, to `output_shape` (the full
    output shape, batch first, in `data_format`), as TensorFlow's `conv2d_transpose`."""
    from kerasish.layers.convolutional.base_conv_transpose import transpose_output_length

    data_format = _data_format(data_format)
    x, kernel = _t(x), _t(kernel)
    strides = (strides, strides) if isinstance(strides, int) else tuple(strides)
    dilation = (dilation_rate, dilation_rate) if isinstance(dilation_rate, int) else tuple(dilation_rate)
    output_shape = [int(v) for v in output_shape]
    spatial_in = x.shape[1:3] if data_format == "channels_last" else x.shape[2:4]
    spatial_out = output_shape[1:3] if data_format == "channels_last" else output_shape[2:4]
    out_pad = []
    for n_in, n_out, k, s, d in zip(spatial_in, spatial_out, kernel.shape[:2], strides, dilation):
        base = transpose_output_length(int(n_in), int(k), s, padding, 0, d)
        if not 0 <= n_out - base < max(s, 1):
            raise ValueError(f"`K.conv2d_transpose`: output_shape={tuple(output_shape)} cannot come from an input "
                             f"of spatial shape {tuple(spatial_in)} with strides={strides}, padding={padding!r}.")
        out_pad.append(n_out - base)
    return _ops().conv_transpose(x, kernel, strides, padding, tuple(out_pad), data_format, dilation)


def _pool(x, pool_size, strides, padding, data_format, pool_mode, rank):
    if pool_mode not in ("max", "avg"):
        raise ValueError(f"Invalid pool_mode: {pool_mode}. Expected one of 'max', 'avg'.")
    data_format = _data_format(data_format)
    op = _ops().max_pool if pool_mode == "max" else _ops().average_pool
    return op(_t(x), pool_size, strides, padding, data_format)


def pool2d(x, pool_size, strides=(1, 1), padding="valid", data_format=None, pool_mode="max"):
    """2D max (`pool_mode="max"`) or average (`"avg"`) pooling."""
    return _pool(x, pool_size, strides, padding, data_format, pool_mode, 2)


def pool3d(x, pool_size, strides=(1, 1, 1), padding="valid", data_format=None, pool_mode="max"):
    """3D max or average pooling."""
    return _pool(x, pool_size, strides, padding, data_format, pool_mode, 3)


def resize_images(x, height_factor, width_factor, data_format, interpolation="nearest"):
    """Scales the height and width of a 4D batch by integer factors: "nearest" repeats rows and
    columns; other interpolations resize to `(h * height_factor, w * width_factor)`."""
    data_format = _data_format(data_format)
    x = _t(x)
    h_axis, w_axis = (1, 2) if data_format == "channels_last" else (2, 3)
    if interpolation == "nearest":
        return x.repeat_interleave(int(height_factor), h_axis).repeat_interleave(int(width_factor), w_axis)
    from kerasish.ops import image

    size = (int(x.shape[h_axis]) * int(height_factor), int(x.shape[w_axis]) * int(width_factor))
    return image.resize(x, size, interpolation=interpolation, data_format=data_format)


def resize_volumes(x, depth_factor, height_factor, width_factor, data_format):
    """Repeats the depth, height and width of a 5D batch by integer factors."""
    data_format = _data_format(data_format)
    x = _t(x)
    first = 1 if data_format == "channels_last" else 2
    for axis, factor in zip(range(first, first + 3), (depth_factor, height_factor, width_factor)):
        x = x.repeat_interleave(int(factor), axis)
    return x


def spatial_3d_padding(x, padding=((1, 1), (1, 1), (1, 1)), data_format=None):
    """Zero-pads the three spatial dimensions of a 5D batch by `((d0, d1), (h0, h1), (w0, w1))`."""
    data_format = _data_format(data_format)
    x = _t(x)
    if len(padding) != 3 or any(len(p) != 2 for p in padding):
        raise ValueError(f"`K.spatial_3d_padding` expects padding=((d0, d1), (h0, h1), (w0, w1)). "
                         f"Received: padding={padding}")
    flat = [int(v) for pair in reversed(padding) for v in pair]
    if data_format == "channels_last":
        flat = [0, 0] + flat
    return F.pad(x, flat)


# ---------------------------------------------------------- normalization
def batch_normalization(x, mean, var, beta, gamma, axis=-1, epsilon=1e-3):
    """`(x - mean) / sqrt(var + epsilon) * gamma + beta`. For a 4D `x` with `axis` 1 or -1 the 1D
    statistics apply along that axis (tf.keras 2's fused path); otherwise they broadcast."""
    x = _t(x)
    mean, var = _t(mean), _t(var)
    beta = None if beta is None else _t(beta)
    gamma = None if gamma is None else _t(gamma)
    if x.ndim == 4 and axis in (1, -1, 3) and mean.ndim == 1:
        channel = 1 if axis == 1 else 3
        shape = [1, 1, 1, 1]
        shape[channel] = -1

        def reshape(t):
            return None if t is None else (t.reshape(shape) if t.ndim == 1 else t)

        mean, var, beta, gamma = (reshape(t) for t in (mean, var, beta, gamma))
    out = (x - mean) * torch.rsqrt(var + epsilon)
    if gamma is not None:
        out = out * gamma
    if beta is not None:
        out = out + beta
    return out


def normalize_batch_in_training(x, gamma, beta, reduction_axes, epsilon=1e-3):
    """`(normalized, mean, variance)`: `x` normalized with its moments over `reduction_axes`
    (the biased variance), then scaled by `gamma` and shifted by `beta`.

    The returned variance is the biased one, except for a 4D `x` reduced over `[0, 1, 2]`: there
    tf.keras 2 runs TensorFlow's fused batch norm, which returns the Bessel-corrected variance
    (`n / (n - 1)` times; the normalization itself uses the biased one). (tf.keras 2 does the same
    for `[0, 2, 3]` only where TensorFlow has an NCHW kernel, i.e. on a GPU; kerasish follows its
    CPU behaviour there: biased.)"""
    x = _t(x)
    axes = sorted(a % x.ndim for a in reduction_axes)
    mean = x.mean(dim=axes)
    var = x.var(dim=axes, unbiased=False)
    fused = x.ndim == 4 and axes == [0, 1, 2]
    keep = [1 if i in axes else x.shape[i] for i in range(x.ndim)]

    def shaped(t):
        if t is None:
            return None
        t = _t(t)
        return t.reshape(keep) if t.ndim == 1 and t.numel() == mean.numel() else t

    out = (x - mean.reshape(keep)) * torch.rsqrt(var.reshape(keep) + epsilon)
    gamma, beta = shaped(gamma), shaped(beta)
    if gamma is not None:
        out = out * gamma
    if beta is not None:
        out = out + beta
    if fused:
        n = x.numel() // max(mean.numel(), 1)
        var = var * (n / max(n - 1, 1))
    return out, mean, var


def moving_average_update(x, value, momentum):
    """`x = x * momentum + value * (1 - momentum)` on the variable `x`, which is returned."""
    value = _t(value)
    data = x.value if hasattr(x, "value") and not isinstance(x, torch.Tensor) else x
    with torch.no_grad():
        data.sub_((data - value.to(data.dtype)) * (1 - momentum))
    return x


# ------------------------------------------------------------------ misc
def in_top_k(predictions, targets, k):
    """Whether each target's prediction is among its row's `k` largest (ties with the k-th value
    count as in, a non-finite target prediction as out): a bool tensor `(batch,)`."""
    predictions = _t(predictions)
    targets = _t(targets).long().reshape(-1)
    target = predictions.gather(1, targets.unsqueeze(1))
    larger = (predictions > target).sum(1)
    return (larger < k) & torch.isfinite(target.squeeze(1))


def reset_uids() -> None:
    """Resets the counters behind automatic layer names (`dense`, `dense_1`, ...)."""
    from kerasish.utils import naming

    naming._name_uids.clear()


_MANUAL_INIT = [False]


def manual_variable_initialization(value: bool) -> None:
    """Kept for Keras 2 programs; variables are always initialized when created, so the flag
    changes nothing."""
    _MANUAL_INIT[0] = bool(value)


def to_dense(tensor):
    """A dense copy of a sparse tensor (dense tensors are returned as they are)."""
    tensor = _t(tensor)
    return tensor.to_dense() if tensor.is_sparse else tensor


@contextlib.contextmanager
def learning_phase_scope(value):
    raise NotImplementedError(
        "`K.learning_phase_scope` is not supported (it was deprecated in TF 2.x): pass `training=True/False` "
        "to the model or layer call instead, or use `model.train()` / `model.eval()`."
    )
    yield  # pragma: no cover
