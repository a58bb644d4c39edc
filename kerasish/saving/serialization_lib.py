"""Keras 3's config format for objects: `{"module", "class_name", "config",
"registered_name"}`; Keras 2's `{"class_name", "config"}` is accepted on input."""

from __future__ import annotations

import base64
import importlib
import contextvars
import inspect
import marshal
import threading
import types
import warnings

import numpy as np
import torch

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


PLAIN_TYPES = (str, int, float, bool)

# Keras 3 refuses to rebuild these public names from a config: they are not
# modeling objects, and a config naming them is an attack, not a model.
NON_MODELING_APIS = frozenset({
    "keras.backend.clear_session", "keras.config.enable_unsafe_deserialization", "keras.models.load_model",
    "keras.models.model_from_json", "keras.models.save_model", "keras.preprocessing.image_dataset_from_directory",
    "keras.preprocessing.image.load_img", "keras.preprocessing.image.save_img",
    "keras.preprocessing.text_dataset_from_directory", "keras.saving.deserialize_keras_object",
    "keras.saving.load_model", "keras.saving.load_weights", "keras.saving.register_keras_serializable",
    "keras.saving.save_model", "keras.saving.save_weights", "keras.saving.serialize_keras_object",
    "keras.utils.audio_dataset_from_directory", "keras.utils.clear_session", "keras.utils.deserialize_keras_object",
    "keras.utils.get_file", "keras.utils.image_dataset_from_directory", "keras.utils.load_img",
    "keras.utils.register_keras_serializable", "keras.utils.save_img", "keras.utils.serialize_keras_object",
    "keras.utils.text_dataset_from_directory",
})


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


def _func_dump(fn):
    """Keras's `(code, defaults, closure)` of a Python function: its
    marshalled bytecode in base64."""
    code = base64.encodebytes(marshal.dumps(fn.__code__)).decode("ascii")
    closure = tuple(c.cell_contents for c in fn.__closure__) if fn.__closure__ else None
    return code, fn.__defaults__, closure


def _func_load(value, module=None, custom_objects=None):
    """A function from `_func_dump`'s `(code, defaults, closure)`. Runs code
    from a config: only called when safe mode is off. Its global names
    resolve as Keras 2's `Lambda` resolves them: `torch`, `keras` (kerasish)
    and `np`, then the globals of `module` (the module that wrote it) when
    that module is already imported here (nothing is imported), then every
    custom object in effect (registered, `CustomObjectScope`,
    `custom_objects=`)."""
    import builtins
    import sys

    import kerasish
    from kerasish.saving.object_registration import custom_objects_in_effect

    code, defaults, closure = value
    raw = marshal.loads(base64.decodebytes(code.encode("ascii")))
    if closure is not None:
        closure = tuple(types.CellType(v) for v in closure)
    globs = {"__builtins__": builtins, "torch": torch, "keras": kerasish, "np": np}
    if isinstance(module, str) and module in sys.modules:
        globs.update(vars(sys.modules[module]))
    globs.update(custom_objects_in_effect(custom_objects))
    return types.FunctionType(raw, globs, name=raw.co_name, argdefs=tuple(defaults) if defaults else None,
                              closure=closure)


def _dtype_name(dtype) -> str:
    from kerasish.backend import standardize_dtype

    return standardize_dtype(dtype)


# ------------------------------------------------------- shared objects
# Keras 3 writes an object met twice while serializing a model (a layer held
# by another layer's config: KerasHub's `MaskedLMHead(token_embedding=...)`,
# a tied embedding) with the same `"shared_object_id"` in both configs, and
# loading gives both places one object. Active only inside `ObjectSharingScope`
# (saving and loading `.keras` files), per thread / task.
_SHARING: contextvars.ContextVar = contextvars.ContextVar("kerasish_object_sharing", default=None)


class ObjectSharingScope:
    """Scope to enable detection and reuse of previously seen objects (Keras's)."""

    def __enter__(self):
        self._token = _SHARING.set(({}, {}))  # (id -> object loaded, id -> config written)
        return self

    def __exit__(self, *args):
        _SHARING.reset(self._token)


def _record_serialized(obj, config: dict) -> None:
    sharing = _SHARING.get()
    if sharing is None:
        return
    configs = sharing[1]
    key = id(obj)
    if key not in configs:
        configs[key] = (obj, config)  # (the object kept alive: its id stays its own during the save)
    else:
        config["shared_object_id"] = key
        configs[key][1]["shared_object_id"] = key


