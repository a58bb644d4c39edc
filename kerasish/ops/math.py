"""`keras.ops.math`: segment reductions, top-k, FFTs and framing.

Complex results are returned as Keras returns them: a `(real, imag)` pair
of float tensors, and complex inputs are taken as such pairs.
"""

from __future__ import annotations

import torch

from kerasish.backend import dtypes as _dtypes
from kerasish.ops.operation import keras_op
from kerasish.backend.promotion import to_tensor


def _segment(data, segment_ids, num_segments, reduce):
    data = to_tensor(data)
    ids = to_tensor(segment_ids).to(torch.int64)
    if num_segments is None:
        num_segments = int(torch.max(ids).item()) + 1 if ids.numel() else 0
    valid = (ids >= 0) & (ids < num_segments)
    ids = torch.where(valid, ids, torch.zeros_like(ids))
    shape = (num_segments,) + tuple(data.shape[ids.ndim:])
    if reduce == "sum":
        src = torch.where(valid.reshape(valid.shape + (1,) * (data.ndim - ids.ndim)), data, torch.zeros_like(data))
        return torch.zeros(shape, dtype=data.dtype, device=data.device).index_add(0, ids.reshape(-1),
                                                                                     src.reshape((-1,) + shape[1:]))
    init = {"amax": "-inf", "amin": "inf", "prod": None}[reduce]
    if init is None:
        out = torch.ones(shape, dtype=data.dtype, device=data.device)
        fill = torch.ones_like(data)
    else:
        if data.is_floating_point():
            fill_value = float(init)
        else:
            info = torch.iinfo(data.dtype)
            fill_value = info.min if reduce == "amax" else info.max
        out = torch.full(shape, fill_value, dtype=data.dtype, device=data.device)
        fill = torch.full_like(data, fill_value)
    mask = valid.reshape(valid.shape + (1,) * (data.ndim - ids.ndim))
    src = torch.where(mask, data, fill).reshape((-1,) + shape[1:])
    index = ids.reshape((-1,) + (1,) * (len(shape) - 1)).expand(src.shape)
    return out.scatter_reduce(0, index, src, reduce=reduce, include_self=True)


@keras_op
def segment_sum(data, segment_ids, num_segments=None, sorted=False):  # noqa: A002 - Keras name
    """Sums of `data` rows grouped by `segment_ids` (ids out of range are dropped)."""
    return _segment(data, segment_ids, num_segments, "sum")


@keras_op
def segment_max(data, segment_ids, num_segments=None, sorted=False):  # noqa: A002 - Keras name
    """Maxima of `data` rows grouped by `segment_ids` (empty segments: lowest value)."""
    return _segment(data, segment_ids, num_segments, "amax")


@keras_op
def segment_min(data, segment_ids, num_segments=None, sorted=False):  # noqa: A002 - Keras name
    """Minima of `data` rows grouped by `segment_ids` (empty segments: highest value)."""
    return _segment(data, segment_ids, num_segments, "amin")


@keras_op
def segment_prod(data, segment_ids, num_segments=None, sorted=False):  # noqa: A002 - Keras name
    """Products of `data` rows grouped by `segment_ids` (empty segments: 1)."""
    return _segment(data, segment_ids, num_segments, "prod")


@keras_op
def top_k(x, k, sorted=True):  # noqa: A002 - Keras name
    """The `k` largest values along the last axis and their indices."""
    x = to_tensor(x)
    values, indices = torch.topk(x, k, dim=-1, largest=True, sorted=sorted)
    return values, indices  # int64 indices, as Keras returns on torch


@keras_op
def in_top_k(targets, predictions, k):
    """Whether each target's prediction score is among the `k` largest
    (ties with the k-th score count as in)."""
    preds = to_tensor(predictions)
    targets = to_tensor(targets).to(torch.int64)
    score = torch.gather(preds, 1, targets.unsqueeze(1))
    higher = torch.sum(preds > score, dim=1)
    return (higher < k) & torch.isfinite(score.squeeze(1))


@keras_op
def logdet(x):
    """`log(det(x))` of symmetric positive-definite matrices."""
    x = to_tensor(x)
    return torch.logdet(x if x.is_floating_point() else x.float())


@keras_op
def extract_sequences(x, sequence_length, sequence_stride):
    """Frames of `sequence_length` along the last axis every `sequence_stride`."""
    return to_tensor(x).unfold(-1, sequence_length, sequence_stride)


def _complex(x):
    if not isinstance(x, (tuple, list)) or len(x) != 2:
        raise ValueError(
            "Input `x` should be a tuple of two tensors - real and imaginary. "
            f"Received: x={x}"
        )
    real, imag = to_tensor(x[0]), to_tensor(x[1])
    if real.shape != imag.shape:
        raise ValueError(
            "Input `x` should be a tuple of two tensors - real and imaginary. Both the real and imaginary "
            f"parts should have the same shape. Received: x[0].shape = {tuple(real.shape)}, "
            f"x[1].shape = {tuple(imag.shape)}"
        )
    if not real.is_floating_point():
        real, imag = real.float(), imag.float()
    return torch.complex(real, imag)


def _pair(z):
    return z.real.contiguous(), z.imag.contiguous()


@keras_op
def fft(x):
    """FFT over the last axis of `(real, imag)`; returns `(real, imag)`."""
    return _pair(torch.fft.fft(_complex(x)))


@keras_op
def fft2(x):
    """2-D FFT over the last two axes of `(real, imag)`; returns `(real, imag)`."""
    return _pair(torch.fft.fft2(_complex(x)))


@keras_op
def ifft2(x):
    """Inverse 2-D FFT of `(real, imag)`; returns `(real, imag)`."""
    return _pair(torch.fft.ifft2(_complex(x)))


