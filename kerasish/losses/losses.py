"""Keras 3 loss classes and functions, computed with torch ops.

Formulas, defaults and epsilon clipping (`1e-7`) follow Keras 3.15 on its
torch backend: probability inputs are clipped to `[1e-7, 1 - 1e-7]`; logits
go through torch's fused `binary_cross_entropy_with_logits`, `log_softmax`
and `cross_entropy`.
"""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F

from kerasish.backend.dtypes import to_torch_dtype
from kerasish.backend.keras_tensor import KerasTensor
from kerasish.losses.loss import (
    EPSILON,
    Loss,
    squeeze_or_expand_to_same_rank,
    to_tensor,
)
from kerasish.saving.serialization_lib import serialize_keras_object


def _device(x):
    """`x.device`, or None for a KerasTensor (symbolic: no device yet)."""
    return None if isinstance(x, KerasTensor) else x.device


def keras_power(x: torch.Tensor, exponent) -> torch.Tensor:
    """`x ** exponent` as `keras.ops.power` computes it on torch: a number
    exponent becomes a 0-d float32 tensor, so torch's general `pow` kernel
    runs (a Python-number exponent takes torch's scalar fast paths, e.g.
    `x * x` for 2, which round differently, forward and backward)."""
    if not isinstance(exponent, torch.Tensor):
        exponent = torch.tensor(float(exponent), dtype=torch.float32, device=_device(x))
    return torch.pow(x, exponent)


def _smooth_one_hot(y_true: torch.Tensor, label_smoothing: float) -> torch.Tensor:
    """`y_true * (1 - ls) + ls / num_classes`, with `ls / num_classes` rounded
    as Keras computes it on torch: the class count a 0-d tensor of the targets'
    dtype, divided by torch's `__rtruediv__` (`reciprocal() * ls`)."""
    num_classes = torch.tensor(float(y_true.shape[-1]), dtype=to_torch_dtype(y_true.dtype))
    return y_true * (1.0 - label_smoothing) + num_classes.reciprocal() * label_smoothing


def _pair(y_true, y_pred, dtype_from_pred: bool = True):
    """Converts both to tensors; `y_true` takes `y_pred`'s dtype and device."""
    y_pred = to_tensor(y_pred)
    y_true = to_tensor(y_true, dtype=y_pred.dtype if dtype_from_pred else None, device=_device(y_pred))
    return y_true, y_pred


# ----------------------------------------------------------------- functions


def mean_squared_error(y_true, y_pred):
    """`mean((y_true - y_pred) ** 2, axis=-1)`."""
    y_true, y_pred = _pair(y_true, y_pred)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    return torch.mean(torch.square(y_true - y_pred), dim=-1)


def mean_absolute_error(y_true, y_pred):
    """`mean(abs(y_true - y_pred), axis=-1)`."""
    y_true, y_pred = _pair(y_true, y_pred)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    return torch.mean(torch.abs(y_true - y_pred), dim=-1)


def mean_absolute_percentage_error(y_true, y_pred):
    """`100 * mean(abs((y_true - y_pred) / max(abs(y_true), eps)), axis=-1)`."""
    y_true, y_pred = _pair(y_true, y_pred)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    diff = torch.abs((y_true - y_pred) / torch.clamp(torch.abs(y_true), min=EPSILON))
    return 100.0 * torch.mean(diff, dim=-1)


def mean_squared_logarithmic_error(y_true, y_pred):
    """`mean((log(max(y_pred, eps) + 1) - log(max(y_true, eps) + 1)) ** 2)`."""
    y_true, y_pred = _pair(y_true, y_pred)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    first_log = torch.log(torch.clamp(y_pred, min=EPSILON) + 1.0)
    second_log = torch.log(torch.clamp(y_true, min=EPSILON) + 1.0)
    return torch.mean(torch.square(first_log - second_log), dim=-1)


def _l2_normalize(x, axis):
    inv_norm = torch.rsqrt(torch.sum(torch.square(x), dim=axis, keepdim=True))
    # Keras: minimum(inv_norm, 1 / epsilon); 1 / epsilon is inf in float16 (no cap)
    # (on a KerasTensor the dtype is its Keras name)
    if 1.0 / EPSILON <= torch.finfo(to_torch_dtype(inv_norm.dtype)).max:
        inv_norm = torch.clamp(inv_norm, max=1.0 / EPSILON)
    return x * inv_norm


