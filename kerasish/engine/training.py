"""`keras.engine.training` (Keras 2.0-2.12): `Model`."""

from kerasish.utils.keras2_modules import install

install(globals(), {"Model": "kerasish.models:Model"})
