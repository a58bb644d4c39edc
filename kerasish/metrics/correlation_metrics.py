"""Correlation metrics: `PearsonCorrelation`, `ConcordanceCorrelation` and
their functions (Keras 3), averaged over samples by `MeanMetricWrapper`."""

from __future__ import annotations

import torch

from kerasish.backend.config import epsilon
from kerasish.losses.loss import squeeze_or_expand_to_same_rank, to_tensor
from kerasish.metrics.reduction_metrics import MeanMetricWrapper


def _pair(y_true, y_pred):
    y_pred = to_tensor(y_pred)
    if not y_pred.is_floating_point():
        y_pred = y_pred.to(torch.float32)
    y_true = to_tensor(y_true, dtype=y_pred.dtype, device=y_pred.device)
    return squeeze_or_expand_to_same_rank(y_true, y_pred)


def pearson_correlation(y_true, y_pred, axis=-1):
    """Pearson correlation of `y_true` and `y_pred` along `axis` (population std)."""
    y_true, y_pred = _pair(y_true, y_pred)
    t = y_true - y_true.mean(dim=axis, keepdim=True)
    p = y_pred - y_pred.mean(dim=axis, keepdim=True)
    t = t / t.std(dim=axis, keepdim=True, correction=0)
    p = p / p.std(dim=axis, keepdim=True, correction=0)
    return (t * p).mean(dim=axis)


def concordance_correlation(y_true, y_pred, axis=-1):
    """Lin's concordance correlation along `axis`.

    Follows Keras 3.15 exactly, including its covariance term
    `(y_true - mean(y_pred)) * (y_pred - mean(y_pred))`.
    """
    y_true, y_pred = _pair(y_true, y_pred)
    t_mean = y_true.mean(dim=axis, keepdim=True)
    p_mean = y_pred.mean(dim=axis, keepdim=True)
    t_var = (y_true - t_mean).var(dim=axis, keepdim=True, correction=0)
    p_var = (y_pred - p_mean).var(dim=axis, keepdim=True, correction=0)
    covar = (y_true - p_mean) * (y_pred - p_mean)
    norm = t_var + p_var + torch.square(t_mean - p_mean)
    return (2 * covar / (norm + epsilon())).mean(dim=axis)


class _AxisMetric(MeanMetricWrapper):
    _fn = None

    def __init__(self, name, dtype=None, axis=-1):
        super().__init__(fn=type(self)._fn, name=name, dtype=dtype, axis=axis)
        self.__dict__["axis"] = axis
        self.__dict__["_direction"] = "up"

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype, "axis": self.axis}


class PearsonCorrelation(_AxisMetric):
    """Mean Pearson correlation between labels and predictions along `axis`.

    Args:
        name: Defaults to "pearson_correlation".
        dtype: Result dtype.
        axis: Axis of the correlation. Defaults to -1.
    """

    _fn = staticmethod(pearson_correlation)

    def __init__(self, name="pearson_correlation", dtype=None, axis=-1):
        super().__init__(name=name, dtype=dtype, axis=axis)


class ConcordanceCorrelation(_AxisMetric):
    """Mean concordance correlation between labels and predictions along `axis`.

    Args:
        name: Defaults to "concordance_correlation".
        dtype: Result dtype.
        axis: Axis of the correlation. Defaults to -1.
    """

    _fn = staticmethod(concordance_correlation)

    def __init__(self, name="concordance_correlation", dtype=None, axis=-1):
        super().__init__(name=name, dtype=dtype, axis=axis)