def cosine_similarity(y_true, y_pred, axis: int = -1):
    """Negative cosine similarity along `axis` (-1 is most similar)."""
    y_true, y_pred = _pair(y_true, y_pred)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    return -torch.sum(_l2_normalize(y_true, axis) * _l2_normalize(y_pred, axis), dim=axis)


def huber(y_true, y_pred, delta: float = 1.0):
    """Huber loss: quadratic for `|error| <= delta`, linear beyond."""
    y_true, y_pred = _pair(y_true, y_pred)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    delta = torch.as_tensor(delta, dtype=to_torch_dtype(y_pred.dtype), device=_device(y_pred))
    error = y_pred - y_true
    abs_error = torch.abs(error)
    half = 0.5
    return torch.mean(
        torch.where(abs_error <= delta, half * torch.square(error), delta * abs_error - half * torch.square(delta)),
        dim=-1,
    )


def log_cosh(y_true, y_pred):
    """`mean(log(cosh(y_pred - y_true)), axis=-1)`, computed stably."""
    y_true, y_pred = _pair(y_true, y_pred)
    y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
    x = y_pred - y_true
    return torch.mean(x + F.softplus(x * -2.0) - math.log(2.0), dim=-1)


def kl_divergence(y_true, y_pred):
    """`sum(y_true * log(y_true / y_pred), axis=-1)`, both clipped to `[eps, 1]`."""
    y_true, y_pred = _pair(y_true, y_pred)
    y_true = torch.clamp(y_true, EPSILON, 1)
    y_pred = torch.clamp(y_pred, EPSILON, 1)
    return torch.sum(y_true * torch.log(y_true / y_pred), dim=-1)


def poisson(y_true, y_pred):
    """`mean(y_pred - y_true * log(y_pred + eps), axis=-1)`."""
    y_true, y_pred = _pair(y_true, y_pred)
    return torch.mean(y_pred - y_true * torch.log(y_pred + EPSILON), dim=-1)


def _convert_binary_labels_to_hinge(y_true):
    """Maps {0, 1} labels to {-1, 1}; other labels are left unchanged."""
    is_binary = torch.all(torch.eq(y_true, 0) | torch.eq(y_true, 1))  # torch.eq: also on KerasTensors
    return torch.where(is_binary, 2.0 * y_true - 1.0, y_true)


def hinge(y_true, y_pred):
    """`mean(max(1 - y_true * y_pred, 0), axis=-1)`; 0/1 labels become -1/1."""
    y_true, y_pred = _pair(y_true, y_pred)
    y_true = _convert_binary_labels_to_hinge(y_true)
    return torch.mean(torch.clamp(1.0 - y_true * y_pred, min=0.0), dim=-1)


def squared_hinge(y_true, y_pred):
    """`mean(max(1 - y_true * y_pred, 0) ** 2, axis=-1)`."""
    y_true, y_pred = _pair(y_true, y_pred)
    y_true = _convert_binary_labels_to_hinge(y_true)
    return torch.mean(torch.square(torch.clamp(1.0 - y_true * y_pred, min=0.0)), dim=-1)


def categorical_hinge(y_true, y_pred):
    """`max(max((1 - y_true) * y_pred) - sum(y_true * y_pred) + 1, 0)`."""
    y_true, y_pred = _pair(y_true, y_pred)
    pos = torch.sum(y_true * y_pred, dim=-1)
    neg = torch.amax((1.0 - y_true) * y_pred, dim=-1)
    return torch.clamp(neg - pos + 1.0, min=0.0)


def _check_axis(axis):
    if isinstance(axis, bool):
        raise ValueError(f"`axis` must be of type `int`. Received: axis={axis} of type {type(axis)}")  # noqa: TRY004


def _warn_single_class(fn_name, y_pred):
    if y_pred.dim() > 0 and y_pred.shape[-1] == 1:
        warnings.warn(
            f"In loss {fn_name}, expected y_pred.shape to be (batch_size, num_classes) "
            f"with num_classes > 1. Received: y_pred.shape={tuple(y_pred.shape)}. "
            "Consider using 'binary_crossentropy' if you only have 2 classes.",
            SyntaxWarning,
            stacklevel=3,
        )


