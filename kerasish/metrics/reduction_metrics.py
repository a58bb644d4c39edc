"""`Sum`, `Mean` and `MeanMetricWrapper`: the reduction metrics every other
metric builds on (and that `add_metric` and the trainers' loss trackers use).

The weighting follows Keras 3's `reduce_to_samplewise_values`: values are
first reduced to one value per sample (the mean over the trailing axes that
`sample_weight` does not cover), then weighted, and `Mean` divides by the sum
of the weights (or by the number of samples when unweighted).
"""

from __future__ import annotations

import torch

from kerasish.backend.promotion import as_tensor
from kerasish.losses.loss import apply_mask
from kerasish.losses.loss import squeeze_or_expand_to_same_rank
from kerasish.metrics.metric import Metric


def _as_tensor(values, dtype, device=None) -> torch.Tensor:
    if not isinstance(values, torch.Tensor):
        values = as_tensor(values)
    if values.requires_grad:
        values = values.detach()
    if values.dtype != dtype or (device is not None and values.device != device):
        values = values.to(device=device, dtype=dtype)
    return values


def _divide_no_nan(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    safe = torch.where(y == 0, torch.ones_like(y), y)
    return torch.where(y == 0, torch.zeros_like(x), x / safe)


def _reduce(values, fn, start):
    if values.ndim > start:
        return fn(values, dim=tuple(range(start, values.ndim)))
    return values


def reduce_to_samplewise_values(values, sample_weight, reduce_fn, dtype, device):
    """One (weighted) value per sample, and the matching per-sample weights
    (Keras 3's `reduce_to_samplewise_values`)."""
    mask = getattr(values, "_keras_mask", None)
    values = _as_tensor(values, dtype, device)
    if sample_weight is not None:
        sample_weight = _as_tensor(sample_weight, dtype, values.device)
        if mask is not None:
            sample_weight = apply_mask(sample_weight, mask.to(values.device), dtype=dtype, reduction="sum")
        values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
        weight_ndim = sample_weight.ndim
        values = _reduce(values, reduce_fn, weight_ndim)
        sample_weight = torch.broadcast_to(sample_weight, values.shape)
        values = values * sample_weight
        if weight_ndim > 1:
            sample_weight = _reduce(sample_weight, reduce_fn, 1)
    values = _reduce(values, reduce_fn, 1)
    return values, sample_weight


class Sum(Metric):
    """The (weighted) sum of the given values.

    Example:
        >>> m = keras.metrics.Sum()
        >>> m.update_state([1, 3, 5, 7])
        >>> float(m.result())
        16.0
    """

    def __init__(self, name="sum", dtype=None):
        super().__init__(name=name, dtype=dtype)
        self.total = self.add_variable(shape=(), initializer="zeros", name="total")

    def update_state(self, values, sample_weight=None):
        total = self.total
        values, _ = reduce_to_samplewise_values(values, sample_weight, torch.sum, total.dtype, total.device)
        with torch.no_grad():
            total.add_(values.sum())

    def result(self):
        return self.total.detach().clone()

    def reset_state(self):
        self.total.zero_()


class Mean(Metric):
    """The (weighted) mean of the given values.

    Values are reduced per sample first (Keras 3), so `count` counts samples
    (or sums their weights), not elements.

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
        total = self.total
        values, sample_weight = reduce_to_samplewise_values(
            values, sample_weight, torch.mean, total.dtype, total.device
        )
        with torch.no_grad():
            total.add_(values.sum())
            if sample_weight is not None:
                self.count.add_(sample_weight.sum())
            else:
                self.count.add_(values.shape[0] if values.ndim >= 1 else 1)

    def _update_scalar(self, value: torch.Tensor, weight) -> None:
        """Fast path for the trainers' loss trackers: `value` is a 0-d tensor,
        `weight` a Python number (the batch size). Same maths as
        `update_state(value, sample_weight=weight)`."""
        # the state buffers never require grad: no `no_grad` context needed;
        # read from `_buffers` directly (a Layer attribute miss on
        # `_parameters` costs ~1 us, twice per training step)
        buffers = self._buffers
        buffers["total"].add_(value.detach(), alpha=weight)
        buffers["count"].add_(weight)

    def result(self):
        return _divide_no_nan(self.total.detach(), self.count.detach())

    def reset_state(self):
        self.total.zero_()
        self.count.zero_()


class MeanMetricWrapper(Mean):
    """Wraps a stateless function `fn(y_true, y_pred, **kwargs)` returning
    per-sample values into a `Mean` metric.

    As in Keras 2, `y_true` and `y_pred` whose ranks differ by a trailing
    dimension of size 1 are brought to the same rank before `fn` sees them
    (Keras 3 skips this and lets a custom `fn` broadcast).

    Args:
        fn: The metric function.
        name: Defaults to the auto name of the class.
        dtype: Defaults to "float32".
        **kwargs: Passed to `fn` at every update.

    Example:
        >>> m = keras.metrics.MeanMetricWrapper(keras.losses.mean_absolute_error)
        >>> m.update_state([[1.0], [2.0]], [[1.5], [2.5]])
    """

    def __init__(self, fn, name=None, dtype=None, **kwargs):
        super().__init__(name=name, dtype=dtype)
        self.__dict__["_fn"] = fn
        self.__dict__["_fn_kwargs"] = kwargs
        self.__dict__["_direction"] = _direction_of(fn)

    def update_state(self, y_true, y_pred, sample_weight=None):
        if isinstance(y_pred, torch.Tensor):
            mask = getattr(y_pred, "_keras_mask", None)
            if y_pred.requires_grad:
                y_pred = y_pred.detach()
        else:
            mask = None
            y_pred = as_tensor(y_pred).detach()
        if not isinstance(y_true, torch.Tensor):
            y_true = as_tensor(y_true)
        if y_true.device != y_pred.device:
            y_true = y_true.to(y_pred.device)
        if not y_pred.is_floating_point():
            y_pred = y_pred.to(self.total.dtype)
        # Keras 2 (tf.keras `MeanMetricWrapper`) aligns ranks that differ by a
        # trailing 1 before calling `fn`, so a custom metric sees labels (batch,)
        # as (batch, 1) like predictions (batch, 1); Keras 3 passes them as they
        # are and the metric silently broadcasts to (batch, batch).
        y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        with torch.no_grad():
            values = self._fn(y_true, y_pred, **self._fn_kwargs)
        if mask is not None:
            sample_weight = apply_mask(
                None if sample_weight is None else _as_tensor(sample_weight, self.total.dtype, values.device),
                mask.to(values.device), dtype=self.total.dtype, reduction="sum",
            )
        return super().update_state(values, sample_weight=sample_weight)

    def get_config(self):
        from kerasish.saving import serialize_keras_object

        config = super().get_config()
        config["fn"] = serialize_keras_object(self._fn)
        config.update(serialize_keras_object(self._fn_kwargs))
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        if "fn" in config and isinstance(config["fn"], (str, dict)):
            from kerasish import losses

            config["fn"] = losses.get(config["fn"])
        return cls(**config)


def _direction_of(fn) -> str | None:
    from kerasish import losses

    objects = set(losses.ALL_OBJECTS)
    if fn in objects or type(fn) in objects:
        return "down"
    return None
