"""`keras.layers.noise` (multi-backend Keras 2.0-2.4, `keras` 2.6-2.12): the noise
layers, as aliases of `keras.layers.*`."""

from kerasish.utils.keras2_modules import install, layer_aliases

install(globals(), layer_aliases("GaussianNoise", "GaussianDropout", "AlphaDropout"))