def _binary_crossentropy_op(target, output, from_logits):
    """Element-wise BCE as Keras's torch backend computes it."""
    if target.shape != output.shape:
        raise ValueError(
            "Arguments `target` and `output` must have the same shape. "
            f"Received: target.shape={tuple(target.shape)}, output.shape={tuple(output.shape)}"
        )
    if from_logits:
        return F.binary_cross_entropy_with_logits(output, target, reduction="none")
    output = torch.clamp(output, EPSILON, 1.0 - EPSILON)
    # torch's fused BCE has no gradient w.r.t. the target (which a symbolic target may need)
    if isinstance(target, KerasTensor) or target.requires_grad:
        return -(target * torch.log(output) + (1.0 - target) * torch.log1p(-output))
    return F.binary_cross_entropy(output, target, reduction="none")


def _categorical_crossentropy_op(target, output, from_logits, axis):
    if target.shape != output.shape:
        raise ValueError(
            "Arguments `target` and `output` must have the same shape. "
            f"Received: target.shape={tuple(target.shape)}, output.shape={tuple(output.shape)}"
        )
    if target.dim() < 1:
        raise ValueError("Arguments `target` and `output` must be at least rank 1.")
    if from_logits:
        log_prob = F.log_softmax(output, dim=axis)
    else:
        output = output / torch.sum(output, dim=axis, keepdim=True)
        log_prob = torch.log(torch.clamp(output, EPSILON, 1.0 - EPSILON))
    return -torch.sum(target * log_prob, dim=axis)


def categorical_crossentropy(y_true, y_pred, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1):
    """Categorical crossentropy on one-hot (or soft) targets.

    Args:
        y_true: One-hot targets.
        y_pred: Probabilities (renormalised and clipped to `[eps, 1 - eps]`)
            or logits when `from_logits=True`.
        from_logits: Whether `y_pred` are logits.
        label_smoothing: Mixes targets with the uniform distribution.
        axis: The class axis.
    """
    _check_axis(axis)
    y_pred = to_tensor(y_pred)
    y_true = to_tensor(y_true, dtype=y_pred.dtype, device=_device(y_pred))
    _warn_single_class("categorical_crossentropy", y_pred)
    if label_smoothing:
        y_true = _smooth_one_hot(y_true, label_smoothing)
    return _categorical_crossentropy_op(y_true, y_pred, from_logits, axis)


def categorical_focal_crossentropy(
    y_true, y_pred, alpha: float = 0.25, gamma: float = 2.0, from_logits: bool = False,
    label_smoothing: float = 0.0, axis: int = -1,
):
    """Focal loss on one-hot targets: `sum(alpha * (1 - p) ** gamma * CE)`."""
    _check_axis(axis)
    y_pred = to_tensor(y_pred)
    y_true = to_tensor(y_true, dtype=y_pred.dtype, device=_device(y_pred))
    _warn_single_class("categorical_focal_crossentropy", y_pred)
    if label_smoothing:
        y_true = _smooth_one_hot(y_true, label_smoothing)
    if from_logits:
        y_pred = torch.softmax(y_pred, dim=axis)
    output = y_pred / torch.sum(y_pred, dim=axis, keepdim=True)
    output = torch.clamp(output, EPSILON, 1.0 - EPSILON)
    cce = -y_true * torch.log(output)
    focal = keras_power(1.0 - output, gamma) * alpha * cce
    return torch.sum(focal, dim=axis)


def _sparse_categorical_crossentropy_op(target, output, from_logits, axis):
    target = target.long()
    if target.dim() == output.dim() and target.shape[axis] == 1:
        target = target.squeeze(axis)
    if output.dim() < 1:
        raise ValueError(f"Argument `output` must be at least rank 1. Received: output.shape={tuple(output.shape)}")
    expected = list(output.shape)
    del expected[axis]
    if list(target.shape) != expected:
        raise ValueError(
            "Arguments `target` and `output` must have the same shape up until the last dimension: "
            f"target.shape={tuple(target.shape)}, output.shape={tuple(output.shape)}"
        )
    squeeze = output.dim() == 1
    if squeeze:
        output, target = output.unsqueeze(0), target.unsqueeze(0)
    else:
        class_axis = axis % output.dim()
        if class_axis != 1:
            output = output.movedim(class_axis, 1)
    if from_logits:
        result = F.cross_entropy(output, target, reduction="none")
    else:
        output = output / torch.sum(output, dim=1, keepdim=True)
        log_prob = torch.log(torch.clamp(output, EPSILON, 1.0 - EPSILON))
        if log_prob.dim() > 2:
            # torch's nll_loss on a (N, C, d1, ...) input that is a permuted view (the class axis of
            # a channels-last per-pixel softmax moved to 1) fails in backward with "grad_input must
            # be contiguous" (torch 2.13, CPU). The losses are per element: take them from flat
            # (N * d1 * ..., C) rows, which for that layout is a view of the original memory.
            flat = log_prob.movedim(1, -1).reshape(-1, log_prob.shape[1])
            result = F.nll_loss(flat, target.reshape(-1), reduction="none").reshape(target.shape)
        else:
            result = F.nll_loss(log_prob, target, reduction="none")
    return result.squeeze(0) if squeeze else result


