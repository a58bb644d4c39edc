"""`R2Score` (Keras 3): the coefficient of determination, optionally adjusted.

As in Keras, the per-output state (`squared_sum`, `sum`, `residual`, `count`)
is created on the first `update_state`, when the number of outputs is known;
`num_samples` exists from the start.
"""

from __future__ import annotations

import warnings

import torch

from kerasish.backend.promotion import as_tensor
from kerasish.losses.loss import squeeze_or_expand_to_same_rank
from kerasish.metrics.metric import Metric

_CLASS_AGGREGATIONS = (None, "uniform_average", "variance_weighted_average")


class R2Score(Metric):
    """R2 score: `1 - sum((y_true - y_pred) ** 2) / sum((y_true - mean(y_true)) ** 2)`
    per output (the last axis), aggregated over the outputs.

    With `num_regressors=p > 0` it is the adjusted R2,
    `1 - (1 - R2) * (n - 1) / (n - p - 1)` where `n` is the number of
    elements seen (Keras counts elements of `y_true`, not rows); when
    `p >= n - 1` it warns and falls back to the plain R2 score, as Keras does.

    Args:
        class_aggregation: `None` (one score per output), `"uniform_average"`
            or `"variance_weighted_average"` (scikit-learn's `multioutput`).
            Defaults to `"uniform_average"`.
        num_regressors: Number of independent regressors for the adjusted
            R2; 0 gives the standard score. Defaults to `0`.
        name: Defaults to `"r2_score"`.
        dtype: Defaults to `"float32"`.

    Inputs: `y_true`, `y_pred` of shape `(batch_size, output_dim)`;
    `sample_weight` of shape `(batch_size,)` or broadcastable to `y_true`.

    Example:
        >>> m = keras.metrics.R2Score()
        >>> m.update_state([[1.0], [4.0], [3.0]], [[2.0], [4.0], [4.0]])
        >>> float(m.result())  # 0.5714...

    Raises:
        ValueError: for an invalid `class_aggregation`, a negative
            `num_regressors`, or inputs that are not 2D.
    """

    def __init__(self, class_aggregation="uniform_average", num_regressors=0, name="r2_score", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.__dict__["_direction"] = "up"
        if class_aggregation not in _CLASS_AGGREGATIONS:
            raise ValueError(
                f"Invalid value for argument `class_aggregation`. Expected one of {_CLASS_AGGREGATIONS}. "
                f"Received: class_aggregation={class_aggregation}"
            )
        if num_regressors < 0:
            raise ValueError(
                "Invalid value for argument `num_regressors`. Expected a value >= 0. "
                f"Received: num_regressors={num_regressors}"
            )
        self.class_aggregation = class_aggregation
        self.num_regressors = num_regressors
        self.num_samples = self.add_variable(shape=(), initializer="zeros", name="num_samples")
        self.__dict__["_state_built"] = False

    def _build_state(self, y_true_shape, y_pred_shape):
        if len(y_pred_shape) != 2 or len(y_true_shape) != 2:
            raise ValueError(
                "R2Score expects 2D inputs with shape (batch_size, output_dim). Received input "
                f"shapes: y_pred.shape={tuple(y_pred_shape)} and y_true.shape={tuple(y_true_shape)}."
            )
        device = self.num_samples.device
        for name in ("squared_sum", "sum", "residual", "count"):
            var = self.add_variable(shape=(int(y_pred_shape[-1]),), initializer="zeros", name=name)
            if var.device != device:
                var.data = var.data.to(device)
        self.__dict__["_state_built"] = True

    def update_state(self, y_true, y_pred, sample_weight=None):
        dtype, device = self.num_samples.dtype, self.num_samples.device
        y_true = as_tensor(y_true).detach().to(device=device, dtype=dtype)
        y_pred = as_tensor(y_pred).detach().to(device=device, dtype=dtype)
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        if not self._state_built:
            self._build_state(y_true.shape, y_pred.shape)
        if sample_weight is None:
            sample_weight = torch.ones((), dtype=dtype, device=device)
        else:
            sample_weight = as_tensor(sample_weight).to(device=device, dtype=dtype)
            if sample_weight.ndim == 1:
                sample_weight = sample_weight.unsqueeze(1)
        sample_weight = torch.broadcast_to(sample_weight, y_true.shape)
        weighted_y_true = y_true * sample_weight
        buffers = self._buffers
        with torch.no_grad():
            buffers["sum"].add_(weighted_y_true.sum(0))
            buffers["squared_sum"].add_((y_true * weighted_y_true).sum(0))
            buffers["residual"].add_((torch.square(y_true - y_pred) * sample_weight).sum(0))
            buffers["count"].add_(sample_weight.sum(0))
            self.num_samples.add_(y_true.numel())

    def result(self):
        if not self._state_built:
            raise ValueError("R2Score has no state yet: call `update_state()` first.")
        buffers = self._buffers
        total_sum, count = buffers["sum"].detach(), buffers["count"].detach()
        mean = total_sum / count
        total = buffers["squared_sum"].detach() - total_sum * mean
        raw_scores = 1 - buffers["residual"].detach() / total
        raw_scores = torch.where(torch.isinf(raw_scores), torch.zeros_like(raw_scores), raw_scores)
        if self.class_aggregation == "uniform_average":
            score = raw_scores.mean()
        elif self.class_aggregation == "variance_weighted_average":
            score = torch.sum(total * raw_scores) / torch.sum(total)
        else:
            score = raw_scores
        if self.num_regressors != 0:
            n = float(self.num_samples)
            p = float(self.num_regressors)
            if p > n - 1:
                warnings.warn(
                    "More independent predictors than datapoints in adjusted R2 score. "
                    "Falling back to standard R2 score.",
                    stacklevel=2,
                )
            elif p == n - 1:
                warnings.warn("Division by zero in Adjusted R2 score. Falling back to standard R2 score.", stacklevel=2)
            else:
                score = 1.0 - (1.0 - score) * (n - 1.0) / (n - p - 1.0)
        return score

    def reset_state(self):
        for var in self.variables:
            var.zero_()  # (on the variable: a StatelessScope collects it)

    def get_config(self):
        config = super().get_config()
        config.update({"class_aggregation": self.class_aggregation, "num_regressors": self.num_regressors})
        return config
