"""`keras.layers.experimental.preprocessing`: tf.keras 2's names for its
preprocessing layers (TF 2.3-2.5's only ones, aliases from TF 2.6), the same
classes as kerasish's `keras.layers.<Name>`."""

from __future__ import annotations

from kerasish.layers import (
    CategoryEncoding,
    CenterCrop,
    Discretization,
    HashedCrossing,
    Hashing,
    IntegerLookup,
    Normalization,
    RandomContrast,
    RandomCrop,
    RandomFlip,
    RandomRotation,
    RandomTranslation,
    RandomZoom,
    Rescaling,
    Resizing,
    StringLookup,
    TextVectorization,
)

_REMOVED = {
    "RandomHeight": "Keras 3 removed it (`Resizing` or `RandomZoom(height_factor=..., width_factor=0.0)` come "
                    "closest) and kerasish has no such layer",
    "RandomWidth": "Keras 3 removed it (`Resizing` or `RandomZoom(height_factor=0.0, width_factor=...)` come "
                   "closest) and kerasish has no such layer",
    "PreprocessingLayer": "Keras 3 has no such base class: subclass `keras.layers.Layer` (and give it an `adapt` "
                          "method if it learns from data)",
}


def __getattr__(name):
    if name in _REMOVED:
        from kerasish.utils.keras2_modules import removed_name_error  # (ImportError in `from ... import`)

        raise removed_name_error(
            f"`keras.layers.experimental.preprocessing.{name}` is a tf.keras 2 name: {_REMOVED[name]}.", __name__, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "CategoryEncoding", "CenterCrop", "Discretization", "HashedCrossing", "Hashing", "IntegerLookup", "Normalization",
    "RandomContrast", "RandomCrop", "RandomFlip", "RandomRotation", "RandomTranslation", "RandomZoom", "Rescaling",
    "Resizing", "StringLookup", "TextVectorization",
]
