"""Probabilistic metrics (Keras 3): crossentropies, `KLDivergence`, `Poisson`."""

from __future__ import annotations

from kerasish.losses import losses as _losses
from kerasish.metrics.reduction_metrics import MeanMetricWrapper


class KLDivergence(MeanMetricWrapper):
    """Mean Kullback-Leibler divergence between `y_true` and `y_pred`."""

    def __init__(self, name="kl_divergence", dtype=None):
        super().__init__(fn=_losses.kl_divergence, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class Poisson(MeanMetricWrapper):
    """Mean of `y_pred - y_true * log(y_pred)`."""

    def __init__(self, name="poisson", dtype=None):
        super().__init__(fn=_losses.poisson, name=name, dtype=dtype)

    def get_config(self):
        return {"name": self.name, "dtype": self.dtype}


class BinaryCrossentropy(MeanMetricWrapper):
    """Mean binary crossentropy.

    Args:
        from_logits: Whether `y_pred` holds logits. Defaults to False.
        label_smoothing: Squeeze labels towards 0.5. Defaults to 0.
    """

    def __init__(self, name="binary_crossentropy", dtype=None, from_logits=False, label_smoothing=0):
        super().__init__(
            _losses.binary_crossentropy, name, dtype=dtype, from_logits=from_logits, label_smoothing=label_smoothing
        )
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing
        self.__dict__["_direction"] = "down"

    def get_config(self):
        return {
            "name": self.name, "dtype": self.dtype,
            "from_logits": self.from_logits, "label_smoothing": self.label_smoothing,
        }


class CategoricalCrossentropy(MeanMetricWrapper):
    """Mean categorical crossentropy (one-hot labels).

    Args:
        from_logits: Whether `y_pred` holds logits. Defaults to False.
        label_smoothing: Defaults to 0.
        axis: The class axis. Defaults to -1.
    """

    def __init__(self, name="categorical_crossentropy", dtype=None, from_logits=False, label_smoothing=0, axis=-1):
        super().__init__(
            _losses.categorical_crossentropy, name, dtype=dtype,
            from_logits=from_logits, label_smoothing=label_smoothing, axis=axis,
        )
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing
        self.axis = axis
        self.__dict__["_direction"] = "down"

    def get_config(self):
        return {
            "name": self.name, "dtype": self.dtype, "from_logits": self.from_logits,
            "label_smoothing": self.label_smoothing, "axis": self.axis,
        }


class SparseCategoricalCrossentropy(MeanMetricWrapper):
    """Mean categorical crossentropy for integer labels.

    Args:
        from_logits: Whether `y_pred` holds logits. Defaults to False.
        ignore_class: A label value to leave out. Defaults to None.
        axis: The class axis. Defaults to -1.
    """

    def __init__(
        self, name="sparse_categorical_crossentropy", dtype=None, from_logits=False, ignore_class=None, axis=-1
    ):
        super().__init__(
            _losses.sparse_categorical_crossentropy, name=name, dtype=dtype,
            from_logits=from_logits, ignore_class=ignore_class, axis=axis,
        )
        self.from_logits = from_logits
        self.ignore_class = ignore_class
        self.axis = axis
        self.__dict__["_direction"] = "down"

    def get_config(self):
        return {
            "name": self.name, "dtype": self.dtype, "from_logits": self.from_logits,
            "ignore_class": self.ignore_class, "axis": self.axis,
        }