def _shared_object(config: dict):
    """The object already loaded for this config's `shared_object_id`, or None."""
    sharing = _SHARING.get()
    if sharing is None or "shared_object_id" not in config:
        return None
    return sharing[0].get(config["shared_object_id"])


def _record_deserialized(obj, config: dict) -> None:
    sharing = _SHARING.get()
    if sharing is not None and "shared_object_id" in config:
        sharing[0][config["shared_object_id"]] = obj


def serialize_keras_object(obj):
    """Keras 3's config of `obj` (the inverse of `deserialize_keras_object`):

    - `None`, str, int, float, bool as they are; lists and tuples (kept
      tuples) and dicts with their items serialized;
    - bytes, slices, `...`, NumPy arrays, tensors (kerasish variables
      included) and `KerasTensor`s as Keras's `__bytes__`, `__slice__`,
      `__ellipsis__`, `__numpy__`, `__tensor__` and `__keras_tensor__`
      forms; NumPy scalars as Python numbers;
    - a Python `lambda` as `__lambda__` bytecode (with Keras's warning: it
      loads only with `safe_mode=False`);
    - a named function as Keras 3's `{"module": "builtins", "class_name":
      "function", "config": <registered name>}`;
    - an object with `get_config` as `{"module", "class_name", "config",
      "registered_name"}` plus its `build_config` / `compile_config` when
      it has them (a built layer, a compiled model).
    """
    if obj is None or isinstance(obj, PLAIN_TYPES):
        return obj
    if isinstance(obj, (list, tuple)):
        items = [serialize_keras_object(x) for x in obj]
        return tuple(items) if isinstance(obj, tuple) else items
    if isinstance(obj, dict):
        return {k: serialize_keras_object(v) for k, v in obj.items()}
    if isinstance(obj, bytes):
        return {"class_name": "__bytes__", "config": {"value": obj.decode("utf-8")}}
    if isinstance(obj, slice):
        return {"class_name": "__slice__", "config": {"start": serialize_keras_object(obj.start),
                                                      "stop": serialize_keras_object(obj.stop),
                                                      "step": serialize_keras_object(obj.step)}}
    if obj is Ellipsis:
        return {"class_name": "__ellipsis__", "config": {}}
    from kerasish.backend.keras_tensor import KerasTensor

    if isinstance(obj, KerasTensor):
        history = obj._keras_history
        if history:
            history = [history[0].name, *list(history)[1:]]
        return {"class_name": "__keras_tensor__",
                "config": {"shape": obj.shape, "dtype": obj.dtype, "keras_history": history}}
    if isinstance(obj, torch.Tensor):
        value = obj.detach().cpu()
        dtype = _dtype_name(value.dtype)
        if value.dtype == torch.bfloat16:
            value = value.float()
        return {"class_name": "__tensor__", "config": {"value": value.numpy().tolist(), "dtype": dtype}}
    if isinstance(obj, np.ndarray) and obj.ndim > 0:
        return {"class_name": "__numpy__", "config": {"value": obj.tolist(), "dtype": _dtype_name(obj.dtype)}}
    if isinstance(obj, (np.ndarray, np.generic)):
        return obj.item()
    if isinstance(obj, types.FunctionType) and obj.__name__ == "<lambda>":
        try:
            source = inspect.getsource(obj)
        except (OSError, TypeError):
            source = repr(obj)
        warnings.warn(
            "The object being serialized includes a `lambda`. This is unsafe. In order to reload the object, you "
            "will have to pass `safe_mode=False` to the loading function. Please avoid using `lambda` in the "
            f"future, and use named Python functions instead. This is the `lambda` being serialized: {source}",
            stacklevel=2,
        )
        return {"class_name": "__lambda__", "config": {"value": _func_dump(obj)}}
    if inspect.isfunction(obj) or inspect.isbuiltin(obj):
        # Keras 3's form: the module and class of a function object, its (registered) name
        return {"module": "builtins", "class_name": "function", "config": get_registered_name(obj),
                "registered_name": "function"}
    if hasattr(obj, "get_config"):
        config = _object_config(obj)
        for hook, key in (("get_build_config", "build_config"), ("get_compile_config", "compile_config")):
            if hasattr(obj, hook):
                extra = getattr(obj, hook)()
                if extra is not None:
                    config[key] = _serialize_nested(extra)
        _record_serialized(obj, config)
        return config
    raise TypeError(
        f"Cannot serialize object {obj!r} of type {type(obj)}. To be serializable, a class must implement the "
        "`get_config()` method."
    )


