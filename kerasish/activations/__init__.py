"""Activation functions, as `keras.activations`.

`get` accepts `None` (-> `linear`), a name from `ALL_OBJECTS` (plus the
aliases `"swish"` and `"hard_swish"`), a registered custom name, a callable,
or a config dict (Keras 3's `{"class_name": "function", "config": name}` or
a serialized callable object).
"""

from __future__ import annotations

import types

from kerasish.activations.activations import (
    celu,
    elu,
    exponential,
    gelu,
    glu,
    hard_shrink,
    hard_sigmoid,
    hard_silu,
    hard_swish,
    hard_tanh,
    leaky_relu,
    linear,
    log_sigmoid,
    log_softmax,
    mish,
    relu,
    relu6,
    selu,
    sigmoid,
    silu,
    soft_shrink,
    softmax,
    softplus,
    softsign,
    sparse_plus,
    sparse_sigmoid,
    sparsemax,
    squareplus,
    swish,
    tanh,
    tanh_shrink,
    threshold,
)
from kerasish.saving.object_registration import (
    get_registered_name,
    get_registered_object,
)
from kerasish.saving.serialization_lib import (
    deserialize_keras_object,
    serialize_keras_object,
)

ALL_OBJECTS = (
    relu,
    leaky_relu,
    relu6,
    softmax,
    celu,
    elu,
    selu,
    softplus,
    softsign,
    squareplus,
    soft_shrink,
    sparse_plus,
    silu,
    gelu,
    glu,
    tanh,
    tanh_shrink,
    threshold,
    sigmoid,
    sparse_sigmoid,
    exponential,
    hard_sigmoid,
    hard_silu,
    hard_tanh,
    hard_shrink,
    linear,
    mish,
    log_softmax,
    log_sigmoid,
    sparsemax,
)
ALL_OBJECTS_DICT: dict[str, types.FunctionType] = {fn.__name__: fn for fn in ALL_OBJECTS}
ALL_OBJECTS_DICT["swish"] = silu
ALL_OBJECTS_DICT["hard_swish"] = hard_silu

_BUILTINS = set(ALL_OBJECTS)


def serialize(activation) -> str | dict:
    """Returns the config of an activation.

    Built-ins serialize to their name (`"relu"`); other named functions to
    Keras 3's `{"module", "class_name": "function", "config": name,
    "registered_name": "function"}`, using the registered name when
    registered; callable objects with `get_config` to their config dict.

    Args:
        activation: The activation function or object.

    Raises:
        ValueError: for functions without a usable name (lambdas).
    """
    if activation in _BUILTINS:
        return activation.__name__
    if isinstance(activation, types.FunctionType):
        name = get_registered_name(activation)
        if name == "<lambda>":
            raise ValueError(
                f"Unknown activation function '{activation}' cannot be serialized due to "
                "invalid function name. Make sure to use an activation name that matches "
                "the references defined in activations.py or use "
                "`@keras.saving.register_keras_serializable()` to register any custom activations."
            )
        # "builtins": the module of a function's class, which Keras's serializer writes
        return {"module": "builtins", "class_name": "function", "config": name, "registered_name": "function"}
    if hasattr(activation, "get_config"):
        return serialize_keras_object(activation)
    raise ValueError(
        f"Unknown activation function '{activation}' cannot be serialized: it is neither "
        "a function nor an object with `get_config()`."
    )


def _lookup(name: str, custom_objects: dict | None = None):
    obj = get_registered_object(name, custom_objects)
    return obj if obj is not None else ALL_OBJECTS_DICT.get(name)


def deserialize(config, custom_objects: dict | None = None):
    """Returns the activation for a name or config dict.

    Args:
        config: A name (`"relu"`) or a dict from `serialize`.
        custom_objects: Extra `{name: function}` to look names up in.
            Defaults to `None`.

    Raises:
        ValueError: for unknown names.
    """
    if isinstance(config, str) or (isinstance(config, dict) and config.get("class_name") == "function"):
        name = config if isinstance(config, str) else config.get("config")
        obj = _lookup(name, custom_objects) if isinstance(name, str) else None
        if obj is None:
            raise ValueError(f"Unknown activation function: '{name}'")
        return obj
    return deserialize_keras_object(
        config, module_objects=ALL_OBJECTS_DICT, custom_objects=custom_objects, printable_module_name="activation"
    )


def get(identifier):
    """Returns the activation function for an identifier.

    Args:
        identifier: `None` (gives `linear`), a name, a config dict or a
            callable (returned as is).

    Raises:
        ValueError: "Could not interpret activation function identifier: ..."
            when nothing matches.
    """
    if identifier is None:
        return linear
    obj = None
    if isinstance(identifier, str):
        obj = ALL_OBJECTS_DICT.get(identifier) or get_registered_object(identifier)
    elif isinstance(identifier, dict):
        try:
            obj = deserialize(identifier)
        except ValueError:
            obj = None
    else:
        obj = identifier
    if callable(obj):
        return obj
    raise ValueError(f"Could not interpret activation function identifier: {identifier}")


__all__ = [
    "ALL_OBJECTS",
    "ALL_OBJECTS_DICT",
    "celu",
    "deserialize",
    "elu",
    "exponential",
    "gelu",
    "get",
    "glu",
    "hard_shrink",
    "hard_sigmoid",
    "hard_silu",
    "hard_swish",
    "hard_tanh",
    "leaky_relu",
    "linear",
    "log_sigmoid",
    "log_softmax",
    "mish",
    "relu",
    "relu6",
    "selu",
    "serialize",
    "sigmoid",
    "silu",
    "soft_shrink",
    "softmax",
    "softplus",
    "softsign",
    "sparse_plus",
    "sparse_sigmoid",
    "sparsemax",
    "squareplus",
    "swish",
    "tanh",
    "tanh_shrink",
    "threshold",
]
