"""The last of Keras 2's backend functions (`from keras import backend as K`)
that layer and model code calls: the locally-connected convolutions
(`K.local_conv1d`, `K.local_conv2d`), CTC decoding (`K.ctc_decode`, greedy
and beam search) and the focal cross-entropies
(`K.binary_focal_crossentropy`, `K.categorical_focal_crossentropy`). Each
follows its tf.keras 2.x definition (argument names, defaults, kernel layout,
the blank as the LAST class, `-1` padding) on torch tensors; re-exported by
`kerasish.backend`. `K.ctc_batch_cost` lives in `kerasish.backend.keras2`.
"""

from __future__ import annotations

import math

import torch

from kerasish.backend import config as _config
from kerasish.backend.keras2 import _float
from kerasish.backend.keras2 import _t
from kerasish.backend.keras2 import binary_crossentropy

__all__ = [
    "binary_focal_crossentropy",
    "categorical_focal_crossentropy",
    "ctc_decode",
    "local_conv",
    "local_conv1d",
    "local_conv2d",
]


# ------------------------------------------------- locally-connected convolutions


def local_conv(inputs, kernel, kernel_size, strides, output_shape, data_format=None):
    """N-D convolution with un-shared weights (tf.keras 2's `K.local_conv`).

    `kernel` is `(output_items, feature_dim, channels_out)` with
    `output_items = prod(output_shape)` (output positions in row-major order)
    and `feature_dim = prod(kernel_size) * channels_in`, each position's
    features flattened from its input window in the input's own layout:
    `(*kernel_size, channels_in)` for channels_last, `(channels_in,
    *kernel_size)` for channels_first. Output position `p` reads the window
    starting at `p * strides` ("valid" windows). Returns
    `(batch, *output_shape, channels_out)` (channels_last) or `(batch,
    channels_out, *output_shape)` (channels_first).
    """
    data_format = _config.image_data_format() if data_format is None else data_format
    if data_format not in ("channels_first", "channels_last"):
        raise ValueError(f"Unknown data_format: {data_format}")
    x, kernel = _float(inputs), _float(kernel)
    output_shape = tuple(int(d) for d in output_shape)
    kernel_size, strides = tuple(int(k) for k in kernel_size), tuple(int(s) for s in strides)
    nd = len(output_shape)
    if x.dim() != nd + 2 or len(kernel_size) != nd or len(strides) != nd:
        raise ValueError(
            f"local_conv: expected a {nd + 2}D input and {nd} kernel sizes and strides for an output_shape of "
            f"rank {nd}. Received: inputs.shape={tuple(x.shape)}, kernel_size={kernel_size}, strides={strides}, "
            f"output_shape={output_shape}"
        )
    if data_format == "channels_last":
        x = torch.movedim(x, -1, 1)  # (batch, channels, *spatial)
    channels = x.shape[1]
    items, feature_dim = math.prod(output_shape), channels * math.prod(kernel_size)
    if tuple(kernel.shape[:2]) != (items, feature_dim):
        raise ValueError(
            f"local_conv: the kernel must be (output_items, feature_dim, channels_out) = ({items}, {feature_dim}, "
            f"...) for output_shape={output_shape}, kernel_size={kernel_size} and {channels} input channels. "
            f"Received: kernel.shape={tuple(kernel.shape)}"
        )
    for d in range(nd):
        needed = (output_shape[d] - 1) * strides[d] + kernel_size[d]
        if x.shape[2 + d] < needed:
            raise ValueError(
                f"local_conv: spatial dimension {d} of the input is {x.shape[2 + d]}, too short for "
                f"{output_shape[d]} windows of {kernel_size[d]} with stride {strides[d]} (needs {needed})."
            )
        # windows along spatial dim d: that dim becomes the window count, the window itself goes last
        x = x.unfold(2 + d, kernel_size[d], strides[d]).narrow(2 + d, 0, output_shape[d])
    # x: (batch, channels, *output_shape, *kernel_size)
    window_axes = list(range(2 + nd, 2 + 2 * nd))
    position_axes = list(range(2, 2 + nd))
    if data_format == "channels_last":
        x = x.permute(0, *position_axes, *window_axes, 1)
    else:
        x = x.permute(0, *position_axes, 1, *window_axes)
    x = x.reshape(x.shape[0], items, feature_dim)
    out = torch.einsum("bpf,pfo->bpo", x, kernel).reshape(x.shape[0], *output_shape, kernel.shape[-1])
    return out if data_format == "channels_last" else torch.movedim(out, -1, 1)


def local_conv1d(inputs, kernel, kernel_size, strides, data_format=None):
    """1D convolution with un-shared weights; `kernel` is `(output_length, kernel_size * input_dim, filters)`
    (see `local_conv`)."""
    return local_conv(inputs, kernel, kernel_size, strides, (_t(kernel).shape[0],), data_format)


