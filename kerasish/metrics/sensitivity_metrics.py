"""Operating-point metrics over a threshold grid: `SensitivityAtSpecificity`,
`SpecificityAtSensitivity`, `PrecisionAtRecall`, `RecallAtPrecision` (Keras 3).

Each accumulates TP/FP/TN/FN at `num_thresholds` evenly spaced thresholds in
[0, 1] and reports the best value of one rate among the thresholds where the
other rate meets the target (0.0 when none does).
"""

from __future__ import annotations

import torch

from kerasish.metrics.confusion_metrics import FN, FP, TN, TP, _divide_no_nan, update_confusion_matrix_variables
from kerasish.metrics.metric import Metric


class _SensitivitySpecificityBase(Metric):
    _value_name = "value"

    def __init__(self, value, num_thresholds=200, class_id=None, name=None, dtype=None):
        if value < 0 or value > 1:
            raise ValueError(
                f"Argument `{self._value_name}` must be in the range [0, 1]. Received: {self._value_name}={value}"
            )
        if num_thresholds <= 0:
            raise ValueError(
                f"Argument `num_thresholds` must be an integer > 0. Received: num_thresholds={num_thresholds}"
            )
        super().__init__(name=name, dtype=dtype)
        d = self.__dict__
        d["_direction"] = "up"
        d["value"] = value
        d[self._value_name] = value
        d["num_thresholds"] = num_thresholds
        d["class_id"] = class_id
        if num_thresholds == 1:
            d["thresholds"], d["_evenly"] = [0.5], False
        else:
            inner = [(i + 1) * 1.0 / (num_thresholds - 1) for i in range(num_thresholds - 2)]
            d["thresholds"], d["_evenly"] = [0.0, *inner, 1.0], True
        n = len(self.thresholds)
        for var in ("true_positives", "false_positives", "true_negatives", "false_negatives"):
            setattr(self, var, self.add_variable(shape=(n,), initializer="zeros", name=var))

    def update_state(self, y_true, y_pred, sample_weight=None):
        """Accumulates the counts at every threshold; `y_pred` are scores in [0, 1]."""
        update_confusion_matrix_variables(
            {TP: self.true_positives, TN: self.true_negatives, FP: self.false_positives, FN: self.false_negatives},
            y_true, y_pred, self.thresholds, thresholds_distributed_evenly=self._evenly,
            class_id=self.class_id, sample_weight=sample_weight,
        )

    def _rates(self):
        tp, fp = self.true_positives.detach(), self.false_positives.detach()
        tn, fn = self.true_negatives.detach(), self.false_negatives.detach()
        return {
            "sensitivity": _divide_no_nan(tp, tp + fn),  # = recall
            "specificity": _divide_no_nan(tn, tn + fp),
            "precision": _divide_no_nan(tp, tp + fp),
        }

    def _max_where(self, constrained, dependent):
        feasible = constrained >= self.value
        return torch.where(feasible, dependent, torch.zeros_like(dependent)).max().clamp(min=0)

    def get_config(self):
        return {**super().get_config(), "class_id": self.class_id, "num_thresholds": self.num_thresholds,
                self._value_name: self.value}


class SensitivityAtSpecificity(_SensitivitySpecificityBase):
    """Best sensitivity `tp / (tp + fn)` where specificity `tn / (tn + fp)` >= `specificity`.

    Args:
        specificity: A scalar value in `[0, 1]`.
        num_thresholds: Number of thresholds to try. Defaults to 200.
        class_id: Evaluate only this class (last axis of predictions).
        name: Metric name. dtype: Result dtype.

    Example:
        >>> m = keras.metrics.SensitivityAtSpecificity(0.5)
        >>> m.update_state([0, 0, 0, 1, 1], [0, 0.3, 0.8, 0.3, 0.8])
        >>> float(m.result())
        0.5
    """

    _value_name = "specificity"

    def __init__(self, specificity, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(specificity, num_thresholds=num_thresholds, class_id=class_id, name=name, dtype=dtype)

    def result(self):
        r = self._rates()
        return self._max_where(r["specificity"], r["sensitivity"])


class SpecificityAtSensitivity(_SensitivitySpecificityBase):
    """Best specificity where sensitivity >= `sensitivity`. Args as `SensitivityAtSpecificity`."""

    _value_name = "sensitivity"

    def __init__(self, sensitivity, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(sensitivity, num_thresholds=num_thresholds, class_id=class_id, name=name, dtype=dtype)

    def result(self):
        r = self._rates()
        return self._max_where(r["sensitivity"], r["specificity"])


class PrecisionAtRecall(_SensitivitySpecificityBase):
    """Best precision where recall >= `recall`. Args as `SensitivityAtSpecificity`."""

    _value_name = "recall"

    def __init__(self, recall, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(recall, num_thresholds=num_thresholds, class_id=class_id, name=name, dtype=dtype)

    def result(self):
        r = self._rates()
        return self._max_where(r["sensitivity"], r["precision"])


class RecallAtPrecision(_SensitivitySpecificityBase):
    """Best recall where precision >= `precision` (0.0 when no threshold reaches it).
    Args as `SensitivityAtSpecificity`."""

    _value_name = "precision"

    def __init__(self, precision, num_thresholds=200, class_id=None, name=None, dtype=None):
        super().__init__(precision, num_thresholds=num_thresholds, class_id=class_id, name=name, dtype=dtype)

    def result(self):
        r = self._rates()
        return self._max_where(r["precision"], r["sensitivity"])