def sparse_categorical_crossentropy(y_true, y_pred, from_logits: bool = False, ignore_class: int | None = None, axis: int = -1):
    """Categorical crossentropy on integer labels (float labels are truncated).

    Args:
        y_true: Integer class ids, shape `y_pred.shape` minus the class axis
            (a trailing size-1 axis is squeezed).
        y_pred: Probabilities or logits.
        from_logits: Whether `y_pred` are logits (uses `F.cross_entropy`).
        ignore_class: A label whose entries get zero loss and are masked out
            of the `"sum_over_batch_size"` mean.
        axis: The class axis.
    """
    y_pred = to_tensor(y_pred)
    y_true = to_tensor(y_true, device=_device(y_pred))
    if y_true.dim() == y_pred.dim() and y_true.shape[axis] == 1:
        y_true = y_true.squeeze(axis)
    valid_mask = None
    if ignore_class is not None:
        class_axis = axis % y_pred.dim()
        res_shape = tuple(d for i, d in enumerate(y_pred.shape) if i != class_axis)
        valid_mask = y_true != ignore_class
        y_true = torch.where(valid_mask, y_true, torch.zeros_like(y_true))
        y_pred = torch.where(valid_mask.unsqueeze(axis), y_pred, torch.zeros_like(y_pred))
    res = _sparse_categorical_crossentropy_op(y_true, y_pred, from_logits, axis)
    if valid_mask is not None:
        valid_mask = valid_mask.reshape(res_shape)
        res = torch.where(valid_mask, res, torch.zeros_like(res))
        res._keras_mask = valid_mask
    return res


def binary_crossentropy(y_true, y_pred, from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1):
    """Binary crossentropy, averaged over `axis`.

    Probabilities are clipped to `[1e-7, 1 - 1e-7]` (Keras's epsilon) before
    torch's `binary_cross_entropy`; logits use the fused
    `binary_cross_entropy_with_logits`.
    """
    y_pred = to_tensor(y_pred)
    y_true = to_tensor(y_true, dtype=y_pred.dtype, device=_device(y_pred))
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    return torch.mean(_binary_crossentropy_op(y_true, y_pred, from_logits), dim=axis)


def binary_focal_crossentropy(
    y_true, y_pred, apply_class_balancing: bool = False, alpha: float = 0.25, gamma: float = 2.0,
    from_logits: bool = False, label_smoothing: float = 0.0, axis: int = -1,
):
    """Binary focal crossentropy: `(1 - p_t) ** gamma * BCE`, optionally
    weighted by `alpha` / `1 - alpha` for positives / negatives."""
    y_pred = to_tensor(y_pred)
    y_true = to_tensor(y_true, dtype=y_pred.dtype, device=_device(y_pred))
    if label_smoothing:
        y_true = y_true * (1.0 - label_smoothing) + 0.5 * label_smoothing
    if from_logits:
        y_pred = torch.sigmoid(y_pred)
    bce = _binary_crossentropy_op(y_true, y_pred, from_logits=False)
    p_t = y_true * y_pred + (1 - y_true) * (1 - y_pred)
    focal_bce = keras_power(1.0 - p_t, gamma) * bce
    if apply_class_balancing:
        focal_bce = (y_true * alpha + (1 - y_true) * (1 - alpha)) * focal_bce
    return torch.mean(focal_bce, dim=axis)


