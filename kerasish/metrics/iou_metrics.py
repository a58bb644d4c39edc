"""Intersection-over-Union metrics (Keras 3): `IoU`, `MeanIoU`, `BinaryIoU`,
`OneHotIoU`, `OneHotMeanIoU`.

The state is one `(num_classes, num_classes)` confusion matrix
(`total_confusion_matrix`, rows = true class, columns = predicted class),
accumulated with a single `index_add_`. As in Keras the default dtype is
`"int32"`: labels, predictions and sample weights are cast to it (float
weights are truncated, with a warning); pass `dtype="float32"` for
fractional weights. Class ids outside `[0, num_classes)` are ignored.
"""

from __future__ import annotations

import warnings

import torch

from kerasish.backend.promotion import as_tensor
from kerasish.metrics.metric import Metric

_EPSILON = 1e-7  # keras.backend.epsilon()


class _IoUBase(Metric):
    """Accumulates the confusion matrix (see the module docstring)."""

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None, sparse_y_true=True,
                 sparse_y_pred=True, axis=-1):
        super().__init__(name=name, dtype=dtype or "int32")
        self.__dict__["_direction"] = "up"
        self.num_classes = num_classes
        self.ignore_class = ignore_class
        self.sparse_y_true = sparse_y_true
        self.sparse_y_pred = sparse_y_pred
        self.axis = axis
        self.total_cm = self.add_variable(
            shape=(num_classes, num_classes), initializer="zeros", dtype=self.dtype, name="total_confusion_matrix"
        )

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Adds the (weighted) confusion matrix of one batch.

        Args:
            y_true: Class ids (or one-hot / scores when `sparse_y_true=False`).
            y_pred: Class ids (or scores when `sparse_y_pred=False`).
            sample_weight: Optional weights, broadcastable to the flattened
                labels. Defaults to 1.
        """
        cm = self.total_cm
        dtype, device = cm.dtype, cm.device
        y_true = as_tensor(y_true).detach()
        y_pred = as_tensor(y_pred).detach()
        # Keras casts boolean one-hot tensors to uint8 before the argmax
        if not self.sparse_y_true:
            y_true = torch.argmax(y_true.to(torch.uint8) if y_true.dtype == torch.bool else y_true, dim=self.axis)
        if not self.sparse_y_pred:
            y_pred = torch.argmax(y_pred.to(torch.uint8) if y_pred.dtype == torch.bool else y_pred, dim=self.axis)
        y_true = y_true.to(device=device, dtype=dtype).reshape(-1)
        y_pred = y_pred.to(device=device, dtype=dtype).reshape(-1)
        if sample_weight is None:
            sample_weight = torch.ones((), dtype=dtype, device=device)
        else:
            sample_weight = as_tensor(sample_weight)
            if sample_weight.is_floating_point() and not dtype.is_floating_point:
                warnings.warn(
                    "You are passing weight as `float`, but dtype is `int`. This may result in an incorrect "
                    "weight due to type casting Consider using integer weights.",
                    stacklevel=2,
                )
            sample_weight = sample_weight.to(device=device, dtype=dtype)
            if sample_weight.ndim > 1:
                sample_weight = sample_weight.reshape(-1)
        sample_weight = torch.broadcast_to(sample_weight, y_true.shape)
        n = self.num_classes
        valid = (y_true >= 0) & (y_true < n) & (y_pred >= 0) & (y_pred < n)
        if self.ignore_class is not None:
            valid = valid & (y_true != self.ignore_class)
        zero = torch.zeros((), dtype=dtype, device=device)
        index = (torch.where(valid, y_true, zero) * n + torch.where(valid, y_pred, zero)).to(torch.int64)
        with torch.no_grad():
            # into the variable itself (not a view of it), so that a StatelessScope collects the update
            cm.index_put_((index // n, index % n), torch.where(valid, sample_weight, zero), accumulate=True)

    def reset_state(self):
        self.total_cm.zero_()  # (on the variable: a StatelessScope collects it)


class IoU(_IoUBase):
    """Intersection-over-Union for the classes in `target_class_ids`,
    `IoU = TP / (TP + FP + FN)`, averaged over the targets that occur
    (classes with an empty denominator count neither in the sum nor the
    mean).

    Args:
        num_classes: Number of possible classes.
        target_class_ids: Class ids whose IoU is averaged.
        name: Defaults to `"io_u"`.
        dtype: State dtype. Defaults to `"int32"` (Keras's default).
        ignore_class: A true class id left out of the matrix (e.g. a "void"
            label). Defaults to `None`.
        sparse_y_true: Whether `y_true` holds class ids (else the argmax
            along `axis` is taken). Defaults to `True`.
        sparse_y_pred: Whether `y_pred` holds class ids. Defaults to `True`.
        axis: The class axis for the argmax. Defaults to `-1`.

    Example:
        >>> m = keras.metrics.IoU(num_classes=2, target_class_ids=[0])
        >>> m.update_state([0, 0, 1, 1], [0, 1, 0, 1])
        >>> float(m.result())  # 1 / 3

    Raises:
        ValueError: if a target class id is `>= num_classes`.
    """

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None,
                 sparse_y_true=True, sparse_y_pred=True, axis=-1):
        super().__init__(name=name, num_classes=num_classes, ignore_class=ignore_class,
                         sparse_y_true=sparse_y_true, sparse_y_pred=sparse_y_pred, axis=axis, dtype=dtype)
        if max(target_class_ids) >= num_classes:
            raise ValueError(
                f"Target class id {max(target_class_ids)} is out of range, which is [0, {num_classes})."
            )
        self.target_class_ids = list(target_class_ids)

    def result(self):
        cm = self.total_cm.detach()
        true_positives = torch.diagonal(cm)
        denominator = cm.sum(0) + cm.sum(1) - true_positives
        ids = self.target_class_ids
        true_positives = true_positives[ids].to(torch.float32)
        denominator = denominator[ids].to(torch.float32)
        valid = denominator > 1e-9
        iou = torch.where(valid, true_positives / (denominator + _EPSILON), torch.zeros_like(denominator))
        return iou.sum() / (valid.to(torch.float32).sum() + _EPSILON)

    def get_config(self):
        config = super().get_config()
        config.update({
            "num_classes": self.num_classes, "target_class_ids": self.target_class_ids,
            "ignore_class": self.ignore_class, "sparse_y_true": self.sparse_y_true,
            "sparse_y_pred": self.sparse_y_pred, "axis": self.axis,
        })
        return config


class BinaryIoU(IoU):
    """IoU for binary tasks: predictions `>= threshold` are class 1.

    Args:
        target_class_ids: `[0]`, `[1]` or `[0, 1]` (the mean of both).
            Defaults to `(0, 1)`.
        threshold: Decision threshold on `y_pred`. Defaults to `0.5`.
        name: Defaults to `"binary_io_u"`.
        dtype: State dtype. Defaults to `"int32"`.

    Example:
        >>> m = keras.metrics.BinaryIoU(target_class_ids=[0, 1], threshold=0.3)
        >>> m.update_state([0, 1, 0, 1], [0.1, 0.2, 0.4, 0.7])
    """

    def __init__(self, target_class_ids=(0, 1), threshold=0.5, name=None, dtype=None):
        super().__init__(num_classes=2, target_class_ids=target_class_ids, name=name, dtype=dtype)
        self.threshold = threshold

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = as_tensor(y_pred).detach().to(torch.float32) >= self.threshold
        return super().update_state(y_true, y_pred, sample_weight)

    def get_config(self):
        return {"target_class_ids": self.target_class_ids, "threshold": self.threshold,
                "name": self.name, "dtype": self.dtype}


class MeanIoU(IoU):
    """IoU averaged over all `num_classes` classes (that occur).

    Args:
        num_classes: Number of possible classes.
        name: Defaults to `"mean_io_u"`.
        dtype: State dtype. Defaults to `"int32"`.
        ignore_class: A true class id left out. Defaults to `None`.
        sparse_y_true: Whether `y_true` holds class ids. Defaults to `True`.
        sparse_y_pred: Whether `y_pred` holds class ids. Defaults to `True`.
        axis: The class axis for the argmax. Defaults to `-1`.

    Example:
        >>> m = keras.metrics.MeanIoU(num_classes=2)
        >>> m.update_state([0, 0, 1, 1], [0, 1, 0, 1])
        >>> float(m.result())  # 1 / 3
    """

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None, sparse_y_true=True,
                 sparse_y_pred=True, axis=-1):
        super().__init__(name=name, num_classes=num_classes, target_class_ids=list(range(num_classes)), axis=axis,
                         dtype=dtype, ignore_class=ignore_class, sparse_y_true=sparse_y_true,
                         sparse_y_pred=sparse_y_pred)

    def get_config(self):
        return {"num_classes": self.num_classes, "name": self.name, "dtype": self.dtype,
                "ignore_class": self.ignore_class, "sparse_y_true": self.sparse_y_true,
                "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}


class OneHotIoU(IoU):
    """`IoU` for one-hot `y_true` (and, by default, score `y_pred`): both go
    through an argmax along `axis`.

    Args:
        num_classes: Number of possible classes.
        target_class_ids: Class ids whose IoU is averaged.
        name: Defaults to `"one_hot_io_u"`.
        dtype: State dtype. Defaults to `"int32"`.
        ignore_class: A true class id left out. Defaults to `None`.
        sparse_y_pred: Whether `y_pred` holds class ids. Defaults to `False`.
        axis: The class axis. Defaults to `-1`.
    """

    def __init__(self, num_classes, target_class_ids, name=None, dtype=None, ignore_class=None,
                 sparse_y_pred=False, axis=-1):
        super().__init__(num_classes=num_classes, target_class_ids=target_class_ids, name=name, dtype=dtype,
                         ignore_class=ignore_class, sparse_y_true=False, sparse_y_pred=sparse_y_pred, axis=axis)

    def get_config(self):
        return {"num_classes": self.num_classes, "target_class_ids": self.target_class_ids, "name": self.name,
                "dtype": self.dtype, "ignore_class": self.ignore_class, "sparse_y_pred": self.sparse_y_pred,
                "axis": self.axis}


class OneHotMeanIoU(MeanIoU):
    """`MeanIoU` for one-hot `y_true` (and, by default, score `y_pred`).

    Args:
        num_classes: Number of possible classes.
        name: Defaults to `"one_hot_mean_io_u"`.
        dtype: State dtype. Defaults to `"int32"`.
        ignore_class: A true class id left out. Defaults to `None`.
        sparse_y_pred: Whether `y_pred` holds class ids. Defaults to `False`.
        axis: The class axis. Defaults to `-1`.
    """

    def __init__(self, num_classes, name=None, dtype=None, ignore_class=None, sparse_y_pred=False, axis=-1):
        super().__init__(num_classes=num_classes, axis=axis, name=name, dtype=dtype, ignore_class=ignore_class,
                         sparse_y_true=False, sparse_y_pred=sparse_y_pred)

    def get_config(self):
        return {"num_classes": self.num_classes, "name": self.name, "dtype": self.dtype,
                "ignore_class": self.ignore_class, "sparse_y_pred": self.sparse_y_pred, "axis": self.axis}
