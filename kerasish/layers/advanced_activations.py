"""`keras.layers.advanced_activations` (multi-backend Keras 2.0-2.4, `keras`
2.6-2.8): the activation layers, as aliases of `keras.layers.*`."""

from kerasish.utils.keras2_modules import install, layer_aliases

install(
    globals(),
    layer_aliases("LeakyReLU", "PReLU", "ELU", "Softmax", "ReLU"),
    {"ThresholdedReLU": "Keras 3 removed it; `keras.layers.ReLU(threshold=theta)` computes the same except at "
                        "x == theta exactly (ThresholdedReLU gives 0 there, ReLU gives theta)"},
)