@keras_op
def rfft(x, fft_length=None):
    """FFT of the real `x` over its last axis; returns `(real, imag)`."""
    x = to_tensor(x)
    if not x.is_floating_point():
        x = x.to(_dtypes.to_torch_dtype(_dtypes.floatx()))
    return _pair(torch.fft.rfft(x, n=fft_length))


@keras_op
def irfft(x, fft_length=None):
    """Inverse of `rfft`: a real signal from `(real, imag)`."""
    return torch.fft.irfft(_complex(x), n=fft_length)


def _window(window, length, dtype, device):
    if window is None:
        return None
    if isinstance(window, str):
        if window == "hann":
            return torch.hann_window(length, periodic=True, dtype=dtype, device=device)
        if window == "hamming":
            return torch.hamming_window(length, periodic=True, dtype=dtype, device=device)
        raise ValueError(f"If a string is passed to `window`, it must be one of 'hann', 'hamming'. Received: "
                         f"window={window}")
    w = to_tensor(window).to(dtype=dtype, device=device)
    if w.ndim != 1 or w.shape[0] != length:
        raise ValueError(f"The shape of `window` must be equal to [sequence_length]. Received: "
                         f"window shape={tuple(w.shape)}")
    return w


@keras_op
def stft(x, sequence_length, sequence_stride, fft_length, window="hann", center=True):
    """Short-time Fourier transform along the last axis; `(real, imag)` of
    shape `(..., frames, fft_length // 2 + 1)`."""
    x = to_tensor(x)
    if not x.is_floating_point():
        x = x.to(_dtypes.to_torch_dtype(_dtypes.floatx()))
    if fft_length < sequence_length:
        raise ValueError(f"`fft_length` must equal or larger than `sequence_length`. Received: "
                         f"sequence_length={sequence_length}, fft_length={fft_length}")
    w = _window(window, sequence_length, x.dtype, x.device)
    if w is None:
        w = torch.ones(sequence_length, dtype=x.dtype, device=x.device)
    # frames are `fft_length` long; the window sits centred inside them
    pad_l = (fft_length - sequence_length) // 2
    w = torch.nn.functional.pad(w, (pad_l, fft_length - sequence_length - pad_l))
    lead = x.shape[:-1]
    flat = x.reshape(-1, x.shape[-1])
    if center:
        pad = fft_length // 2
        flat = torch.nn.functional.pad(flat.unsqueeze(1), (pad, pad), mode="reflect").squeeze(1)
    frames = flat.unfold(-1, fft_length, sequence_stride) * w
    spec = torch.fft.rfft(frames, n=fft_length)
    return _pair(spec.reshape(lead + spec.shape[1:]))


def _overlap_add_istft(z, w, sequence_stride, fft_length, length):
    """TF's `inverse_stft` for `center=False` (which Keras's torch backend
    follows): each frame's inverse FFT times the window divided by the sum of
    the squared window over its `fft_length / stride` shifts (a constant
    normalization, not the per-sample envelope torch.istft divides by, which
    is zero at the uncentred ends), then overlap-added."""
    frames = torch.fft.irfft(z, n=fft_length)  # (batch, frames, fft_length)
    if w is not None:
        shifts = -(-fft_length // sequence_stride)
        square = torch.nn.functional.pad(w * w, (0, shifts * sequence_stride - fft_length))
        per_phase = square.reshape(shifts, sequence_stride).sum(dim=0)
        frames = frames * (w / per_phase.repeat(shifts)[:fft_length])
    n = frames.shape[-2]
    total = fft_length + sequence_stride * (n - 1)
    out = torch.nn.functional.fold(frames.transpose(-1, -2), output_size=(1, total), kernel_size=(1, fft_length),
                                   stride=(1, sequence_stride))
    out = out.reshape(frames.shape[0], total)
    return out if length is None else out[:, :length]


@keras_op
def istft(x, sequence_length, sequence_stride, fft_length, length=None, window="hann", center=True):
    """Inverse short-time Fourier transform of `(real, imag)`.

    `center=True` runs `torch.istft` (the frames' window envelope divides the
    overlap-add, sample by sample). `center=False` follows TF/Keras
    (`_overlap_add_istft`): torch.istft refuses it, as the envelope of
    uncentred frames is zero at the ends.
    """
    z = _complex(x)
    w = _window(window, sequence_length, z.real.dtype, z.device)
    pad_l = (fft_length - sequence_length) // 2
    if not center:
        if w is not None:
            w = torch.nn.functional.pad(w, (pad_l, fft_length - sequence_length - pad_l))
        lead = z.shape[:-2]
        out = _overlap_add_istft(z.reshape((-1,) + z.shape[-2:]), w, sequence_stride, fft_length, length)
        return out.reshape(lead + out.shape[-1:])
    if w is None:
        w = torch.ones(sequence_length, dtype=z.real.dtype, device=z.device)
    w_full = torch.nn.functional.pad(w, (pad_l, fft_length - sequence_length - pad_l))
    lead = z.shape[:-2]
    spec = z.reshape((-1,) + z.shape[-2:])
    out = torch.istft(spec.transpose(-1, -2), n_fft=fft_length, hop_length=sequence_stride, win_length=fft_length,
                      window=w_full, center=center, length=length)
    return out.reshape(lead + out.shape[-1:])


@keras_op
def cdist(x, y):
    """Pairwise Euclidean distances between the rows of `x` and `y`."""
    a, b = to_tensor(x), to_tensor(y)
    if not a.is_floating_point():
        a = a.to(_dtypes.to_torch_dtype(_dtypes.floatx()))
    return torch.cdist(a, b.to(a.dtype))
