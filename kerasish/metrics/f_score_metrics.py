"""F-scores (Keras 3): `FBetaScore` and `F1Score`.

As in Keras, the state variables (`true_positives`, `false_positives`,
`false_negatives`, `intermediate_weights`) are created on the first
`update_state`, when the number of classes is known: shape `(num_classes,)`,
or `()` with `average="micro"`.
"""

from __future__ import annotations

import torch

from kerasish.backend.promotion import as_tensor
from kerasish.metrics.metric import Metric

_EPSILON = 1e-7  # keras.backend.epsilon()


class FBetaScore(Metric):
    """F-beta score: `(1 + b2) * precision * recall / (b2 * precision + recall)`
    with `b2 = beta ** 2`, for multi-class and multi-label classification.

    Args:
        average: How per-class results are averaged: `None` (one score per
            class), `"micro"` (global TP/FP/FN counts), `"macro"` (unweighted
            mean of the class scores) or `"weighted"` (mean weighted by the
            support of each class). Defaults to `None`.
        beta: Weight of recall in the harmonic mean; a Python float > 0.
            Defaults to `1.0`.
        threshold: Predictions `> threshold` count as 1, others 0; a Python
            float in `(0, 1]`. With `None`, the (non-zero) maximum of each row
            counts as 1. Defaults to `None`.
        name: Defaults to `"fbeta_score"`.
        dtype: Defaults to `"float32"`.

    Inputs are 2D: `y_true`, `y_pred` of shape `(batch_size, num_classes)`;
    `sample_weight` of shape `(batch_size,)`.

    Example:
        >>> m = keras.metrics.FBetaScore(beta=2.0, threshold=0.5)
        >>> m.update_state([[1, 1, 1], [1, 0, 0], [1, 1, 0]],
        ...                [[0.2, 0.6, 0.7], [0.2, 0.6, 0.6], [0.6, 0.8, 0.0]])
        >>> m.result()  # [0.3846154, 0.90909094, 0.8333334]

    Raises:
        ValueError: for an invalid `average`, `beta` or `threshold`, and for
            inputs that are not 2D.
    """

    def __init__(self, average=None, beta=1.0, threshold=None, name="fbeta_score", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.__dict__["_direction"] = "up"
        if average not in (None, "micro", "macro", "weighted"):
            raise ValueError(
                "Invalid `average` argument value. Expected one of: {None, 'micro', 'macro', 'weighted'}. "
                f"Received: average={average}"
            )
        if not isinstance(beta, float):
            raise ValueError(
                "Invalid `beta` argument value. It should be a Python float. "
                f"Received: beta={beta} of type '{type(beta)}'"
            )
        if beta <= 0.0:
            raise ValueError(f"Invalid `beta` argument value. It should be > 0. Received: beta={beta}")
        if threshold is not None:
            if not isinstance(threshold, float):
                raise ValueError(
                    "Invalid `threshold` argument value. It should be a Python float. "
                    f"Received: threshold={threshold} of type '{type(threshold)}'"
                )
            if threshold > 1.0 or threshold <= 0.0:
                raise ValueError(
                    "Invalid `threshold` argument value. It should verify 0 < threshold <= 1. "
                    f"Received: threshold={threshold}"
                )
        self.average = average
        self.beta = beta
        self.threshold = threshold
        self.axis = None if average == "micro" else 0
        self.__dict__["_state_built"] = False

    def _build_state(self, y_true_shape, y_pred_shape, device):
        if len(y_pred_shape) != 2 or len(y_true_shape) != 2:
            raise ValueError(
                f"{type(self).__name__} expects 2D inputs with shape (batch_size, output_dim). Received input "
                f"shapes: y_pred.shape={tuple(y_pred_shape)} and y_true.shape={tuple(y_true_shape)}."
            )
        shape = () if self.average == "micro" else (int(y_pred_shape[-1]),)
        for name in ("true_positives", "false_positives", "false_negatives", "intermediate_weights"):
            var = self.add_variable(shape=shape, initializer="zeros", name=name)
            if var.device != device:
                var.data = var.data.to(device)
        self.__dict__["_state_built"] = True

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_pred = as_tensor(y_pred).detach()
        if not self._state_built:
            self._build_state(as_tensor(y_true).shape, y_pred.shape, y_pred.device)
        tp = self.true_positives
        dtype, device = tp.dtype, tp.device
        y_pred = y_pred.to(device=device, dtype=dtype)
        y_true = as_tensor(y_true).to(device=device, dtype=dtype)
        if self.threshold is None:
            row_max = y_pred.amax(dim=-1, keepdim=True)
            y_pred = (y_pred >= row_max) & (y_pred.abs() > 1e-9)
        else:
            y_pred = y_pred > self.threshold
        y_pred = y_pred.to(dtype)
        if sample_weight is not None:
            sample_weight = as_tensor(sample_weight).to(device=device, dtype=dtype).unsqueeze(1)

        def weighted_sum(val):
            if sample_weight is not None:
                val = val * sample_weight
            return val.sum() if self.axis is None else val.sum(dim=self.axis)

        with torch.no_grad():
            tp.add_(weighted_sum(y_pred * y_true))
            self.false_positives.add_(weighted_sum(y_pred * (1 - y_true)))
            self.false_negatives.add_(weighted_sum((1 - y_pred) * y_true))
            self.intermediate_weights.add_(weighted_sum(y_true))

    def result(self):
        if not self._state_built:
            raise ValueError(f"{type(self).__name__} has no state yet: call `update_state()` first.")
        tp = self.true_positives.detach()
        precision = tp / (tp + self.false_positives.detach() + _EPSILON)
        recall = tp / (tp + self.false_negatives.detach() + _EPSILON)
        b2 = self.beta**2
        score = precision * recall / (b2 * precision + recall + _EPSILON) * (1 + b2)
        if self.average == "weighted":
            w = self.intermediate_weights.detach()
            score = torch.sum(score * (w / (w.sum() + _EPSILON)))
        elif self.average is not None:  # micro, macro
            score = score.mean()
        return score

    def reset_state(self):
        for var in self.variables:
            var.zero_()  # (on the variable: a StatelessScope collects it)

    def get_config(self):
        config = super().get_config()
        config.update({"average": self.average, "beta": self.beta, "threshold": self.threshold})
        return config


class F1Score(FBetaScore):
    """F-1 score: `2 * precision * recall / (precision + recall)`
    (`FBetaScore` with `beta=1.0`).

    Args:
        average: `None`, `"micro"`, `"macro"` or `"weighted"` (see
            `FBetaScore`). Defaults to `None`.
        threshold: Predictions `> threshold` count as 1; with `None` the
            row maximum counts as 1. Defaults to `None`.
        name: Defaults to `"f1_score"`.
        dtype: Defaults to `"float32"`.

    Example:
        >>> m = keras.metrics.F1Score(threshold=0.5)
        >>> m.update_state([[1, 1, 1], [1, 0, 0], [1, 1, 0]],
        ...                [[0.2, 0.6, 0.7], [0.2, 0.6, 0.6], [0.6, 0.8, 0.0]])
        >>> m.result()  # [0.5, 0.8, 0.6666667]
    """

    def __init__(self, average=None, threshold=None, name="f1_score", dtype=None):
        super().__init__(average=average, beta=1.0, threshold=threshold, name=name, dtype=dtype)

    def get_config(self):
        config = super().get_config()
        del config["beta"]
        return config
