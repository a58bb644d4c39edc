"""The config half of `Layer`: `get_config` (with Keras 3's automatic
capture of plain `__init__` arguments), `from_config`, build configs."""

from __future__ import annotations

import functools

import inspect
import json

import numpy as np

from kerasish import dtype_policies


def _layer_class():
    from kerasish.layers.layer import Layer

    return Layer


def _check_config_dict(cls, config) -> None:
    if not isinstance(config, dict):
        raise TypeError(
            f"`{cls.__name__}.from_config` expects a config dict (as returned by `get_config()`). "
            f"Received: config={config!r} (of type {type(config).__name__})"
        )


def _checked_from_config(method):
    """Wraps a subclass's own `from_config` so that a non-dict config is a
    TypeError naming the class, not an error from inside `cls(**config)`."""
    func = method.__func__

    @functools.wraps(func)
    def from_config(cls, config, *args, **kwargs):
        _check_config_dict(cls, config)
        return func(cls, config, *args, **kwargs)

    from_config._kerasish_checked = True
    return classmethod(from_config)


class LayerConfigMixin:
    """Configs for `Layer` (see module docstring)."""

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        own = cls.__dict__.get("from_config")
        if isinstance(own, classmethod) and not getattr(own.__func__, "_kerasish_checked", False):
            cls.from_config = _checked_from_config(own)

    # -------------------------------------------------------------- config
    def get_config(self) -> dict:
        """The layer's constructor arguments as a JSON-friendly dict.

        A subclass that adds `__init__` arguments and does not override
        `get_config` gets them captured automatically when they are plain
        JSON values (Keras 3 behaviour); otherwise `NotImplementedError`.
        """
        config = {
            "name": self.name,
            "trainable": self.trainable,
            "dtype": dtype_policies.serialize(self._dtype_policy),
        }
        if self._batch_input_shape is not None:
            config["batch_input_shape"] = self._batch_input_shape
        if self.activity_regularizer is not None:  # Keras 3 writes it only when set
            from kerasish import regularizers

            config["activity_regularizer"] = regularizers.serialize(self.activity_regularizer)
        cls_get_config = type(self).get_config
        base = _layer_class()
        if cls_get_config is not LayerConfigMixin.get_config or type(self) is base:
            if type(self) is base:
                config["autocast"] = self.autocast
            return config
        extra = _captured_init_args(self)
        try:
            json.dumps(extra)
        except TypeError:
            raise NotImplementedError(_GET_CONFIG_HELP.format(name=type(self).__name__)) from None
        accepts_kwargs = _init_accepts_kwargs(type(self))
        if not accepts_kwargs:
            params = inspect.signature(type(self).__init__).parameters
            config = {k: v for k, v in config.items() if k in params}
        config.update(extra)
        return config

    @classmethod
    def from_config(cls, config):
        """Creates a layer from its config (`cls(**config)`)."""
        _check_config_dict(cls, config)
        config = dict(config)
        try:
            return cls(**config)
        except Exception as e:
            raise TypeError(
                f"Error when deserializing class '{cls.__name__}' using config={config}.\n\nException encountered: {e}"
            ) from e

    def get_build_config(self):
        """`{"input_shape": shape}`, or Keras 3's `{"shapes_dict":
        {"query_shape": ..., "value_shape": ...}}` for a layer built from
        several shapes (MultiHeadAttention); None before the build."""
        shapes_dict = self.__dict__.get("_build_shapes_dict")
        if shapes_dict:
            return {"shapes_dict": dict(shapes_dict)}
        if self._build_input_shape is not None:
            return {"input_shape": self._build_input_shape}
        return None

    def build_from_config(self, config):
        """Builds the layer from `get_build_config()`'s output (either form)."""
        if not config or self.built:
            return
        if "input_shape" in config:
            self.build(config["input_shape"])
            return
        shapes_dict = config.get("shapes_dict")
        if not isinstance(shapes_dict, dict):
            raise ValueError(
                f"Layer '{self.name}': invalid `build_config`, expected an `input_shape` or a `shapes_dict`. "
                f"Received: build_config={config}"
            )
        params = inspect.signature(self.build).parameters
        if all(k in params for k in shapes_dict):
            self.build(**shapes_dict)
        else:  # names from another layer version: pass them in their order
            self.build(*shapes_dict.values())


def _captured_init_args(layer) -> dict:
    args, kwargs = layer.__dict__.get("_init_call_args", ((), {}))
    cls = type(layer)
    sig = cls._init_signature
    if sig is None:
        sig = inspect.signature(cls.__init__)
        cls._init_signature = sig
    try:
        bound = sig.bind(None, *args, **kwargs)
    except TypeError:
        return dict(kwargs)
    out = {}
    for key, value in list(bound.arguments.items())[1:]:
        param = sig.parameters[key]
        if param.kind == param.VAR_KEYWORD:
            out.update(value)
        elif param.kind == param.VAR_POSITIONAL:
            continue
        else:
            out[key] = value
    for key, param in list(sig.parameters.items())[1:]:
        if key not in out and param.default is not param.empty and param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
            out[key] = param.default
    for key in ("name", "trainable", "dtype"):
        out.pop(key, None)
    if out.get("dynamic") is False and "dynamic" not in kwargs:
        # Keras 3's Layer has no `dynamic` argument (its from_config refuses it): only an explicit one is kept
        out.pop("dynamic")
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in out.items() if not isinstance(v, np.ndarray)}


def _init_accepts_kwargs(cls) -> bool:
    return any(p.kind == p.VAR_KEYWORD for p in inspect.signature(cls.__init__).parameters.values())


_GET_CONFIG_HELP = """
Object {name} was created by passing
non-serializable argument values in `__init__()`,
and therefore the object must override `get_config()` in
order to be serializable. Please implement `get_config()`.

Example:


class CustomLayer(keras.layers.Layer):
    def __init__(self, arg1, arg2, **kwargs):
        super().__init__(**kwargs)
        self.arg1 = arg1
        self.arg2 = arg2

    def get_config(self):
        config = super().get_config()
        config.update({{
            "arg1": self.arg1,
            "arg2": self.arg2,
        }})
        return config
"""
