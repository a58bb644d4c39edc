"""Data helpers Keras programs use: `to_categorical`, `normalize`,
`pad_sequences`, `set_random_seed`."""

from __future__ import annotations

import random

import numpy as np
import torch


def to_categorical(x, num_classes: int | None = None):
    """One-hot encodes integer class labels (class axis last).

    A trailing axis of size 1 is dropped first, as in Keras. NumPy/list input
    gives a float NumPy array; a torch tensor gives a float32 tensor on its
    device.

    Args:
        x: Integer labels in `[0, num_classes)`.
        num_classes: Defaults to `max(x) + 1`.

    Example:
        >>> keras.utils.to_categorical([0, 2], num_classes=3)
        array([[1., 0., 0.],
               [0., 0., 1.]])
    """
    if isinstance(x, torch.Tensor):
        if x.ndim > 1 and x.shape[-1] == 1:
            x = x.squeeze(-1)
        x = x.long()
        n = int(num_classes) if num_classes else int(x.max().item()) + 1
        return torch.nn.functional.one_hot(x, n).to(torch.float32)
    x = np.array(x, dtype="int64")
    shape = x.shape
    if len(shape) > 1 and shape[-1] == 1:
        shape = shape[:-1]
    flat = x.reshape(-1)
    n = int(num_classes) if num_classes else int(np.max(flat)) + 1
    if flat.size and (flat.min() < 0 or flat.max() >= n):
        raise ValueError(
            f"`to_categorical` expects class values in [0, {n}). Received values from "
            f"{flat.min()} to {flat.max()} with num_classes={num_classes}."
        )
    out = np.zeros((flat.shape[0], n))
    out[np.arange(flat.shape[0]), flat] = 1
    return out.reshape(shape + (n,))


def normalize(x, axis: int = -1, order: int = 2):
    """Divides `x` by its `order`-norm along `axis` (zero vectors stay zero)."""
    if isinstance(x, torch.Tensor):
        norm = torch.linalg.vector_norm(x, ord=order, dim=axis, keepdim=True)
        return x / torch.where(norm == 0, torch.ones_like(norm), norm)
    x = np.asarray(x)
    norm = np.atleast_1d(np.linalg.norm(x, order, axis))
    norm[norm == 0] = 1
    return x / np.expand_dims(norm, axis)


def pad_sequences(sequences, maxlen=None, dtype="int32", padding="pre", truncating="pre", value=0.0):
    """Pads (and truncates) a list of sequences to one length, as Keras does.

    Args:
        sequences: List of sequences (lists or arrays; items may be vectors).
        maxlen: Defaults to the longest sequence.
        dtype: Defaults to "int32".
        padding: "pre" (default) or "post": where padding goes.
        truncating: "pre" (default) or "post": which end is cut.
        value: The padding value. Defaults to 0.

    Returns:
        A NumPy array `(len(sequences), maxlen, ...)`.
    """
    if not hasattr(sequences, "__len__"):
        raise ValueError("`sequences` must be iterable.")
    if padding not in ("pre", "post"):
        raise ValueError(f'Padding type "{padding}" not understood')
    if truncating not in ("pre", "post"):
        raise ValueError(f'Truncating type "{truncating}" not understood')
    lengths, sample_shape = [], None
    for seq in sequences:
        try:
            lengths.append(len(seq))
        except TypeError:
            raise ValueError(f"`sequences` must be a list of iterables. Found non-iterable: {seq}") from None
        if sample_shape is None and len(seq):
            sample_shape = np.asarray(seq).shape[1:]
    sample_shape = sample_shape or ()
    if maxlen is None:
        maxlen = max(lengths) if lengths else 0
    if isinstance(value, str) and dtype is not object and not np.issubdtype(np.dtype(dtype), np.str_):
        raise ValueError(
            f"`dtype` {dtype} is not compatible with `value`'s type: {type(value)}\n"
            "You should set `dtype=object` for variable length strings."
        )
    out = np.full((len(sequences), maxlen) + tuple(sample_shape), value, dtype=dtype)
    for i, seq in enumerate(sequences):
        if not len(seq) or maxlen == 0:
            continue
        kept = np.asarray(seq[-maxlen:] if truncating == "pre" else seq[:maxlen], dtype=dtype)
        if kept.shape[1:] != tuple(sample_shape):
            raise ValueError(
                f"Shape of sample {kept.shape[1:]} of sequence at position {i} is different from "
                f"expected shape {tuple(sample_shape)}"
            )
        if padding == "post":
            out[i, : len(kept)] = kept
        else:
            out[i, -len(kept):] = kept
    return out


def set_random_seed(seed: int) -> None:
    """Seeds Python's `random`, NumPy and torch (CPU and CUDA) at once.

    As in Keras 3, it also resets the global `SeedGenerator` behind
    `keras.random` draws with `seed=None`, and from then on unseeded
    initializers and noise layers take their seeds from Python's `random`
    the way Keras does, so a program ported from Keras 3 (torch backend)
    starts from the same weights and draws the same masks on the CPU (see
    the README's "Random seeds").
    """
    if not isinstance(seed, int):
        raise ValueError(f"Expected `seed` argument to be an integer. Received: seed={seed} (of type {type(seed)})")
    from kerasish.random.seed_generator import set_global_random_seed

    set_global_random_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# Keras 2's `keras.utils.data_utils` module held `Sequence` and `get_file`
# (`from keras.utils.data_utils import Sequence`): served lazily as
# `keras.utils`'s (kerasish/utils/keras2_modules.py).
from kerasish.utils.keras2_modules import install as _install  # noqa: E402

_ENQUEUER = ("`fit` / `evaluate` / `predict` take generators and `keras.utils.Sequence` (`PyDataset`) objects "
             "directly; for parallel loading give the PyDataset `workers=` / `use_multiprocessing=`")
_install(
    globals(),
    {"Sequence": "kerasish.utils:Sequence", "get_file": "kerasish.utils:get_file"},
    {"GeneratorEnqueuer": _ENQUEUER, "OrderedEnqueuer": _ENQUEUER, "SequenceEnqueuer": _ENQUEUER},
)
