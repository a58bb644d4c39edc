"""`keras.layers`."""

from kerasish.layers.input_spec import InputSpec
from kerasish.layers.layer import Layer

__all__ = ["InputSpec", "Layer"]
