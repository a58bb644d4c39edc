"""Argument helpers shared by the reshaping, regularization and preprocessing
layers: Keras's `data_format` and integer-tuple validation, same messages."""

from __future__ import annotations

from kerasish.backend.config import image_data_format  # noqa: F401  (re-exported)
from kerasish.utils.argument_validation import standardize_data_format  # noqa: F401  (re-exported)
from kerasish.utils.argument_validation import standardize_tuple


def standardize_pairs(value, n: int, arg: str, layer: str) -> tuple:
    """`padding` / `cropping` of the 2D and 3D layers: an int, a tuple of `n`
    ints (symmetric) or a tuple of `n` pairs -> `n` (before, after) pairs."""
    ordinals = ("1st", "2nd", "3rd")
    if isinstance(value, int):
        if value < 0:  # Keras checks only `cropping` here; negative padding would crop silently
            raise ValueError(f"`{arg}` cannot be negative (in `{layer}`). Received: {arg}={value}.")
        return ((value, value),) * n
    if hasattr(value, "__len__"):
        if len(value) != n:
            if n == 2:
                raise ValueError(f"`{arg}` should have two elements. Received: {arg}={value}.")
            raise ValueError(f"`{arg}` should have {n} elements. Received: {value}.")
        return tuple(
            standardize_tuple(v, 2, f"{ordinals[i]} entry of {arg}", allow_zero=True) for i, v in enumerate(value)
        )
    raise ValueError(
        f"`{arg}` of `{layer}` should be either an int, a tuple of {n} ints or a tuple of {n} tuples "
        f"of 2 ints. Received: {arg}={value}."
    )
