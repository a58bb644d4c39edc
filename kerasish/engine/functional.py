"""`keras.engine.functional` (`keras` 2.6-2.12): `Functional`, the class of models
built with `keras.Model(inputs, outputs)`."""

from kerasish.utils.keras2_modules import install

install(globals(), {"Functional": "kerasish.models.functional:Functional"})
