"""Weight constraints (projections applied after each update), as
`keras.constraints`."""

from __future__ import annotations

import inspect
from typing import Any

import torch

from kerasish.saving.object_registration import get_registered_object
from kerasish.saving.serialization_lib import (
    deserialize_keras_object,
    serialize_keras_object,
)

_PUBLIC_MODULE = "keras.constraints"
_EPSILON = 1e-7  # keras.backend.epsilon()


class Constraint:
    """Base class of weight constraints: `__call__(w)` returns the projected
    weight (the base class returns `w` unchanged)."""

    _keras_module = _PUBLIC_MODULE

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_keras_module" not in cls.__dict__:
            cls._keras_module = _PUBLIC_MODULE if cls.__module__.startswith("kerasish.") else None

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        """Returns the projection of `w`.

        Args:
            w: The weight tensor.
        """
        return w

    def get_config(self) -> dict:
        """Returns the JSON-serializable constructor arguments."""
        return {}

    @classmethod
    def from_config(cls, config: dict) -> Constraint:
        """Instantiates the constraint from `get_config()`'s output."""
        return cls(**config)

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _as_tensor(w) -> torch.Tensor:
    w = w if torch.is_tensor(w) else torch.as_tensor(w)
    return w if w.is_floating_point() else w.to(torch.get_default_dtype())


def _dims(axis):
    return tuple(axis) if isinstance(axis, (list, tuple)) else axis


def _norms(w: torch.Tensor, axis) -> torch.Tensor:
    return torch.sqrt(torch.sum(torch.square(w), dim=_dims(axis), keepdim=True))


class MaxNorm(Constraint):
    """Rescales slices whose L2 norm exceeds `max_value` down to it.

    `w * clip(norm, 0, max_value) / (epsilon + norm)` with Keras's
    `epsilon = 1e-7`.

    Args:
        max_value: Maximum norm. Defaults to `2`.
        axis: Axis (or list of axes) the norms are taken over: `0` for a
            Dense kernel `(input_dim, units)`, `[0, 1, 2]` for a Conv2D kernel.
            Defaults to `0`.
    """

    def __init__(self, max_value: float = 2, axis: int | list[int] = 0):
        self.max_value = max_value
        self.axis = axis

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        w = _as_tensor(w)
        norms = _norms(w, self.axis)
        desired = torch.clamp(norms, 0, self.max_value)
        return w * (desired / (_EPSILON + norms))

    def get_config(self) -> dict:
        return {"max_value": self.max_value, "axis": self.axis}


class NonNeg(Constraint):
    """Clamps weights to be non-negative (`max(w, 0)`)."""

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        return torch.clamp(_as_tensor(w), min=0)


class UnitNorm(Constraint):
    """Rescales slices to unit L2 norm: `w / (epsilon + norm)`, `epsilon = 1e-7`.

    Args:
        axis: Axis (or list of axes) the norms are taken over.
            Defaults to `0`.
    """

    def __init__(self, axis: int | list[int] = 0):
        self.axis = axis

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        w = _as_tensor(w)
        return w / (_EPSILON + _norms(w, self.axis))

    def get_config(self) -> dict:
        return {"axis": self.axis}


class MinMaxNorm(Constraint):
    """Moves slice norms into `[min_value, max_value]`.

    The target norm is `rate * clip(norm, min_value, max_value) + (1 - rate) * norm`
    and `w` is scaled by `target / (epsilon + norm)`, `epsilon = 1e-7`.

    Args:
        min_value: Minimum norm. Defaults to `0.0`.
        max_value: Maximum norm. Defaults to `1.0`.
        rate: Enforcement rate; `1.0` is strict. Defaults to `1.0`.
        axis: Axis (or list of axes) the norms are taken over.
            Defaults to `0`.
    """

    def __init__(self, min_value: float = 0.0, max_value: float = 1.0, rate: float = 1.0, axis: int | list[int] = 0):
        self.min_value = min_value
        self.max_value = max_value
        self.rate = rate
        self.axis = axis

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        w = _as_tensor(w)
        norms = _norms(w, self.axis)
        desired = self.rate * torch.clamp(norms, self.min_value, self.max_value) + (1 - self.rate) * norms
        return w * (desired / (_EPSILON + norms))

    def get_config(self) -> dict:
        return {"min_value": self.min_value, "max_value": self.max_value, "rate": self.rate, "axis": self.axis}


