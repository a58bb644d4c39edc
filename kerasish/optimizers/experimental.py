"""`keras.optimizers.experimental`: tf.keras 2.9-2.15's names for the
optimizers that became `tf.keras.optimizers.*` in TF 2.11 and Keras 3's
optimizers (the same update rules), as aliases of kerasish's. tf.keras 2's
older optimizers are `keras.optimizers.legacy`."""

from __future__ import annotations

from kerasish.optimizers.adafactor import Adafactor
from kerasish.optimizers.ftrl import Ftrl
from kerasish.optimizers.optimizer import Optimizer
from kerasish.optimizers.optimizers import SGD, Adadelta, Adagrad, Adam, Adamax, AdamW, Nadam, RMSprop

__all__ = ["SGD", "Adadelta", "Adafactor", "Adagrad", "Adam", "AdamW", "Adamax", "Ftrl", "Nadam", "Optimizer",
           "RMSprop"]