def _object_config(obj) -> dict:
    """`{"module", "class_name", "config", "registered_name"}` of an object with `get_config`."""
    cls = type(obj)
    inner = obj.get_config()
    if not isinstance(inner, dict):
        raise TypeError(f"The `get_config()` method of {obj} should return a dict. It returned: {inner}")
    registered = get_registered_name(cls)
    module = cls.__module__
    from kerasish.dtype_policies import DTypePolicy
    from kerasish.dtype_policies import FloatDTypePolicy

    if cls in (DTypePolicy, FloatDTypePolicy):
        keras_module = "keras"  # Keras's public names `keras.DTypePolicy` / `keras.FloatDTypePolicy`
    else:
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
                "config": _serialize_nested(inner), "registered_name": registered}
    if public_module.startswith("keras.src."):
        # a Keras class with no public `keras.*` name (Functional, ConvNeXt's LayerScale, FeatureSpace's
        # Feature): Keras 3 writes its registered name, the class name, as for a custom class
        return {"module": public_module, "class_name": cls.__name__, "config": _serialize_nested(inner),
                "registered_name": registered}
    return {
        "module": public_module,
        "class_name": cls.__name__,
        "config": _serialize_nested(inner),
        "registered_name": registered if registered != cls.__name__ else None,
    }


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


