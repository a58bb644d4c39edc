"""`keras.optimizers.OptimizerMap` and `MultiOptimizer`: different optimizers for different variables."""

from __future__ import annotations

import re
import warnings
from collections.abc import MutableMapping

import numpy as np
import torch

from kerasish.optimizers.loss_scale_optimizer import LossScaleOptimizer
from kerasish.optimizers.optimizer import Optimizer, _mark_stepped

_MULTI_KEY = "multi_optimizer"  # the param-group key holding a MultiOptimizer's own Keras state


def _variable_path(variable) -> str:
    """A Keras variable's `path`; a plain torch parameter's `name`, or ""."""
    path = getattr(variable, "path", None) or getattr(variable, "name", None)
    return path if isinstance(path, str) else ""


class OptimizerMap(MutableMapping):
    """Maps variable paths (exact, else `re.fullmatch` patterns) to optimizers.

    `optimizer_map[path]` returns the optimizer of the exact key, else of the
    one pattern that fully matches `path` (two matching patterns raise a
    `ValueError`), else `default_optimizer`. Paths are full variable paths
    such as `"sequential/dense/kernel"`: to catch every variable of a layer
    use a pattern such as `".*dense/.*"`.

    Args:
        default_optimizer: Optimizer for the variables no key matches.
        optimizer_map: Optional dict `{path or pattern: optimizer}`.
    """

    def __init__(self, default_optimizer, optimizer_map=None):
        if not isinstance(default_optimizer, Optimizer):
            raise TypeError(f"default_optimizer must be a Keras Optimizer instance. Received: {default_optimizer}")
        if optimizer_map is not None and not isinstance(optimizer_map, dict):
            raise TypeError(f"optimizer_map must be a dictionary. Received: {optimizer_map}")
        self._default_optimizer = default_optimizer
        self._optimizer_map = {}
        for key, opt in (optimizer_map or {}).items():
            self[key] = opt

    @property
    def default_optimizer(self):
        return self._default_optimizer

    def __getitem__(self, key):
        if key in self._optimizer_map:
            return self._optimizer_map[key]
        matching = [pattern for pattern in self._optimizer_map if re.fullmatch(pattern, key)]
        if len(matching) > 1:
            raise ValueError(f"Multiple optimizers assigned to variable {key}: patterns {matching} all match.")
        if matching:
            return self._optimizer_map[matching[0]]
        return self._default_optimizer

    def __setitem__(self, key, optimizer):
        if key in self._optimizer_map:
            raise ValueError(
                f"'{key}' already exists in the OptimizerMap with value {self._optimizer_map[key]}. "
                "Please make sure to not use duplicated keys."
            )
        if not isinstance(key, str):
            raise ValueError(f"key must be a string. Received: {key}")
        if not isinstance(optimizer, Optimizer):
            raise ValueError(f"optimizer must be a Keras Optimizer instance. Received: {optimizer}")
        if isinstance(optimizer, LossScaleOptimizer):
            raise ValueError("optimizer cannot be LossScaleOptimizer.")
        if isinstance(optimizer, MultiOptimizer):
            raise ValueError("optimizer cannot be MultiOptimizer.")
        self._optimizer_map[key] = optimizer

    def __delitem__(self, key):
        del self._optimizer_map[key]

    def __len__(self):
        return len(self._optimizer_map)

    def __iter__(self):
        return iter(self._optimizer_map)

    def __call__(self, variable):
        return self[_variable_path(variable)]

    def get_config(self) -> dict:
        from kerasish.saving.serialization_lib import serialize_keras_object

        return {
            "default_optimizer": serialize_keras_object(self._default_optimizer),
            "optimizer_map": serialize_keras_object(self._optimizer_map),
        }

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None):
        from kerasish import optimizers

        default = optimizers.deserialize(config["default_optimizer"], custom_objects=custom_objects)
        mapping = {k: optimizers.deserialize(v, custom_objects=custom_objects)
                   for k, v in (config.get("optimizer_map") or {}).items()}
        return cls(default, mapping)


