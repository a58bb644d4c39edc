"""Hinge metrics (Keras 3): `Hinge`, `SquaredHinge`, `CategoricalHinge`,
the (weighted) means of the losses of the same names."""

from __future__ import annotations

from kerasish.losses import losses as _losses
from kerasish.metrics.reduction_metrics import MeanMetricWrapper


class _HingeBase(MeanMetricWrapper):
    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class Hinge(_HingeBase):
    """Mean of `maximum(1 - y_true * y_pred, 0)` (mean over the last axis
    per sample). Binary 0/1 labels are converted to -1/1.

    Args:
        name: Defaults to `"hinge"`.
        dtype: Defaults to `"float32"`.

    Example:
        >>> m = keras.metrics.Hinge()
        >>> m.update_state([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]])
        >>> float(m.result())  # 1.3
    """

    def __init__(self, name="hinge", dtype=None):
        super().__init__(fn=_losses.hinge, name=name, dtype=dtype)
        self.__dict__["_direction"] = "down"


class SquaredHinge(_HingeBase):
    """Mean of `maximum(1 - y_true * y_pred, 0) ** 2`. Binary 0/1 labels are
    converted to -1/1.

    Args:
        name: Defaults to `"squared_hinge"`.
        dtype: Defaults to `"float32"`.

    Example:
        >>> m = keras.metrics.SquaredHinge()
        >>> m.update_state([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]])
        >>> float(m.result())  # 1.86
    """

    def __init__(self, name="squared_hinge", dtype=None):
        super().__init__(fn=_losses.squared_hinge, name=name, dtype=dtype)
        self.__dict__["_direction"] = "down"


class CategoricalHinge(_HingeBase):
    """Mean of `maximum(neg - pos + 1, 0)` with `pos = sum(y_true * y_pred)`
    and `neg = max((1 - y_true) * y_pred)` over the last axis.

    Args:
        name: Defaults to `"categorical_hinge"`.
        dtype: Defaults to `"float32"`.

    Example:
        >>> m = keras.metrics.CategoricalHinge()
        >>> m.update_state([[0, 1], [0, 0]], [[0.6, 0.4], [0.4, 0.6]])
        >>> float(m.result())  # 1.4
    """

    def __init__(self, name="categorical_hinge", dtype=None):
        super().__init__(fn=_losses.categorical_hinge, name=name, dtype=dtype)
        self.__dict__["_direction"] = "down"
