"""`keras.objectives` (multi-backend Keras 1.x-2.4): Keras 1's name of
`keras.losses`, which Keras 2 kept as an alias module (`from keras.objectives
import categorical_crossentropy`). Every name is `keras.losses`'s."""

from kerasish.losses import *  # noqa: F401,F403
from kerasish.losses import __all__  # noqa: F401
