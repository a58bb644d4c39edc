"""Keras 3's config format for objects: `{"module", "class_name", "config",
"registered_name"}`; Keras 2's `{"class_name", "config"}` is accepted on input."""

from __future__ import annotations

import inspect

from kerasish.saving.object_registration import get_registered_name
from kerasish.saving.object_registration import get_registered_object


def _public_module(module: str) -> str:
    """The module Keras writes for a class: `keras.<package>` for kerasish's
    own classes (`kerasish.layers.core.dense` -> `keras.layers`, which real
    Keras can import), the real module for user classes."""
    parts = module.split(".")
    if parts[0] == "kerasish" and len(parts) > 1:
        return "keras." + parts[1]
    return module


class UnknownObjectError(ValueError, TypeError):
    """A config names a class that is neither registered nor in
    `custom_objects`. Keras 3 raises TypeError ("Could not locate class"),
    Keras 2 ValueError ("Unknown layer"): this is both, so either `except`
    catches it."""


def _serialize_nested(value):
    """A config's values with the Keras objects inside serialized (a layer
    given to a custom layer's constructor and returned as is by its
    `get_config`), as Keras's `serialize_dict` does, so that a `from_config`
    written for Keras (`keras.layers.deserialize(config["sublayer"])`) gets
    the dict it expects. Other values stay as they are."""
    if isinstance(value, dict):
        return {k: _serialize_nested(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)) and not hasattr(value, "_fields"):
        out = [_serialize_nested(v) for v in value]
        return tuple(out) if isinstance(value, tuple) else out
    if hasattr(value, "get_config") and not inspect.isclass(value):
        return serialize_keras_object(value)
    return value


def serialize_keras_object(obj):
    """Serializes a Keras-style object (anything with `get_config`), a
    registered function (to its name) or a plain value."""
    if obj is None or isinstance(obj, (str, int, float, bool)):
        return obj
    if isinstance(obj, (list, tuple)):
        return [serialize_keras_object(x) for x in obj]
    if isinstance(obj, dict):
        return {k: serialize_keras_object(v) for k, v in obj.items()}
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        # Keras 3's form: the module and class of a function object, its (registered) name
        return {"module": "builtins", "class_name": "function", "config": get_registered_name(obj),
                "registered_name": "function"}
    if hasattr(obj, "get_config"):
        cls = type(obj)
        registered = get_registered_name(cls)
        module = cls.__module__
        # public module name as Keras writes it: "keras.layers", "keras.initializers"
        # (a `_keras_module` set on a kerasish base class, Functional's or Metric's, is not inherited
        # by a user's subclass: Keras writes the user's module and the registered name for those)
        keras_module = cls.__dict__.get("_keras_module")
        if keras_module is None and module.startswith("kerasish."):
            keras_module = getattr(cls, "_keras_module", None)
        public_module = keras_module or _public_module(module)
        if not public_module.startswith("keras"):
            # a user class, as Keras writes it: its module (None for "__main__") and its registered name
            # (the class name when not registered), by which Keras finds it in `custom_objects`
            return {"module": None if module == "__main__" else module, "class_name": cls.__name__,
                    "config": _serialize_nested(obj.get_config()), "registered_name": registered}
        return {
            "module": public_module,
            "class_name": cls.__name__,
            "config": _serialize_nested(obj.get_config()),
            "registered_name": registered if registered != cls.__name__ else None,
        }
    raise TypeError(f"Cannot serialize object {obj!r} of type {type(obj).__name__}")


_BUILTIN_MODULES = ("activations", "constraints", "initializers", "losses", "metrics", "optimizers", "regularizers")


def _builtin_function(name: str):
    """A public kerasish function named `name` (`mean_squared_error`), looked
    up in Keras's order of built-in modules, or None."""
    import importlib

    for module in _BUILTIN_MODULES:
        fn = getattr(importlib.import_module(f"kerasish.{module}"), name, None)
        if inspect.isfunction(fn):
            return fn
    return None


def deserialize_keras_object(config, module_objects=None, custom_objects=None, printable_module_name="object"):
    """Inverse of `serialize_keras_object`. Looks class names up in custom
    object scopes, `custom_objects`, the registry, then `module_objects`.

    Raises `ValueError` for unknown names (never imports or runs code named
    in the config)."""
    if config is None:
        return None
    if isinstance(config, str):
        obj = get_registered_object(config, custom_objects, module_objects)
        if obj is None:
            raise ValueError(f"Unknown {printable_module_name}: '{config}'")
        return obj
    if not isinstance(config, dict) or "class_name" not in config:
        raise ValueError(
            f"Could not interpret serialized {printable_module_name}: {config!r}"
        )
    class_name = config["class_name"]
    inner = config.get("config", {})
    registered = config.get("registered_name")
    if class_name == "function" and isinstance(inner, str):
        # Keras 3's form of a named function (`compile(loss=keras.losses.mean_squared_error)`,
        # a custom activation): {"module": "builtins", "class_name": "function", "config": name}
        fn = get_registered_object(inner, custom_objects, module_objects)
        if fn is None and config.get("module") == "builtins":
            fn = _builtin_function(inner)
        if fn is None:
            raise UnknownObjectError(
                f"Unknown {printable_module_name}: '{inner}'. Could not locate function '{inner}'. "
                "Please ensure you are using a `keras.utils.custom_object_scope` and that this object "
                "is included in the scope, or registered with `keras.saving.register_keras_serializable`."
            )
        return fn
    cls = None
    if registered:
        cls = get_registered_object(registered, custom_objects, module_objects)
    if cls is None:
        cls = get_registered_object(class_name, custom_objects, module_objects)
    if cls is None:
        raise UnknownObjectError(
            f"Unknown {printable_module_name}: '{class_name}'. Could not locate class '{class_name}'. "
            "Please ensure you are using a `keras.utils.custom_object_scope` and that this object "
            "is included in the scope, or registered with "
            "`keras.saving.register_keras_serializable`."
        )
    if inspect.isclass(cls):
        if hasattr(cls, "from_config"):
            return cls.from_config(inner)
        return cls(**inner)
    # a function serialized with a config: return it as is
    return cls
