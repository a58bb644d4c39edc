"""`keras.layers.local` (multi-backend Keras 2.0-2.4, `keras` 2.6-2.8): the
locally-connected layers, which Keras 3 removed."""

from kerasish.utils.keras2_modules import install

_INSTEAD = ("Keras 3 removed the locally-connected layers; a `{conv}` has the same receptive field with shared "
            "weights, and a Keras 2 `.h5` file holding one loads with `custom_objects={{'{name}': ...}}`")

install(
    globals(),
    {},
    {"LocallyConnected1D": _INSTEAD.format(conv="Conv1D", name="LocallyConnected1D"),
     "LocallyConnected2D": _INSTEAD.format(conv="Conv2D", name="LocallyConnected2D")},
)
