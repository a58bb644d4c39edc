"""`keras.optimizers.legacy.Optimizer`: tf.keras 2's `OptimizerV2` subclassing API.

Before TF 2.11 a tf.keras user wrote a custom optimizer by subclassing
`tf.keras.optimizers.Optimizer` (from TF 2.11 to 2.15 `...legacy.Optimizer`),
the base of every built-in optimizer then:

    class SimpleMomentum(keras.optimizers.legacy.Optimizer):
        def __init__(self, learning_rate=0.01, momentum=0.9, name="SimpleMomentum", **kwargs):
            super().__init__(name, **kwargs)
            self._set_hyper("learning_rate", kwargs.get("lr", learning_rate))
            self._set_hyper("decay", self._initial_decay)
            self._set_hyper("momentum", momentum)

        def _create_slots(self, var_list):
            for var in var_list:
                self.add_slot(var, "pv")

        def _resource_apply_dense(self, grad, var, apply_state=None):
            lr_t = self._decayed_lr(var.dtype)
            pv = self.get_slot(var, "pv")
            pv.assign(self._get_hyper("momentum", var.dtype) * pv - lr_t * grad)
            var.assign_add(pv)

        def get_config(self):
            config = super().get_config()
            config.update({"learning_rate": self._serialize_hyperparameter("learning_rate"),
                           "decay": self._initial_decay,
                           "momentum": self._serialize_hyperparameter("momentum")})
            return config

Ported to torch (tf ops turned into torch ops; `var.dtype.base_dtype` is
`var.dtype`), such a class runs here unchanged: this base keeps tf.keras 2's
protocol on top of kerasish's optimizer (so it is a `torch.optim.Optimizer`,
works in `compile` / `fit`, `apply_gradients`, `step()`, `state_dict`):

- hyperparameters: `_set_hyper` / `_get_hyper(name, dtype)` (0-d tensors;
  `_get_hyper("learning_rate")` returns the schedule object when it is one),
  attribute access and assignment (`opt.momentum`, `opt.momentum = 0.5`,
  `opt.lr`), `_serialize_hyperparameter`; the learning rate is kerasish's
  (`opt.learning_rate`, callbacks, `K.set_value(opt.lr, v)`), and, as in
  tf.keras 2, assigning a float replaces a learning-rate schedule;
- `decay` (tf.keras 2's time-based decay, `self._initial_decay`) applied by
  `_decayed_lr(var_dtype)`: `lr(iterations) / (1 + decay * iterations)`;
- slots: `_create_slots(var_list)` runs when the optimizer is built (the
  first step, `build`, or `fit`), `add_slot(var, name, initializer, shape)`,
  `get_slot(var, name)` (a Keras variable sharing the slot's storage, so
  `assign` / `assign_add` / `assign_sub` write it), `get_slot_names()`;
- one update: `_prepare(var_list)` fills `apply_state[(device, dtype)]` with
  `_prepare_local` (`lr_t`, plus what a subclass adds), then
  `_resource_apply_dense(grad, var, apply_state)` per variable;
  `_fallback_apply_state` as in tf.keras; `iterations` counts the updates
  made before this one, as there;
- `weights` / `variables()` / `get_weights()` / `set_weights()` in tf.keras
  2's order (the iteration count, then the slots in creation order), and the
  same order in `.h5` files (tf.keras 2's files load, with their optimizer
  state, when the class is passed in `custom_objects`);
- `get_config()` of the base: `name` and the clipping arguments that are
  set; `from_config` maps Keras 2's `lr`.

Not supported: `_resource_apply_sparse` is never called (torch gradients are
dense, `Embedding`'s included: the dense update runs for every variable);
`gradient_aggregator` / `gradient_transformers` (refused with a clear error);
`minimize` needs a callable loss (`tape` is ignored: torch records the graph).
"""

from __future__ import annotations

import numbers

import numpy as np
import torch

