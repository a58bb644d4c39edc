"""Registration of custom objects, as `keras.saving.register_keras_serializable`."""

from __future__ import annotations

import inspect
import threading

_GLOBAL_CUSTOM_OBJECTS: dict[str, object] = {}
_GLOBAL_CUSTOM_NAMES: dict[object, str] = {}
_scope = threading.local()


def register_keras_serializable(package: str = "Custom", name: str | None = None):
    """Decorator registering a class or function under `"package>name"`.

    Example:
        >>> @keras.saving.register_keras_serializable(package="MyLayers")
        ... class Scale(keras.layers.Layer): ...
    """

    def decorator(arg):
        class_name = name if name is not None else arg.__name__
        registered_name = package + ">" + class_name
        if inspect.isclass(arg) and not hasattr(arg, "get_config"):
            raise ValueError(
                "Cannot register a class that does not have a get_config() method."
            )
        _GLOBAL_CUSTOM_OBJECTS[registered_name] = arg
        _GLOBAL_CUSTOM_NAMES[arg] = registered_name
        return arg

    return decorator


def get_registered_name(obj) -> str:
    """The registered name of `obj`, or its `__name__` when not registered."""
    if obj in _GLOBAL_CUSTOM_NAMES:
        return _GLOBAL_CUSTOM_NAMES[obj]
    return obj.__name__


def get_registered_object(name: str, custom_objects: dict | None = None, module_objects: dict | None = None):
    """Looks `name` up in the active custom-object scopes, `custom_objects`,
    the global registry, then `module_objects`. Returns None when absent."""
    for scope in reversed(getattr(_scope, "stack", [])):
        if name in scope:
            return scope[name]
    if custom_objects and name in custom_objects:
        return custom_objects[name]
    if name in _GLOBAL_CUSTOM_OBJECTS:
        return _GLOBAL_CUSTOM_OBJECTS[name]
    if module_objects and name in module_objects:
        return module_objects[name]
    return None


def custom_objects_in_effect(custom_objects: dict | None = None) -> dict:
    """Every custom object a deserialization sees, by name: the global
    registry, then the active scopes (innermost last), then `custom_objects`
    (later ones win, as in `get_registered_object`)."""
    merged = dict(_GLOBAL_CUSTOM_OBJECTS)
    for scope in getattr(_scope, "stack", []):
        merged.update(scope)
    merged.update(custom_objects or {})
    return merged


def get_custom_objects() -> dict:
    """The global registry dict (mutable, as in Keras)."""
    return _GLOBAL_CUSTOM_OBJECTS


class CustomObjectScope:
    """Context manager exposing custom objects to deserialization.

    Example:
        >>> with keras.saving.CustomObjectScope({"MyLayer": MyLayer}):
        ...     layer = keras.layers.deserialize(config)
    """

    def __init__(self, custom_objects: dict | None = None):
        self.custom_objects = dict(custom_objects or {})

    def __enter__(self):
        if not hasattr(_scope, "stack"):
            _scope.stack = []
        _scope.stack.append(self.custom_objects)
        return self

    def __exit__(self, *exc):
        _scope.stack.pop()


custom_object_scope = CustomObjectScope