class RadialConstraint(Constraint):
    """Makes each square Conv2D kernel slice constant on concentric square rings.

    Ported from Keras 2 (`tf.keras.constraints.RadialConstraint`; Keras 3
    dropped it). The weight is `(rows, cols, in, out)` with `rows == cols`
    `= n`. Ring `d` (Chebyshev distance from the centre, the central 1x1 or
    2x2 block being ring 0) takes the value at diagonal index
    `n // 2 - 1` for `d = 0`, else `n // 2 + d - 1` for odd `n` and
    `n // 2 + d` for even `n`, exactly as Keras 2's code computes it. (Its
    docstring example for 4x4 shows the ring values swapped; the code puts
    `w[1, 1]` in the centre and `w[3, 3]` on the border.)
    """

    def __call__(self, w: torch.Tensor) -> torch.Tensor:
        w = _as_tensor(w)
        if w.ndim != 4:
            raise ValueError(f"The weight tensor must have rank 4. Received weight tensor with shape: {tuple(w.shape)}")
        n, width = w.shape[0], w.shape[1]
        if n != width:
            raise ValueError(f"RadialConstraint needs square kernels. Received weight tensor with shape: {tuple(w.shape)}")
        if n == 1:
            return w
        start = n // 2
        pos = torch.arange(n, device=w.device)
        ring_1d = torch.abs(2 * pos - (n - 1)) // 2
        ring = torch.maximum(ring_1d[:, None], ring_1d[None, :])
        if n % 2:
            source = torch.where(ring == 0, start - 1, start + ring - 1)
        else:
            source = torch.where(ring == 0, start - 1, start + ring)
        diagonal = w[pos, pos]  # (n, in, out): w[i, i]
        return diagonal[source]

    def get_config(self) -> dict:
        return {}


# Keras exports the classes under these lowercase names too.
max_norm = MaxNorm
non_neg = NonNeg
unit_norm = UnitNorm
min_max_norm = MinMaxNorm
radial_constraint = RadialConstraint

ALL_OBJECTS = (Constraint, MaxNorm, MinMaxNorm, NonNeg, UnitNorm, RadialConstraint)
ALL_OBJECTS_DICT: dict[str, type] = {cls.__name__: cls for cls in ALL_OBJECTS}
ALL_OBJECTS_DICT.update(
    {
        "constraint": Constraint,
        "max_norm": MaxNorm,
        "min_max_norm": MinMaxNorm,
        "non_neg": NonNeg,
        "unit_norm": UnitNorm,
        "radial_constraint": RadialConstraint,
        # Keras 2's legacy spellings
        "maxnorm": MaxNorm,
        "nonneg": NonNeg,
        "unitnorm": UnitNorm,
    }
)


def serialize(constraint) -> dict | str | None:
    """Returns the Keras 3 config dict of a constraint.

    Args:
        constraint: A `Constraint` (or registered function).
    """
    return serialize_keras_object(constraint)


def deserialize(config, custom_objects: dict | None = None):
    """Builds a constraint from its config dict (Keras 3 or Keras 2 layout).

    Args:
        config: The dict from `serialize`.
        custom_objects: Extra `{name: class}` to look names up in.
            Defaults to `None`.
    """
    return deserialize_keras_object(
        config, module_objects=ALL_OBJECTS_DICT, custom_objects=custom_objects, printable_module_name="constraint"
    )


def get(identifier):
    """Returns a constraint from an identifier.

    Args:
        identifier: `None`, a name (`"max_norm"`, `"NonNeg"`, ...), a config
            dict, a `Constraint` instance or class, or a callable.

    Returns:
        A constraint (or callable), or `None` for `None`.

    Raises:
        ValueError: if the identifier cannot be interpreted.
    """
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        obj = deserialize(identifier)
    elif isinstance(identifier, str):
        obj = ALL_OBJECTS_DICT.get(identifier) or get_registered_object(identifier)
    else:
        obj = identifier
    if callable(obj):
        return obj() if inspect.isclass(obj) else obj
    raise ValueError(f"Could not interpret constraint identifier: {identifier}")


__all__ = [
    "ALL_OBJECTS",
    "ALL_OBJECTS_DICT",
    "Constraint",
    "MaxNorm",
    "MinMaxNorm",
    "NonNeg",
    "RadialConstraint",
    "UnitNorm",
    "deserialize",
    "get",
    "max_norm",
    "min_max_norm",
    "non_neg",
    "radial_constraint",
    "serialize",
    "unit_norm",
]
