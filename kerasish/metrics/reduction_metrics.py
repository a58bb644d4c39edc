"""`Sum` and `Mean` (weighted), the metrics `add_metric` uses."""

from __future__ import annotations

import torch

from kerasish.metrics.metric import Metric


def _as_tensor(values, like_dtype):
    if not isinstance(values, torch.Tensor):
        values = torch.as_tensor(values)
    return values.detach().to(like_dtype)


def _weighted(values, sample_weight):
    if sample_weight is None:
        return values, None
    sample_weight = _as_tensor(sample_weight, values.dtype).to(values.device)
    while sample_weight.ndim > values.ndim:
        sample_weight = sample_weight.squeeze(-1)
    while sample_weight.ndim < values.ndim:
        sample_weight = sample_weight.unsqueeze(-1)
    sample_weight = torch.broadcast_to(sample_weight, values.shape)
    return values * sample_weight, sample_weight


class Sum(Metric):
    """The (weighted) sum of the given values."""

    def __init__(self, name="sum", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")

    def update_state(self, values, sample_weight=None):
        values = _as_tensor(values, self.total.dtype).to(self.total.device)
        values, _ = _weighted(values, sample_weight)
        self.total.assign_add(values.sum())

    def result(self):
        return self.total.detach().clone()


class Mean(Metric):
    """The (weighted) mean of the given values.

    Example:
        >>> m = keras.metrics.Mean()
        >>> m.update_state([1, 3, 5, 7])
        >>> float(m.result())
        4.0
    """

    def __init__(self, name="mean", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")
        self.count = self.add_variable(shape=(), initializer="zeros", name="count")

    def update_state(self, values, sample_weight=None):
        values = _as_tensor(values, self.total.dtype).to(self.total.device)
        weighted, weights = _weighted(values, sample_weight)
        self.total.assign_add(weighted.sum())
        if weights is None:
            self.count.assign_add(torch.tensor(float(values.numel()), device=values.device))
        else:
            self.count.assign_add(weights.sum())

    def result(self):
        total, count = self.total.detach(), self.count.detach()
        return torch.where(count > 0, total / torch.clamp(count, min=1e-38), torch.zeros_like(total))
