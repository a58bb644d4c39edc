"""The `Initializer` base class, as `keras.initializers.Initializer`."""

from __future__ import annotations

from typing import Any

import torch

from kerasish.backend.dtypes import to_torch_dtype

_PUBLIC_MODULE = "keras.initializers"


class Initializer:
    """Base class of all initializers.

    Subclasses implement `__call__(shape, dtype=None)` returning a CPU
    `torch.Tensor` of that shape and dtype, and `get_config()` when they take
    arguments (the default `from_config` calls the constructor with it).

    Example:
        >>> class Halves(keras.initializers.Initializer):
        ...     def __call__(self, shape, dtype=None):
        ...         return torch.full(tuple(shape), 0.5, dtype=to_torch_dtype(dtype))
    """

    _keras_module = _PUBLIC_MODULE

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        # Built-ins serialize with the public module name ("keras.initializers");
        # user subclasses keep their own module.
        if "_keras_module" not in cls.__dict__:
            cls._keras_module = _PUBLIC_MODULE if cls.__module__.startswith("kerasish.") else None

    def __call__(self, shape, dtype=None) -> torch.Tensor:
        """Returns a tensor of `shape` and `dtype` holding the initial values.

        Args:
            shape: Shape of the tensor (tuple of ints).
            dtype: Keras dtype string or torch dtype. Defaults to `floatx()`.
        """
        raise NotImplementedError("Initializer subclasses must implement the `__call__()` method.")

    def get_config(self) -> dict:
        """Returns the JSON-serializable constructor arguments."""
        return {}

    @classmethod
    def from_config(cls, config: dict) -> Initializer:
        """Instantiates the initializer from `get_config()`'s output."""
        return cls(**config)

    def clone(self) -> Initializer:
        """Returns a new initializer with the same config."""
        return self.__class__.from_config(self.get_config())

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({args})"


def _shape(shape) -> tuple[int, ...]:
    if isinstance(shape, int):
        return (shape,)
    return tuple(int(d) for d in shape)


def _dtype(dtype) -> torch.dtype:
    return to_torch_dtype(dtype)
