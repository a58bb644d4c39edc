"""`keras.utils.legacy`: Keras 2's `serialize_keras_object` /
`deserialize_keras_object`.

Keras 2 (tf.keras) wrote objects as `{"class_name": ..., "config": ...}` with
no `module` / `registered_name` keys, functions by name, and marked nested
objects serialized from non-dict values with `"__passive_serialization__":
True`. Keras 3 keeps these two functions in `keras.utils.legacy` for code
that reads or writes that format; these follow Keras 3.15's versions.
Keras 2's shared-object ids (`SharedObjectSavingScope`, used when saving
whole tf.keras models) are not produced; on loading, a `shared_object_id`
key is ignored (each occurrence is deserialized on its own).
"""

from __future__ import annotations

import inspect

from kerasish.saving import object_registration

_UNDEFINED_CONFIG_KEY = "layer was saved without config"

__all__ = ["deserialize_keras_object", "serialize_keras_object"]


def serialize_keras_object(instance):
    """The Keras 2 serialized form of `instance`: `{"class_name", "config"}`
    for objects with `get_config()` (nested objects serialized the same way,
    with `"__passive_serialization__": True`), the registered name for
    functions and classes, None for None.

    Raises:
        ValueError: `instance` has neither `get_config()` nor a `__name__`.
    """
    instance = inspect.unwrap(instance)
    if instance is None:
        return None
    if hasattr(instance, "get_config"):
        config = instance.get_config()
        out = {}
        for key, item in config.items():
            if isinstance(item, str):
                out[key] = item
                continue
            try:
                serialized = serialize_keras_object(item)
            except ValueError:
                out[key] = item
                continue
            if isinstance(serialized, dict) and not isinstance(item, dict):
                serialized["__passive_serialization__"] = True
            out[key] = serialized
        return {"class_name": object_registration.get_registered_name(type(instance)), "config": out}
    if hasattr(instance, "__name__"):
        return object_registration.get_registered_name(instance)
    raise ValueError(f"Cannot serialize {instance} because it doesn't implement `get_config()`.")


def _unknown(printable_module_name, name):
    return ValueError(
        f"Unknown {printable_module_name}: '{name}'. Please ensure you are using a "
        "`keras.utils.custom_object_scope` and that this object is included in the scope. See "
        "https://www.tensorflow.org/guide/keras/save_and_serialize#registering_the_custom_object for details."
    )


def _class_and_config(config, module_objects, custom_objects, printable_module_name):
    if not isinstance(config, dict) or "class_name" not in config or "config" not in config:
        raise ValueError(
            f"Improper config format for {config}. Expecting python dict contains `class_name` and `config` as keys"
        )
    class_name = config["class_name"]
    cls = object_registration.get_registered_object(class_name, custom_objects, module_objects)
    if cls is None:
        raise _unknown(printable_module_name, class_name)
    cls_config = config["config"]
    if isinstance(cls_config, list):  # Keras <= 2.0 Sequential: a list of layer configs
        return cls, cls_config
    resolved = {}
    for key, item in cls_config.items():
        if key == "name":
            continue  # a name is a name, even when a custom function has the same one
        if isinstance(item, dict) and "__passive_serialization__" in item:
            resolved[key] = deserialize_keras_object(item, module_objects=module_objects,
                                                     custom_objects=custom_objects,
                                                     printable_module_name="config_item")
        elif isinstance(item, str) and inspect.isfunction(
                object_registration.get_registered_object(item, custom_objects, module_objects)):
            resolved[key] = object_registration.get_registered_object(item, custom_objects, module_objects)
    cls_config.update(resolved)  # Keras updates the given config in place too
    return cls, cls_config


def deserialize_keras_object(identifier, module_objects=None, custom_objects=None, printable_module_name="object"):
    """The object of a Keras 2 serialized form.

    Args:
        identifier: A `{"class_name", "config"}` dict, a name, a function,
            or None.
        module_objects: Dict of the built-in names to look names up in
            (e.g. `{"Dense": keras.layers.Dense}`; Keras fills in nothing by
            default either).
        custom_objects: Dict of user objects, looked up first.
        printable_module_name: What the object is, for error messages.

    A class given by name is instantiated with no arguments; a function is
    returned as is.

    Raises:
        ValueError: unknown names, or an identifier of another type.
    """
    if identifier is None:
        return None
    if isinstance(identifier, dict):
        cls, cls_config = _class_and_config(identifier, module_objects, custom_objects, printable_module_name)
        custom_objects = custom_objects or {}
        if hasattr(cls, "from_config"):
            if "custom_objects" in inspect.getfullargspec(cls.from_config).args:
                return cls.from_config(cls_config, custom_objects={**object_registration.get_custom_objects(),
                                                                   **custom_objects})
            with object_registration.CustomObjectScope(custom_objects):
                return cls.from_config(cls_config)
        with object_registration.CustomObjectScope(custom_objects):
            return cls(**cls_config)
    if isinstance(identifier, str):
        obj = object_registration.get_registered_object(identifier, custom_objects, module_objects)
        if obj is None:
            raise _unknown(printable_module_name, identifier)
        return obj() if inspect.isclass(obj) else obj
    if inspect.isfunction(identifier):
        return identifier
    raise ValueError(f"Could not interpret serialized {printable_module_name}: {identifier}")
