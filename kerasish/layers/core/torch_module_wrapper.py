"""`TorchModuleWrapper`: Keras 3's torch-backend wrapper that turns any
`torch.nn.Module` into a Keras layer (weights tracked, saved and loaded).

Every kerasish layer already is a torch module; this layer is the other
direction, for ported Keras 3 programs that wrap plain torch modules."""

from __future__ import annotations

import base64
import copy
import io

import numpy as np
import torch

from kerasish.backend import config as backend_config
from kerasish.layers.layer import Layer
from kerasish.layers.lazy_weights import materialize
from kerasish.variables import TrainableVariable


def _plain_copy(module: torch.nn.Module) -> torch.nn.Module:
    """A deep copy whose parameters are plain `nn.Parameter`s again (what
    `torch.save` pickles then needs only torch, as a Keras file does)."""
    clone = copy.deepcopy(module)
    for sub in clone.modules():
        for key, p in list(sub._parameters.items()):
            if p is not None:
                plain = p.detach().as_subclass(torch.Tensor).clone()
                sub._parameters[key] = torch.nn.Parameter(plain, requires_grad=p.requires_grad)
    return clone


class TorchModuleWrapper(Layer):
    """Wraps a `torch.nn.Module` as a Keras layer (`keras.layers.TorchModuleWrapper`).

    The module's parameters become the layer's weights in place (the same
    tensor objects, now answering the Keras variable API, named by their
    `state_dict` key): the module keeps training them and `layer.weights`,
    `get_weights`/`set_weights`, optimizers and `fit` see them. Buffers (e.g.
    BatchNorm statistics) are not weights, as in Keras, but they are saved.

    Args:
        module: The `torch.nn.Module` to wrap. Lazy modules must be
            initialized first (one forward pass), as Keras requires.
        name: Layer name. Defaults to an auto name.
        output_shape: Optional output shape returned by
            `compute_output_shape`. When `None` (the default) the shape is
            inferred by running the module on the meta device, so the layer
            works in functional models without it (Keras 3 needs it there).

    Training mode: a call with `training=True` puts the module in
    `train()` mode, `training=False` in `eval()` mode; without `training=`
    the resolved Keras training flag is used (inference unless inside `fit`
    or an outer training call), where Keras 3 would switch a bare call to
    `train()`.

    Saving: `.weights.h5` stores the module's `state_dict()` under its keys,
    as Keras does, so weight files move between Keras and kerasish. The
    config holds the pickled module (`torch.save`, base64) as in Keras;
    loading it runs pickle, so `from_config` / `load_model` refuse it unless
    `safe_mode=False` is passed (or `keras.config.enable_unsafe_deserialization()`).

    Example:
        >>> layer = keras.layers.TorchModuleWrapper(torch.nn.Linear(4, 2))
        >>> model = keras.Sequential([keras.Input((4,)), layer, keras.layers.Softmax()])
        >>> [w.name for w in layer.weights]
        ['weight', 'bias']
    """

    _saves_own_subtree = True  # `.weights.h5`: the module's state_dict, nothing below it

    def __init__(self, module, name=None, output_shape=None, **kwargs):
        if not isinstance(module, torch.nn.Module):
            raise TypeError(
                f"`module` must be a `torch.nn.Module`. Received: module={module!r} (of type {type(module).__name__})"
            )
        if isinstance(module, torch.nn.modules.lazy.LazyModuleMixin) and module.has_uninitialized_params():
            raise ValueError(
                "LazyModules are not supported unless they are already initialized. "
                f"Received uninitialized LazyModule: module={module}"
            )
        super().__init__(name=name, **kwargs)
        self.module = module
        self.output_shape = output_shape
        self._track_module_parameters()
        self.register_load_state_dict_post_hook(TorchModuleWrapper._track_module_parameters)

    @property
    def output_shape(self):
        """The `output_shape` argument; when None, the output shape of the
        layer's functional node (as for every connected layer)."""
        shape = self.__dict__.get("_output_shape_arg")
        return shape if shape is not None else super().output_shape

    @output_shape.setter
    def output_shape(self, value):
        self.__dict__["_output_shape_arg"] = tuple(value) if isinstance(value, list) else value

    def _track_module_parameters(self, *_):
        """Makes every parameter of the module a Keras variable named by its
        `state_dict` key (again after `load_state_dict(assign=True)`, which
        puts the loaded tensors in place)."""
        for key, param in self.module.named_parameters():
            if not isinstance(param, TrainableVariable):
                var = TrainableVariable(param.detach(), trainable=param.requires_grad, name=key, dtype=param.dtype)
                materialize(param, var)
            param.__dict__["_kname"] = key
            param.__dict__["_kpath"] = f"{self.name}/{key}"
        self.built = True

    @property
    def weights(self) -> list:
        # the module's parameters, as Keras tracks them (buffers are state
        # saved with the layer, not weights)
        return list(self.module.parameters())

    def call(self, *args, training=None, **kwargs):
        if training is not None and self.module.training != bool(training):
            self.module.train(bool(training))
        return self.module(*args, **kwargs)

    def compute_output_shape(self, input_shape):
        shape = self.__dict__["_output_shape_arg"]
        return super().compute_output_shape(input_shape) if shape is None else shape

    def save_own_variables(self, store):
        # the whole state_dict (buffers too), under torch's keys, as Keras
        for key, value in self.module.state_dict().items():
            store[key] = value.detach().cpu().numpy()

    def load_own_variables(self, store):
        state = {}
        for key in store.keys():
            key = key.decode() if isinstance(key, bytes) else key
            state[key] = torch.as_tensor(np.asarray(store[key]))
        self.module.load_state_dict(state)

    def get_config(self):
        config = super().get_config()
        buffer = io.BytesIO()
        torch.save(_plain_copy(self.module), buffer)
        config["module"] = base64.b64encode(buffer.getvalue()).decode("ascii")
        config["output_shape"] = self.__dict__["_output_shape_arg"]
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None, safe_mode=None):
        config = dict(config)
        if safe_mode is None:  # an enclosing `deserialize_keras_object(..., safe_mode=...)` decides
            from kerasish.saving import serialization_lib

            safe_mode = serialization_lib.in_safe_mode()
        if isinstance(config.get("module"), str):
            if safe_mode is not False and not backend_config.is_unsafe_deserialization_enabled():
                raise ValueError(
                    "Requested the deserialization of a `torch.nn.Module` object via `torch.load()`. This carries "
                    "a potential risk of arbitrary code execution and thus it is disallowed by default. If you "
                    "trust the source of the artifact, you can override this error by passing `safe_mode=False` "
                    "to the loading function, or calling `keras.config.enable_unsafe_deserialization()`."
                )
            raw = base64.b64decode(config["module"].encode("ascii"))
            config["module"] = torch.load(io.BytesIO(raw), weights_only=False)
        if isinstance(config.get("output_shape"), list):
            config["output_shape"] = tuple(config["output_shape"])
        return cls(**config)