from kerasish.optimizers import schedules as lr_schedules
from kerasish.optimizers.optimizer import Optimizer as _Optimizer
from kerasish.optimizers.optimizer import _reference_name
from kerasish.variables import replacement_of

_ALLOWED_KWARGS = ("clipnorm", "clipvalue", "lr", "decay", "global_clipnorm")


class _WeightList(list):
    """A list that can also be called: tf.keras 2's `optimizer.variables()` is a method, Keras 3's
    `optimizer.variables` a property; ported code uses either."""

    def __call__(self):
        return self


class TfKeras2Weights:
    """tf.keras 2's optimizer `get_weights()` / `set_weights()` over the class's `weights` (the iteration
    count first, then the optimizer's state in tf.keras 2's order): shared by the legacy optimizers and
    `Optimizer` below."""

    def get_weights(self):
        """NumPy values of `weights` (the iteration count as int64, as tf.keras 2's)."""
        values = [w.detach().cpu().numpy() for w in self.weights]
        if values:
            values[0] = np.asarray(values[0], dtype=np.int64)
        return values

    @torch.no_grad()
    def set_weights(self, weights):
        """Sets `weights` from a list in tf.keras 2's order (e.g. another tf.keras 2 optimizer's
        `get_weights()`); the optimizer must be built (`_create_all_weights(model.trainable_variables)`,
        as in tf.keras 2, or a first step). Nothing is written unless every shape matches."""
        params = self.weights
        if len(params) != len(weights):
            raise ValueError(
                f"You called `set_weights(weights)` on optimizer {self.name} with a weight list of length "
                f"{len(weights)}, but the optimizer was expecting {len(params)} weights. Provided weights: "
                f"{str(weights)[:50]}..."
            )
        values = [np.asarray(w) for w in weights]
        for p, w in zip(params, values):
            if tuple(p.shape) != w.shape:
                raise ValueError(f"Optimizer weight shape {tuple(p.shape)} not compatible with provided weight "
                                 f"shape {w.shape}.")
        for p, w in zip(params, values):
            p.copy_(torch.as_tensor(w).to(device=p.device, dtype=p.dtype))


