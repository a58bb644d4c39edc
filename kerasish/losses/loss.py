"""`keras.losses.Loss` base class and the reduction helpers Keras 3 uses.

The reductions reproduce Keras 3.15 exactly: sample weights and masks are
merged, squeezed/expanded to the rank of the per-sample losses, multiplied in,
then reduced with `"sum"`, `"sum_over_batch_size"`/`"mean"` (sum divided by
the number of loss elements), `"mean_with_sample_weight"` (sum divided by the
sum of the sample weights) or `"none"`/`None` (no reduction).
"""

from __future__ import annotations

import re

import numpy as np
import torch

from kerasish.backend.dtypes import floatx, standardize_dtype, to_torch_dtype
from kerasish.backend.promotion import as_tensor
from kerasish.backend.keras_tensor import KerasTensor

EPSILON = 1e-7
_ALLOWED_REDUCTIONS = ("sum_over_batch_size", "sum", None, "none", "mean", "mean_with_sample_weight")


def to_snake_case(name: str) -> str:
    """`"MeanSquaredError"` -> `"mean_squared_error"`, as Keras spells names."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def to_tensor(x, dtype=None, device=None) -> torch.Tensor:
    """Converts arrays, lists and scalars to a tensor (floats default to floatx).
    KerasTensors stay symbolic (cast to `dtype` if given).

    Args:
        x: A tensor, NumPy array, list or Python scalar.
        dtype: Optional target dtype (any spelling); `None` keeps the input's.
        device: Optional target device.
    """
    tdtype = None if dtype is None else to_torch_dtype(dtype)
    if isinstance(x, KerasTensor):
        # symbolic (a loss function on a functional model's tensors, for
        # `add_loss`): the cast is recorded as a graph op, devices come later
        return x if tdtype is None or to_torch_dtype(x.dtype) == tdtype else x.to(dtype=tdtype)
    if isinstance(x, torch.Tensor):
        if (tdtype is not None and x.dtype != tdtype) or (device is not None and x.device != torch.device(device)):
            return x.to(device=device, dtype=tdtype)
        return x
    if isinstance(x, np.ndarray) or np.isscalar(x) and isinstance(x, np.generic):
        t = torch.as_tensor(np.asarray(x))
    else:
        t = as_tensor(x)
        if t.is_floating_point() and tdtype is None:
            t = t.to(to_torch_dtype(floatx()))
    return t.to(device=device, dtype=tdtype)


def get_keras_mask(x):
    """The Keras mask attached to a tensor (`x._keras_mask`), or None."""
    return getattr(x, "_keras_mask", None)


def standardize_reduction(reduction):
    """Validates `reduction`; raises `ValueError` as Keras does."""
    if reduction not in _ALLOWED_REDUCTIONS:
        raise ValueError(
            "Invalid value for argument `reduction`. "
            f"Expected one of {set(_ALLOWED_REDUCTIONS)}. Received: "
            f"reduction={reduction}"
        )
    return reduction


def squeeze_or_expand_to_same_rank(x1, x2, expand_rank_1: bool = True):
    """Squeezes/expands the last dim when the ranks differ by exactly one."""
    r1, r2 = x1.dim(), x2.dim()
    if r1 == r2:
        return x1, x2
    if r1 == r2 + 1 and x1.shape[-1] == 1:
        if r2 == 1 and expand_rank_1:
            x2 = x2.unsqueeze(-1)
        else:
            x1 = x1.squeeze(-1)
    if r2 == r1 + 1 and x2.shape[-1] == 1:
        if r1 == 1 and expand_rank_1:
            x1 = x1.unsqueeze(-1)
        else:
            x2 = x2.squeeze(-1)
    return x1, x2


def expand_target_to_prediction(y_true, y_pred):
    """A `(batch,)` target for a `(batch, 1)` prediction becomes `(batch, 1)`.

    Without it a `Loss` subclass (or a `Metric` subclass) whose `call`
    computes `y_true - y_pred` broadcasts the pair to `(batch, batch)` and
    trains on a wrong number without an error (Keras 3.15 does, e.g. the
    Huber loss class of "Hands-On Machine Learning", 3rd ed., ch. 12, on a
    1-D regression target). tf.keras 2 expands a rank-1 target for a rank-2
    prediction before any compiled loss or metric (its
    `compile_utils.match_dtype_and_rank`); Keras 3 does the same inside its
    function wrappers (`squeeze_or_expand_to_same_rank`). Only the
    unambiguous case is changed: the prediction has exactly one more axis,
    of size 1.
    """
    if (
        isinstance(y_true, torch.Tensor)
        and isinstance(y_pred, torch.Tensor)
        and y_pred.ndim == y_true.ndim + 1
        and y_pred.shape[-1] == 1
    ):
        return y_true.unsqueeze(-1)
    return y_true


def _divide_no_nan(x, y):
    safe = torch.where(y == 0, torch.ones_like(y), y)
    return torch.where(y == 0, torch.zeros_like(x), x / safe)


_MEAN_REDUCTIONS = ("sum_over_batch_size", "mean")


def reduce_values(values, sample_weight=None, reduction="sum_over_batch_size"):
    """Reduces (already weighted) per-sample losses as Keras does."""
    if reduction is None or reduction == "none" or tuple(values.shape) in ((), (0,)):
        return values
    loss = values.sum()
    if reduction in ("sum_over_batch_size", "mean", "mean_with_sample_weight"):
        if reduction == "mean_with_sample_weight" and sample_weight is not None:
            divisor = sample_weight.sum().to(loss.dtype)
            return _divide_no_nan(loss, divisor)
        n = values.numel()  # a Python int: no tensor to build per call
        return loss / n if n else torch.zeros_like(loss)
    return loss


def apply_mask(sample_weight, mask, dtype, reduction):
    """Merges a mask into the sample weights (Keras's `apply_mask`)."""
    if mask is None:
        return sample_weight
    if reduction in ("mean", "sum_over_batch_size"):
        # valid entries weigh total/valid so the mean is over valid entries only
        total = torch.tensor(mask.numel(), dtype=dtype, device=mask.device)
        valid = mask.to(dtype).sum()
        mask_weight = _divide_no_nan(total, valid)
        float_mask = torch.where(mask.bool(), mask_weight, torch.zeros((), dtype=dtype, device=mask.device))
    else:
        float_mask = mask.to(dtype)
    if sample_weight is not None:
        sample_weight = sample_weight.to(dtype)
        float_mask, sample_weight = squeeze_or_expand_to_same_rank(float_mask, sample_weight)
        sample_weight = sample_weight * float_mask
    else:
        sample_weight = float_mask
    return sample_weight


def check_sample_weight_shape(name: str, values: torch.Tensor, sample_weight) -> None:
    """Raises a `ValueError` naming the loss when `sample_weight` cannot weigh
    `values` (the per-sample or per-element losses).

    Keras 3 multiplies the two after squeezing/expanding a last axis of size 1
    and lets the backend broadcast: a `(batch,)` weight on a sequence model's
    `(batch, timesteps)` losses crashes inside torch, or, when `batch ==
    timesteps`, silently weighs time steps instead of samples. Both are refused
    here with the shapes and the two shapes that work.
    """
    given = tuple(getattr(sample_weight, "shape", np.shape(sample_weight)))
    shape, vshape = given, tuple(values.shape)
    if not vshape:
        return
    # the same last-axis squeeze/expand as `squeeze_or_expand_to_same_rank`
    if len(shape) == len(vshape) + 1 and shape[-1] == 1:
        shape = shape[:-1]
    elif len(vshape) == len(shape) + 1 and vshape[-1] == 1:
        shape, vshape = (shape + (1,), vshape) if len(shape) == 1 else (shape, vshape[:-1])
    per_sample_on_steps = len(shape) == 1 and len(vshape) >= 2 and shape[0] == vshape[0] != 1
    if not per_sample_on_steps and _broadcasts_to(shape, vshape):
        return
    per_sample = (vshape[0],) + (1,) * (len(vshape) - 1)
    raise ValueError(
        f"Loss `{name}`: `sample_weight` (or the weights made from `class_weight`) of shape "
        f"{given} does not fit the loss values of shape "
        f"{vshape} (one value per sample and time step/position). Pass one weight per value, shape {vshape}, "
        f"or one per sample, shape {per_sample}. (`class_weight` makes one weight per sample from the "
        "targets' last axis; for per-step class weights build `sample_weight` from the labels.)"
    )


def _broadcasts_to(shape: tuple, target: tuple) -> bool:
    """Whether `shape` broadcasts to exactly `target`."""
    try:
        return tuple(torch.broadcast_shapes(shape, target)) == tuple(target)
    except RuntimeError:
        return False


def reduce_weighted_values(values, sample_weight=None, mask=None, reduction="sum_over_batch_size", dtype=None):
    """Applies `sample_weight` and `mask` to `values`, then reduces them.

    Args:
        values: Per-sample (or per-element) losses.
        sample_weight: Optional weights, broadcast after squeezing/expanding
            the last dim to `values`' rank.
        mask: Optional boolean mask of `values`' shape.
        reduction: One of the Keras reductions.
        dtype: Computation dtype; `None` keeps `values`' dtype.
    """
    reduction = standardize_reduction(reduction)
    values = to_tensor(values, dtype=dtype)
    if sample_weight is not None:
        sample_weight = to_tensor(sample_weight, dtype=values.dtype, device=values.device)
    if mask is not None:
        mask = to_tensor(mask, device=values.device)
    sample_weight = apply_mask(sample_weight, mask, dtype=values.dtype, reduction=reduction)
    if sample_weight is not None:
        sample_weight = sample_weight.to(values.dtype)
        values, sample_weight = squeeze_or_expand_to_same_rank(values, sample_weight)
        values = values * sample_weight
    return reduce_values(values, sample_weight, reduction)


class Loss:
    """Base class of losses (`keras.losses.Loss`).

    Subclasses implement `call(y_true, y_pred)` returning per-sample losses;
    `__call__` casts inputs to the loss dtype, applies sample weights and any
    `_keras_mask` on `y_pred` or the losses, and reduces.

    Args:
        name: Optional name; defaults to the snake-cased class name.
        reduction: `"sum_over_batch_size"` (default), `"sum"`, `"mean"`,
            `"mean_with_sample_weight"`, `"none"` or `None`.
        dtype: Computation dtype; defaults to `keras.backend.floatx()`.

    Example:
        >>> class MyMSE(keras.losses.Loss):
        ...     def call(self, y_true, y_pred):
        ...         return ((y_pred - y_true) ** 2).mean(-1)
    """

    _keras_module = "keras.losses"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # built-ins serialize as module "keras.losses"; user subclasses keep theirs
        cls._keras_module = "keras.losses" if cls.__module__.startswith("kerasish.losses") else None

    def __init__(self, name: str | None = None, reduction="sum_over_batch_size", dtype=None):
        self.name = name or to_snake_case(self.__class__.__name__)
        self.reduction = standardize_reduction(reduction)
        compute = getattr(dtype, "compute_dtype", None)
        self._dtype = standardize_dtype(compute if isinstance(compute, str) else dtype or floatx())

    @property
    def dtype(self) -> str:
        """The computation dtype name, e.g. `"float32"`."""
        return self._dtype

    def __call__(self, y_true, y_pred, sample_weight=None):
        """Computes the reduced, weighted loss.

        Args:
            y_true: Targets (tensor, array or nested structure for subclasses).
            y_pred: Predictions.
            sample_weight: Optional per-sample or per-element weights.
        """
        if sample_weight is None and type(y_pred) is torch.Tensor and self.reduction in _MEAN_REDUCTIONS:
            fast = self._mean_without_weights(y_true, y_pred)
            if fast is not None:
                return fast
        in_mask = get_keras_mask(y_pred)
        device = y_pred.device if isinstance(y_pred, torch.Tensor) else None
        y_pred = _map(lambda x: to_tensor(x, dtype=self.dtype, device=device), y_pred)
        if device is None and isinstance(y_pred, torch.Tensor):
            device = y_pred.device
        y_true = _map(lambda x: to_tensor(x, dtype=self.dtype, device=device), y_true)
        losses = self.call(expand_target_to_prediction(y_true, y_pred), y_pred)
        out_mask = get_keras_mask(losses)
        if in_mask is not None and out_mask is not None:
            mask = in_mask.bool() & out_mask.bool()
        else:
            mask = in_mask if in_mask is not None else out_mask
        if sample_weight is not None and isinstance(losses, torch.Tensor):
            check_sample_weight_shape(self.name, losses, sample_weight)
        return reduce_weighted_values(
            losses, sample_weight=sample_weight, mask=mask, reduction=self.reduction, dtype=self.dtype
        )

    def _mean_without_weights(self, y_true, y_pred):
        """The common case (mean reduction, no sample weights, no masks) in a
        few ops: the same conversions and the same `sum / count` as the
        general path. Returns None when a mask turns up (general path)."""
        if getattr(y_pred, "_keras_mask", None) is not None:
            return None
        dtype = self.__dict__.get("_torch_dtype")
        if dtype is None:
            dtype = self.__dict__["_torch_dtype"] = to_torch_dtype(self._dtype)
        if y_pred.dtype != dtype:
            y_pred = y_pred.to(dtype)
        y_true = _map(lambda x: to_tensor(x, dtype=dtype, device=y_pred.device), y_true)
        values = self.call(expand_target_to_prediction(y_true, y_pred), y_pred)
        if isinstance(values, torch.Tensor) and values.ndim > 0 and getattr(values, "_keras_mask", None) is None:
            n = values.numel()
            if n:
                return (values if values.dtype == dtype else values.to(dtype)).sum() / n
        return reduce_weighted_values(values, mask=get_keras_mask(values), reduction=self.reduction, dtype=self._dtype)

    def call(self, y_true, y_pred):
        """Per-sample losses; to be implemented by subclasses."""
        raise NotImplementedError

    def get_config(self) -> dict:
        """The config, `{"name", "reduction"}` for the base class."""
        return {"name": self.name, "reduction": self.reduction}

    @classmethod
    def from_config(cls, config: dict):
        """Creates a loss from `get_config()`'s output."""
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} name={self.name!r} reduction={self.reduction!r}>"


def _map(fn, structure):
    if isinstance(structure, (list, tuple)):
        return type(structure)(_map(fn, s) for s in structure)
    if isinstance(structure, dict):
        return {k: _map(fn, v) for k, v in structure.items()}
    return fn(structure)
