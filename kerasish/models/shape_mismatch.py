"""Calling a model on inputs whose non-batch dimensions differ from the
declared input shape: kerasish runs the layers (they fail on their own if
they cannot compute the new shape) and warns, as tf.keras 2.x did
("Model was constructed with shape ... but it was called on an input with
incompatible shape ..."). Keras 3 runs such inputs through a `Sequential`
silently and refuses them in a functional model; kerasish runs both, which
keeps ported Keras 2 programs (variable-length sequences, other image
sizes) working. A different rank is still an error."""

from __future__ import annotations

import warnings

import torch


def warn_incompatible_shape(model, reference, x, stacklevel: int = 4) -> None:
    """Warns once per model and input shape that `x` differs from the
    `reference` KerasTensor the model was built from. Not while tracing
    (`torch.compile` / `torch.export`): the dims may be symbolic, and
    exporting a dynamic axis is the point there."""
    if torch.compiler.is_compiling():
        return
    shape = tuple(x.shape)
    seen = model.__dict__.setdefault("_shape_mismatch_warned", set())
    key = (id(reference), shape[1:])
    if key in seen:
        return
    seen.add(key)
    expected = (None, *reference.shape[1:]) if reference.shape else reference.shape
    warnings.warn(
        f"Model '{model.name}' was constructed with shape {expected} for input {reference!r}, but it was "
        f"called on an input with incompatible shape {shape}.",
        UserWarning,
        stacklevel=stacklevel,
    )