class Optimizer(TfKeras2Weights, _Optimizer):
    """tf.keras 2's `OptimizerV2` base class for custom optimizers (see the module docstring).

    Args:
        name: The optimizer's name (tf.keras 2 requires it; subclasses pass their default).
        gradient_aggregator: Not supported (must be None).
        gradient_transformers: Not supported (must be None or empty).
        **kwargs: `clipnorm`, `clipvalue`, `global_clipnorm`, `lr` (read by the
            subclass: `kwargs.get("lr", learning_rate)`), `decay`.
    """

    def __init__(self, name, gradient_aggregator=None, gradient_transformers=None, **kwargs):
        for key, value in kwargs.items():
            if key not in _ALLOWED_KWARGS:
                raise TypeError(
                    f"Unexpected keyword argument passed to optimizer: {key}. Allowed kwargs are "
                    f"{set(_ALLOWED_KWARGS)}."
                )
            if (value is not None and isinstance(value, numbers.Real) and not isinstance(value, bool)
                    and value < 0):
                raise ValueError(f"Expected {key} >= 0, received: {value}")
        if gradient_aggregator is not None or gradient_transformers:
            raise NotImplementedError(
                f"{type(self).__name__}: kerasish's legacy Optimizer does not support `gradient_aggregator` / "
                "`gradient_transformers` (tf.distribute hooks); transform the gradients before "
                "`apply_gradients`, or use `clipnorm` / `clipvalue` / `global_clipnorm`. Received: "
                f"gradient_aggregator={gradient_aggregator}, gradient_transformers={gradient_transformers}"
            )
        decay = kwargs.pop("decay", 0.0)
        if decay is None:
            decay = 0.0
        kwargs.pop("lr", None)  # the subclass reads it (`kwargs.get("lr", learning_rate)`)
        if kwargs.get("clipnorm") is not None and kwargs.get("global_clipnorm") is not None:
            raise ValueError(
                "Cannot accept both `clipnorm` and `global_clipnorm`. Received: "
                f"`clipnorm`={kwargs['clipnorm']}, `global_clipnorm`={kwargs['global_clipnorm']}."
            )
        # tf.keras 2 allows clipnorm with clipvalue; kerasish's base takes one: check here, pass on
        clip = {k: kwargs.get(k) for k in ("clipnorm", "clipvalue", "global_clipnorm")}
        super().__init__(learning_rate=0.001, name=name or None, **clip)
        self._initial_decay = float(decay)
        self._name = self.name
        self.__dict__["_hyper"] = {}
        self.__dict__["_v2_slots"] = []  # (variable, slot name) in creation order
        self.__dict__["_v2_slot_names"] = []
        self.__dict__["_hypers_created"] = False

    # the Keras 2 `decay` is `_initial_decay` (applied in `_decayed_lr`), not kerasish's `decay`
    @property
    def decay(self):
        hyper = self.__dict__.get("_hyper")
        if hyper is not None and "decay" in hyper:
            return self._get_hyper("decay")
        return self.__dict__.get("_initial_decay", 0.0)

    @decay.setter
    def decay(self, value) -> None:
        hyper = self.__dict__.get("_hyper")
        if hyper is None:  # (kerasish's base constructor: no decay of its own)
            return
        self._set_hyper("decay", value)

    # ------------------------------------------------------------ hyperparameters

    def __getattr__(self, name):
        hyper = self.__dict__.get("_hyper")
        if hyper is not None and name in hyper:
            return self._get_hyper(name)
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __setattr__(self, name, value):
        hyper = self.__dict__.get("_hyper")
        if hyper is not None and name == "lr":
            name = "learning_rate"
        if hyper is not None and name in hyper:
            self._set_hyper(name, value)
            return
        super().__setattr__(name, value)

    def _set_hyper(self, name, value):
        """Sets hyperparameter `name` (a float, a 0-d tensor, a callable, or for the learning rate a
        `LearningRateSchedule`)."""
        if name == "learning_rate":
            if isinstance(value, torch.Tensor) and value.ndim == 0:
                value = float(value)
            if not (isinstance(value, lr_schedules.LearningRateSchedule) or callable(value)):
                self._schedule = None  # tf.keras 2: a float replaces a schedule
            _Optimizer.learning_rate.fset(self, value)
            self._hyper["learning_rate"] = None  # (read from kerasish's learning rate)
            return
        if isinstance(value, torch.Tensor) and value.ndim == 0 and not value.requires_grad:
            value = value.detach().clone()
        self._hyper[name] = value

    def _get_hyper(self, name, dtype=None):
        """Hyperparameter `name` as a 0-d tensor (of `dtype` when given; float32 otherwise, as tf.keras
        2's hyperparameter variables). A learning-rate schedule is returned as the schedule."""
        if name == "learning_rate":
            if isinstance(self._schedule, lr_schedules.LearningRateSchedule):
                return self._schedule
            value = self._current_lr()
        else:
            value = self._hyper[name]
            if callable(value) and not isinstance(value, torch.Tensor):
                value = value()
        if isinstance(value, torch.Tensor):
            return value.to(dtype) if dtype is not None else value
        return torch.tensor(np.float32(value) if dtype is None else value, dtype=dtype or torch.float32)

    def _serialize_hyperparameter(self, hyperparameter_name):
        if hyperparameter_name == "learning_rate":
            return _Optimizer.get_config(self)["learning_rate"]
        value = self._hyper[hyperparameter_name]
        if callable(value) and not isinstance(value, torch.Tensor):
            return value()
        if isinstance(value, torch.Tensor):
            return value.item()
        if self._hypers_created and isinstance(value, numbers.Real) and not isinstance(value, bool):
            return float(np.float32(value))  # tf.keras 2 reads it back from its float32 variable
        return value

    def _decayed_lr(self, var_dtype):
        """The learning rate of this update as a 0-d tensor of `var_dtype`: the schedule at `iterations`,
        then tf.keras 2's time-based decay `lr / (1 + decay * iterations)`."""
        if isinstance(var_dtype, torch.dtype):
            dtype = var_dtype
        else:
            from kerasish.backend import standardize_dtype

            dtype = getattr(torch, standardize_dtype(var_dtype))
        local_step = self.iterations.to(dtype)
        if isinstance(self._schedule, lr_schedules.LearningRateSchedule):
            lr_t = torch.as_tensor(self._schedule(local_step)).to(dtype)
        elif self._schedule is not None:
            lr_t = torch.as_tensor(self._schedule()).to(dtype)
        else:
            lr_t = torch.tensor(np.float32(self._current_lr()), dtype=torch.float32).to(dtype)
        if self._initial_decay > 0.0:
            decay_t = torch.tensor(self._initial_decay, dtype=dtype)
            lr_t = lr_t / (1.0 + decay_t * local_step)
        return lr_t

    def _update_lr(self, group, device):
        return self._current_lr(group)  # (unused: `_prepare_local` computes the rate)

    # ---------------------------------------------------------------------- slots

    def _create_slots(self, var_list):
        """Override: create the slots with `add_slot`."""

    def add_slot(self, var, slot_name, initializer="zeros", shape=None):
        """A slot variable named `slot_name` for `var` (shaped like it unless `shape` is given; `var`'s
        dtype and device), made once and returned."""
        from kerasish import initializers

        self._refuse_lazy(var)
        if slot_name not in self._v2_slot_names:
            self._v2_slot_names.append(slot_name)
        state = self.state[var]
        if slot_name in state:
            return self.get_slot(var, slot_name)
        slot_shape = tuple(var.shape) if shape is None else tuple(int(d) for d in shape)
        if isinstance(initializer, str) or callable(initializer):
            init = initializers.get(initializer)
            from kerasish.backend import standardize_dtype

            value = init(slot_shape, dtype=standardize_dtype(var.dtype))
        else:
            value = initializer
        value = torch.as_tensor(value).to(device=var.device, dtype=var.dtype).detach().clone()
        if tuple(value.shape) != slot_shape:
            raise ValueError(f"{type(self).__name__}: the initial value of slot '{slot_name}' has shape "
                             f"{tuple(value.shape)}, expected {slot_shape}.")
        state[slot_name] = value
        self._v2_slots.append((var, slot_name))
        return self.get_slot(var, slot_name)

    def get_slot(self, var, slot_name):
        """The slot `slot_name` of `var` as a Keras variable sharing the slot's storage."""
        state = self.state.get(var)
        if not state or slot_name not in state:
            raise KeyError(
                f"{type(self).__name__} '{self.name}' has no slot '{slot_name}' for variable "
                f"{getattr(var, 'path', None) or tuple(var.shape)}. Its slots: {self._v2_slot_names}"
            )
        return self._state_view(state[slot_name], f"{_slot_prefix(var)}/{slot_name}")

    def get_slot_names(self):
        return list(self._v2_slot_names)

    def build(self, var_list):
        if self.built:
            return self
        var_list = list(var_list)
        super().build(var_list)
        self._create_all_weights(self._trainable_variables)
        return self

    def _create_all_weights(self, var_list):
        self._create_slots(list(var_list))
        self.__dict__["_hypers_created"] = True

    # -------------------------------------------------------------------- updates

    def _prepare(self, var_list):
        apply_state = {}
        for var in var_list:
            key = (var.device, var.dtype)
            if key not in apply_state:
                apply_state[key] = {}
                self._prepare_local(var.device, var.dtype, apply_state)
        return apply_state

    def _prepare_local(self, var_device, var_dtype, apply_state):
        apply_state[(var_device, var_dtype)]["lr_t"] = self._decayed_lr(var_dtype).to(var_device)

    def _fallback_apply_state(self, var_device, var_dtype):
        apply_state = {(var_device, var_dtype): {}}
        self._prepare_local(var_device, var_dtype, apply_state)
        return apply_state[(var_device, var_dtype)]

    @torch.compiler.disable
    def _update(self, params, grads, slots, lr, step) -> None:
        # (eager under `fit(jit_compile=True)` / torch.compile: a tf.keras 2 subclass's update is arbitrary
        # Python over dicts of coefficients and slot views that dynamo cannot trace; the model's step stays
        # compiled, the update runs between its graphs)
        if type(self)._resource_apply_dense is Optimizer._resource_apply_dense:
            raise NotImplementedError(
                f"{type(self).__name__} must implement `_resource_apply_dense(grad, var, apply_state)` "
                "(tf.keras 2's way to write an optimizer)."
            )
        apply_state = self._prepare(params)
        for p, g in zip(params, grads):
            self._resource_apply_dense(g, p, apply_state)

    def _resource_apply_dense(self, grad, handle, apply_state):
        """Override: update `handle` (a model variable) from `grad`."""
        raise NotImplementedError

    def _resource_apply_sparse(self, grad, handle, indices, apply_state):
        """Never called by kerasish: torch gradients are dense (see the module docstring)."""
        raise NotImplementedError

    def minimize(self, loss, var_list, grad_loss=None, name=None, tape=None):
        """Computes the gradients of `loss` (a zero-argument callable, or a scalar tensor with a graph)
        with respect to `var_list` and applies them. Returns `iterations`."""
        if callable(var_list):
            var_list = var_list()
        var_list = list(var_list)
        with torch.enable_grad():
            value = loss() if callable(loss) else loss
        grads = torch.autograd.grad(value, var_list, grad_outputs=grad_loss, allow_unused=True)
        return self.apply_gradients(zip(grads, var_list))

    # ---------------------------------------------------------- weights and state

    @property
    def weights(self):
        """tf.keras 2's order: the iteration count, then the slots in creation order."""
        self._follow_moved_variables()
        out = _WeightList([self._state_view(self._iterations, "iter")])
        for var, slot_name in self._v2_slots:
            while (newer := replacement_of(var)) is not None:  # (`load_state_dict(assign=True)` replaced it)
                var = newer
            out.append(self._state_view(self.state[var][slot_name], f"{_slot_prefix(var)}/{slot_name}"))
        return out

    @property
    def variables(self):
        return self.weights

    def save_own_variables(self, store) -> None:
        for i, v in enumerate(self.weights):
            store[str(i)] = v.detach().cpu().numpy()

    @torch.no_grad()
    def load_own_variables(self, store) -> None:
        import warnings

        weights = self.weights
        if len(store.keys()) != len(weights):
            warnings.warn(
                f"Skipping variable loading for optimizer '{self.name}', because it has {len(weights)} variables "
                f"whereas the saved optimizer has {len(store.keys())} variables.",
                stacklevel=2,
            )
            return
        for i, w in enumerate(weights):
            w.copy_(torch.as_tensor(np.asarray(store[str(i)])).to(device=w.device, dtype=w.dtype))

    def get_config(self):
        config = {"name": self._name}
        for key in ("clipnorm", "clipvalue", "global_clipnorm"):
            if getattr(self, key) is not None:
                config[key] = getattr(self, key)
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        config.pop("is_legacy_optimizer", None)
        if "lr" in config:
            config["learning_rate"] = config.pop("lr")
        if isinstance(config.get("learning_rate"), dict):
            from kerasish.saving.serialization_lib import deserialize_keras_object

            config["learning_rate"] = deserialize_keras_object(
                config["learning_rate"], module_objects=lr_schedules._SCHEDULES, custom_objects=custom_objects
            )
        return cls(**config)


Optimizer._keras_module = "keras.optimizers.legacy"


def _slot_prefix(var) -> str:
    path = getattr(var, "path", None)
    return path if isinstance(path, str) else _reference_name(var, 0)
