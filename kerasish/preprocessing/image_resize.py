"""`keras.preprocessing.image.smart_resize`: resize without distorting the aspect ratio."""

from __future__ import annotations

import numpy as np
import torch


def smart_resize(x, size, interpolation="bilinear", data_format="channels_last", **kwargs):
    """Crops the largest centred window of the target aspect ratio, then resizes it to `size`.

    Args:
        x: An image `(height, width, channels)` or a batch `(batch, height,
            width, channels)` (channels first with `data_format="channels_first"`),
            as a NumPy array or a tensor.
        size: `(height, width)` of the output.
        interpolation: As `keras.ops.image.resize`. Defaults to "bilinear".
        data_format: "channels_last" (default) or "channels_first".

    Returns:
        A NumPy array when `x` is one, else a tensor.
    """
    kwargs.pop("backend_module", None)
    if kwargs:
        raise TypeError(f"smart_resize() got unexpected keyword arguments: {list(kwargs.keys())}")
    if len(size) != 2:
        raise ValueError(f"Expected `size` to be a tuple of 2 integers, but got: {size}.")
    from kerasish.ops import image as image_ops

    img = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x))
    if img.ndim < 3 or img.ndim > 4:
        raise ValueError(
            "Expected an image array with shape `(height, width, channels)`, or `(batch_size, height, width, "
            f"channels)`, but got input with incorrect rank, of shape {tuple(img.shape)}."
        )
    h_axis = img.ndim - 3 if data_format == "channels_last" else img.ndim - 2
    height, width = int(img.shape[h_axis]), int(img.shape[h_axis + 1])
    target_height, target_width = size
    # Keras's integer arithmetic for the crop window
    crop_height = max(min(height, int(float(width * target_height) / target_width)), 1)
    crop_width = max(min(width, int(float(height * target_width) / target_height)), 1)
    top = int(float(height - crop_height) / 2)
    left = int(float(width - crop_width) / 2)
    img = img.narrow(h_axis, top, crop_height).narrow(h_axis + 1, left, crop_width)
    img = image_ops.resize(img, size=size, interpolation=interpolation, data_format=data_format)
    if isinstance(x, np.ndarray):
        return np.array(img)
    return img
