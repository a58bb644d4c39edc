"""Helpers shared by the `keras.visualization` functions: shapes, NumPy
conversion, the default data format and the rank check Keras makes."""

from __future__ import annotations

import numpy as np
import torch


def shape_of(x) -> tuple:
    """`keras.ops.shape`: the shape of a tensor, array or nested list, as a tuple."""
    if isinstance(x, (torch.Tensor, np.ndarray)):
        return tuple(x.shape)
    return tuple(np.shape(x))


def to_numpy(x) -> np.ndarray:
    """A torch tensor (any device) or array-like as a NumPy array."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def data_format_or_default(data_format):
    from kerasish.backend.config import image_data_format

    data_format = data_format or image_data_format()
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(
            "The `data_format` argument must be one of {'channels_first', 'channels_last'}. "
            f"Received: data_format={data_format}"
        )
    return data_format


def check_batched(images) -> tuple:
    """The shape of `images`, which must be a batch of images (rank 4)."""
    shape = shape_of(images)
    if len(shape) != 4:
        raise ValueError(f"`images` must be batched 4D tensor. Received: images.shape={shape}")
    return shape


def to_channels_last(x):
    """(N, C, H, W) -> (N, H, W, C), for a torch tensor or an array."""
    if isinstance(x, torch.Tensor):
        return x.permute(0, 2, 3, 1)
    return np.transpose(np.asarray(x), (0, 2, 3, 1))
