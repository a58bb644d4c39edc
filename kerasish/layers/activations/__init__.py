"""Keras activation layers."""

from kerasish.layers.activations.elu import ELU
from kerasish.layers.activations.leaky_relu import LeakyReLU
from kerasish.layers.activations.prelu import PReLU
from kerasish.layers.activations.relu import ReLU
from kerasish.layers.activations.softmax import Softmax

__all__: list[str] = ["ELU", "LeakyReLU", "PReLU", "ReLU", "Softmax"]
