"""`Lambda`: wraps an arbitrary function as a layer."""

from __future__ import annotations

import inspect
import types

from kerasish.layers.layer import Layer
from kerasish.saving import serialization_lib
from kerasish.saving.object_registration import get_registered_name
from kerasish.saving.object_registration import get_registered_object
from kerasish.utils import tree


def _is_python_lambda(fn) -> bool:
    return isinstance(fn, types.LambdaType) and fn.__name__ == "<lambda>"


def _func_dump(fn) -> dict:
    """Keras's `__lambda__` config of a Lambda's function: base64 marshalled
    bytecode, defaults, closure."""
    code, defaults, closure = serialization_lib._func_dump(fn)
    return {"class_name": "__lambda__", "config": {"code": code, "defaults": defaults, "closure": closure}}


def _func_load(config: dict, custom_objects=None):
    """The function from its bytecode, its globals resolved as Keras 2's
    `Lambda` resolves them (`serialization_lib._func_load`; Keras 2's
    `module` key is kept by the legacy-config upgrade)."""
    return serialization_lib._func_load((config["code"], config.get("defaults"), config.get("closure")),
                                        module=config.get("module"), custom_objects=custom_objects)


def _serialize_fn(fn):
    if _is_python_lambda(fn):
        return _func_dump(fn)
    if callable(fn):
        if hasattr(fn, "get_config") and not inspect.isfunction(fn):
            return serialization_lib.serialize_keras_object(fn)
        # Keras 3 writes every named function this way (lookup by name on load)
        return {"module": "builtins", "class_name": "function", "config": get_registered_name(fn), "registered_name": "function"}
    raise ValueError(f"Invalid input type for serialization. Received: {fn} of type {type(fn)}.")


def _deserialize_fn(config, custom_objects, safe_mode):
    if isinstance(config, dict) and config.get("class_name") == "__lambda__":
        if safe_mode:
            raise ValueError(
                "Requested the deserialization of a `Lambda` layer whose `function` is a Python lambda. "
                "This carries a potential risk of arbitrary code execution and thus it is disallowed by "
                "default. If you trust the source of the artifact, you can override this error by passing "
                "`safe_mode=False` to the loading function."
            )
        return _func_load(config["config"], custom_objects)
    if isinstance(config, dict) and config.get("class_name") == "function":
        name = config.get("config")
        fn = get_registered_object(name, custom_objects)
        if fn is None:
            from kerasish import activations

            fn = activations.ALL_OBJECTS_DICT.get(name)
        if fn is None:
            raise TypeError(
                f"Could not locate function '{name}'. Make sure custom classes and functions are decorated "
                "with `@keras.saving.register_keras_serializable()`. If they are already decorated, make "
                "sure they are all imported so that the decorator is run before trying to load them. "
                f"Full object config: {config}"
            )
        return fn
    return serialization_lib.deserialize_keras_object(config, custom_objects=custom_objects)


class Lambda(Layer):
    """Wraps an arbitrary expression as a `Layer` object.

    Args:
        function: The function to evaluate, called as `function(inputs,
            **arguments)`; it also receives `mask=` / `training=` when its
            signature names them.
        output_shape: Output shape without the batch dim (tuple), or a
            function of the input shape. Defaults to `None` (inferred by
            running the function on the meta device).
        mask: A fixed mask, or a function `(inputs, mask) -> mask`. Defaults
            to `None` (no mask).
        arguments: Extra keyword arguments for `function`. Defaults to `None`.

    Serialization: a named function is saved by name (as Keras 3 writes it:
    `{"module": "builtins", "class_name": "function", "config": name, ...}`)
    and found again among registered objects, `custom_objects` and
    `keras.activations`. A Python `lambda` is saved as bytecode, and loading
    it runs code from the config, so `from_config` refuses with a
    `ValueError` unless `safe_mode=False` is passed explicitly.

    Example:
        >>> layer = keras.layers.Lambda(lambda x: x ** 2)
        >>> layer(torch.tensor([2.0]))
        tensor([4.])
    """

    def __init__(self, function, output_shape=None, mask=None, arguments=None, **kwargs):
        super().__init__(**kwargs)
        if not callable(function):
            raise TypeError(f"Argument `function` of a Lambda layer must be callable. Received: function={function}")
        self.arguments = dict(arguments or {})
        self.function = function
        self.supports_masking = mask is not None
        self.mask = mask
        self._output_shape = tuple(output_shape) if isinstance(output_shape, list) else output_shape
        try:
            params = inspect.signature(function).parameters
        except (TypeError, ValueError):
            params = {}
        self._fn_expects_training_arg = "training" in params
        self._fn_expects_mask_arg = "mask" in params
        self.built = True

    def call(self, inputs, mask=None, training=None):
        kwargs = dict(self.arguments)
        if self._fn_expects_mask_arg:
            kwargs["mask"] = mask
        if self._fn_expects_training_arg:
            kwargs["training"] = training
        return self.function(inputs, **kwargs)

    def compute_mask(self, inputs, mask=None):
        if callable(self.mask):
            return self.mask(inputs, mask)
        return self.mask

    def compute_output_shape(self, input_shape):
        if self._output_shape is None:
            try:
                return super().compute_output_shape(input_shape)
            except Exception:
                raise NotImplementedError(
                    "We could not automatically infer the shape of the Lambda's output. "
                    "Please specify the `output_shape` argument for this Lambda layer."
                ) from None
        if callable(self._output_shape):
            return self._output_shape(input_shape)
        batch = tree.flatten(input_shape)[0]
        return (batch, *self._output_shape)

    def get_config(self):
        config = super().get_config()
        config["function"] = _serialize_fn(self.function)
        if self._output_shape is not None:
            shape = self._output_shape
            config["output_shape"] = _serialize_fn(shape) if callable(shape) else shape
        if self.mask is not None:
            config["mask"] = _serialize_fn(self.mask) if callable(self.mask) else serialization_lib.serialize_keras_object(self.mask)
        config["arguments"] = serialization_lib.serialize_keras_object(self.arguments)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None, safe_mode=None):
        """Rebuilds a Lambda. Python lambdas (bytecode in the config) load
        only with an explicit `safe_mode=False`; anything else raises
        `ValueError` before any code from the config runs."""
        config = dict(config)
        if safe_mode is None:  # an enclosing `deserialize_keras_object(..., safe_mode=...)` decides
            safe_mode = serialization_lib.in_safe_mode()
        safe = safe_mode is not False
        config["function"] = _deserialize_fn(config["function"], custom_objects, safe)
        if "output_shape" in config:
            shape = config["output_shape"]
            if isinstance(shape, dict):
                config["output_shape"] = _deserialize_fn(shape, custom_objects, safe)
            elif isinstance(shape, list) and all(isinstance(e, (int, type(None))) for e in shape):
                config["output_shape"] = tuple(shape)
        if isinstance(config.get("mask"), dict) and config["mask"].get("class_name") in ("__lambda__", "function"):
            config["mask"] = _deserialize_fn(config["mask"], custom_objects, safe)
        if "arguments" in config:
            config["arguments"] = serialization_lib.deserialize_keras_object(config["arguments"], custom_objects=custom_objects) if (
                isinstance(config["arguments"], dict) and "class_name" in config["arguments"]
            ) else config["arguments"]
        return cls(**config)
