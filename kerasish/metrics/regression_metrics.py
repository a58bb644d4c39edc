"""Regression metrics (Keras 3): `MeanSquaredError`, `MeanAbsoluteError`,
`MeanAbsolutePercentageError`, `MeanSquaredLogarithmicError`,
`RootMeanSquaredError`, `CosineSimilarity`, `LogCoshError`."""

from __future__ import annotations

import torch

from kerasish.backend.promotion import as_tensor
from kerasish.losses import losses as _losses
from kerasish.losses.loss import squeeze_or_expand_to_same_rank
from kerasish.metrics.reduction_metrics import Mean
from kerasish.metrics.reduction_metrics import MeanMetricWrapper


def cosine_similarity(y_true, y_pred, axis=-1):
    """Cosine similarity along `axis` (1 is most similar; the loss of the
    same name is its negative)."""
    return -_losses.cosine_similarity(y_true, y_pred, axis=axis)


class _NameDtypeConfig:
    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class MeanSquaredError(_NameDtypeConfig, MeanMetricWrapper):
    """Mean of `(y_true - y_pred) ** 2` (mean over the last axis per sample)."""

    def __init__(self, name="mean_squared_error", dtype=None):
        super().__init__(fn=_losses.mean_squared_error, name=name, dtype=dtype)
        self.__dict__["_direction"] = "down"


class MeanAbsoluteError(_NameDtypeConfig, MeanMetricWrapper):
    """Mean of `abs(y_true - y_pred)`."""

    def __init__(self, name="mean_absolute_error", dtype=None):
        super().__init__(fn=_losses.mean_absolute_error, name=name, dtype=dtype)
        self.__dict__["_direction"] = "down"


class MeanAbsolutePercentageError(_NameDtypeConfig, MeanMetricWrapper):
    """Mean of `100 * abs((y_true - y_pred) / y_true)`."""

    def __init__(self, name="mean_absolute_percentage_error", dtype=None):
        super().__init__(fn=_losses.mean_absolute_percentage_error, name=name, dtype=dtype)
        self.__dict__["_direction"] = "down"


class MeanSquaredLogarithmicError(_NameDtypeConfig, MeanMetricWrapper):
    """Mean of `(log(y_true + 1) - log(y_pred + 1)) ** 2`."""

    def __init__(self, name="mean_squared_logarithmic_error", dtype=None):
        super().__init__(fn=_losses.mean_squared_logarithmic_error, name=name, dtype=dtype)
        self.__dict__["_direction"] = "down"


class LogCoshError(_NameDtypeConfig, MeanMetricWrapper):
    """Mean of `log(cosh(y_pred - y_true))`."""

    def __init__(self, name="logcosh", dtype=None):
        super().__init__(fn=_losses.log_cosh, name=name, dtype=dtype)
        self.__dict__["_direction"] = "down"


class CosineSimilarity(_NameDtypeConfig, MeanMetricWrapper):
    """Mean cosine similarity between labels and predictions.

    Args:
        axis: The axis along which the similarity is computed. Defaults to -1.
    """

    def __init__(self, name="cosine_similarity", dtype=None, axis=-1):
        super().__init__(fn=cosine_similarity, name=name, dtype=dtype, axis=axis)
        self.__dict__["_direction"] = "up"


class RootMeanSquaredError(_NameDtypeConfig, Mean):
    """`sqrt(mean((y_true - y_pred) ** 2))` over everything seen so far.

    Example:
        >>> m = keras.metrics.RootMeanSquaredError()
        >>> m.update_state([[0, 1], [0, 0]], [[1, 1], [0, 0]])
        >>> float(m.result())
        0.5
    """

    def __init__(self, name="root_mean_squared_error", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.__dict__["_direction"] = "down"

    def update_state(self, y_true, y_pred, sample_weight=None):
        dtype, device = self.total.dtype, self.total.device
        y_pred = as_tensor(y_pred).detach().to(device=device, dtype=dtype)
        y_true = as_tensor(y_true).to(device=device, dtype=dtype)
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        return super().update_state(torch.square(y_pred - y_true), sample_weight=sample_weight)

    def result(self):
        return torch.sqrt(super().result())
