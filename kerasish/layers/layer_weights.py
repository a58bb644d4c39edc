"""The weight half of `Layer`: `add_weight`, variable tracking, the Keras
weight lists, `trainable`, `get_weights`/`set_weights`, `count_params`, and
loading a `state_dict` into a layer that has not been built yet."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from kerasish.backend import dtypes
from kerasish.layers import call_context as ctx
from kerasish.layers.lazy_weights import check_unbuilt_copy
from kerasish.layers.lazy_weights import is_lazy
from kerasish.layers.lazy_weights import materialize
from kerasish.layers.lazy_weights import save_without_placeholders
from kerasish.layers.tracking import keras_child_order
from kerasish.layers.tracking import split_holders
from kerasish.layers.tracking import structure_changed
from kerasish.layers.tracking import own_weights
from kerasish.layers.weight_layout import restore_orders
from kerasish.utils import naming
from kerasish.variables import NonTrainableVariable
from kerasish.variables import TrainableVariable
from kerasish.variables import Variable
from kerasish.variables import VariableSynchronization
from kerasish.variables import check_aggregation
from kerasish.variables import record_replacement
from kerasish.variables import _is_live_variable
from kerasish.variables import forget_autocast_casts
from kerasish.variables import rewrap_like

# Keras 2 `add_weight` kwargs that have no meaning here but are accepted.
_TORCH_REGISTER_PARAMETER = nn.Module.register_parameter


def _intercepted_parameter_device(device, dtype):
    """The device a trainable weight is made on while torch's
    `nn.Module.register_parameter` is replaced by a function that moves
    every parameter registered (Hugging Face accelerate's
    `init_empty_weights()`: to the meta device): asked with an empty
    parameter on a plain module, so that the weight is drawn there and no
    memory is allocated for it. kerasish weights are materialized in place,
    without a `register_parameter` call such a function would see."""
    probe = nn.Module()
    empty = nn.Parameter(torch.empty(0, dtype=dtypes.to_torch_dtype(dtype), device=device or "cpu"))
    try:
        nn.Module.register_parameter(probe, "probe", empty)
        moved = probe._parameters.get("probe")
    except Exception:  # (a replacement that is no device move, and fails on a bare module)
        return device
    if isinstance(moved, torch.Tensor) and moved.device != empty.device:
        return moved.device
    return device


_LEGACY_ADD_WEIGHT_KWARGS = frozenset(
    {"getter", "collections", "experimental_autocast", "caching_device", "partitioner", "use_resource"}
)


def rewrap_buffers(module: nn.Module, old_buffers: dict) -> None:
    """After torch replaced buffers by converted copies, give them back their
    Keras class and metadata."""
    bufs = module._buffers
    for key, buf in bufs.items():
        old = old_buffers.get(key)
        if buf is not old and isinstance(old, Variable) and not _is_live_variable(buf):
            bufs[key] = rewrap_like(buf, old)


def rewrap_parameters(module: nn.Module, old_params: dict) -> None:
    """After torch replaced parameters by new `nn.Parameter`s (a move it
    cannot make in place: off the meta device, `to_empty`), give them back
    their Keras class and metadata (`path`, `assign`, initializer...)."""
    params = module._parameters
    for key, param in params.items():
        old = old_params.get(key)
        if param is not old and isinstance(old, Variable) and param is not None and not _is_live_variable(param):
            params[key] = rewrap_like(param, old)


def _replace_key(registry: dict, old_key: str, new_key: str) -> None:
    """Renames `old_key` to `new_key` in place, keeping its position."""
    items = list(registry.items())
    registry.clear()
    for key, value in items:
        registry[new_key if key == old_key else key] = value


def deleted_by_parametrization(frame) -> bool:
    """Whether the `delattr` being run was called by `torch.nn.utils.parametrize.register_parametrization`
    or by the older hook-based `torch.nn.utils.spectral_norm` (`SpectralNorm.apply`)."""
    code = frame.f_code if frame is not None else None
    if code is None:
        return False
    return (code.co_name == "register_parametrization" and code.co_filename.endswith("parametrize.py")) or (
        code.co_name == "apply" and code.co_filename.endswith("spectral_norm.py"))


def vacated_by_old_weight_norm(layer, frame) -> None:
    """The older hook-based `torch.nn.utils.weight_norm` (`WeightNorm.apply`, the caller's `frame`) takes
    the weight `name` out of `_parameters` directly, with no `delattr`, before registering `<name>_g`:
    remember the weight (its Keras identity) and where it was, so that `remove_weight_norm` puts it back
    in Keras's weight order (what `get_weights` and the saved files follow). Where it was is known when
    it was the layer's anchor (its first floating weight: a Dense / Conv kernel, an Embedding's
    matrix); otherwise it comes back last, as before."""
    name, weight = frame.f_locals.get("name"), frame.f_locals.get("weight")
    d = layer.__dict__
    vacated = d.setdefault("_vacated_weights", {})
    if not isinstance(weight, Variable) or not isinstance(name, str) or name in vacated:
        return
    params = d["_parameters"]
    anchor = d.get("_weight_anchor")
    first = anchor is not None and anchor[0] is params and anchor[2] is weight
    vacated[name] = (weight, [name, *params] if first else [*params, name])


def restore_vacated_weight(layer, registry: dict, name: str) -> None:
    """A weight taken away by a torch parametrization (`register_parametrization` deletes it) comes back
    under its name (`remove_parametrizations` registers a plain tensor holding the current value): give
    it back its place in Keras's weight order (what `get_weights` and the saved files follow) and its
    Keras variable identity (`path`, `assign`, regularizer, constraint)."""
    old, keys = layer.__dict__["_vacated_weights"].pop(name)
    value = registry[name]
    if value is not None and not isinstance(value, Variable) and value.shape == old.shape:
        registry[name] = rewrap_like(value, old)
    if name in keys:
        items = dict(registry)
        position = {k: i for i, k in enumerate(keys)}
        registry.clear()
        order = sorted(items, key=lambda k: (position.get(k, len(keys)), 0))
        for k in order:
            registry[k] = items[k]


def take_place_of(layer, registry: dict, new_key: str, old_key: str) -> None:
    """`registry[new_key]` (just registered, last) moves to the position of `old_key`, the same weight's
    earlier name; `old_key` is remembered as vacated, so the weight coming back under it (`prune.remove`)
    returns to that position (see `restore_vacated_weight`)."""
    keys = list(registry)
    layer.__dict__.setdefault("_vacated_weights", {})[old_key] = (registry[new_key], keys[:-1])
    items = dict(registry)
    registry.clear()
    for k in keys[:-1]:
        registry[k] = items[k]
        if k == old_key:
            registry[new_key] = items[new_key]


class LayerWeightsMixin:
    """Weight creation and bookkeeping for `Layer` (see module docstring)."""

    # ------------------------------------------------------------ creation
    def add_variable(self, shape, initializer, dtype=None, trainable=True, autocast=True, regularizer=None,
                     constraint=None, name=None):
        """Keras 3's alias of `add_weight` (its positional order: `shape`, `initializer`, `dtype`, ...)."""
        return self.add_weight(shape=shape, initializer=initializer, dtype=dtype, trainable=trainable,
                               autocast=autocast, regularizer=regularizer, constraint=constraint, name=name)

    def add_weight(
        self,
        *args,
        shape=None,
        initializer=None,
        dtype=None,
        trainable=None,
        autocast=True,
        regularizer=None,
        constraint=None,
        aggregation=None,
        synchronization=None,
        overwrite_with_gradient=False,
        name=None,
        **kwargs,
    ):
        """Adds a new weight to the layer and returns it.

        Accepts Keras 3's signature `add_weight(shape, initializer, dtype, ...)`
        and Keras 2's `add_weight(name, shape, dtype, initializer, regularizer,
        trainable, constraint, ...)`; the first positional argument decides
        (a string is a name).

        Args:
            shape: Shape tuple. Defaults to a scalar.
            initializer: Initializer instance, name or callable. Defaults to
                "glorot_uniform" for floats and "zeros" for ints/bools.
            dtype: Defaults to the layer's variable dtype.
            trainable: Defaults to True. Trainable weights are `nn.Parameter`s,
                non-trainable ones registered buffers.
            regularizer: Added to `layer.losses` (trainable weights only).
            constraint: Applied by kerasish optimizers after each step. In a
                plain torch loop call `layer.apply_constraints()` after
                `optimizer.step()`.
            name: The weight's name and state_dict key (unless assigned to
                an attribute, whose name then becomes the key).
            aggregation: "none", "mean", "sum" or "only_first_replica",
                read back as `variable.aggregation` (Keras 3). Defaults to
                "none".
            synchronization: "auto", "none", "on_read" or "on_write" (Keras
                2's argument; Keras 3 variables have it too), read back as
                `variable.synchronization`. Defaults to "auto".

        Raises:
            ValueError: no initializer for a dtype that has no default, an
                unknown `aggregation` / `synchronization`, or
                `trainable=True` with `synchronization=ON_READ`.
        """
        if "_keras_init" not in self.__dict__:
            from kerasish.layers.layer import _super_init_error

            raise _super_init_error(type(self))
        if args:
            if isinstance(args[0], str):  # Keras 2 positional order
                names = ["name", "shape", "dtype", "initializer", "regularizer", "trainable", "constraint"]
            else:  # Keras 3 positional order
                names = ["shape", "initializer", "dtype", "trainable", "autocast", "regularizer", "constraint"]
            if len(args) > len(names):
                raise TypeError(f"add_weight() takes at most {len(names)} positional arguments but {len(args)} were given.")
            given = dict(zip(names, args))
            local = {
                "name": name, "shape": shape, "dtype": dtype, "initializer": initializer,
                "regularizer": regularizer, "trainable": trainable, "constraint": constraint, "autocast": autocast,
            }
            for key, value in given.items():
                default = True if key == "autocast" else None
                if local[key] is not default:
                    raise TypeError(f"add_weight() got multiple values for argument '{key}'")
                local[key] = value
            name, shape, dtype, initializer = local["name"], local["shape"], local["dtype"], local["initializer"]
            regularizer, trainable, constraint, autocast = (
                local["regularizer"], local["trainable"], local["constraint"], local["autocast"],
            )
        unknown = set(kwargs) - _LEGACY_ADD_WEIGHT_KWARGS
        if unknown:
            raise TypeError(f"Unknown keyword argument(s) passed to `add_weight`: {sorted(unknown)}")
        shape = () if shape is None else (tuple(shape) if isinstance(shape, (list, tuple, torch.Size)) else (shape,))
        shape = _standardize_weight_shape(shape)
        if any(s is None or s < 0 for s in shape):
            raise ValueError(
                f"Layer '{self.name}': the shape of weight '{name}' must be fully defined with non-negative "
                f"sizes. Received: shape={shape}"
            )
        aggregation, sync = check_aggregation(aggregation, "auto" if synchronization is None else synchronization)
        on_read = sync == VariableSynchronization.ON_READ
        if on_read:
            if trainable:
                raise ValueError(
                    "Synchronization value can be set to VariableSynchronization.ON_READ only for "
                    "non-trainable variables. You have specified trainable=True and "
                    "synchronization=VariableSynchronization.ON_READ."
                )
            trainable = False
        if trainable is None:
            trainable = True
        try:
            dtype = dtypes.standardize_dtype(dtype if dtype is not None else self.variable_dtype)
        except ValueError:
            if initializer is None:
                raise ValueError(
                    f"An initializer for variable {name} of type {dtype} is required for layer "
                    f"{self.name}. Received: {initializer}."
                ) from None
            raise
        if initializer is None:
            if dtypes.is_float_dtype(dtype):
                initializer = "glorot_uniform"
            elif dtype.startswith(("int", "uint")) or dtype == "bool":
                initializer = "zeros"
            else:
                raise ValueError(
                    f"An initializer for variable {name} of type {dtype} is required for layer "
                    f"{self.name}. Received: {initializer}."
                )
        from kerasish import constraints
        from kerasish import initializers
        from kerasish import regularizers

        init = initializers.get(initializer)
        state = ctx.state()
        # a `keras.device` scope wins, as in Keras; else where the inputs were
        device = state.device or state.build_device or self.__dict__.get("_device_hint")
        if device is not None and torch.device(device).type == "meta":
            device = None  # built while shapes are inferred: real weights, never meta ones
        if trainable and nn.Module.register_parameter is not _TORCH_REGISTER_PARAMETER:
            device = _intercepted_parameter_device(device, dtype)
        if device is not None and torch.device(device).type != "cpu":
            # drawn where the weight lives: no large CPU draw and copy per weight on a GPU (nothing
            # allocated on the meta device)
            with torch.device(device):
                value = init(shape, dtype=dtype)
        else:
            value = init(shape, dtype=dtype)
        if not isinstance(value, torch.Tensor):
            value = torch.as_tensor(np.asarray(value))
        value = value.to(dtypes.to_torch_dtype(dtype))
        if device is not None and value.device != device:
            value = value.to(device)
        if not value.is_floating_point() and not value.is_complex():
            trainable = False
        cls = TrainableVariable if trainable else NonTrainableVariable
        if self.__dict__.get("_in_build"):
            var = cls(value, trainable, name=name, autocast=autocast)
        else:
            # made outside build (e.g. in __init__): Keras 3 still scopes the path by the layer ("blk/w");
            # after the build (`enable_lora`), under the scopes it was built in ("sequential/dense/w"),
            # as Keras's `name_scope(caller=layer)` reopens its `_parent_path`
            built_path = self.__dict__.get("_layer_path")
            scope = naming.name_scope(self.name) if built_path is None else naming.NameScope(
                self.name, caller=self, override_parent=built_path.rpartition("/")[0])
            with scope:
                var = cls(value, trainable, name=name, autocast=autocast)
        var.__dict__["_initializer"] = init  # (for `reset_parameters`)
        var.__dict__["regularizer"] = regularizers.get(regularizer)
        var.__dict__["constraint"] = constraints.get(constraint)
        var.overwrite_with_gradient = overwrite_with_gradient
        if aggregation != "none":
            var.__dict__["_aggregation"] = aggregation
        if sync != "auto":
            var.__dict__["_synchronization"] = sync
        if not self._trainable and trainable:
            var.requires_grad_(False)
        base = (name if name is not None else "variable").replace(".", "_").replace("/", "_") or "variable"
        placeholder = self._parameters.get(base)
        if is_lazy(placeholder):
            if isinstance(var, nn.Parameter):
                # in place: an optimizer made before the build holds this object
                var = materialize(placeholder, var)
                key = base
            else:
                self._parameters[base] = None
                del self._parameters[base]
                key = self._unique_weight_key(base)
                self._register_weight(key, var)
        else:
            key = self._unique_weight_key(name if name is not None else "variable")
            self._register_weight(key, var)
        var.__dict__["_auto_key"] = True
        if not autocast:
            self.__dict__["_no_autocast"].add(key)
        return var

    def reset_parameters(self) -> None:
        """torch's re-initialization hook (as `nn.Linear.reset_parameters`):
        draws this layer's own weights again from the initializers they were
        created with (`kernel_initializer`, `moving_variance_initializer`,
        ...), in place, so optimizers keep holding them. Sublayers are left
        alone, as torch modules leave theirs: torch's meta-device recipe
        `model.to_empty(device=...)` then
        `for m in model.modules(): m.reset_parameters()` (FSDP's default
        `param_init_fn` does the same) calls every module. An unbuilt layer
        has nothing to reset.

        Raises:
            ValueError: a weight made from a value rather than an initializer
                (`keras.Variable(np.zeros(3))`): nothing to draw it from.
        """
        for registry in (self._parameters, self._buffers):
            for key, weight in registry.items():
                if not isinstance(weight, Variable):
                    continue  # (a placeholder, a constant buffer, a plain torch parameter)
                init = weight.__dict__.get("_initializer")
                if init is None:
                    raise ValueError(
                        f"Layer '{self.name}' cannot reset its weight '{weight.path}': it was made from a value, "
                        "not an initializer (or its initializer, a lambda, did not survive pickling). Assign it "
                        "yourself after `reset_parameters()` of the other layers."
                    )
                dtype = dtypes.standardize_dtype(weight.dtype)
                with torch.no_grad(), torch.device(weight.device):
                    value = init(tuple(weight.shape), dtype=dtype)
                    if not isinstance(value, torch.Tensor):
                        value = torch.as_tensor(np.asarray(value))
                    weight.copy_(value.to(device=weight.device, dtype=weight.dtype))
        if self._parameters:
            forget_autocast_casts()

    def _unique_weight_key(self, base: str) -> str:
        base = base.replace(".", "_").replace("/", "_") or "variable"
        taken = set(self._parameters) | set(self._buffers) | set(self._modules) | set(self.__dict__)
        key, i = base, 1
        while key in taken or (hasattr(type(self), key)):
            key = f"{base}_{i}"
            i += 1
        return key

    def _register_weight(self, key: str, var: torch.Tensor) -> None:
        if isinstance(var, nn.Parameter):
            self.register_parameter(key, var)
        else:
            self.register_buffer(key, var)

    def _track_variable_attr(self, name: str, value: torch.Tensor) -> bool:
        """Handles `self.<name> = <Variable or Parameter>`. Returns True when
        the assignment has been fully handled here."""
        if not isinstance(value, Variable):
            if type(value) is nn.Parameter:
                self._adopt_parameter(name, value)
            return False
        d = self.__dict__
        params, bufs = d["_parameters"], d["_buffers"]
        # a placeholder set in __init__ (`self.gamma = None`) would shadow the weight
        d.pop(name, None)
        registry, key = None, None
        for reg in (params, bufs):
            for k, v in reg.items():
                if v is value:
                    registry, key = reg, k
                    break
            if key is not None:
                break
        if key == name:
            return True
        if key is not None and value.__dict__.get("_auto_key"):
            # created by add_weight under its name; the attribute names it
            for reg in (params, bufs, d["_modules"]):
                if name in reg and reg is not registry:
                    del reg[name]
            if name in registry:
                del registry[name]
            _replace_key(registry, key, name)
            value.__dict__["_auto_key"] = False
            no_cast = d["_no_autocast"]
            if key in no_cast:
                no_cast.discard(key)
                no_cast.add(name)
            return True
        if key is not None:
            # second attribute for an already-registered weight: an alias
            object.__setattr__(self, name, value)
            return True
        if not self._trainable and value.requires_grad:
            value.requires_grad_(False)
        same = params if isinstance(value, nn.Parameter) else bufs
        if isinstance(same.get(name), Variable):
            # another weight in place of one of ours (`dec.kernel = enc.kernel`, weight tying): it takes the
            # replaced weight's place, so `get_weights()` and saved files keep Keras's order (re-registering
            # moved it last: a tied LayerNormalization `gamma` then swapped places with `beta` in files)
            same[name] = value
            return True
        for reg in (params, bufs, d["_modules"]):
            reg.pop(name, None)
        d.pop(name, None)
        self._register_weight(name, value)
        return True

    def _adopt_parameter(self, name: str, value: nn.Parameter) -> None:
        """`layer.kernel = nn.Parameter(t)` (torch's way to swap or tie a weight: nanoGPT's
        `lm_head.weight = wte.weight`, a cropped embedding): a plain Parameter put in place of one of
        the layer's Keras weights becomes that weight, in place (its identity is what ties it to other
        modules): it takes the Keras class and the replaced weight's name, path, regularizer and
        constraint (a plain Parameter lacked `path`/`assign` and silently dropped the layer's
        regularizer), and kerasish optimizers bound to the replaced weight follow, as after
        `load_state_dict(assign=True)`. nn.Module then registers it in the replaced weight's place."""
        old = self.__dict__["_parameters"].get(name)
        if old is value:
            return
        if not isinstance(old, TrainableVariable):
            self._parameter_as_keras_weight(name, value)
            return
        value.__class__ = type(old)
        value.__dict__.update(old._keras_meta())
        if not self._trainable and value.requires_grad:
            value.requires_grad_(False)
        record_replacement(old, value)

    def _parameter_as_keras_weight(self, name: str, value: nn.Parameter) -> None:
        """A plain `nn.Parameter` set on the layer as a new weight (`self.alpha = nn.Parameter(t)` in
        `build` or `__init__`, `register_parameter("alpha", p)`) becomes a Keras weight in place, named
        after its attribute with the path `add_weight(name="alpha")` would give it ("scale/alpha"):
        before, it had no `name`/`path`/`assign`, so `get_state_tree` raised AttributeError and
        optimizer slots were named "param_<i>_momentum" instead of Keras's "scale_alpha_momentum"."""
        if type(value) is not nn.Parameter or name in self.__dict__.get("_vacated_weights", ()):
            return  # (a DTensor parameter is not a plain Parameter; a vacated weight gets its own identity back)
        built_path = self.__dict__.get("_layer_path")
        if self.__dict__.get("_in_build"):
            path = naming.current_path(name)
        else:
            scope = naming.name_scope(self.name) if built_path is None else naming.NameScope(
                self.name, caller=self, override_parent=built_path.rpartition("/")[0])
            with scope:
                path = naming.current_path(name)
        value.__class__ = TrainableVariable
        value.__dict__.update(_kname=name, _kpath=path, regularizer=None, constraint=None, _auto_key=False,
                              _autocast=True)
        if not self._trainable and value.requires_grad:
            value.requires_grad_(False)

    # --------------------------------------------------------- weight lists
    @property
    def trainable(self) -> bool:
        return self.__dict__["_trainable"]

    @trainable.setter
    def trainable(self, value: bool) -> None:
        """Freezing a layer freezes its sublayers: `requires_grad` goes off on
        every weight and they move to `non_trainable_weights`."""
        value = bool(value)
        if self.__dict__.get("_trainable", value) != value:
            structure_changed()  # the trainer's cached weight lists are out of date (as Keras: recompile)
        for layer in self._flatten_layers(include_self=True):
            layer.__dict__["_trainable"] = value
            for holder in split_holders(layer)[0]:  # (variables in its containers too)
                for p in holder._parameters.values():
                    if p is not None and (p.is_floating_point() or p.is_complex()):
                        if is_lazy(p):
                            p.requires_grad = value
                        else:
                            p.requires_grad_(value)

    def _weights_of(self, module) -> list:
        """Keras order: the module's own variables (with those it holds in
        container attributes), trainable ones first, then each sublayer's."""
        from kerasish.layers.layer import Layer

        holders, children = split_holders(module)
        if len(holders) == 1:
            out = own_weights(module)
        else:
            out = [p for h in holders for p in h._parameters.values() if p is not None and not is_lazy(p)]
            out.extend(
                b for h in holders for k, b in h._buffers.items()
                if b is not None and k not in h._non_persistent_buffers_set
            )
        # (only a layer holding list/dict attributes can interleave; others keep registration order)
        for child in keras_child_order(children) if module.__dict__.get("_container_attrs") else children:
            if getattr(child, "_is_metric", False) or getattr(child, "_is_seed_generator", False):  # not Keras weights
                continue
            out.extend(child.weights if isinstance(child, Layer) else self._weights_of(child))
        return out

    @property
    def weights(self) -> list:
        """All weights: own trainable, own non-trainable, then each sublayer's
        (Keras 3 order), each once."""
        seen, out = set(), []
        for w in self._weights_of(self):
            if id(w) not in seen:
                seen.add(id(w))
                out.append(w)
        return out

    @property
    def trainable_weights(self) -> list:
        if not self.trainable:
            return []
        return [w for w in self.weights if w.requires_grad]

    @property
    def non_trainable_weights(self) -> list:
        if not self.trainable:
            return self.weights
        return [w for w in self.weights if not w.requires_grad]

    @property
    def variables(self) -> list:
        """`weights` plus each SeedGenerator's state (Keras 3 lists a noise
        layer's `seed_generator_state` in `variables`, not in `weights`),
        placed after the weights of the layer holding it."""
        weights = self.weights
        seeds = _seed_states(self)
        if not seeds:
            return weights
        owner_index = {}
        for i, module in enumerate(self.modules()):
            for t in (*module._parameters.values(), *module._buffers.values()):
                if t is not None:
                    owner_index.setdefault(id(t), i)
        out, pending = [], list(seeds)
        for w in weights:
            index = owner_index.get(id(w), -1)
            while pending and pending[0][0] < index:
                out.append(pending.pop(0)[1])
            out.append(w)
        out.extend(state for _, state in pending)
        return out

    @property
    def trainable_variables(self) -> list:
        return self.trainable_weights

    @property
    def non_trainable_variables(self) -> list:
        if not self.trainable:
            return self.variables
        return [v for v in self.variables if not v.requires_grad]

    def count_params(self) -> int:
        """Total number of scalars in the weights. ValueError if unbuilt."""
        if not self.built:
            raise ValueError(
                f"You tried to call `count_params` on layer '{self.name}', but the layer isn't built. "
                "You can build it manually via: `layer.build(input_shape)`."
            )
        return int(sum(int(np.prod(w.shape)) for w in self.weights))

    def get_weights(self) -> list:
        """The weights as NumPy arrays (copies, as in Keras), in `weights` order."""
        return [dtypes.tensor_to_numpy(_full(w)).copy() for w in self.weights]

    def set_weights(self, weights) -> None:
        """Sets the weights from NumPy arrays (same order and shapes as
        `get_weights()`). ValueError listing both when they do not match."""
        own = self.weights
        if weights is None or isinstance(weights, (str, bytes, dict)) or not hasattr(weights, "__iter__"):
            raise TypeError(
                f"Layer '{self.name}': `set_weights` expects a list of arrays (as returned by `get_weights()`). "
                f"Received: weights={weights!r} (of type {type(weights).__name__})"
            )
        weights = list(weights)
        if len(own) != len(weights):
            raise ValueError(
                f"You called `set_weights(weights)` on layer '{self.name}' with a weight list of "
                f"length {len(weights)}, but the layer was expecting {len(own)} weights. "
                f"Expected shapes: {[tuple(w.shape) for w in own]}; received shapes: "
                f"{[tuple(np.shape(w)) for w in weights]}"
            )
        for target, value in zip(own, weights):
            _check_weight_value(self.name, target, value)
            value_shape = tuple(np.shape(value))
            if tuple(target.shape) != value_shape:
                name = getattr(target, "path", "weight")
                raise ValueError(
                    f"Layer '{self.name}' weight shape {tuple(target.shape)} is not compatible with "
                    f"provided weight shape {value_shape} (weight {name})."
                )
        with torch.no_grad():
            for target, value in zip(own, weights):
                if dtypes.is_bfloat16_array(value):
                    value = dtypes.bfloat16_array_to_tensor(value)
                elif not isinstance(value, torch.Tensor):
                    value = np.asarray(value)
                    if _is_ml_dtypes_float(value.dtype):  # NumPy has no such float: via float32, exactly
                        value = value.astype(np.float32)
                    value = torch.as_tensor(value)
                value = value.to(device=target.device, dtype=target.dtype)
                if _is_dtensor(target):  # a sharded weight (FSDP2 / DTensor): each rank keeps its shard
                    from torch.distributed.tensor import distribute_tensor

                    value = distribute_tensor(value, target.device_mesh, target.placements)
                target.copy_(value)
        forget_autocast_casts()

    def save_own_variables(self, store) -> None:
        """Keras 3's saving hook: writes this layer's own variables (not its
        sublayers') as `store["0"]`, `store["1"]`, ... in Keras's file order.
        A subclass may override it, call `super().save_own_variables(store)`
        and add its own entries, as in Keras."""
        from kerasish.saving import h5_weights

        for i, value in enumerate(h5_weights._values_to_save(self)):
            store[str(i)] = value

    def load_own_variables(self, store) -> None:
        """Inverse of `save_own_variables`: assigns `store["0"]`, ... to this
        layer's own variables; ValueError (as Keras) when the count or a
        shape does not match."""
        from kerasish.saving import h5_weights

        targets = h5_weights._variables_to_load(self)
        count = len(list(store.keys()))
        if count != len(targets):
            if not targets and not self.built:
                raise ValueError(
                    f"Layer '{self.name}' was never built and thus it doesn't have any variables. However the "
                    f"weights file lists {count} variables for this layer. In most cases, this error indicates "
                    "that either: 1. The layer is owned by a parent layer that implements a `build()` method, "
                    "but calling the parent's `build()` method did NOT create the state of the child layer. "
                    "2. You need to implement the `def build_from_config(self, config)` method on the layer."
                )
            raise ValueError(
                f"Layer '{self.name}' expected {len(targets)} variables, but received {count} variables during "
                f"loading. Expected: {[getattr(v, 'name', '?') for v in targets]}"
            )
        values = []
        for i, target in enumerate(targets):
            value = store[str(i)]
            value = dtypes.bfloat16_array_to_tensor(value) if dtypes.is_bfloat16_array(value) else (
                value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value)))
            if tuple(value.shape) != tuple(target.shape):
                raise ValueError(
                    f"Layer '{self.name}' weight shape {tuple(target.shape)} is not compatible with the stored "
                    f"shape {tuple(value.shape)} (variable {i})."
                )
            values.append(value)
        with torch.no_grad():
            for target, value in zip(targets, values):
                target.copy_(value.to(device=target.device, dtype=target.dtype))
        after = getattr(self, "_after_keras_load", None)
        if after is not None:  # as a weights file's load: e.g. a LoRA layer zeroes its factors, as Keras's
            after()

    def apply_constraints(self) -> None:
        """Applies each weight's `constraint` in place (kerasish optimizers
        do this after every step; call it yourself after a torch optimizer's
        `step()`)."""
        with torch.no_grad():
            for w in self.weights:
                c = w.__dict__.get("constraint") if isinstance(w, Variable) else None
                if c is not None:
                    w.copy_(c(w))
        forget_autocast_casts()

    # ----------------------------------------------- lazy state_dict loading
    def _infer_build_shape(self, weight_shapes: dict):
        """Input shape to build with so that the weights get `weight_shapes`
        (name -> shape). Built-in layers override this; None = unknown."""
        return None

    def _save_to_state_dict(self, destination, prefix, keep_vars):
        if not self.__dict__.get("built"):
            check_unbuilt_copy(self)
        save_without_placeholders(self, super()._save_to_state_dict, destination, prefix, keep_vars)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs):
        if not self.built:
            own = {}
            for key, value in state_dict.items():
                if key.startswith(prefix):
                    rest = key[len(prefix):]
                    head = rest.split(".", 1)[0]
                    # own weights, and those of sublayers that `build` creates
                    # ("query.kernel" of a MultiHeadAttention)
                    sub = self._modules.get(head)
                    if (head not in self._parameters or is_lazy(self._parameters[head])) and (
                        head not in self._buffers
                        and (sub is None or (getattr(sub, "_built_by_owner", False) and not sub.built))
                    ):
                        own[rest] = tuple(value.shape)
            if own:
                shape = self._infer_build_shape(own)
                if shape is not None:
                    self.build(shape)
                elif not all("." in k for k in own):  # (else torch reports unexpected keys)
                    raise ValueError(
                        f"Layer '{self.name}' ({type(self).__name__}) has not been built yet, so it has no "
                        f"weights to load {sorted(own)} into, and their input shape cannot be inferred. "
                        "Call `layer.build(input_shape)` (or call the layer on data) before `load_state_dict`."
                    )
        from kerasish.layers import layer_moves

        old_buffers = dict(self._buffers)
        old_params = dict(self._parameters)
        dtypes_before = layer_moves._float_dtypes(self)
        swapped = layer_moves.swap_snapshot(old_params)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        if swapped:  # (swapped in place: the same objects, which optimizers keep holding)
            layer_moves.restore_swapped(self, old_params, swapped)
        rewrap_buffers(self, old_buffers)

        layer_moves.note_load_device(state_dict)
        if self._non_persistent_buffers_set:
            layer_moves.place_meta_constants(self)
        for key, p in list(self._parameters.items()):
            if p is not None and not _is_live_variable(p):
                # `load_state_dict(assign=True)` puts plain Parameters (or the
                # state_dict's detached views) in place
                old = old_params.get(key)
                old = old if isinstance(old, Variable) else old_buffers.get(key)
                if isinstance(old, Variable):
                    self._parameters[key] = rewrap_like(p, old)
                    if old_params.get(key) is old:
                        record_replacement(old, self._parameters[key])  # optimizers bound to `old` follow
        if "_memory_orders" in self.__dict__:
            restore_orders(self)  # `assign=True` took the file's tensors in the file's layout
        layer_moves.follow_assigned_dtype(self, dtypes_before)


