"""Weight/activity regularizers, as `keras.regularizers`."""

from __future__ import annotations

import inspect
import math
from typing import Any

import torch

from kerasish.saving.object_registration import get_registered_object
from kerasish.saving.serialization_lib import (
    deserialize_keras_object,
    serialize_keras_object,
)

_PUBLIC_MODULE = "keras.regularizers"
_EPSILON = 1e-7  # keras.backend.epsilon()


class Regularizer:
    """Base class of regularizers: `__call__(x)` returns a scalar penalty.

    Any callable taking a weight tensor and returning a scalar tensor also
    works where a regularizer is expected.
    """

    _keras_module = _PUBLIC_MODULE

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "_keras_module" not in cls.__dict__:
            cls._keras_module = _PUBLIC_MODULE if cls.__module__.startswith("kerasish.") else None

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        """Returns the penalty for `x` (0 for the base class).

        Args:
            x: The weight or activity tensor.
        """
        dtype = x.dtype if torch.is_tensor(x) and x.is_floating_point() else None
        return torch.zeros((), dtype=dtype)

    def get_config(self) -> dict:
        """Returns the JSON-serializable constructor arguments."""
        raise NotImplementedError(f"<{type(self).__name__}> does not implement get_config()")

    @classmethod
    def from_config(cls, config: dict) -> Regularizer:
        """Instantiates the regularizer from `get_config()`'s output."""
        return cls(**config)

    def __repr__(self) -> str:
        if type(self).get_config is Regularizer.get_config:
            return f"<{type(self).__name__}>"
        try:
            config = self.get_config()
        except NotImplementedError:
            # a subclass whose get_config calls the base one (keras.io's
            # PointNet regularizer): the base raises with `{self}` in its
            # message, which must not come back here
            return f"<{type(self).__name__}>"
        args = ", ".join(f"{k}={v!r}" for k, v in config.items())
        return f"{type(self).__name__}({args})"


def validate_float_arg(value, name: str) -> float:
    """Returns `value` as a float; raises `ValueError` unless it is a finite,
    non-negative number (as Keras does)."""
    if not isinstance(value, (float, int)) or math.isinf(value) or math.isnan(value) or value < 0:
        raise ValueError(
            f"Invalid value for argument {name}: expected a non-negative float."
            f"Received: {name}={value}"
        )
    return float(value)


def _as_tensor(x) -> torch.Tensor:
    return x if torch.is_tensor(x) else torch.as_tensor(x, dtype=torch.get_default_dtype())


class L1L2(Regularizer):
    """Penalty `l1 * sum(|x|) + l2 * sum(x**2)`.

    Args:
        l1: L1 factor (`None` means 0). Defaults to `0.0`.
        l2: L2 factor (`None` means 0). Defaults to `0.0`.
    """

    def __init__(self, l1: float = 0.0, l2: float = 0.0):
        self.l1 = validate_float_arg(0.0 if l1 is None else l1, name="l1")
        self.l2 = validate_float_arg(0.0 if l2 is None else l2, name="l2")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = _as_tensor(x)
        penalty = torch.zeros((), dtype=x.dtype, device=x.device)
        if self.l1 != 0.0:
            penalty = penalty + self.l1 * torch.sum(torch.abs(x))
        if self.l2 != 0.0:
            penalty = penalty + self.l2 * torch.sum(torch.square(x))
        return penalty

    def get_config(self) -> dict:
        return {"l1": self.l1, "l2": self.l2}


class L1(Regularizer):
    """Penalty `l1 * sum(|x|)`.

    Args:
        l1: L1 factor (`None` means 0.01). Defaults to `0.01`.
    """

    def __init__(self, l1: float = 0.01):
        self.l1 = validate_float_arg(0.01 if l1 is None else l1, name="l1")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.l1 * torch.sum(torch.abs(_as_tensor(x)))

    def get_config(self) -> dict:
        return {"l1": self.l1}


class L2(Regularizer):
    """Penalty `l2 * sum(x**2)`.

    Args:
        l2: L2 factor (`None` means 0.01). Defaults to `0.01`.
    """

    def __init__(self, l2: float = 0.01):
        self.l2 = validate_float_arg(0.01 if l2 is None else l2, name="l2")

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return self.l2 * torch.sum(torch.square(_as_tensor(x)))

    def get_config(self) -> dict:
        return {"l2": self.l2}


