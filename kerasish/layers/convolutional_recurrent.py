"""`keras.layers.convolutional_recurrent` (multi-backend Keras 2.0-2.4, `keras`
2.6-2.8): the ConvLSTM layers, as aliases of `keras.layers.*`.

Keras 2's ConvLSTM default `recurrent_activation` was its hard sigmoid, Keras
3's (and kerasish's) is `"sigmoid"` (README, "Porting tf.keras 2 code")."""

from kerasish.utils.keras2_modules import install, layer_aliases

_NO_CELL = "Keras 3 has no public ConvLSTM cell or ConvRNN base; use `keras.layers.ConvLSTM2D`"

install(
    globals(),
    layer_aliases("ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D"),
    {"ConvLSTM2DCell": _NO_CELL, "ConvRNN2D": _NO_CELL},
)
