"""`keras.engine.input_layer` (Keras 2.2-2.12): `Input` and `InputLayer`."""

from kerasish.utils.keras2_modules import install

install(globals(), {"Input": "kerasish.layers:Input", "InputLayer": "kerasish.layers:InputLayer"})
