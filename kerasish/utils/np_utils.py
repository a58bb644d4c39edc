"""`keras.utils.np_utils` (multi-backend Keras 2.0-2.4, `keras` 2.6-2.13):
`to_categorical` with Keras 2's `dtype` argument, and `normalize`."""

from __future__ import annotations

import numpy as np
import torch

from kerasish.utils.data_utils import normalize
from kerasish.utils.data_utils import to_categorical as _to_categorical

__all__ = ["normalize", "to_categorical"]


def to_categorical(y, num_classes: int | None = None, dtype="float32"):
    """One-hot encodes integer class labels, as Keras 2's `np_utils.to_categorical`.

    Keras 2 returned `dtype` (float32 by default); Keras 3's
    `keras.utils.to_categorical` has no `dtype` and returns NumPy's float64
    for array input. A trailing axis of size 1 is dropped first.

    Args:
        y: Integer labels in `[0, num_classes)` (array-like or torch tensor).
        num_classes: Defaults to `max(y) + 1`.
        dtype: The result's dtype. Defaults to `"float32"`.

    Example:
        >>> to_categorical([0, 2], 3)
        array([[1., 0., 0.],
               [0., 0., 1.]], dtype=float32)
    """
    out = _to_categorical(y, num_classes)
    if isinstance(out, torch.Tensor):
        from kerasish.backend.dtypes import to_torch_dtype

        return out.to(to_torch_dtype(dtype))
    return out.astype(np.dtype(dtype))
