"""`keras.engine.base_layer` (Keras 2.2-2.12): `Layer` and `InputSpec`."""

from kerasish.engine._common import NODE
from kerasish.utils.keras2_modules import install

install(globals(), {"Layer": "kerasish.layers:Layer", "InputSpec": "kerasish.layers:InputSpec"}, {"Node": NODE})
