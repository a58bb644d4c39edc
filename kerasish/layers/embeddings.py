"""`keras.layers.embeddings` (multi-backend Keras 2.0-2.4, `keras` 2.6-2.8):
`Embedding`, the same class as `keras.layers.Embedding`."""

from kerasish.utils.keras2_modules import install, layer_aliases

install(globals(), layer_aliases("Embedding"))