class OrthogonalRegularizer(Regularizer):
    """Pushes the rows (or columns) of a 2D weight towards orthogonality.

    Penalty: `factor * 0.5 * sum(|P - diag(P)|) / (n * (n - 1) / 2)` where `P`
    is the Gram matrix of the L2-normalized rows (`mode="rows"`) or columns
    and `n` their count.

    Args:
        factor: Regularization factor. Defaults to `0.01`.
        mode: `"rows"` or `"columns"`. Defaults to `"rows"`.
    """

    def __init__(self, factor: float = 0.01, mode: str = "rows"):
        self.factor = validate_float_arg(factor, name="factor")
        if mode not in {"rows", "columns"}:
            raise ValueError(
                "Invalid value for argument `mode`. Expected one of "
                f'{{"rows", "columns"}}. Received: mode={mode}'
            )
        self.mode = mode

    def __call__(self, inputs: torch.Tensor) -> torch.Tensor:
        inputs = _as_tensor(inputs)
        if inputs.ndim != 2:
            raise ValueError(
                "Inputs to OrthogonalRegularizer must have rank 2. Received: "
                f"inputs.shape={tuple(inputs.shape)}"
            )
        axis = 1 if self.mode == "rows" else 0
        inv_norm = torch.rsqrt(torch.sum(torch.square(inputs), dim=axis, keepdim=True))
        normalized = inputs * torch.clamp(inv_norm, max=1.0 / _EPSILON)
        if self.mode == "rows":
            product = normalized @ normalized.T
        else:
            product = normalized.T @ normalized
        size = product.shape[0]
        off_diagonal = product * (1.0 - torch.eye(size, dtype=inputs.dtype, device=inputs.device))
        num_pairs = size * (size - 1.0) / 2.0
        return self.factor * 0.5 * torch.sum(torch.abs(off_diagonal)) / num_pairs

    def get_config(self) -> dict:
        return {"factor": self.factor, "mode": self.mode}


# Keras 3 exports the classes under these lowercase names too.
l1 = L1
l2 = L2
l1_l2 = L1L2
orthogonal_regularizer = OrthogonalRegularizer

ALL_OBJECTS = (Regularizer, L1, L2, L1L2, OrthogonalRegularizer)
ALL_OBJECTS_DICT: dict[str, type] = {cls.__name__: cls for cls in ALL_OBJECTS}
ALL_OBJECTS_DICT.update(
    {
        "regularizer": Regularizer,
        "l1": L1,
        "l2": L2,
        "l1l2": L1L2,  # Keras 3's snake_case of "L1L2"
        "l1_l2": L1L2,  # the exported name (Keras 3's own `get` rejects it)
        "orthogonal_regularizer": OrthogonalRegularizer,
    }
)


def serialize(regularizer) -> dict | str | None:
    """Returns the Keras 3 config dict of a regularizer.

    Args:
        regularizer: A `Regularizer` (or registered function).
    """
    return serialize_keras_object(regularizer)


def deserialize(config, custom_objects: dict | None = None):
    """Builds a regularizer from its config dict (Keras 3 or Keras 2 layout).

    Args:
        config: The dict from `serialize`.
        custom_objects: Extra `{name: class}` to look names up in.
            Defaults to `None`.
    """
    return deserialize_keras_object(
        config, module_objects=ALL_OBJECTS_DICT, custom_objects=custom_objects, printable_module_name="regularizer"
    )


def get(identifier):
    """Returns a regularizer from an identifier.

    Args:
        identifier: `None`, a name (`"l1"`, `"L2"`, ...), a config dict, a
            `Regularizer` instance or class, or a callable.

    Returns:
        A regularizer (or callable), or `None` for `None`.

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
    raise ValueError(f"Could not interpret regularizer identifier: {identifier}")


__all__ = [
    "ALL_OBJECTS",
    "ALL_OBJECTS_DICT",
    "L1",
    "L1L2",
    "L2",
    "OrthogonalRegularizer",
    "Regularizer",
    "deserialize",
    "get",
    "l1",
    "l1_l2",
    "l2",
    "orthogonal_regularizer",
    "serialize",
    "validate_float_arg",
]
