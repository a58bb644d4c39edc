"""`keras.layers.experimental`: tf.keras 2's experimental layer names.

tf.keras 2 (from TF 2.6) exported its preprocessing layers and `EinsumDense`
both here and in `keras.layers`, as the same classes; Keras 3 dropped these
names. kerasish keeps them as aliases of its `keras.layers` classes, so a
ported Keras 2 program (`from tensorflow.keras.layers.experimental import
preprocessing`) runs unchanged. tf.keras 2 layers that Keras 3 removed raise
an AttributeError that says what to use instead.
"""

from __future__ import annotations

from kerasish.layers import EinsumDense
from kerasish.layers.experimental import preprocessing

_REMOVED = {
    "SyncBatchNormalization": "Keras 3 (and kerasish) spell it `keras.layers.BatchNormalization(synchronized=True)`",
    "RandomFourierFeatures": "Keras 3 removed it and kerasish has no such layer",
}


def __getattr__(name):
    if name in _REMOVED:
        from kerasish.utils.keras2_modules import removed_name_error  # (ImportError in `from ... import`)

        raise removed_name_error(f"`keras.layers.experimental.{name}` is a tf.keras 2 layer: {_REMOVED[name]}.",
                                 __name__, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["EinsumDense", "preprocessing"]