def dice(y_true, y_pred, axis=None):
    """`1 - 2 * sum(y_true * y_pred) / (sum(y_true) + sum(y_pred) + eps)`."""
    y_true, y_pred = _pair(y_true, y_pred)
    dim = () if axis is None else axis
    intersection = torch.sum(y_true * y_pred, dim=dim)
    score = 2.0 * intersection / (torch.sum(y_true, dim=dim) + torch.sum(y_pred, dim=dim) + EPSILON)
    return 1 - score


def tversky(y_true, y_pred, alpha: float = 0.5, beta: float = 0.5, axis=None):
    """Tversky loss `1 - TP / (TP + alpha * FP + beta * FN + eps)`."""
    y_true, y_pred = _pair(y_true, y_pred)
    dim = () if axis is None else axis
    intersection = torch.sum(y_true * y_pred, dim=dim)
    fp = torch.sum((1 - y_pred) * y_true, dim=dim)
    fn = torch.sum(y_pred * (1 - y_true), dim=dim)
    return 1 - intersection / (intersection + fp * alpha + fn * beta + EPSILON)


# ------------------------------------------------------------------- classes


class LossFunctionWrapper(Loss):
    """Wraps a loss function `fn(y_true, y_pred, **kwargs)` as a `Loss`.

    Args:
        fn: The per-sample loss function.
        reduction: See `Loss`.
        name: See `Loss`.
        dtype: See `Loss`.
        **kwargs: Extra keyword arguments passed to `fn`.
    """

    def __init__(self, fn, reduction="sum_over_batch_size", name=None, dtype=None, **kwargs):
        super().__init__(name=name, reduction=reduction, dtype=dtype)
        self.fn = fn
        self._fn_kwargs = kwargs

    def call(self, y_true, y_pred):
        if isinstance(y_true, torch.Tensor) and isinstance(y_pred, torch.Tensor):
            y_true, y_pred = squeeze_or_expand_to_same_rank(y_true, y_pred)
        return self.fn(y_true, y_pred, **self._fn_kwargs)

    def get_config(self) -> dict:
        config = super().get_config()
        config["fn"] = serialize_keras_object(self.fn)
        config.update(serialize_keras_object(self._fn_kwargs))
        return config

    @classmethod
    def from_config(cls, config: dict):
        config = dict(config)
        fn = config.get("fn")
        if fn is not None and not callable(fn):
            from kerasish.losses import deserialize

            config["fn"] = deserialize(fn)
        return cls(**config)

    def __repr__(self) -> str:
        return f"<LossFunctionWrapper({self.fn}, kwargs={self._fn_kwargs})>"


class _ConfiglessWrapper(LossFunctionWrapper):
    """A wrapper whose only config is Loss's (name, reduction, dtype), as the
    Keras classes without extra arguments write it."""

    def get_config(self):
        return Loss.get_config(self)


class MeanSquaredError(_ConfiglessWrapper):
    """Mean of squares of errors between labels and predictions."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_error", dtype=None):
        super().__init__(mean_squared_error, name=name, reduction=reduction, dtype=dtype)


class MeanAbsoluteError(_ConfiglessWrapper):
    """Mean of absolute errors between labels and predictions."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_error", dtype=None):
        super().__init__(mean_absolute_error, name=name, reduction=reduction, dtype=dtype)


