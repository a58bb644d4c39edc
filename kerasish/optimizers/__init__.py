"""`keras.optimizers`: Keras 3 optimizers as `torch.optim.Optimizer` subclasses."""

from __future__ import annotations

import torch

from kerasish.optimizers import schedules
from kerasish.optimizers.adafactor import Adafactor
from kerasish.optimizers.ftrl import Ftrl
from kerasish.optimizers.lamb import Lamb
from kerasish.optimizers.loss_scale_optimizer import LossScaleOptimizer
from kerasish.optimizers.multi_optimizer import MultiOptimizer
from kerasish.optimizers.multi_optimizer import OptimizerMap
from kerasish.optimizers.muon import Muon
from kerasish.optimizers.optimizer import Optimizer
from kerasish.optimizers.optimizers import (
    SGD,
    Adadelta,
    Adagrad,
    Adam,
    Adamax,
    AdamW,
    Lion,
    Nadam,
    RMSprop,
)
from kerasish.optimizers.schedule_free_adamw import ScheduleFreeAdamW
from kerasish.optimizers import legacy  # noqa: E402  (tf.keras 2's legacy optimizers)
from kerasish.optimizers import experimental  # noqa: E402  (tf.keras 2.9-2.15's names for these)
from kerasish.saving.serialization_lib import (
    deserialize_keras_object,
    serialize_keras_object,
)

ALL_OBJECTS = (
    Optimizer, Adam, SGD, RMSprop, Adadelta, AdamW, Adagrad, Adamax, Nadam, Lion, Lamb, Ftrl, Adafactor, Muon,
    ScheduleFreeAdamW, LossScaleOptimizer, MultiOptimizer, OptimizerMap,
)
ALL_OBJECTS_DICT = {cls.__name__.lower(): cls for cls in ALL_OBJECTS}


def serialize(optimizer) -> dict:
    """The Keras config dict (`module`, `class_name`, `config`) of an optimizer."""
    return serialize_keras_object(optimizer)


def deserialize(config: dict, custom_objects: dict | None = None):
    """Creates an optimizer from a config dict; class names are case-insensitive.

    Raises:
        ValueError: for unknown class names.
    """
    config = dict(config)
    if config.get("module") == "keras.optimizers.legacy" and config.get("class_name") in legacy.ALL_OBJECTS_DICT:
        # tf.keras 2's legacy optimizers (what kerasish writes for them, and tf-keras for its own)
        return legacy.ALL_OBJECTS_DICT[config["class_name"]].from_config(config.get("config") or {}, custom_objects)
    if str(config.get("class_name", "")).lower() in ALL_OBJECTS_DICT:
        config["class_name"] = config["class_name"].lower()
    return deserialize_keras_object(
        config, module_objects=ALL_OBJECTS_DICT, custom_objects=custom_objects, printable_module_name="optimizer"
    )


def get(identifier):
    """Returns an optimizer instance.

    Args:
        identifier: None, a name (`"adam"`, `"SGD"`), a config dict, or an
            optimizer instance (any `torch.optim.Optimizer` is returned unchanged).

    Raises:
        ValueError: if the identifier cannot be interpreted.
    """
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        obj = deserialize(identifier)
    elif isinstance(identifier, str):
        obj = deserialize({"class_name": identifier, "config": {}})
    else:
        obj = identifier
    if isinstance(obj, torch.optim.Optimizer):
        return obj
    raise ValueError(f"Could not interpret optimizer identifier: {identifier}")


__all__ = [
    "SGD", "Adadelta", "Adafactor", "Adagrad", "Adam", "AdamW", "Adamax", "Ftrl", "Lamb", "Lion", "LossScaleOptimizer",
    "MultiOptimizer", "Muon", "Nadam", "Optimizer", "OptimizerMap", "RMSprop", "ScheduleFreeAdamW",
    "deserialize", "get", "schedules", "serialize",
]
