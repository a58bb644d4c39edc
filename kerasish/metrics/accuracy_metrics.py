"""Accuracy metrics: `Accuracy`, `BinaryAccuracy`, `CategoricalAccuracy`,
`SparseCategoricalAccuracy`, `TopKCategoricalAccuracy`,
`SparseTopKCategoricalAccuracy`, and their stateless functions (Keras 3).

Each function returns one float per sample (1.0 for a hit); the classes are
`MeanMetricWrapper`s averaging them.
"""

from __future__ import annotations

import torch

from kerasish.backend.promotion import as_tensor
from kerasish.backend.dtypes import floatx
from kerasish.backend.dtypes import to_torch_dtype
from kerasish.losses.loss import squeeze_or_expand_to_same_rank
from kerasish.metrics.reduction_metrics import MeanMetricWrapper


def _t(x, dtype=None, like=None) -> torch.Tensor:
    if not isinstance(x, torch.Tensor):
        x = as_tensor(x)
    device = like.device if like is not None else None
    if (dtype is not None and x.dtype != dtype) or (device is not None and x.device != device):
        x = x.to(device=device, dtype=dtype)
    return x


def _argmax(x: torch.Tensor, dim: int = -1) -> torch.Tensor:
    """`argmax` that also takes boolean one-hot tensors (Keras casts bool to uint8 first)."""
    if x.dtype == torch.bool:
        x = x.to(torch.uint8)
    return x.argmax(dim=dim)


def _floatx():
    return to_torch_dtype(floatx())


def accuracy(y_true, y_pred):
    """1.0 where `y_true == y_pred` (after aligning ranks)."""
    y_pred = _t(y_pred)
    y_true = _t(y_true, y_pred.dtype, y_pred)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    return (y_true == y_pred).to(_floatx())


def binary_accuracy(y_true, y_pred, threshold=0.5):
    """1.0 where `y_true` equals `y_pred > threshold`."""
    y_pred = _t(y_pred)
    y_true = _t(y_true, like=y_pred)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    y_pred = (y_pred > threshold).to(y_true.dtype)
    return (y_true == y_pred).to(_floatx())


def categorical_accuracy(y_true, y_pred):
    """1.0 where the argmax of one-hot `y_true` equals the argmax of `y_pred`."""
    y_pred = _t(y_pred)
    y_true = _argmax(_t(y_true, like=y_pred))
    reshape_matches = False
    y_true_shape = y_true.shape
    if y_true.ndim == y_pred.ndim:
        y_true = y_true.squeeze(-1)
        reshape_matches = True
    matches = (y_true == _argmax(y_pred)).to(_floatx())
    if reshape_matches:
        matches = matches.reshape(y_true_shape)
    return matches


def sparse_categorical_accuracy(y_true, y_pred):
    """1.0 where the integer label `y_true` equals the argmax of `y_pred`."""
    y_pred = _t(y_pred)
    y_true = _t(y_true, y_pred.dtype, y_pred)
    reshape_matches = False
    y_true_shape = y_true.shape
    if y_true.ndim == y_pred.ndim and y_true.shape[-1] == 1:
        y_true = y_true.squeeze(-1)
        reshape_matches = True
    matches = (y_true == _argmax(y_pred).to(y_true.dtype)).to(_floatx())
    if reshape_matches:
        matches = matches.reshape(y_true_shape)
    if matches.ndim > 1 and matches.shape[-1] == 1:
        matches = matches.squeeze(-1)
    return matches


def _in_top_k(targets, predictions, k):
    # Keras (torch backend): a target counts when its score is >= the k-th largest
    targets = targets.to(torch.int64)[:, None]
    topk = torch.topk(predictions, min(k, predictions.shape[-1]), dim=-1).values
    target_values = torch.take_along_dim(predictions, targets, dim=-1)
    return (target_values >= topk).any(dim=-1)


def top_k_categorical_accuracy(y_true, y_pred, k=5):
    """1.0 where the one-hot target is among the top `k` predictions."""
    y_pred = _t(y_pred)
    y_true = _t(y_true, y_pred.dtype, y_pred).argmax(dim=-1)
    shape = y_true.shape
    if y_pred.ndim > 2:
        y_pred = y_pred.reshape(-1, y_pred.shape[-1])
    reshape = y_true.ndim > 1
    if reshape:
        y_true = y_true.reshape(-1)
    matches = _in_top_k(y_true, y_pred, k).to(_floatx())
    return matches.reshape(shape) if reshape else matches