class MeanAbsolutePercentageError(_ConfiglessWrapper):
    """Mean absolute percentage error."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_absolute_percentage_error", dtype=None):
        super().__init__(mean_absolute_percentage_error, name=name, reduction=reduction, dtype=dtype)


class MeanSquaredLogarithmicError(_ConfiglessWrapper):
    """Mean squared logarithmic error."""

    def __init__(self, reduction="sum_over_batch_size", name="mean_squared_logarithmic_error", dtype=None):
        super().__init__(mean_squared_logarithmic_error, name=name, reduction=reduction, dtype=dtype)


class CosineSimilarity(LossFunctionWrapper):
    """Negative cosine similarity along `axis`."""

    def __init__(self, axis=-1, reduction="sum_over_batch_size", name="cosine_similarity", dtype=None):
        super().__init__(cosine_similarity, name=name, reduction=reduction, dtype=dtype, axis=axis)
        self.axis = axis

    def get_config(self):
        # Keras 3.15 drops `axis` from the config (its round trip loses it); we keep it.
        return {**Loss.get_config(self), "axis": self.axis}


class Huber(LossFunctionWrapper):
    """Huber loss with threshold `delta`."""

    def __init__(self, delta=1.0, reduction="sum_over_batch_size", name="huber_loss", dtype=None):
        super().__init__(huber, name=name, reduction=reduction, dtype=dtype, delta=delta)
        self.delta = delta

    def get_config(self):
        # Keras 3.15 drops `delta` from the config (its round trip loses it); we keep it.
        return {**Loss.get_config(self), "delta": self.delta}


class LogCosh(_ConfiglessWrapper):
    """Logarithm of the hyperbolic cosine of the prediction error."""

    def __init__(self, reduction="sum_over_batch_size", name="log_cosh", dtype=None):
        super().__init__(log_cosh, name=name, reduction=reduction, dtype=dtype)


class Hinge(_ConfiglessWrapper):
    """Hinge loss; 0/1 labels are converted to -1/1."""

    def __init__(self, reduction="sum_over_batch_size", name="hinge", dtype=None):
        super().__init__(hinge, name=name, reduction=reduction, dtype=dtype)


class SquaredHinge(_ConfiglessWrapper):
    """Squared hinge loss; 0/1 labels are converted to -1/1."""

    def __init__(self, reduction="sum_over_batch_size", name="squared_hinge", dtype=None):
        super().__init__(squared_hinge, name=name, reduction=reduction, dtype=dtype)


class CategoricalHinge(_ConfiglessWrapper):
    """Categorical hinge loss."""

    def __init__(self, reduction="sum_over_batch_size", name="categorical_hinge", dtype=None):
        super().__init__(categorical_hinge, name=name, reduction=reduction, dtype=dtype)


class KLDivergence(_ConfiglessWrapper):
    """Kullback-Leibler divergence."""

    def __init__(self, reduction="sum_over_batch_size", name="kl_divergence", dtype=None):
        super().__init__(kl_divergence, name=name, reduction=reduction, dtype=dtype)


class Poisson(_ConfiglessWrapper):
    """Poisson loss `y_pred - y_true * log(y_pred)`."""

    def __init__(self, reduction="sum_over_batch_size", name="poisson", dtype=None):
        super().__init__(poisson, name=name, reduction=reduction, dtype=dtype)


class BinaryCrossentropy(LossFunctionWrapper):
    """Binary crossentropy (see `binary_crossentropy`)."""

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="binary_crossentropy", dtype=None):
        super().__init__(binary_crossentropy, name=name, reduction=reduction, dtype=dtype,
                         from_logits=from_logits, label_smoothing=label_smoothing, axis=axis)
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing
        self.axis = axis

    def get_config(self):
        config = Loss.get_config(self)
        config.update({"from_logits": self.from_logits, "label_smoothing": self.label_smoothing, "axis": self.axis})
        return config


class BinaryFocalCrossentropy(LossFunctionWrapper):
    """Binary focal crossentropy (see `binary_focal_crossentropy`)."""

    def __init__(self, apply_class_balancing=False, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0,
                 axis=-1, reduction="sum_over_batch_size", name="binary_focal_crossentropy", dtype=None):
        super().__init__(binary_focal_crossentropy, name=name, reduction=reduction, dtype=dtype,
                         apply_class_balancing=apply_class_balancing, alpha=alpha, gamma=gamma,
                         from_logits=from_logits, label_smoothing=label_smoothing, axis=axis)
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing
        self.axis = axis
        self.apply_class_balancing = apply_class_balancing
        self.alpha = alpha
        self.gamma = gamma

    def get_config(self):
        config = Loss.get_config(self)
        config.update({
            "from_logits": self.from_logits, "label_smoothing": self.label_smoothing, "axis": self.axis,
            "apply_class_balancing": self.apply_class_balancing, "alpha": self.alpha, "gamma": self.gamma,
        })
        return config


class CategoricalCrossentropy(LossFunctionWrapper):
    """Categorical crossentropy (see `categorical_crossentropy`)."""

    def __init__(self, from_logits=False, label_smoothing=0.0, axis=-1, reduction="sum_over_batch_size",
                 name="categorical_crossentropy", dtype=None):
        super().__init__(categorical_crossentropy, name=name, reduction=reduction, dtype=dtype,
                         from_logits=from_logits, label_smoothing=label_smoothing, axis=axis)
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing
        self.axis = axis

    def get_config(self):
        config = Loss.get_config(self)
        config.update({"from_logits": self.from_logits, "label_smoothing": self.label_smoothing, "axis": self.axis})
        return config


class CategoricalFocalCrossentropy(LossFunctionWrapper):
    """Categorical focal crossentropy (see `categorical_focal_crossentropy`)."""

    def __init__(self, alpha=0.25, gamma=2.0, from_logits=False, label_smoothing=0.0, axis=-1,
                 reduction="sum_over_batch_size", name="categorical_focal_crossentropy", dtype=None):
        super().__init__(categorical_focal_crossentropy, name=name, reduction=reduction, dtype=dtype, alpha=alpha,
                         gamma=gamma, from_logits=from_logits, label_smoothing=label_smoothing, axis=axis)
        self.from_logits = from_logits
        self.label_smoothing = label_smoothing
        self.axis = axis
        self.alpha = alpha
        self.gamma = gamma

    def get_config(self):
        config = Loss.get_config(self)
        config.update({
            "from_logits": self.from_logits, "label_smoothing": self.label_smoothing, "axis": self.axis,
            "alpha": self.alpha, "gamma": self.gamma,
        })
        return config


class SparseCategoricalCrossentropy(LossFunctionWrapper):
    """Sparse categorical crossentropy (see `sparse_categorical_crossentropy`)."""

    def __init__(self, from_logits=False, ignore_class=None, reduction="sum_over_batch_size", axis=-1,
                 name="sparse_categorical_crossentropy", dtype=None):
        super().__init__(sparse_categorical_crossentropy, name=name, reduction=reduction, dtype=dtype,
                         from_logits=from_logits, ignore_class=ignore_class, axis=axis)
        self.from_logits = from_logits
        self.ignore_class = ignore_class

    def _mean_without_weights(self, y_true, y_pred):
        """The most common training loss in one op: logits `(batch, classes)`
        and integer labels `(batch,)` give torch's fused mean cross entropy
        (the same maths as the per-sample losses' `sum / count`, without two
        more ops and their backward nodes at every step)."""
        if (
            self.from_logits
            and self.ignore_class is None
            and type(y_true) is torch.Tensor
            and y_pred.dim() == 2
            and y_true.dim() == 1
            and y_pred.shape[0] == y_true.shape[0] > 0
            and not y_true.is_floating_point()
            and y_true.dtype is not torch.bool
            and y_true.device == y_pred.device
            and self._fn_kwargs["axis"] in (-1, 1)
            and y_pred.dtype is self.__dict__.get("_torch_dtype")
            and getattr(y_pred, "_keras_mask", None) is None
        ):
            return F.cross_entropy(y_pred, y_true if y_true.dtype is torch.int64 else y_true.long())
        return super()._mean_without_weights(y_true, y_pred)

    def get_config(self):
        config = Loss.get_config(self)
        config.update({"from_logits": self.from_logits, "ignore_class": self.ignore_class})
        return config


class Dice(LossFunctionWrapper):
    """Dice loss (see `dice`)."""

    def __init__(self, reduction="sum_over_batch_size", name="dice", axis=None, dtype=None):
        super().__init__(dice, name=name, reduction=reduction, dtype=dtype, axis=axis)
        self.axis = axis

    def get_config(self):
        config = Loss.get_config(self)
        config["axis"] = self.axis
        return config


class Tversky(LossFunctionWrapper):
    """Tversky loss (see `tversky`)."""

    def __init__(self, alpha=0.5, beta=0.5, reduction="sum_over_batch_size", name="tversky", axis=None, dtype=None):
        super().__init__(tversky, name=name, reduction=reduction, dtype=dtype, alpha=alpha, beta=beta, axis=axis)
        self.alpha = alpha
        self.beta = beta
        self.axis = axis

    def get_config(self):
        config = Loss.get_config(self)
        config.update({"alpha": self.alpha, "beta": self.beta, "axis": self.axis})
        return config


# Keras's short aliases
mse = MSE = mean_squared_error
mae = MAE = mean_absolute_error
mape = MAPE = mean_absolute_percentage_error
msle = MSLE = mean_squared_logarithmic_error
kld = KLD = kullback_leibler_divergence = kl_divergence
logcosh = log_cosh
bce = BCE = binary_crossentropy
