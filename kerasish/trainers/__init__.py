"""Training API (compile / fit / evaluate / predict) mixed into `keras.Model`."""

from kerasish.trainers.data_adapters import pack_x_y_sample_weight
from kerasish.trainers.data_adapters import unpack_x_y_sample_weight
from kerasish.trainers.trainer import NotCompiledError
from kerasish.trainers.trainer import Trainer

__all__ = ["NotCompiledError", "Trainer", "pack_x_y_sample_weight", "unpack_x_y_sample_weight"]
