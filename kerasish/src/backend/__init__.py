"""`keras.src.backend`'s mask helpers (`get_keras_mask` / `set_keras_mask`).

Keras's torch backend keeps a tensor's Keras mask in its `_keras_mask`
attribute, as kerasish does; these read and write it the same way.
"""

from __future__ import annotations

__all__ = ["get_keras_mask", "set_keras_mask"]


def get_keras_mask(x):
    """The Keras mask attached to `x`, or `None` (Keras's `get_keras_mask`)."""
    return getattr(x, "_keras_mask", None)


def set_keras_mask(x, mask) -> None:
    """Attaches `mask` to `x` in place; `mask=None` clears it (Keras's `set_keras_mask`)."""
    x._keras_mask = mask
