"""`keras.engine.sequential` (Keras 2.2-2.12): `Sequential`."""

from kerasish.utils.keras2_modules import install

install(globals(), {"Sequential": "kerasish.models:Sequential"})