class MultiOptimizer(Optimizer):
    """Delegates each variable to the optimizer an `OptimizerMap` (or a
    callable `fn(variable) -> Optimizer`) picks for it.

    `iterations` counts this optimizer's applies; each inner optimizer keeps
    its own `iterations`, learning rate and slots (reach them through
    `.optimizers`). `learning_rate` is not defined on a MultiOptimizer
    (reading or setting it raises `AttributeError`, as in Keras). As a torch
    optimizer, `param_groups` lists the inner optimizers' groups, so
    `zero_grad()` and `step()` cover every variable.

    Args:
        optimizer_map: An `OptimizerMap` or a callable returning an optimizer per variable.
        loss_scale_factor: Set on every inner optimizer (overrides theirs).
        name: Optimizer name. Defaults to "multi_optimizer".
    """

    def __init__(self, optimizer_map, loss_scale_factor=None, name=None):
        if not callable(optimizer_map):
            raise TypeError(
                "Argument `optimizer_map` of MultiOptimizer must be an OptimizerMap or a callable returning an "
                f"optimizer for a variable. Received: optimizer_map={optimizer_map!r}"
            )
        self._inner_optimizers = []
        super().__init__(learning_rate=0.0, loss_scale_factor=loss_scale_factor, name=name)
        self._optimizer_map = optimizer_map
        candidates = list(optimizer_map.values()) if hasattr(optimizer_map, "values") else []
        default = getattr(optimizer_map, "default_optimizer", None)
        if default is not None:
            candidates.append(default)
        for opt in candidates:
            if not any(opt is o for o in self._inner_optimizers):
                opt.loss_scale_factor = loss_scale_factor
                self._inner_optimizers.append(opt)
        self._var_to_optimizer_idx: dict[int, int] = {}
        # A MultiOptimizer has no learning rate of its own: its groups are its inner optimizers' groups, from
        # the start. Before the build these are the inner optimizers' pending learning-rate groups (see
        # Optimizer.__init__), so an LR scheduler made now records each inner rate and drives it; each inner
        # build keeps what the scheduler wrote. (With no group at all, torch's LambdaLR failed at `step()` with
        # a zip error and base_lrs-driven schedulers such as timm's silently never changed any rate.)
        self.param_groups = self._inner_groups()
        self._expose_shared_hparam()

    def _expose_shared_hparam(self) -> None:
        """When every inner optimizer exposes the same "betas" / "momentum" (see `Optimizer._group_hparam`),
        so does this one's `defaults`: torch's momentum-cycling schedulers (OneCycleLR, CyclicLR) look there,
        then write every group, and each inner optimizer reads its own groups. Mixed kinds (Adam and SGD)
        expose nothing: torch's schedulers take one of the two for all groups."""
        self.defaults.pop("betas", None)
        self.defaults.pop("momentum", None)
        inner = self._inner_optimizers
        keys = {opt._group_hparam for opt in inner}
        if inner and len(keys) == 1 and None not in keys and all(
                opt.__dict__.get("_hparam_written") is not None for opt in inner):
            (key,) = keys
            self.defaults[key] = inner[0].defaults[key]

    # --------------------------------------------------------- properties

    @property
    def optimizers(self) -> list:
        return self._inner_optimizers

    @property
    def learning_rate(self):
        raise AttributeError(
            "Learning rate cannot be accessed on a MultiOptimizer. "
            "Access the learning rate on the individual sub-optimizers instead."
        )

    @learning_rate.setter
    def learning_rate(self, value):
        raise AttributeError(
            "Learning rate cannot be set on a MultiOptimizer. "
            "Set the learning rate on the individual sub-optimizers instead."
        )

    def _current_lr(self, group=None) -> float:
        return 0.0

    @property
    def loss_scale_factor(self):
        return self.__dict__.get("_loss_scale_factor")

    @loss_scale_factor.setter
    def loss_scale_factor(self, value):
        self.__dict__["_loss_scale_factor"] = value
        for opt in self.__dict__.get("_inner_optimizers", ()):
            opt.loss_scale_factor = value

    @property
    def variables(self) -> list:
        """Its own iteration and (unused) learning rate, then each inner optimizer's variables, as Keras."""
        out = [self._state_view(self._iterations, "iteration"),
               self._state_view(torch.zeros((), dtype=torch.float32), "learning_rate")]
        for opt in self._inner_optimizers:
            out += opt.variables
        return out

    @property
    def _trainable_variables(self) -> list:
        # the order `build` was given (Keras's): `apply(grads)` pairs the gradients with it; the param
        # groups are grouped by inner optimizer, another order when the map's optimizers come first
        order = self.__dict__.get("_build_order")
        if order is not None:
            return list(order)
        return [p for g in self.param_groups for p in g["params"]]

    def _inner_groups(self) -> list:
        """The inner optimizers' param groups in order: a built optimizer's groups, an unbuilt one's pending
        learning-rate group (kept after the build for an optimizer that got no variables, so that a scheduler
        made before the build still lines up group for group)."""
        return [g for opt in self._inner_optimizers for g in opt.param_groups]

    def _pending_group(self):
        """None: the parameterless groups listed before the build are the inner optimizers' own pending groups,
        which their builds fill; none of them is this optimizer's to take."""
        return None

    # --------------------------------------------------------------- build

    def build(self, var_list):
        """Assigns each variable its optimizer and builds those. Returns `self`."""
        if self.built:
            return self
        var_list = list(var_list)
        per_optimizer = [[] for _ in self._inner_optimizers]
        for var in var_list:
            opt = self._optimizer_map(var)
            if not isinstance(opt, Optimizer):
                raise ValueError(
                    f"Optimizer for variable {_variable_path(var) or tuple(var.shape)} is not an Optimizer instance. "
                    f"Received: {opt!r}"
                )
            if isinstance(opt, LossScaleOptimizer):
                raise ValueError("LossScaleOptimizer cannot be used inside an MultiOptimizer.")
            if isinstance(opt, MultiOptimizer):
                raise ValueError("MultiOptimizer cannot be used inside an MultiOptimizer.")
            idx = next((i for i, o in enumerate(self._inner_optimizers) if o is opt), None)
            if idx is None:
                opt.loss_scale_factor = self.loss_scale_factor
                self._inner_optimizers.append(opt)
                per_optimizer.append([])
                idx = len(self._inner_optimizers) - 1
            self._var_to_optimizer_idx[id(var)] = idx
            per_optimizer[idx].append(var)
        if (getattr(self.__dict__.get("step"), "_wrapped_by_lr_sched", False)
                and len(self._inner_groups()) != len(self.param_groups)):
            # a torch LR scheduler (it wraps `step`) recorded the groups known before the build; the map handed
            # variables to optimizers it did not list (a callable map): their rates would never be scheduled
            raise ValueError(
                f"MultiOptimizer '{self.name}' found optimizers at its build that its optimizer_map did not list "
                "before, but an LR scheduler was attached before the build, when the MultiOptimizer had "
                f"{len(self.param_groups)} param groups: it would not schedule the new optimizers' learning rates. "
                "Build the optimizer first (`optimizer.build(model.trainable_variables)`), then create the "
                "scheduler, or pass an OptimizerMap that lists every optimizer."
            )
        self._build_order = var_list
        for opt, variables in zip(self._inner_optimizers, per_optimizer):
            if variables:
                opt.build(variables)
        self.param_groups = self._inner_groups()
        self._expose_shared_hparam()
        self.built = True
        return self

    # ------------------------------------------------------------- updates

    def apply_gradients(self, grads_and_vars):
        grads, variables = zip(*grads_and_vars)
        self.apply(grads, variables)
        return self._iterations

    @torch.no_grad()
    def apply(self, grads, trainable_variables=None) -> None:
        """Hands each `(gradient, variable)` pair to its variable's optimizer."""
        grads = list(grads)
        if not grads:
            return
        if "_opt_called" not in self.__dict__:
            _mark_stepped(self)
        if trainable_variables is None:
            if not self.built:
                raise ValueError(
                    "When passing `grads` without `variables`, the optimizer must already be built on a list of "
                    "variables. Call `optimizer.build(trainable_variables)` first."
                )
            trainable_variables = self._trainable_variables
        trainable_variables = list(trainable_variables)
        if not self.built:
            self.build(trainable_variables)
        if len(grads) != len(self._var_to_optimizer_idx):
            raise ValueError(
                "Gradients must match trainable variables one-to-one. "
                f"Received {len(grads)} gradients and {len(self._var_to_optimizer_idx)} variables."
            )
        self._dispatch(zip(grads, trainable_variables))

    def _dispatch(self, pairs) -> None:
        per_optimizer = [[] for _ in self._inner_optimizers]
        for grad, var in pairs:
            idx = self._var_to_optimizer_idx.get(id(var))
            if idx is None:
                raise ValueError(
                    f"Unknown variable: {_variable_path(var) or tuple(var.shape)}. This optimizer can only be called "
                    "for the variables it was originally built with."
                )
            per_optimizer[idx].append((grad, var))
        for opt, sub in zip(self._inner_optimizers, per_optimizer):
            if sub:
                opt.apply([g for g, _ in sub], [v for _, v in sub])
        self._iterations += 1

    @torch.no_grad()
    def step(self, closure=None):
        """torch-style step: each bound parameter's `.grad` goes to its optimizer."""
        self._check_built_for_step()
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        pairs = [(p.grad, p) for g in self.param_groups for p in g["params"] if p.grad is not None and p.requires_grad]
        if pairs:
            self._dispatch(pairs)
        return loss

    def finalize_variable_values(self, var_list=None) -> None:
        var_list = self._trainable_variables if var_list is None else list(var_list)
        per_optimizer = [[] for _ in self._inner_optimizers]
        for var in var_list:
            per_optimizer[self._var_to_optimizer_idx[id(var)]].append(var)
        for opt, variables in zip(self._inner_optimizers, per_optimizer):
            if variables:
                opt.finalize_variable_values(variables)

    # --------------------------------------------------- state and configs

    @property
    def state(self) -> dict:
        """torch's `optimizer.state`: the inner optimizers' per-variable states, keyed by variable (a new
        dict each read; the per-variable dicts are the inner optimizers' own). torch tools read it to see
        whether the optimizer has state: `torch.distributed.checkpoint`'s `get_state_dict` otherwise takes a
        zero-learning-rate step to create it, which counted an update."""
        merged = {}
        for opt in self.__dict__.get("_inner_optimizers", ()):
            merged.update(opt.state)
        return merged

    @state.setter
    def state(self, value) -> None:
        pass  # (torch's and Optimizer's constructors set an empty table of their own: the inner ones hold it)

    def state_dict(self) -> dict:
        """A torch-layout state dict over every inner optimizer: `state` and `param_groups` numbered across
        the inner optimizers in `param_groups` order (each inner optimizer's Keras state, such as its
        iterations, in its first group as its own `state_dict()` puts it), and this optimizer's iterations
        with the number of groups of each inner optimizer under `"keras"`, also kept in the first group
        (`"multi_optimizer"`): torch's `torch.distributed.checkpoint` helpers keep only `state` and
        `param_groups`."""
        state, groups, offset, counts = {}, [], 0, []
        for opt in self._inner_optimizers:
            sd = opt.state_dict()
            counts.append(len(sd["param_groups"]))
            size = 0
            for group in sd["param_groups"]:
                group = dict(group)
                group["params"] = [offset + i for i in group["params"]]
                size += len(group["params"])
                groups.append(group)
            for i, per_variable in sd["state"].items():
                state[offset + i] = per_variable
            offset += size
        keras_state = {"iterations": int(self._iterations), "group_counts": counts}
        if groups:
            groups[0][_MULTI_KEY] = keras_state
        return {"state": state, "param_groups": groups, "keras": keras_state}

    def load_state_dict(self, state_dict: dict) -> None:
        """Restores `state_dict()`'s output (also the pre-torch-layout `{"optimizers": [...]}` form)."""
        if "optimizers" in state_dict:  # the layout before: one state dict per inner optimizer
            self._load_inner_state_dicts(state_dict["optimizers"], state_dict.get("keras", {}))
            return
        groups = [dict(g) for g in state_dict.get("param_groups", ())]
        in_group = None
        for g in groups:
            in_group = g.pop(_MULTI_KEY, None) or in_group
        keras_state = dict(state_dict.get("keras") or in_group or {})
        counts = keras_state.get("group_counts") or [len(opt.param_groups) for opt in self._inner_optimizers]
        if len(counts) != len(self._inner_optimizers) or sum(counts) != len(groups):
            raise ValueError(
                f"MultiOptimizer '{self.name}' has {len(self._inner_optimizers)} optimizers with "
                f"{[len(opt.param_groups) for opt in self._inner_optimizers]} param groups; the state dict holds "
                f"{len(groups)} param groups (per optimizer: {counts})."
            )
        saved_state = state_dict.get("state", {})
        inner, start = [], 0
        for n in counts:
            own = groups[start:start + n]
            start += n
            ids = [i for g in own for i in g["params"]]
            local = {old: new for new, old in enumerate(ids)}
            inner.append({
                "state": {local[i]: s for i, s in saved_state.items() if i in local},
                "param_groups": [{**g, "params": [local[i] for i in g["params"]]} for g in own],
            })
        self._load_inner_state_dicts(inner, keras_state)

    def _load_inner_state_dicts(self, states, keras_state) -> None:
        if len(states) != len(self._inner_optimizers):
            raise ValueError(
                f"MultiOptimizer '{self.name}' has {len(self._inner_optimizers)} optimizers, the state dict "
                f"holds {len(states)}."
            )
        for opt, sd in zip(self._inner_optimizers, states):
            if opt.built or sd.get("state"):
                opt.load_state_dict(sd)
        self._iterations.fill_(int(keras_state.get("iterations", 0)))
        # torch's load_state_dict replaces each inner `param_groups` list: list the new groups
        self.param_groups = self._inner_groups()

    @torch.no_grad()
    def load_own_variables(self, store) -> None:
        counts = [len(opt.variables) for opt in self._inner_optimizers]
        if len(store.keys()) != 2 + sum(counts):
            warnings.warn(
                f"Skipping variable loading for optimizer '{self.name}', because it has {2 + sum(counts)} variables "
                f"whereas the saved optimizer has {len(store.keys())} variables.",
                stacklevel=2,
            )
            return
        self._iterations.fill_(int(np.asarray(store["0"])))
        offset = 2
        for opt, n in zip(self._inner_optimizers, counts):
            opt.load_own_variables({str(i): store[str(offset + i)] for i in range(n)})
            offset += n

    def get_config(self) -> dict:
        from kerasish.saving.serialization_lib import serialize_keras_object

        return {
            "optimizer_map": serialize_keras_object(self._optimizer_map),
            "loss_scale_factor": self.loss_scale_factor,
            "name": self.name,
        }

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None):
        from kerasish import optimizers

        config = dict(config)
        if isinstance(config.get("optimizer_map"), (dict, str)):
            config["optimizer_map"] = optimizers.deserialize(config["optimizer_map"], custom_objects=custom_objects)
        return cls(**config)

    def __repr__(self) -> str:
        return f"<MultiOptimizer name={self.name!r} optimizers={[o.name for o in self._inner_optimizers]}>"