def _is_ml_dtypes_float(dtype) -> bool:
    """A NumPy dtype from ml_dtypes (`bfloat16`, `float8_*`): what Keras 3's
    `get_weights()` returns for a bfloat16 layer. Kind 'V' to NumPy, yet a
    real float that converts to float32 exactly."""
    return dtype.kind == "V" and dtype.names is None and (dtype.name == "bfloat16" or dtype.name.startswith("float8"))


def _check_weight_value(layer_name, target, value) -> None:
    """A value for `set_weights` must be a real numeric array: complex values
    would lose their imaginary part, strings and objects cannot be copied."""
    if isinstance(value, torch.Tensor):
        bad = value.is_complex()
        dtype = value.dtype
    else:
        try:
            dtype = np.asarray(value).dtype
        except (ValueError, TypeError):  # ragged nested lists
            dtype = np.dtype(object)
        bad = dtype.kind in "cSUOV" and not _is_ml_dtypes_float(dtype)
    if bad:
        name = getattr(target, "path", "weight")
        raise TypeError(
            f"Layer '{layer_name}': `set_weights` expects real numeric arrays; weight {name} is "
            f"{target.dtype} of shape {tuple(target.shape)}. Received: an array of dtype {dtype}"
        )

def _is_dtensor(t) -> bool:
    return type(t.data).__name__ == "DTensor" or type(t).__name__ == "DTensor"


