"""`keras.engine.network` (multi-backend Keras 2.2-2.4): `get_source_inputs`;
its `Network` class is gone (tf.keras 2.4 made it `keras.Model`)."""

from kerasish.engine._common import NETWORK
from kerasish.utils.keras2_modules import install

install(globals(), {"get_source_inputs": "kerasish.utils:get_source_inputs"}, {"Network": NETWORK})
