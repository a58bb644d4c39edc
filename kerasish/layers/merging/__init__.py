"""Keras merging layers and their functional forms (`keras.layers.add`, ...)."""

from kerasish.layers.merging.add import Add
from kerasish.layers.merging.add import add
from kerasish.layers.merging.average import Average
from kerasish.layers.merging.average import average
from kerasish.layers.merging.concatenate import Concatenate
from kerasish.layers.merging.concatenate import concatenate
from kerasish.layers.merging.dot import Dot
from kerasish.layers.merging.dot import dot
from kerasish.layers.merging.maximum import Maximum
from kerasish.layers.merging.maximum import maximum
from kerasish.layers.merging.minimum import Minimum
from kerasish.layers.merging.minimum import minimum
from kerasish.layers.merging.multiply import Multiply
from kerasish.layers.merging.multiply import multiply
from kerasish.layers.merging.subtract import Subtract
from kerasish.layers.merging.subtract import subtract

__all__: list[str] = [
    "Add", "Average", "Concatenate", "Dot", "Maximum", "Minimum", "Multiply", "Subtract",
    "add", "average", "concatenate", "dot", "maximum", "minimum", "multiply", "subtract",
]