def _full(w) -> torch.Tensor:
    """`w` detached, gathered whole when it is a sharded DTensor (FSDP2)."""
    w = w.detach()
    return w.full_tensor() if hasattr(w, "full_tensor") else w


def _seed_states(layer) -> list:
    """`(pre-order module index, state variable)` of every SeedGenerator in
    `layer`: a noise layer's own (held outside the module tree) and any a
    user layer registered as a submodule."""
    out = []
    modules = list(layer.modules())
    for i, module in enumerate(modules):
        gen = module.__dict__.get("seed_generator")
        if gen is None and getattr(module, "_is_seed_generator", False):
            gen = module
        if getattr(gen, "_is_seed_generator", False):
            after = module.__dict__.get("_seed_state_after")  # the sublayer Keras creates it after
            if after is not None and after in module._modules:
                last = list(module._modules[after].modules())[-1]
                i = next(j for j, m in enumerate(modules) if m is last)
            out.append((i, gen.state_variable()))
    out.sort(key=lambda pair: pair[0])
    return out


def _standardize_weight_shape(shape: tuple) -> tuple:
    """Each dimension as an int (NumPy ints and 0-d tensors too) or None, as Keras's
    `standardize_shape` does for `add_weight`: a dimension that is a string, a float or anything
    `int()` refuses (a list, e.g. a config's `kernel_size` read back from JSON) raises Keras's
    ValueError, not a TypeError from deep inside."""
    dims = []
    for dim in shape:
        if dim is not None:
            if isinstance(dim, (str, float)):
                raise ValueError(f"Cannot convert '{shape}' to a shape. Found invalid dimension '{dim}' of type "
                                 f"'{type(dim)}'.")
            try:
                dim = int(dim)
            except Exception as error:
                raise ValueError(f"Cannot convert '{shape}' to a shape. Found invalid dimension '{dim}' of type "
                                 f"'{type(dim)}'.") from error
        dims.append(dim)
    return tuple(dims)
