"""`keras.ops.nn` convolutions, pooling and CTC.

Keras layouts: inputs are channels-last unless `data_format` (default
`keras.config.image_data_format()`) says otherwise; conv kernels are
`(*spatial, in, out)`, depthwise kernels `(*spatial, in, multiplier)`,
transposed-conv kernels `(*spatial, out, in)`. "same" padding is TF's
(the odd extra pixel goes after), applied with an explicit pad so every
stride works; average pooling with "same" excludes the padding from the
mean, as Keras does.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kerasish.backend import config as _config
from kerasish.backend import dtypes as _dtypes
from kerasish.layers.convolutional.base_conv_transpose import transpose_plan
from kerasish.layers.convolutional.conv_utils import same_padding
from kerasish.ops.operation import keras_op
from kerasish.backend.promotion import to_tensor

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_CONV_T = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}
_MAX_POOL = {1: F.max_pool1d, 2: F.max_pool2d, 3: F.max_pool3d}
_AVG_POOL = {1: F.avg_pool1d, 2: F.avg_pool2d, 3: F.avg_pool3d}


def _fmt(data_format):
    data_format = _config.image_data_format() if data_format is None else data_format
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(
            "The `data_format` argument must be one of {'channels_first', 'channels_last'}. "
            f"Received: data_format={data_format}"
        )
    return data_format


def _tuple(value, rank, name):
    if isinstance(value, int):
        return (value,) * rank
    value = tuple(int(v) for v in value)
    if len(value) != rank:
        raise ValueError(f"`{name}` must be an int or a tuple of {rank} ints. Received: {name}={value}")
    return value


def _to_nc(x, data_format):
    return torch.movedim(x, -1, 1) if data_format == "channels_last" else x


def _from_nc(x, data_format):
    return torch.movedim(x, 1, -1) if data_format == "channels_last" else x


def _padding(padding):
    padding = padding.lower() if isinstance(padding, str) else padding
    if padding not in ("valid", "same"):
        raise ValueError(f"`padding` must be either 'valid' or 'same'. Received: padding={padding}")
    return padding


def _same_pad(x, kernel, strides, dilation, value=0.0):
    pads = []
    for n, k, s, d in zip(x.shape[2:], kernel, strides, dilation):
        pads.append(same_padding(int(n), (k - 1) * d + 1, s))
    flat = [v for pair in reversed(pads) for v in pair]
    return F.pad(x, flat, value=value) if any(flat) else x


def _prep(inputs, kernel):
    x, w = to_tensor(inputs), to_tensor(kernel)
    if not x.is_floating_point():
        x = x.to(_dtypes.to_torch_dtype(_dtypes.floatx()))
    return x, w.to(x.dtype)


def _conv(x, w, strides, padding, data_format, dilation_rate, groups):
    rank = x.ndim - 2
    data_format, padding = _fmt(data_format), _padding(padding)
    strides, dilation = _tuple(strides, rank, "strides"), _tuple(dilation_rate, rank, "dilation_rate")
    x = _to_nc(x, data_format)
    if padding == "same":
        x = _same_pad(x, w.shape[2:], strides, dilation)
    return _from_nc(_CONV[rank](x, w, None, strides, 0, dilation, groups), data_format)


def _kernel_oi(w):
    """Keras `(*spatial, in, out)` -> torch `(out, in, *spatial)`."""
    return w.permute(w.ndim - 1, w.ndim - 2, *range(w.ndim - 2))


@keras_op
def conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    """N-D convolution (N = 1, 2, 3) with a `(*spatial, in, out)` kernel."""
    x, w = _prep(inputs, kernel)
    if x.ndim - 2 not in _CONV:
        raise ValueError(f"Inputs to conv operation should have ndim=3, 4, or 5. Received: ndim={x.ndim}")
    channels = x.shape[-1] if _fmt(data_format) == "channels_last" else x.shape[1]
    groups = channels // w.shape[-2]
    if groups * w.shape[-2] != channels:
        raise ValueError(
            f"The number of input channels ({channels}) must be a multiple of the kernel's input channels "
            f"({w.shape[-2]}). Received: kernel.shape={tuple(w.shape)}"
        )
    return _conv(x, _kernel_oi(w), strides, padding, data_format, dilation_rate, groups)


@keras_op
def depthwise_conv(inputs, kernel, strides=1, padding="valid", data_format=None, dilation_rate=1):
    """Depthwise convolution with a `(*spatial, in, multiplier)` kernel."""
    x, w = _prep(inputs, kernel)
    c_in, mult = w.shape[-2], w.shape[-1]
    w = w.reshape(*w.shape[:-2], 1, c_in * mult)
    return _conv(x, _kernel_oi(w), strides, padding, data_format, dilation_rate, c_in)


@keras_op
def separable_conv(inputs, depthwise_kernel, pointwise_kernel, strides=1, padding="valid", data_format=None,
                   dilation_rate=1):
    """A depthwise convolution followed by a 1x1 pointwise convolution."""
    y = depthwise_conv.__wrapped_op__(inputs, depthwise_kernel, strides, padding, data_format, dilation_rate)
    return conv.__wrapped_op__(y, pointwise_kernel, 1, "valid", data_format, 1)


@keras_op
def conv_transpose(inputs, kernel, strides=1, padding="valid", output_padding=None, data_format=None,
                   dilation_rate=1):
    """N-D transposed convolution with a `(*spatial, out, in)` kernel."""
    x, w = _prep(inputs, kernel)
    rank = x.ndim - 2
    data_format, padding = _fmt(data_format), _padding(padding)
    strides, dilation = _tuple(strides, rank, "strides"), _tuple(dilation_rate, rank, "dilation_rate")
    out_pads = [None] * rank if output_padding is None else list(_tuple(output_padding, rank, "output_padding"))
    plans = [transpose_plan(k, s, d, padding, op) for k, s, d, op in zip(w.shape[:-2], strides, dilation, out_pads)]
    x = _to_nc(x, data_format)
    wt = w.permute(w.ndim - 1, w.ndim - 2, *range(w.ndim - 2))  # (in, out, *spatial)
    y = _CONV_T[rank](x, wt, None, strides, [p[0] for p in plans], [p[1] for p in plans], 1, dilation)
    index = [slice(None), slice(None)]
    tail = []
    for p, n in zip(plans, y.shape[2:]):
        end = n - p[3] if p[3] > 0 else n
        index.append(slice(p[2], end))
        tail.append((0, -p[3] if p[3] < 0 else 0))
    y = y[tuple(index)]
    flat = [v for pair in reversed(tail) for v in pair]
    if any(flat):
        y = F.pad(y, flat)
    return _from_nc(y, data_format)


def _pool(inputs, pool_size, strides, padding, data_format, mode):
    x = to_tensor(inputs)
    rank = x.ndim - 2
    if rank not in _MAX_POOL:
        raise ValueError(f"Inputs to pooling ops should have ndim=3, 4, or 5. Received: ndim={x.ndim}")
    data_format, padding = _fmt(data_format), _padding(padding)
    pool = _tuple(pool_size, rank, "pool_size")
    strides = pool if strides is None else _tuple(strides, rank, "strides")
    x = _to_nc(x, data_format)
    if mode == "max":
        if padding == "same":
            x = _same_pad(x, pool, strides, (1,) * rank, value=float("-inf"))
        y = _MAX_POOL[rank](x, pool, strides)
    else:
        pads = ([same_padding(int(n), k, st) for n, k, st in zip(x.shape[2:], pool, strides)]
                if padding == "same" else ())
        if pads and all(a == b for a, b in pads):
            # even padding: torch's kernel pads and leaves the padding out of the mean itself,
            # as Keras's torch backend does (bit-equal to it, and one pooling instead of two)
            y = _AVG_POOL[rank](x, pool, strides, [a for a, _ in pads], count_include_pad=False)
        elif padding == "same":
            # uneven padding: zeros in, divided by the count of real values (TF's rule; Keras's
            # torch backend pads by replicating the border, which counts border values twice)
            ones = _same_pad(torch.ones_like(x[:1, :1]), pool, strides, (1,) * rank)
            x = _same_pad(x, pool, strides, (1,) * rank)
            y = _AVG_POOL[rank](x, pool, strides) / _AVG_POOL[rank](ones, pool, strides)
        else:
            y = _AVG_POOL[rank](x, pool, strides)
    return _from_nc(y, data_format)


@keras_op
def max_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """N-D max pooling (`strides` defaults to `pool_size`)."""
    return _pool(inputs, pool_size, strides, padding, data_format, "max")


@keras_op
def average_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
    """N-D average pooling ("same" padding is excluded from the mean)."""
    return _pool(inputs, pool_size, strides, padding, data_format, "avg")


def _adaptive(inputs, output_size, data_format, kind):
    x = to_tensor(inputs)
    rank = x.ndim - 2
    data_format = _fmt(data_format)
    size = _tuple(output_size, rank, "output_size")
    fn = getattr(F, f"adaptive_{kind}_pool{rank}d")
    return _from_nc(fn(_to_nc(x, data_format), size), data_format)


@keras_op
def adaptive_average_pool(inputs, output_size, data_format=None):
    """Average pooling to a fixed `output_size` (torch's bin edges)."""
    return _adaptive(inputs, output_size, data_format, "avg")


@keras_op
def adaptive_max_pool(inputs, output_size, data_format=None):
    """Max pooling to a fixed `output_size` (torch's bin edges)."""
    return _adaptive(inputs, output_size, data_format, "max")


@keras_op
def ctc_loss(target, output, target_length, output_length, mask_index=0):
    """CTC loss per sample; `output` holds logits `(batch, time, classes)`
    and `mask_index` is the blank class."""
    output = to_tensor(output)
    if not output.is_floating_point():
        output = output.to(torch.float32)
    log_probs = torch.log_softmax(output, dim=-1).transpose(0, 1)
    return F.ctc_loss(log_probs, to_tensor(target).to(torch.int64), to_tensor(output_length).to(torch.int64),
                      to_tensor(target_length).to(torch.int64), blank=mask_index, reduction="none",
                      zero_infinity=False)


@keras_op
def ctc_decode(inputs, sequence_lengths, strategy="greedy", beam_width=100, top_paths=1, merge_repeated=True,
               mask_index=0):
    """CTC decoding of `(batch, time, classes)` scores; returns `(decoded,
    scores)`.

    - `strategy="greedy"`: `decoded` is `(1, batch, time)` int32 padded with
      -1 (repeats merged unless `merge_repeated=False`, `mask_index` dropped)
      and `scores` is minus the sum of the best input value per valid step
      (Keras's convention), shape `(batch, 1)`.
    - `strategy="beam_search"`: prefix beam search over the log-softmax of
      `inputs` keeping `beam_width` prefixes, each with the log-probability
      of its paths ending in a label and ending in the blank (`mask_index`);
      `decoded` is `(top_paths, batch, time)` int32 padded with -1 and
      `scores` `(batch, top_paths)` the paths' total log-probabilities, best
      first (repeats are always merged, as in Keras). As Keras, step 0 is
      read even for a zero length.
    """
    x = to_tensor(inputs)
    if not x.is_floating_point():
        x = x.to(torch.float32)
    if strategy == "beam_search":
        return _ctc_beam_search(x, to_tensor(sequence_lengths).to(torch.int64), int(beam_width), int(top_paths),
                                int(mask_index) if mask_index is not None else None)
    if strategy != "greedy":
        raise ValueError(f"Invalid strategy {strategy}. Supported values are 'greedy' and 'beam_search'.")
    lengths = to_tensor(sequence_lengths).to(torch.int64)
    # the score is minus the summed best input values, as Keras computes it
    best, idx = torch.max(x, dim=-1)
    t = torch.arange(x.shape[1], device=x.device)
    valid = t[None, :] < lengths[:, None]
    score = -torch.sum(torch.where(valid, best, torch.zeros_like(best)), dim=1, keepdim=True)
    keep = valid & (idx != mask_index)
    if merge_repeated:
        prev = torch.cat([torch.full_like(idx[:, :1], -1), idx[:, :-1]], dim=1)
        keep = keep & (idx != prev)
    out = torch.full_like(idx, -1)
    for b in range(idx.shape[0]):
        kept = idx[b][keep[b]]
        out[b, : kept.shape[0]] = kept
    return out.unsqueeze(0).to(torch.int32), score


def _scatter_logsumexp(values: torch.Tensor, index: torch.Tensor, size: int) -> torch.Tensor:
    """`log(sum(exp(values)))` of each group `index` (of `size` groups), with
    each group's own maximum subtracted (-inf for a group of -infs)."""
    peak = torch.full((size,), float("-inf"), dtype=values.dtype, device=values.device)
    peak = peak.scatter_reduce(0, index, values, reduce="amax", include_self=True)
    safe_peak = torch.where(torch.isfinite(peak), peak, torch.zeros_like(peak))
    total = torch.zeros(size, dtype=values.dtype, device=values.device)
    total.scatter_add_(0, index, torch.exp(values - safe_peak[index]))
    return torch.log(total) + safe_peak


def _ctc_beam_search(x, lengths, beam_width, top_paths, mask_index):
    """Prefix beam search (see `ctc_decode`). Each beam is a label prefix
    (a row padded with -1) with two log-probabilities: paths ending in a
    label (`emit`) and paths ending in the blank (`blank`). At each step a
    prefix is extended by every class: the blank keeps the prefix (blank
    track); the prefix's last label again keeps it from the emit track
    (a merged repeat) and appends it from the blank track; any other label
    appends it. Equal prefixes are merged in log space and the
    `beam_width` best totals kept."""
    batch, steps, classes = x.shape
    if mask_index is None:
        mask_index = classes - 1
    if not 0 <= mask_index < classes:
        raise ValueError(f"ctc_decode: `mask_index` must be in [0, {classes}). Received: mask_index={mask_index}")
    if beam_width < 1 or top_paths < 1:
        raise ValueError(f"ctc_decode: `beam_width` and `top_paths` must be >= 1. Received: beam_width={beam_width}, "
                         f"top_paths={top_paths}")
    logp = torch.log_softmax(x, dim=-1)
    device, neg_inf = x.device, float("-inf")
    labels = torch.tensor([c for c in range(classes) if c != mask_index], dtype=torch.int64, device=device)
    decoded = torch.full((top_paths, batch, steps), -1, dtype=torch.int32, device=device)
    scores_out = torch.full((batch, top_paths), neg_inf, dtype=x.dtype, device=device)
    for b, n in enumerate(lengths.tolist()):
        lp = logp[b]
        # step 0: the empty prefix (blank) and each one-label prefix, best `beam_width` kept
        prefixes = torch.full((classes, max(steps, 1)), -1, dtype=torch.int64, device=device)
        prefixes[: labels.numel(), 0] = labels
        emit = torch.full((classes,), neg_inf, dtype=x.dtype, device=device)
        blank = emit.clone()
        emit[: labels.numel()] = lp[0, labels]
        blank[-1] = lp[0, mask_index]
        keep = torch.topk(torch.logaddexp(emit, blank), min(beam_width, classes)).indices
        prefixes, emit, blank = prefixes[keep], emit[keep], blank[keep]
        for t in range(1, n):
            k = prefixes.shape[0]
            size = (prefixes != -1).sum(dim=1)
            tail = torch.where(size > 0, prefixes.gather(1, (size - 1).clamp(min=0)[:, None])[:, 0],
                               torch.full_like(size, -1))
            total = torch.logaddexp(emit, blank)
            # the prefix kept: by the blank, or by repeating its last label from the emit track
            same_blank = total + lp[t, mask_index]
            same_emit = torch.where(tail >= 0, emit + lp[t, tail.clamp(min=0)], torch.full_like(emit, neg_inf))
            # the prefix extended by each label (its last label only from the blank track)
            grown = prefixes.repeat_interleave(labels.numel(), dim=0)
            new_label = labels.repeat(k)
            grown[torch.arange(grown.shape[0], device=device), size.repeat_interleave(labels.numel())] = new_label
            source = torch.where(new_label == tail.repeat_interleave(labels.numel()),
                                 blank.repeat_interleave(labels.numel()), total.repeat_interleave(labels.numel()))
            grown_emit = source + lp[t, new_label]
            rows = torch.cat([prefixes, grown])
            cand_emit = torch.cat([same_emit, grown_emit])
            cand_blank = torch.cat([same_blank, torch.full_like(grown_emit, neg_inf)])
            unique, inverse = torch.unique(rows, dim=0, return_inverse=True)
            emit = _scatter_logsumexp(cand_emit, inverse, unique.shape[0])
            blank = _scatter_logsumexp(cand_blank, inverse, unique.shape[0])
            keep = torch.topk(torch.logaddexp(emit, blank), min(beam_width, unique.shape[0])).indices
            prefixes, emit, blank = unique[keep], emit[keep], blank[keep]
        total = torch.logaddexp(emit, blank)
        order = torch.argsort(total, descending=True, stable=True)[:top_paths]
        order = order[torch.isfinite(total[order])]  # an impossible prefix (probability 0) is no path
        m = order.numel()
        decoded[:m, b, :] = prefixes[order, :steps].to(torch.int32)
        scores_out[b, :m] = total[order]
    return decoded, scores_out