def sparse_top_k_categorical_accuracy(y_true, y_pred, k=5, from_sorted_ids=False):
    """1.0 where the integer target is among the top `k` predictions (or,
    with `from_sorted_ids=True`, among the first `k` ids of `y_pred`)."""
    y_pred = _t(y_pred)
    y_true = _t(y_true, y_pred.dtype if from_sorted_ids else torch.int32, y_pred)
    shape = y_true.shape
    if y_pred.ndim > 2:
        y_pred = y_pred.reshape(-1, y_pred.shape[-1])
    reshape = y_true.ndim > 1
    if reshape:
        y_true = y_true.reshape(-1)
    if from_sorted_ids:
        matches = (y_true[:, None] == y_pred[:, :k]).any(dim=1)
    else:
        matches = _in_top_k(y_true, y_pred, k)
    matches = matches.to(_floatx())
    return matches.reshape(shape) if reshape else matches


class Accuracy(MeanMetricWrapper):
    """How often predictions equal labels.

    Example:
        >>> m = keras.metrics.Accuracy()
        >>> m.update_state([[1], [2], [3], [4]], [[0], [2], [3], [4]])
        >>> float(m.result())
        0.75
    """

    def __init__(self, name="accuracy", dtype=None):
        super().__init__(fn=accuracy, name=name, dtype=dtype)
        self.__dict__["_direction"] = "up"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class BinaryAccuracy(MeanMetricWrapper):
    """How often predictions match binary labels (`y_pred > threshold`).

    Args:
        threshold: Decision threshold on `y_pred`. Defaults to 0.5.
    """

    def __init__(self, name="binary_accuracy", dtype=None, threshold=0.5):
        super().__init__(fn=binary_accuracy, name=name, dtype=dtype, threshold=threshold)
        self.threshold = threshold
        self.__dict__["_direction"] = "up"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "threshold": self.threshold}


class CategoricalAccuracy(MeanMetricWrapper):
    """How often the argmax of predictions matches one-hot labels."""

    def __init__(self, name="categorical_accuracy", dtype=None):
        super().__init__(fn=categorical_accuracy, name=name, dtype=dtype)
        self.__dict__["_direction"] = "up"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class SparseCategoricalAccuracy(MeanMetricWrapper):
    """How often the argmax of predictions matches integer labels."""

    def __init__(self, name="sparse_categorical_accuracy", dtype=None):
        super().__init__(fn=sparse_categorical_accuracy, name=name, dtype=dtype)
        self.__dict__["_direction"] = "up"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class TopKCategoricalAccuracy(MeanMetricWrapper):
    """How often one-hot targets are in the top `k` predictions.

    Args:
        k: Number of top elements to look at. Defaults to 5.
    """

    def __init__(self, k=5, name="top_k_categorical_accuracy", dtype=None):
        super().__init__(fn=top_k_categorical_accuracy, name=name, dtype=dtype, k=k)
        self.k = k
        self.__dict__["_direction"] = "up"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "k": self.k}


class SparseTopKCategoricalAccuracy(MeanMetricWrapper):
    """How often integer targets are in the top `k` predictions.

    Args:
        k: Number of top elements to look at. Defaults to 5.
        from_sorted_ids: `y_pred` holds class ids sorted by score instead of
            scores. Defaults to False.
    """

    def __init__(self, k=5, name="sparse_top_k_categorical_accuracy", dtype=None, from_sorted_ids=False):
        super().__init__(
            fn=sparse_top_k_categorical_accuracy, name=name, dtype=dtype, k=k, from_sorted_ids=from_sorted_ids
        )
        self.k = k
        self.from_sorted_ids = from_sorted_ids
        self.__dict__["_direction"] = "up"

    def get_config(self):
        config = {"name": self.name, "dtype": self.dtype, "k": self.k}
        if self.from_sorted_ids:
            config["from_sorted_ids"] = True
        return config