def local_conv2d(inputs, kernel, kernel_size, strides, output_shape, data_format=None):
    """2D convolution with un-shared weights; `kernel` is `(rows * cols, kh * kw * channels_in, filters)`
    (see `local_conv`)."""
    return local_conv(inputs, kernel, kernel_size, strides, output_shape, data_format)


# ----------------------------------------------------------------- CTC decoding


def _merge_repeats(row: torch.Tensor) -> torch.Tensor:
    """A decoded label row (padded with -1) with consecutive equal labels collapsed, padded again."""
    labels = row[row >= 0]
    if labels.numel() > 1:
        labels = labels[torch.cat([labels.new_ones(1, dtype=torch.bool), labels[1:] != labels[:-1]])]
    out = torch.full_like(row, -1)
    out[: labels.numel()] = labels
    return out


def ctc_decode(y_pred, input_length, greedy=True, beam_width=100, top_paths=1):
    """Decodes softmax output `(samples, time_steps, num_categories)` with the blank as the LAST category
    (tf.keras 2's `K.ctc_decode`); scores are read from `log(y_pred + epsilon)`.

    Returns `(decoded, log_prob)`: `decoded` a list of `(samples, time_steps)` int64 tensors padded with -1 (one
    with `greedy=True`, `top_paths` for beam search, best first); `log_prob` is `(samples, 1)`, minus the sum
    of the best log-probability per valid step (greedy), or `(samples, top_paths)` each path's total
    log-probability (beam search). Greedy merges repeated labels not separated by a blank; beam search
    (TF 1's `ctc_beam_search_decoder`, `merge_repeated=True`) also collapses repeated labels in the paths it
    returns, as tf.keras 2 does.
    """
    from kerasish.ops.nn_conv import ctc_decode as _ops_ctc_decode

    y_pred = _float(y_pred)
    if y_pred.dim() != 3:
        raise ValueError(f"ctc_decode: `y_pred` must be (samples, time_steps, num_categories). "
                         f"Received: y_pred.shape={tuple(y_pred.shape)}")
    log_probs = torch.log(y_pred + _config.epsilon())
    lengths = _t(input_length).reshape(-1).to(torch.int64)
    blank = y_pred.shape[-1] - 1
    if greedy:
        decoded, score = _ops_ctc_decode(log_probs, lengths, strategy="greedy", mask_index=blank)
        return [decoded[0].to(torch.int64)], score
    decoded, score = _ops_ctc_decode(log_probs, lengths, strategy="beam_search", beam_width=beam_width,
                                     top_paths=top_paths, mask_index=blank)
    paths = []
    for path in decoded.to(torch.int64):
        paths.append(torch.stack([_merge_repeats(row) for row in path]) if path.shape[0] else path)
    return paths, score


# --------------------------------------------------------------- focal losses


def binary_focal_crossentropy(target, output, apply_class_balancing=False, alpha=0.25, gamma=2.0,
                              from_logits=False):
    """Element-wise binary focal cross-entropy (tf.keras 2): `K.binary_crossentropy` times `(1 - p_t) ** gamma`,
    `p_t` the probability of the true class; with `apply_class_balancing`, also times `alpha` (class 1) or
    `1 - alpha` (class 0)."""
    target, output = _float(target), _float(output)
    target = target.to(output.dtype)
    probs = torch.sigmoid(output) if from_logits else output
    p_t = target * probs + (1 - target) * (1 - probs)
    focal = torch.pow(1.0 - p_t, gamma) * binary_crossentropy(target, output, from_logits=from_logits)
    if apply_class_balancing:
        focal = (target * alpha + (1 - target) * (1 - alpha)) * focal
    return focal


def categorical_focal_crossentropy(target, output, alpha=0.25, gamma=2.0, from_logits=False, axis=-1):
    """Categorical focal cross-entropy summed over `axis` (tf.keras 2): probabilities renormalised and clipped
    to `[epsilon, 1 - epsilon]` as `K.categorical_crossentropy` does, each class's `-target * log(p)` weighted
    by `alpha * (1 - p) ** gamma`. `alpha` may be a float or one value per class."""
    target, output = _float(target), _float(output)
    target = target.to(output.dtype)
    if target.shape != output.shape:
        raise ValueError(f"categorical_focal_crossentropy: `target` and `output` must have the same shape. "
                         f"Received: target.shape={tuple(target.shape)}, output.shape={tuple(output.shape)}")
    if from_logits:
        output = torch.softmax(output, dim=axis)
    output = output / torch.sum(output, dim=axis, keepdim=True)
    eps = _config.epsilon()
    output = torch.clamp(output, eps, 1.0 - eps)
    alpha = torch.as_tensor(alpha, dtype=output.dtype, device=output.device)
    weight = torch.pow(1.0 - output, gamma) * alpha
    return torch.sum(weight * (-target * torch.log(output)), dim=axis)