def deserialize_with_modules(config, module_objects=None, custom_objects=None, printable_module_name="object"):
    """kerasish's own lookups (`keras.layers.deserialize`, `keras.losses.get`,
    ...): class names looked up in custom object scopes, `custom_objects`,
    the registry, then `module_objects`.

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
    shared = _shared_object(config)
    if shared is not None:
        return shared
    cls = None
    if registered:
        cls = get_registered_object(registered, custom_objects, module_objects)
    if cls is None:
        cls = get_registered_object(class_name, custom_objects, module_objects)
    if cls is None and isinstance(config.get("module"), str):
        cls = _keras_internal_class(config["module"], class_name)
    if cls is None:
        raise UnknownObjectError(
            f"Unknown {printable_module_name}: '{class_name}'. Could not locate class '{class_name}'. "
            "Please ensure you are using a `keras.utils.custom_object_scope` and that this object "
            "is included in the scope, or registered with "
            "`keras.saving.register_keras_serializable`."
        )
    if inspect.isclass(cls):
        instance = cls.from_config(inner) if hasattr(cls, "from_config") else cls(**inner)
        _record_deserialized(instance, config)
        return instance
    # a function serialized with a config: return it as is
    return cls


# ----------------------------------------------------- Keras 3's public API
_safe_mode = threading.local()


class SafeModeScope:
    """Carries `safe_mode` to the deserializations nested in a `from_config`
    (a Lambda inside a custom layer's config), as Keras 3's scope does."""

    def __init__(self, safe_mode=True):
        self.safe_mode = safe_mode

    def __enter__(self):
        self._previous = getattr(_safe_mode, "value", None)
        _safe_mode.value = self.safe_mode
        return self

    def __exit__(self, *exc):
        _safe_mode.value = self._previous


def in_safe_mode():
    """The safe mode an enclosing deserialization set (None: none set);
    False once `keras.config.enable_unsafe_deserialization()` was called."""
    from kerasish.backend import config as backend_config

    if backend_config.is_unsafe_deserialization_enabled():
        return False
    return getattr(_safe_mode, "value", None)


# Keras's public namespaces a config's "module" may name, searched in this
# order for a Keras-internal module path ("keras.src.backend.torch.optimizers.torch_adam")
_NAMESPACES = ("layers", "models", "optimizers", "optimizers.schedules", "losses", "metrics", "initializers",
               "regularizers", "constraints", "activations", "dtype_policies", "quantizers", "random", "ops")


def _namespace(name: str):
    return importlib.import_module("kerasish" + ("." + name if name else ""))


# Keras-internal modules whose classes have no public `keras.*` name, and the
# kerasish module holding each class's counterpart (it names Keras's module in
# its `_keras_module`); only these are looked in for such a module path.
_KERAS_INTERNAL_MODULES = {
    "keras.src.applications.convnext": "kerasish.applications.convnext",
    "keras.src.applications.inception_resnet_v2": "kerasish.applications.inception_resnet_v2",
    "keras.src.layers.preprocessing.feature_space": "kerasish.layers.preprocessing.feature_space",
}


def _keras_internal_class(module: str, name: str):
    """kerasish's counterpart of the Keras-internal class `module.name`
    (`keras.src.applications.convnext` / `LayerScale`), or None."""
    home = _KERAS_INTERNAL_MODULES.get(module)
    if home is None:
        return None
    obj = vars(importlib.import_module(home)).get(name)
    if isinstance(obj, type) and obj.__dict__.get("_keras_module") == module:
        return obj
    return None


def _keras_symbol(module: str, name: str):
    """The kerasish object Keras's config names as `module.name` ("keras.layers"
    / "Dense", "keras" / "Sequential"), or None. Only kerasish's public
    namespaces are searched; nothing is imported by a name from the config."""
    api_name = f"{module}.{name}"
    if api_name in NON_MODELING_APIS:
        raise ValueError(
            f"Cannot deserialize `{api_name}` because it is not a modeling function. Non-modeling APIs are "
            "disallowed during deserialization for security. Model configuration should only contains "
            "operations, layers, metrics, losses, or registered custom objects and functions."
        )
    if module == "keras":
        candidates = [""]
    elif module.startswith("keras.src"):
        found = _keras_internal_class(module, name)
        if found is not None:
            return found
        candidates = ["", *_NAMESPACES]
    else:
        rest = module[len("keras."):]
        candidates = [rest] if rest in _NAMESPACES or rest in ("utils", "saving", "callbacks", "backend") else []
    for namespace in candidates:
        obj = vars(_namespace(namespace)).get(name)
        if obj is None and namespace == "":
            try:
                obj = getattr(_namespace(""), name)  # kerasish's lazily imported names
            except AttributeError:
                obj = None
        if obj is not None and not isinstance(obj, types.ModuleType):
            return obj
    return None


def _retrieve(name, registered_name, module, kind, full_config, custom_objects):
    found = get_registered_object(name if kind == "function" else registered_name, custom_objects)
    if found is not None:
        return found
    if module and (module == "keras" or module.startswith("keras.")):
        found = _keras_symbol(module, name)
        if found is not None:
            return found
    if kind == "function" and module == "builtins":
        found = _builtin_function(name)
        if found is not None:
            return found
        if ">" not in name:  # a registered function saved by its bare name
            from kerasish.saving.object_registration import custom_objects_in_effect

            for key, value in custom_objects_in_effect(custom_objects).items():
                if key.endswith(">" + name):
                    return value
    if kind == "class" and registered_name != name:
        found = get_registered_object(name, custom_objects)
        if found is not None:
            return found
    raise UnknownObjectError(
        f"Could not locate {kind} '{name}'. Make sure custom classes and functions are decorated with "
        "`@keras.saving.register_keras_serializable()`. If they are already decorated, make sure they are all "
        f"imported so that the decorator is run before trying to load them. Full object config: {full_config}"
    )


def deserialize_keras_object(config, custom_objects=None, safe_mode=True, **kwargs):
    """Rebuilds an object from `serialize_keras_object`'s config, as Keras 3
    does: plain values as they are, lists (tuples become lists) and dicts
    item by item, Keras's `__tensor__` / `__numpy__` / `__bytes__` /
    `__slice__` / `__ellipsis__` / `__keras_tensor__` forms, functions and
    classes by their registered name (custom object scopes,
    `custom_objects`, `register_keras_serializable`) or by Keras's module
    and name (`{"module": "keras.layers", "class_name": "Dense", ...}`, the
    kerasish class of that name). A class is rebuilt with `from_config`
    (inside a custom object scope of `custom_objects` and the safe mode, so
    nested calls see both), then built from its `build_config` and compiled
    from its `compile_config`.

    Args:
        config: the config to read.
        custom_objects: a dict of names to classes and functions.
        safe_mode: refuse Python lambdas (bytecode in the config): they are
            the only way a config runs code, and need `safe_mode=False` (or
            `keras.config.enable_unsafe_deserialization()`). An enclosing
            deserialization's safe mode wins, as in Keras.

    Keras 2's lookup arguments (`module_objects=`, `printable_module_name=`)
    are still accepted and resolve names in `module_objects` first.
    """
    if "module_objects" in kwargs or "printable_module_name" in kwargs:
        return deserialize_with_modules(config, kwargs.pop("module_objects", None), custom_objects,
                                        kwargs.pop("printable_module_name", "object"))
    if kwargs:
        raise TypeError(f"deserialize_keras_object() got unexpected keyword arguments: {sorted(kwargs)}")
    scoped = in_safe_mode()
    safe_mode = scoped if scoped is not None else safe_mode
    custom_objects = dict(custom_objects or {})

    def again(value):
        return deserialize_keras_object(value, custom_objects=custom_objects, safe_mode=safe_mode)

    if config is None:
        return None
    if isinstance(config, str) and custom_objects.get(config) is not None:
        return custom_objects[config]
    if isinstance(config, (list, tuple)):
        return [again(v) for v in config]
    if isinstance(config, PLAIN_TYPES):
        return config
    if not isinstance(config, dict):
        raise TypeError(f"Could not parse config: {config}")
    if "class_name" not in config or "config" not in config:
        return {key: again(value) for key, value in config.items()}
    class_name = config["class_name"]
    inner = config["config"] if config["config"] is not None else {}
    if class_name == "__keras_tensor__":
        from kerasish.backend.keras_tensor import KerasTensor

        return KerasTensor(tuple(inner["shape"]), dtype=inner["dtype"])
    if class_name == "__tensor__":
        from kerasish.ops import convert_to_tensor

        return convert_to_tensor(inner["value"], dtype=inner["dtype"])
    if class_name == "__numpy__":
        return np.array(inner["value"], dtype=inner["dtype"])
    if class_name == "__bytes__":
        return inner["value"].encode("utf-8")
    if class_name == "__ellipsis__":
        return Ellipsis
    if class_name == "__slice__":
        return slice(again(inner["start"]), again(inner["stop"]), again(inner["step"]))
    if class_name == "__lambda__":
        if safe_mode:
            raise ValueError(
                "Requested the deserialization of a Python lambda. This carries a potential risk of arbitrary code "
                "execution and thus it is disallowed by default. If you trust the source of the artifact, you can "
                "override this error by passing `safe_mode=False` to the loading function, or calling "
                "`keras.config.enable_unsafe_deserialization()."
            )
        return _func_load(inner["value"], custom_objects=custom_objects)
    module = config.get("module")
    registered_name = config.get("registered_name") or class_name
    if class_name == "function":
        if not isinstance(inner, str):
            raise TypeError(f"Expected 'config' to be a non-null str for a function classname,\\n"
                            f"instead got {type(inner)}\\nFull config: {config}")
        return _retrieve(inner, registered_name, module, "function", config, custom_objects)
    if not isinstance(inner, dict):
        raise TypeError(f"Expected 'config' to be a dict for {class_name},\\ninstead got {type(inner)}\\n"
                        f"Full config: {config}")
    shared = _shared_object(config)
    if shared is not None:
        return shared
    cls = _retrieve(class_name, registered_name, module, "class", config, custom_objects)
    if isinstance(cls, types.FunctionType):
        return cls
    if not hasattr(cls, "from_config"):
        raise TypeError(f"Unable to reconstruct an instance of '{class_name}' because the class is missing a "
                        f"`from_config()` method. Full object config: {config}")
    from kerasish.saving.object_registration import CustomObjectScope

    with CustomObjectScope(custom_objects), SafeModeScope(safe_mode):
        try:
            instance = _from_config(cls, inner, custom_objects, safe_mode)
        except TypeError as e:
            raise TypeError(
                f"{cls} could not be deserialized properly. Please ensure that components that are Python object "
                "instances (layers, models, etc.) returned by `get_config()` are explicitly deserialized in the "
                f"model's `from_config()` method.\\n\\nconfig={config}.\\n\\nException encountered: {e}"
            ) from e
        build_config = config.get("build_config")
        if build_config and not getattr(instance, "built", True):
            instance.build_from_config(build_config)
        compile_config = config.get("compile_config")
        if compile_config and hasattr(instance, "compile_from_config"):
            instance.compile_from_config(compile_config)
    _record_deserialized(instance, config)
    return instance


def _from_config(cls, inner, custom_objects, safe_mode):
    """`cls.from_config(inner)`, passing `custom_objects` / `safe_mode` to
    the kerasish classes whose `from_config` takes them (Lambda, models)."""
    try:
        params = inspect.signature(cls.from_config).parameters
    except (TypeError, ValueError):
        params = {}
    kwargs = {}
    if "custom_objects" in params:
        kwargs["custom_objects"] = custom_objects
    if "safe_mode" in params:
        kwargs["safe_mode"] = safe_mode
    return cls.from_config(inner, **kwargs)
