"""Keras preprocessing layers that models contain: rescaling, normalization,
category encoding, resizing and center cropping."""

from kerasish.layers.preprocessing.category_encoding import CategoryEncoding
from kerasish.layers.preprocessing.center_crop import CenterCrop
from kerasish.layers.preprocessing.normalization import Normalization
from kerasish.layers.preprocessing.rescaling import Rescaling
from kerasish.layers.preprocessing.resizing import Resizing

__all__ = ["CategoryEncoding", "CenterCrop", "Normalization", "Rescaling", "Resizing"]
