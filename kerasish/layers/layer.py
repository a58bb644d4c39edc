"""`Layer`: the Keras layer API on a `torch.nn.Module`.

A kerasish layer *is* an `nn.Module`: `layer(x)` goes through `nn.Module.__call__`
(so torch hooks fire) into `forward`, which runs the Keras call pipeline:

    convert inputs -> build on first call -> check input_spec -> cast floating
    inputs to the compute dtype -> resolve `training` -> fill `mask` -> call()
    -> activity regularization -> attach the output mask

Everything that can be decided once per class (does `call` take `training`?
`mask`? does the class override `compute_mask`?) is decided in
`__init_subclass__`, so the per-call path is a handful of attribute reads.
"""

from __future__ import annotations

import copy
import functools
import inspect
import sys

import torch
from torch import nn

from kerasish import dtype_policies
from kerasish.layers import call_context as ctx
from kerasish.layers import cast_reads
from kerasish.backend import remat
from kerasish.layers.call_context import LOCAL as _LOCAL
from kerasish.layers import build_shapes
from kerasish.layers import hook_masks
from kerasish.layers import input_checks
from kerasish.layers import layer_weights
from kerasish.layers.layer_call import BUILD_LOCK
from kerasish.layers.layer_call import cast_int_input
from kerasish.layers.layer_call import eager_call
from kerasish.layers.layer_call import forward_for
from kerasish.layers.layer_call import torch_autocast_on
from kerasish.layers import weight_substitution
from kerasish.layers import no_mode_warning
from kerasish.layers import layer_moves
from kerasish.layers import lazy_weights
from kerasish.layers.input_spec import InputSpec
from kerasish.layers.input_spec import assert_input_compatibility
from kerasish.layers.layer_config import LayerConfigMixin
from kerasish.layers.layer_graph import LayerGraphMixin
from kerasish.layers.layer_losses import LayerLossesMixin
from kerasish.layers.layer_quantization import LayerQuantizationMixin
from kerasish.layers.layer_weights import LayerWeightsMixin
from kerasish.layers import torch_parent_mode
from kerasish.layers import tracking
from kerasish.utils import naming
from kerasish.utils import tree
from kerasish.variables import Variable

# Keras layer kwargs accepted by every layer (Keras 2 and Keras 3 spellings).
_ALLOWED_KWARGS = frozenset(
    {"input_shape", "input_dim", "batch_size", "batch_input_shape", "weights", "implementation", "input_dtype"}
)
# The attributes whose values decide whether a call can take the hot path
# (see `Layer._derive_plain`). Setting any of them is the one event that
# invalidates the decision (`Layer.__setattr__`); `dtype_policy` and
# `input_spec` are properties, so their setters pass through there too.
_PLAIN_KEYS = frozenset(
    {"built", "supports_masking", "activity_regularizer", "dynamic", "autocast", "dtype_policy", "input_spec",
     "call",  # (an instance's own `call`: `_call_uses_training` is asked again)
     "mask_zero"}  # (Embedding's `_hot_mask_mode`)
)
# Attributes nn.Module.__call__ reads first: missing means __init__ was skipped.
_MODULE_CALL_ATTRS = frozenset(nn.Module().__dict__) | {"_compiled_call_impl", "name"}


class UnrecognizedKwargsError(TypeError, ValueError):
    """Unknown constructor keyword: a TypeError as Keras 2 raised it and a
    ValueError as Keras 3 raises it, so code written for either catches it."""


def _super_init_error(cls) -> RuntimeError:
    return RuntimeError(
        f"In layer '{cls.__name__}', you forgot to call `super().__init__()` as the first "
        "statement in the `__init__()` method. Go add it!"
    )


def _default_build(self, input_shape):
    self.built = True


def _shapes_of(value):
    """`value` with every tensor replaced by its shape tuple."""
    if isinstance(value, torch.Tensor):
        return tuple(value.shape)
    if isinstance(value, (list, tuple)):
        return type(value)(_shapes_of(v) for v in value) if type(value) in (list, tuple) else value
    if isinstance(value, dict):
        return {k: _shapes_of(v) for k, v in value.items()}
    return value


def _fx_error(layer):
    return RuntimeError(
        f"torch.fx.symbolic_trace cannot trace through the kerasish layer '{layer.name}' "
        f"({type(layer).__name__}): its call is the Keras pipeline (building on the first call, masks, "
        "training mode), Python control flow on its inputs. Use torch.compile(model), torch.export.export "
        "(or model.export(path, format=\"torch\")) or torch.jit.trace; or keep kerasish layers whole in "
        "an FX graph with a `torch.fx.Tracer` whose `is_leaf_module(m, name)` returns True for "
        "`isinstance(m, keras.Layer)`, tracing a torch module that holds them."
    )


def _wrap_build(build):
    """Wraps a subclass's `build` so that an explicit `layer.build(shape)` gets
    the same name scope, device and `built = True` as the automatic build."""

    @functools.wraps(build)
    def wrapped(self, *args, **kwargs):
        d = self.__dict__
        if d.get("_in_build"):
            return build(self, *args, **kwargs)
        d["_in_build"] = True
        args = tuple(tree.to_shape_tuples(a) for a in args)
        state = ctx.state()
        previous_device = state.build_device
        if previous_device is None:
            state.build_device = d.get("_device_hint")
        try:
            # weights built by a first call under `torch.inference_mode()` are normal tensors (as
            # `nn.LazyLinear`'s are): inference tensors could never be trained or saved for backward
            if d.get("_layer_path") is None:
                d["_layer_path"] = naming.current_path(self.name)  # Keras 3's `layer.path`: the scope it is built in
            with naming.name_scope(self.name), torch.inference_mode(False):
                out = build(self, *args, **kwargs)
        finally:
            state.build_device = previous_device
            d["_in_build"] = False
        self.built = True
        # shapes only: a build given tensors (CompileMetrics gets y_true and
        # y_pred) must not keep them, nor the autograd graph behind them
        if args:
            d["_build_input_shape"] = _shapes_of(args[0])
        lazy_weights.drop_unused(self)
        if len(args) + len(kwargs) > 1:
            # several shapes (MultiHeadAttention's query/value/key): Keras 3
            # writes them as a `shapes_dict` build config
            named = dict(zip(param_names, args))
            named.update(kwargs)
            shapes = {k: _shapes_of(tree.to_shape_tuples(v)) for k, v in named.items() if v is not None}
            if len(shapes) > 1:
                d["_build_shapes_dict"] = shapes
        return out

    param_names = [
        p.name
        for p in list(inspect.signature(build).parameters.values())[1:]
        if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
    ]

    wrapped._kerasish_build_wrapper = True
    return wrapped


def _wrap_init(init):
    """Wraps a subclass's `__init__`: when the outermost one returns, the
    trainable weights the class declares get uninitialized parameters (see
    `lazy_weights`), so optimizers made before the first call hold them."""

    @functools.wraps(init)
    def wrapped(self, *args, **kwargs):
        d = self.__dict__
        depth = d.get("_init_depth", 0)
        d["_init_depth"] = depth + 1
        try:
            init(self, *args, **kwargs)
        finally:
            d["_init_depth"] = depth
        if depth == 0 and "_keras_init" in d and not d.get("built"):
            lazy_weights.add_placeholders(self)

    wrapped._kerasish_init_wrapper = True
    return wrapped


_QUANTIZED_HOOKS = frozenset({"quantized_call", "_int8_call", "_int4_call", "_float8_call", "_gptq_call", "_awq_call"})


def _wrap_user_quantize(quantize):
    """Wraps the `quantize` of a user's quantization-compatible layer as Keras
    does: the mode/config pair is resolved and checked (`quantize()` on an
    unbuilt or already quantized layer raises) before the user's code runs,
    which is called with `mode=` and `config=` keywords."""

    @functools.wraps(quantize)
    def wrapped(self, mode=None, config=None, **kwargs):
        from kerasish.quantizers.quantization_config import validate_and_resolve_config

        config = validate_and_resolve_config(mode, config)
        mode = config.mode
        self._check_quantize_args(mode, self.compute_dtype)
        return quantize(self, mode=mode, config=config, **kwargs)

    return wrapped


def _positional_training_error(layer, value):
    """`layer(x, True)`: `training` given positionally (Keras raises this ValueError before calling)."""
    raise ValueError(
        f"Exception encountered when calling {type(layer).__name__}.call(): only input tensors may be passed as "
        "positional arguments. The following argument value should be passed as a keyword argument: "
        f"{value!r} (of type {type(value)}). Use `{layer.name}(inputs, training={value!r})`."
    )


class Layer(LayerWeightsMixin, LayerLossesMixin, LayerQuantizationMixin, LayerGraphMixin, LayerConfigMixin, nn.Module):
    """This is the class from which all layers inherit (`keras.layers.Layer`).

    A layer is a callable object that takes one or more tensors and returns
    one or more tensors; its computation is `call()`, its state its weights.
    Weights are created in `__init__`, in `build(input_shape)` (run by the
    first `__call__`) or in the first `call`. Trainable weights are
    `nn.Parameter`s, non-trainable ones registered buffers; both answer the
    Keras variable API (see `kerasish.variables`).

    Args:
        trainable: Boolean, whether the layer's variables are trainable.
            Defaults to True.
        name: String name of the layer. Defaults to the snake_case class
            name, made unique (`dense`, `dense_1`, ...).
        dtype: The dtype policy: a name ("float32", "mixed_float16", ...),
            a torch dtype or a `DTypePolicy`. Defaults to the global policy.
        dynamic: If True the layer only runs eagerly: under `torch.compile`
            its `call` is excluded from tracing. Defaults to False.
        autocast: Whether floating inputs are cast to the compute dtype.
            Defaults to True.
        activity_regularizer: Regularizer for the outputs (Keras 3 adds its
            value divided by the batch size to `losses`; Keras 3 behaviour).
        **kwargs: `input_shape`, `input_dim`, `batch_size`,
            `batch_input_shape`, `weights` are accepted and kept; any other
            keyword is an error.

    Training mode: an explicit `training=` argument wins and propagates to
    inner layers for that call; otherwise an inner layer follows the outer
    call; otherwise `module.training` once `train()`/`eval()` set it;
    otherwise, as in Keras, the `training` default of the layer's `call`
    (image augmentation layers augment, Dropout does not). `training` is
    False until `train()` (layers start in inference mode, as in Keras,
    unlike torch modules); `fit`/`evaluate`/`predict` restore every
    module's mode when they end.

    Example:
        >>> class SimpleDense(keras.layers.Layer):
        ...     def __init__(self, units=32):
        ...         super().__init__()
        ...         self.units = units
        ...     def build(self, input_shape):
        ...         self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="random_normal")
        ...         self.b = self.add_weight(shape=(self.units,), initializer="zeros")
        ...     def call(self, inputs):
        ...         return inputs @ self.w + self.b
        >>> y = SimpleDense(4)(torch.ones(2, 2))
    """

    # decided per class in __init_subclass__
    _call_has_training = False
    _call_training_default = None
    _call_training_unset = False
    # a call in Keras's "no mode" state runs this layer in inference mode: a torch loop training it that
    # way gets one warning (`no_mode_warning`; Dropout, BatchNormalization, RNN and attention dropout).
    # True, or the name of the rate attribute that decides it (`_no_mode_matters`: "rate" for Dropout)
    _no_mode_watch = False
    _call_has_mask = False
    _call_arg_masks = ()
    _call_first_arg = "inputs"
    _has_compute_mask = False
    _init_signature = None
    _kerasish_build_shape_names = ()  # `build_shapes.shape_names`: set per subclass
    # True on layers whose math needs floats (Dense, Conv, RNN, norms): an
    # integer/bool input tensor is cast to the compute dtype, as Keras's ops promote it
    _float_inputs = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "build" in cls.__dict__ and not getattr(cls.__dict__["build"], "_kerasish_build_wrapper", False):
            cls.build = _wrap_build(cls.__dict__["build"])
        if "__init__" in cls.__dict__ and not getattr(cls.__dict__["__init__"], "_kerasish_init_wrapper", False):
            cls.__init__ = _wrap_init(cls.__dict__["__init__"])
        cls._kerasish_build_shape_names = build_shapes.shape_names(cls)  # Keras's build-by-name rule
        if not cls.__module__.startswith("kerasish."):
            if "quantize" in cls.__dict__:
                # a user's quantization-compatible layer: Keras checks and resolves the arguments first
                cls.quantize = _wrap_user_quantize(cls.__dict__["quantize"])
            if _QUANTIZED_HOOKS.intersection(cls.__dict__):
                # a user subclass of Dense/Embedding/... with its own `_int8_call`: Keras calls it
                cls._quantizes_in_call = False
        if "forward" not in cls.__dict__ and cls.forward is Layer.forward:
            cls.forward = forward_for(cls, Layer.forward)
        call = cls.call
        params = inspect.signature(call).parameters
        names = list(params)[1:]
        var_kw = any(p.kind == p.VAR_KEYWORD for p in params.values())
        cls._call_has_training = "training" in params or var_kw
        # Keras's last resort for `training` (no explicit value, no outer
        # call, mode never set): the call signature's default. `call` then
        # gets that default; kerasish's own layers get a bool.
        param = params.get("training")
        default = None if param is None or param.default is inspect.Parameter.empty else param.default
        cls._call_training_default = default
        cls._call_training_unset = bool(default) if cls.__module__.startswith("kerasish.") else default
        # where `training` would land if given positionally (`layer(x, True)`: Keras's ValueError)
        cls._call_training_pos = (
            names.index("training") if param is not None and param.kind is param.POSITIONAL_OR_KEYWORD else None
        )
        cls._call_has_mask = "mask" in params
        # Keras 3: a call taking several tensors gets each one's mask as `<argument>_mask` when its
        # signature has that argument (`call(self, query, value, query_mask=None, value_mask=None)`).
        # kerasish's own layers (MultiHeadAttention, ...) read their inputs' masks themselves and
        # keep the hot path; user layers, subclasses of those too, get the Keras 3 rule.
        cls._call_arg_masks = () if cls.__module__.startswith("kerasish.") else tuple(
            (position, name) for position, name in enumerate(names) if f"{name}_mask" in params
        )
        cls._call_first_arg = names[0] if names else "inputs"
        cls._has_compute_mask = cls.compute_mask is not Layer.compute_mask
        cls._init_signature = None

    def __new__(cls, *args, **kwargs):
        obj = super().__new__(cls)
        # kept for the automatic `get_config` (Keras 3's auto-config)
        object.__setattr__(obj, "_init_call_args", (args, kwargs))
        return obj

    def __init__(
        self,
        trainable: bool = True,
        name: str | None = None,
        dtype=None,
        dynamic: bool = False,
        autocast: bool = True,
        activity_regularizer=None,
        **kwargs,
    ):
        unknown = {k: v for k, v in kwargs.items() if k not in _ALLOWED_KWARGS}
        if unknown:
            raise UnrecognizedKwargsError(
                f"Unrecognized keyword arguments passed to {type(self).__name__}: {unknown}"
            )
        nn.Module.__init__(self)
        d = self.__dict__
        d["_keras_init"] = True
        if name is not None and not isinstance(name, str):
            raise TypeError(f"Argument `name` must be a string. Received: name={name!r}")
        d["name"] = name if name else naming.auto_name(type(self).__name__)
        d["_auto_named"] = not name
        d["_dtype_policy"] = dtype_policies.get(dtype)
        d["_trainable"] = bool(trainable)
        d["dynamic"] = bool(dynamic)
        d["autocast"] = bool(autocast)
        d["built"] = False
        d["supports_masking"] = type(self)._has_compute_mask
        d["_input_spec"] = None
        d["_callable_losses"] = []
        d["_no_autocast"] = set()  # weights created with add_weight(autocast=False)
        d["_metrics"] = []
        d["_inbound_nodes"] = []
        d["_device_hint"] = None
        d["_build_input_shape"] = None
        d["_plain"] = None  # derived on the first call (`_derive_plain`)
        d["_container_attrs"] = set()  # attributes holding tracked Python containers
        d["_remat_mode"] = remat.get_current_remat_mode()  # `keras.RematScope` open at creation
        from kerasish import regularizers

        d["activity_regularizer"] = regularizers.get(activity_regularizer)
        input_shape = kwargs.get("input_shape")
        batch_input_shape = kwargs.get("batch_input_shape")
        if input_shape is None and kwargs.get("input_dim") is not None:
            input_shape = (kwargs["input_dim"],)
        if batch_input_shape is None and input_shape is not None:
            batch_input_shape = (kwargs.get("batch_size"), *tuple(input_shape))
        d["_batch_input_shape"] = tuple(batch_input_shape) if batch_input_shape is not None else None
        d["_initial_weights"] = kwargs.get("weights")
        # Keras layers start in inference mode; until `train()`/`eval()` (or
        # an assignment) sets it, an outermost call follows Keras's rule:
        # the call signature's `training` default (augmentation layers
        # augment, Dropout does not)
        self.training = False
        d["_training_set"] = False
        self._set_dtype_fast_path()

    # ------------------------------------------------------------------ attrs
    def __getattr__(self, name):
        d = self.__dict__
        try:
            value = d["_parameters"][name]
        except KeyError:
            if "_parameters" not in d:
                if name in _MODULE_CALL_ATTRS:
                    raise _super_init_error(type(self)) from None
                raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'") from None
            prop = getattr(type(self), name, None)
            if isinstance(prop, property) and prop.fget is not None:
                # a property raised AttributeError: surface its own message
                return prop.fget(self)
            return nn.Module.__getattr__(self, name)
        # (a hot-path layer is never mixed: `_plain`, which its compiled call guards anyway, first)
        if not d["_plain"] and d["_mixed"] and value is not None:
            return self._cast_weight(name, value)
        return value

    def _cast_weight(self, name, value, cast=None):
        """A mixed-precision layer's float weight, as its compute dtype while
        the layer's call runs in this thread; cast once per outermost call
        (and grad mode), however often `call` reads it. `cast`: the dtype
        to cast to (a float32 layer's weight read by a mixed call,
        `cast_reads.read_in_mixed_call`)."""
        state = _LOCAL.state
        if cast is None:
            casts = state.casts
            cast = casts.get(id(self))
            if cast is None:
                if not casts:
                    return value
                # read by another mixed layer's call in progress (a parent using its sublayer's weight:
                # `ops.matmul(x, ops.transpose(self.token_embeddings.embeddings))`): Keras's autocast
                # scope is the innermost mixed call's, whoever owns the variable
                cast = next(reversed(casts.values()))
        if value.dtype is cast or not value.is_floating_point():
            return value
        if name in self.__dict__["_no_autocast"]:
            return value
        if torch.compiler.is_compiling():  # the compiler merges repeated casts itself
            return value.to(cast)
        key = (id(self), name, torch.is_grad_enabled())
        cached = state.cast_cache.get(key)
        if cached is None or cached.dtype is not cast:
            cached = state.cast_cache[key] = value.to(cast)
            state.dirty = True
            if cast_reads.WRITERS_FOR.get(type(self)) is not False and isinstance(value, Variable):
                # `self.ema.assign(...)` in a mixed call writes the variable (`cast_reads`; not for the
                # built-in layers, whose calls never write what they read)
                cast_reads.attach(cached, self, name, value)
        return cached

    # Keras 3's computed weights (`Dense.kernel`, `Embedding.embeddings`; see
    # `core/stored_weights.py`): properties over the stored variable `_<name>`,
    # which stays registered under `<name>` (the state_dict key)
    _computed_weights: frozenset = frozenset()

    # a model builds its first call outside a torch.compile trace (see `_build_outside_the_trace`)
    _builds_outside_compile: bool = False

    def __setattr__(self, name, value):
        if name[:1] == "_" and name[1:] in type(self)._computed_weights:
            name = name[1:]  # `self._kernel = v`: the stored variable, under `kernel`
        self._set_attribute(name, value)
        if name == "training":
            self.__dict__["_training_set"] = True  # train()/eval(): the mode decides from now on
        if name in _PLAIN_KEYS:
            # the one place the hot-path decision is invalidated: the next
            # call takes the full path and derives it again
            self.__dict__["_plain"] = None

    def _set_attribute(self, name, value):
        d = self.__dict__
        if isinstance(value, (nn.Module, list, tuple, dict)):
            # tf.keras 2's attribute tracking order (`_self_tracked_trackables`): an attribute set to a
            # layer or container goes last, also when it is re-set; read by the Keras 2 HDF5 weight order
            order = d.get("_keras2_attr_order")
            if order is None:
                order = d["_keras2_attr_order"] = {}
            order.pop(name, None)
            order[name] = None
        elif "_keras2_attr_order" in d:
            d["_keras2_attr_order"].pop(name, None)
        if "_keras_init" not in d:
            if isinstance(value, (nn.Module, torch.Tensor)):
                raise _super_init_error(type(self))
            return nn.Module.__setattr__(self, name, value)
        if name in d["_container_attrs"]:
            self._forget_container(name)  # the attribute is being replaced
        if isinstance(value, torch.Tensor) and self._track_variable_attr(name, value):
            return
        if isinstance(value, nn.Module):
            tracking.note_tracked(value)  # Keras's sublayer (and weight) order: when first tracked
            tracking.structure_changed()
        elif name in d["_modules"]:
            tracking.structure_changed()  # a submodule replaced by something else
        if value is None and lazy_weights.is_lazy(d["_parameters"].get(name)):
            return  # (`self.gamma = None` before `add_weight`: the placeholder stays until build ends)
        if isinstance(value, (list, tuple, dict)) and name not in _MODULE_CALL_ATTRS:
            # Keras tracks layers and variables in containers under any name
            value = tracking.track_container(value, self, name)
            if not isinstance(value, nn.Module):
                for registry in (d["_parameters"], d["_buffers"], d["_modules"]):
                    registry.pop(name, None)
                object.__setattr__(self, name, value)
                d["_container_attrs"].add(name)
                tracking.sync_mirror(self, name)  # its layers/variables live in _modules[name]
                return
        nn.Module.__setattr__(self, name, value)

    def __delattr__(self, name):
        d = self.__dict__
        if name[:1] == "_" and name[1:] in type(self)._computed_weights:
            name = name[1:]  # `del self._kernel`: the stored variable
        if name in d.get("_container_attrs", ()):
            self._forget_container(name)
            return
        if name in d.get("_no_autocast", ()):
            d["_no_autocast"].discard(name)
        if name in d.get("_modules", ()):
            tracking.structure_changed()
        if layer_weights.deleted_by_parametrization(sys._getframe(1)):
            # torch's register_parametrization takes the weight away (and `remove_parametrizations` puts a
            # plain tensor back under the same name): remember its place and Keras identity
            for registry in (d.get("_parameters"), d.get("_buffers")):
                if registry is not None and isinstance(registry.get(name), layer_weights.Variable):
                    d.setdefault("_vacated_weights", {})[name] = (registry[name], list(registry))
        nn.Module.__delattr__(self, name)

    def register_parameter(self, name, param):
        params = self.__dict__.get("_parameters")
        if name.endswith("_g") and params is not None:
            frame = sys._getframe(1)
            if frame.f_code.co_name == "apply" and frame.f_code.co_filename.endswith("weight_norm.py"):
                layer_weights.vacated_by_old_weight_norm(self, frame)
        moved = None
        if isinstance(param, layer_weights.Variable) and params is not None and name not in params:
            moved = next((k for k, v in params.items() if v is param), None)
        if type(param) is nn.Parameter and params is not None and not isinstance(params.get(name), layer_weights.Variable):
            self._parameter_as_keras_weight(name, param)  # a new weight: Keras's name and path
        nn.Module.register_parameter(self, name, param)
        if name in self.__dict__.get("_vacated_weights", ()):
            layer_weights.restore_vacated_weight(self, self._parameters, name)
        elif moved is not None:
            # one of our weights re-registered under a new name (torch's pruning: `kernel` -> `kernel_orig`,
            # then `kernel` deleted, and `prune.remove` puts it back): the new name takes its place in
            # Keras's weight order, and the old name gets it back when the weight returns
            layer_weights.take_place_of(self, params, name, moved)

    def register_buffer(self, name, tensor, persistent=True):
        nn.Module.register_buffer(self, name, tensor, persistent)
        if name in self.__dict__.get("_vacated_weights", ()):
            layer_weights.restore_vacated_weight(self, self._buffers, name)

    def _forget_container(self, name):
        """Drops the container attribute `name` and its torch mirror."""
        d = self.__dict__
        d["_container_attrs"].discard(name)
        old = d.pop(name, None)
        if isinstance(old, tracking._TrackedMixin):
            old.__dict__["_owner"] = None  # its later mutations concern nobody
        modules = d["_modules"]
        if isinstance(modules.get(name), tracking._Slots):
            del modules[name]

    # ---------------------------------------------------------------- dtypes
    def _set_dtype_fast_path(self):
        d = self.__dict__
        policy = d["_dtype_policy"]
        d["_compute_torch_dtype"] = policy.compute_torch_dtype
        d["_cast_inputs"] = d["autocast"] and policy.compute_torch_dtype.is_floating_point
        d["_mixed"] = policy.compute_torch_dtype != policy.variable_torch_dtype
        # Keras's Layer.__call__ runs `quantized_call` (-> `_int8_call`, ...) instead of `call`
        # under a quantized policy; kerasish's own quantizable layers branch inside their `call`
        # (the `quantization_mode` property: a DTypePolicyMap answers per layer name)
        d["_quantized_dispatch"] = not type(self)._quantizes_in_call and (
            self.quantization_mode if "name" in d else policy.quantization_mode) is not None
        d["_plain"] = None  # the hot path's plan holds the compute dtype: derive it again

    @property
    def dtype_policy(self):
        return self._dtype_policy

    @dtype_policy.setter
    def dtype_policy(self, value):
        policy = dtype_policies.get(value)
        self.__dict__["_dtype_policy"] = policy
        self._set_dtype_fast_path()
        if policy.quantization_mode is not None and self.built and not self.__dict__.get("_is_quantized", False):
            # Keras: a quantized policy on a built layer quantizes it
            self.quantize(policy.quantization_mode)

    @property
    def dtype(self) -> str:
        """The dtype of the layer's weights (the policy's variable dtype)."""
        return self._dtype_policy.variable_dtype

    @property
    def variable_dtype(self) -> str:
        return self._dtype_policy.variable_dtype

    @property
    def compute_dtype(self) -> str:
        return self._dtype_policy.compute_dtype

    @property
    def input_dtype(self) -> str:
        """The dtype floating inputs are converted to (Keras 3): the compute dtype."""
        return self._dtype_policy.compute_dtype

    @property
    def input_spec(self):
        return self.__dict__["_input_spec"]

    @input_spec.setter
    def input_spec(self, value):
        for spec in tree.flatten(value):
            if spec is not None and not isinstance(spec, InputSpec):
                raise TypeError(
                    f"Layer input_spec must be an instance of InputSpec. Got: {spec}"
                )
        self.__dict__["_input_spec"] = value

    # ------------------------------------------------------------ the call
    def call(self, inputs, *args, **kwargs):
        """This is where the layer's logic lives. The base class returns
        its inputs unchanged (Keras 3 behaviour)."""
        return inputs

    def build(self, input_shape):
        """Creates the layer's weights from the input shape(s). The base
        implementation only marks the layer built."""
        self.built = True

    def forward(self, *args, **kwargs):
        """The Keras `__call__` pipeline (see the module docstring).

        One pipeline with one shortcut: a layer whose `_plain` flag is set
        (built, no activity regularizer, no masking, not mixed, not dynamic,
        at most a simple input_spec; see `_derive_plain`) called on one tensor already of its
        compute dtype skips input conversion, building and casting, and its
        call opens no name scope (nothing is built inside) and no weight cast.
        Every rule both kinds of call follow (training, arguments, outermost
        call, outputs) is written once, below.
        """
        try:  # (free unless it raises)
            unexpected_mask = kwargs and "mask" in kwargs and not self._call_has_mask
        except torch.fx.proxy.TraceError:  # `torch.fx.symbolic_trace(layer)`: `kwargs` is a Proxy
            raise _fx_error(self) from None
        if unexpected_mask:
            raise TypeError(
                f"{type(self).__name__}.call() got an unexpected keyword argument 'mask' (layer "
                f"'{self.name}'): its `call` takes no `mask`, so an explicit mask would be ignored. Keras "
                "raises here too; masks set on the inputs (`_keras_mask`) propagate without `mask=`.")
        d = self.__dict__
        x = args[0] if args else None
        # `_plain` is the hot path's plan: a tuple of constants (compute dtype, passes masks,
        # input check; see `_derive_plain`). Any tensor qualifies: a tensor subclass (a Keras
        # Variable, a DTensor) would take the full path to the same result. A tensor of the
        # compute dtype is recognised by its dtype alone (no other input has a torch dtype there:
        # a KerasTensor's is a string, an array's a NumPy dtype): under torch.compile each global
        # name read here (`isinstance`, `torch`) would be a guard checked on every call
        plan = d["_plain"]
        fast = False
        if plan:
            mask_mode = plan[1]  # (see `_hot_mask_mode`; 0 and 1 cost the common call one test here)
            try:
                fast = x.dtype is plan[0]
            except AttributeError:  # not a tensor (a list, a number, None)
                pass
            if not fast:
                if mask_mode == 4 and isinstance(x, (list, tuple)) and x:
                    # a merge layer's list: tensors of the compute dtype, none masked
                    fast = True
                    for t in x:
                        if (not isinstance(t, torch.Tensor) or t.dtype is not plan[0]
                                or getattr(t, "_keras_mask", None) is not None):
                            fast = False
                            break
                elif isinstance(x, torch.Tensor):  # an integer input of a layer that takes it as is
                    fast = not (x.is_floating_point() or self._float_inputs or x.is_complex())
            if fast and mask_mode == 2 and (getattr(x, "_keras_mask", None) is not None
                                            or kwargs.get("mask") is not None):
                fast = False  # a `call` taking `mask=` gets a mask: the full path passes it
            # a weight replaced behind the layer's back (`torch.func.functional_call`,
            # `torch.nn.utils.stateless`): the full path sees whether it computes in another dtype
            # (`weight_substitution`; an identity check: a Variable's `.dtype` costs far more)
            if fast and plan[4] is not None:
                if _is_compiling():  # (the one global a hot call reads: one guard, where the anchor costs ~10)
                    # traced: the weight's dtype is a constant of the graph (its tensor guard, which the
                    # call's own read of the weight has anyway, recompiles for another dtype)
                    spot = plan[4]  # (registry name, key, variable dtype) of a leaf layer's anchor; () a model's
                    if spot:
                        w = d[spot[0]].get(spot[1])
                        fast = w is not None and w.dtype is spot[2]
                else:
                    anchor = d["_weight_anchor"]
                    try:
                        fast = anchor[0][anchor[1]] is anchor[2]
                    except KeyError:  # (taken away: a parametrization)
                        fast = False
        if fast:
            spec = plan[2]
            if spec is not None:
                # the plan's input check, written out: a helper function would be a global name
                ndim, min_ndim, max_ndim, axes = spec
                n = x.dim()
                bad = (
                    (ndim is not None and n != ndim)
                    or (min_ndim is not None and n < min_ndim)
                    or (max_ndim is not None and n > max_ndim)
                )
                if axes and not bad:
                    shape = x.shape
                    for axis, value in axes:
                        if not -n <= axis < n or shape[axis] != value:
                            bad = True
                            break
                if bad:
                    assert_input_compatibility(d["_input_spec"], x, d["name"])  # raises
            # (pos, default, unset, uses) of `training` in `call`, or None when it takes none
            training_plan = plan[3]
            leaf = not d["_modules"]
        else:
            # weights of another dtype put in the layer's place (`weight_substitution`)
            anchor = d.get("_weight_anchor")
            if anchor is None and d["_plain"] is None and d["built"]:
                self._derive_plain()  # (a model built before its first call: `functional_call` may be it)
                anchor = d["_weight_anchor"]
            if anchor is not None:
                substituted = (None if anchor[0].get(anchor[1]) is anchor[2]
                               else weight_substitution.substituted_dtype(self, d))
            else:
                substituted = weight_substitution.substituted_dtype(self, d) if _LOCAL.state.substituted else None
            if substituted is not None:
                return weight_substitution.call(self, d, substituted, args, kwargs)
            args, x, cast_weights = self._prepare_inputs(args, kwargs)
            if args is None:
                return x  # a symbolic call: the output KerasTensors
            cls = type(self)
            training_plan = (
                (cls._call_training_pos, cls._call_training_default, cls._call_training_unset, True,
                 cls._no_mode_watch)
                if cls._call_has_training else None
            )
            leaf = False

        # training: an explicit `training=` wins, then the call in progress
        # (this thread's), then `module.training` once train()/eval() set
        # it, then the call signature's default (None passes on: inner
        # layers apply their own defaults, as in Keras). `call` gets it only
        # when it takes it; an explicit `mask=` to a call without one is a TypeError (as Keras)
        # the resolved mode goes to `call`, to sublayers (the stack) or to the full path; a hot
        # call of a leaf layer whose `call` takes no `training`, or ignores it (`_call_uses_training`),
        # has no use for it, nor for the call state. Under torch.compile every global name, class
        # attribute or thread-local read here is a guard checked on every call (the thread-local
        # among the dearest): the hot path reads its class's flags from the plan
        if leaf and (training_plan is None or not training_plan[3]):
            if training_plan is not None:
                pos = training_plan[0]
                if pos is not None and args[pos:]:
                    _positional_training_error(self, args[pos])
            if kwargs:
                kwargs.pop("training", None)
            # an outermost call drops the losses it replaces: a leaf's own only (`begin_outermost`),
            # and only a layer that ever added one has any (`record_loss` marks it)
            if d.get("_added_losses"):
                state = _LOCAL.state
                if state.dirty and not state.stack:
                    ctx.begin_outermost(self)
        else:
            state = _LOCAL.state
            stack = state.stack
            training = kwargs.get("training") if kwargs else None
            if training is None:
                if stack:
                    training = stack[-1]
                    if not torch.compiler.is_compiling():
                        # for torch.utils.checkpoint's recomputation of this call, which runs
                        # in the backward pass with no call in progress
                        d["_inherited_training"] = training
                else:
                    training = d["training"] if d.get("_training_set") else None
                    # (the key first: `is_compiling` costs a call in eager and a guard when compiled)
                    if "_inherited_training" in d and not torch.compiler.is_compiling():
                        if ctx.in_backward():
                            training = d["_inherited_training"]  # the mode the recomputed forward had
                        else:
                            del d["_inherited_training"]
                if training is None and training_plan is not None:
                    training = training_plan[1]  # the signature's default
                    if training_plan[4] and not training:  # (Dropout, BatchNormalization, ...: `no_mode_warning`)
                        no_mode_warning.watch(self, x)
            if training_plan is not None:
                pos = training_plan[0]
                if pos is not None and args[pos:]:
                    _positional_training_error(self, args[pos])
                kwargs["training"] = training_plan[2] if training is None else training
            elif kwargs:
                kwargs.pop("training", None)
            # (a hot leaf: only one that ever added a loss has any to drop, as above)
            if (not leaf or d.get("_added_losses")) and state.dirty and not stack:
                ctx.begin_outermost(self)  # drops the losses and weight casts this call replaces

        if fast:
            if leaf:
                outputs = self.call(*args, **kwargs)
            else:
                if not stack:
                    state.entry = id(self)  # the outermost call of the calls below
                # the input mask as it is before the call, as Keras reads it: a sublayer may take it off
                # the input tensor (MultiHeadAttention does, on its query, value and key)
                premask = getattr(x, "_keras_mask", None) if mask_mode else None
                stack.append(training)  # sublayers inherit this call's training mode
                # a sublayer first used in a later call (a branch, another thread's first call)
                # builds in here: its weights' paths need this layer's name, as in Keras
                scope = state.scope
                entry = d.get("_call_scope")
                if entry is None or entry.name is not d["name"]:
                    entry = naming.call_scope(self)
                scope.append(entry)
                try:
                    outputs = self.call(*args, **kwargs)
                finally:
                    stack.pop()
                    scope.pop()
            if outputs is None:
                self._raise_none_output()
            # a hot-path layer has no activity regularizer and gets no mask (`_derive_plain`,
            # `_hot_mask_mode`): the input mask passes through (1) or the layer's `compute_mask`
            # makes the output's (3). The input mask is read with the builtin `getattr`:
            # `tree.get_mask` would cost a global name and, in eager, a call
            # (as Keras, a mask the call itself put on the outputs stays: `set_missing_mask`; mode 3 is
            # kerasish's own Embedding, whose call puts none)
            if mask_mode:
                previous = getattr(x, "_keras_mask", None) if leaf else premask
                if mask_mode == 1:  # supports_masking
                    if previous is not None:
                        tree.set_missing_mask(outputs, previous)
                elif mask_mode == 3:
                    mask = self.compute_mask(x, previous)
                    if mask is not None:
                        tree.set_mask(outputs, mask)
            return outputs
        # read before the call, as Keras does: a sublayer may take the mask off the input tensor
        premask = tree.get_mask(x) if d["supports_masking"] or self._has_compute_mask else None
        outputs = self._full_call(d, state, args, kwargs, x, training, cast_weights)
        if d["_plain"] is None and d["built"]:
            # a layer that finished building inside its call (MultiHeadAttention sets its
            # input_spec there): its plan now, not one call later, when a model compiled
            # after one warm-up call would see the plan change and recompile
            self._derive_plain()
        elif d.get("_anchor_pending"):
            # a model planned before its layers were built (their weights: `weight_substitution`)
            d["_anchor_pending"] = False
            self._derive_plain()

        if outputs is None:
            self._raise_none_output()
        if d["activity_regularizer"] is not None:
            self._add_activity_loss(outputs)
        # the output mask: `compute_mask` when the class overrides it (or
        # its `call` takes `mask=`), else the input mask passed through
        # (as Keras's `_set_mask_metadata`: outputs that the call gave a mask keep it, and
        # `compute_mask` is skipped when all have one)
        if d["supports_masking"] or self._has_compute_mask:
            if self._has_compute_mask or self._call_has_mask:
                previous = kwargs.get("mask") if self._call_has_mask else premask
                if (self._has_compute_mask or previous is not None) and not tree.all_masked(outputs):
                    tree.set_missing_mask(outputs, self.compute_mask(x, previous))
            else:
                previous = premask
                if previous is not None:
                    tree.set_missing_mask(outputs, previous)
        return outputs

    def _prepare_inputs(self, args, kwargs):
        """Converts the inputs, builds on the first call, checks input_spec and
        casts floating inputs to the compute dtype. Returns `(args, inputs,
        cast_weights)`, or `(None, outputs, None)` for a symbolic call."""
        d = self.__dict__
        first_kwarg = None  # the name the first argument was passed by, when not positional
        if args:
            inputs = args[0]
            if isinstance(inputs, torch.fx.Proxy):  # traced by torch.fx inside a torch module
                raise _fx_error(self)
            if isinstance(inputs, torch.nn.utils.rnn.PackedSequence):  # (a tuple: would be read as 4 inputs)
                raise TypeError(
                    f"Layer '{d['name']}' ({type(self).__name__}) received a torch PackedSequence. Keras layers "
                    "take the padded batch (batch, timesteps, features) and skip the padding with a mask: "
                    "`x, lengths = torch.nn.utils.rnn.pad_packed_sequence(packed, batch_first=True)`, then "
                    "`layer(x, mask=torch.arange(x.shape[1]) < lengths[:, None])` (or a `Masking` layer, or "
                    "`Embedding(mask_zero=True)`)."
                )
        else:
            first = self._call_first_arg
            if first not in kwargs:
                raise ValueError(
                    f"Layer '{d['name']}': the first argument to `Layer.call` must always be passed "
                    f"(as a positional argument or as `{first}=`)."
                )
            inputs = kwargs.pop(first)
            args = (inputs,)
            first_kwarg = first
        if type(inputs) is not torch.Tensor:
            if tree.any_symbolic(inputs) or tree.any_symbolic_args(args, kwargs):
                from kerasish.models import symbolic_ops

                return None, symbolic_ops.symbolic_layer_call(self, args, kwargs, first_kwarg), None
            input_checks.check_raw_inputs(self, inputs)
            inputs = tree.convert_inputs(inputs, d["_device_hint"] or _LOCAL.state.device)
            args = (inputs, *args[1:])
        elif inputs.dtype.is_complex:
            input_checks.check_complex(self, inputs)
        if not d["built"]:
            self._build_once(inputs, (args, kwargs))
        if d["_input_spec"] is not None:
            assert_input_compatibility(d["_input_spec"], inputs, d["name"])
        # under the user's torch.autocast the ops choose their dtypes: no
        # input cast, no weight cast
        autocast = torch_autocast_on(inputs) if d["_cast_inputs"] or d["_mixed"] else False
        if d["_cast_inputs"] and not autocast:
            cast = tree.cast_floating(inputs, d["_compute_torch_dtype"])
            if cast is not inputs:
                inputs = cast
                args = (inputs, *args[1:])
        if self._float_inputs and type(inputs) is torch.Tensor and not inputs.is_floating_point():
            inputs = cast_int_input(inputs, d["_compute_torch_dtype"])
            args = (inputs, *args[1:])
        if d["_plain"] is None:
            self._derive_plain()
        return args, inputs, d["_mixed"] and not autocast

    def stateless_call(self, trainable_variables, non_trainable_variables, *args, return_losses=False, **kwargs):
        """Runs `call` with the given variable values, changing no variable
        (Keras 3; JAX-style training loops).

        Args:
            trainable_variables: Values matching `self.trainable_variables`
                1:1 (gradients flow to them).
            non_trainable_variables: Values matching
                `self.non_trainable_variables` 1:1.
            *args, **kwargs: The arguments of `call`.
            return_losses: Also return the losses added during the call.

        Returns:
            `(outputs, non_trainable_variables)`, with the updated
            non-trainable values (e.g. BatchNormalization's moving
            statistics), plus `losses` when `return_losses=True` (the
            `add_loss` losses of this call; as in Keras they are not left in
            `layer.losses`). The call goes through the layer's usual pipeline
            (`layer(*args)`), so `training=` reaches the sublayers.

        Gradients reach the given values, the torch way of `jax.grad`:

            >>> tv = [v.detach().clone().requires_grad_() for v in layer.trainable_variables]
            >>> out, ntv = layer.stateless_call(tv, ntv, x, training=True)
            >>> grads = torch.autograd.grad(loss_fn(out), tv)

        or `torch.func.grad(lambda tv: loss_fn(layer.stateless_call(tv, ntv, x)[0]))(tv)`.
        """
        from kerasish.backend import stateless_scope

        return stateless_scope.stateless_call(self, trainable_variables, non_trainable_variables, *args,
                                              return_losses=return_losses, **kwargs)

    def rematerialized_call(self, layer_call, *args, **kwargs):
        """`layer_call` (the layer's `call`, or another function of it) as the
        layer's `keras.RematScope` mode runs it (Keras 3): recomputed in the
        backward pass (`torch.utils.checkpoint`) for "full", for
        "list_of_layers" naming this layer, for "larger_than" with an output
        over the threshold (inferred from `*args, **kwargs`), or with only the
        `activation` recomputed for "activations"; `layer_call` itself when
        the layer was not created in a RematScope. The training mode and the
        mixed-precision weight cast of the call in progress are restored
        during the recomputation."""
        if self.__dict__.get("_remat_mode") is None:
            return layer_call
        state = ctx.state()
        training = state.stack[-1] if state.stack else None
        cast_dtype = state.casts.get(id(self))

        @functools.wraps(layer_call)
        def call(*a, **k):
            return remat.layer_call(self, layer_call, a, k, training, cast_dtype)

        return call

    def _full_call(self, d, state, args, kwargs, inputs, training, cast_weights):
        """`call` with what the shortcut skips: the input mask passed as
        `mask=`, the layer's name scope (weights built inside get
        "outer/inner/kernel" paths), the mixed-precision weight cast, and
        `dynamic=True`."""
        if self._call_has_mask and kwargs.get("mask") is None:
            # the first tensor's mask, also when `call` takes several tensors: tf.keras 2's rule (Keras 3
            # passes none then); README "Design and conventions" says why
            mask = tree.get_mask(inputs)
            if mask is not None:
                kwargs["mask"] = mask
        if self._call_arg_masks:
            _populate_argument_masks(self._call_arg_masks, args, kwargs)
        stack = state.stack
        casts = state.casts
        key = id(self)
        previous_cast = casts.get(key)
        if cast_weights:
            casts[key] = d["_compute_torch_dtype"]
        scope = state.scope
        entry = d.get("_call_scope")
        if entry is None or entry.name is not d["name"]:
            entry = naming.call_scope(self)
        scope.append(entry)
        if not stack:
            state.entry = key  # the outermost call of the calls below
        stack.append(training)
        try:
            if d["dynamic"]:
                return eager_call(self, args, kwargs)
            call = self.quantized_call if d.get("_quantized_dispatch") else self.call
            if d.get("_remat_mode") is not None:  # created inside a `keras.RematScope`
                return remat.layer_call(self, call, args, kwargs, training,
                                        d["_compute_torch_dtype"] if cast_weights else None)
            return call(*args, **kwargs)
        finally:
            stack.pop()
            scope.pop()
            if previous_cast is None:
                casts.pop(key, None)
            else:
                casts[key] = previous_cast
            if not stack and state.cast_cache:
                state.cast_cache.clear()  # free this call's weight copies now

    def _raise_none_output(self):
        raise ValueError(
            f"Layer '{self.name}': the `call()` method of {type(self).__name__} returned None, "
            "an invalid value. It must return a tensor or a nested structure of tensors."
        )

    def _no_mode_matters(self) -> bool:
        """Whether inference mode changes what this layer computes in its present state (a class
        with `_no_mode_watch` answers: a Dropout of rate 0 or a frozen BatchNormalization does not).
        A class whose `_no_mode_watch` names a rate attribute is watched while that rate is positive."""
        rate = type(self)._no_mode_watch
        return isinstance(rate, str) and (getattr(self, rate, 0) or 0) > 0

    def _call_uses_training(self) -> bool:
        """Whether this layer's `call`, which takes `training`, reads it in the
        layer's present state. A hot call of a leaf layer resolves the mode
        only when it does (under torch.compile the resolution reads the
        thread's call state: guards on every call). A class whose `call`
        reads `training` only in some states (Dense: quantized) answers for
        them; an instance's own `call` (in `_PLAIN_KEYS`) always gets it."""
        return True

    def _hot_mask_mode(self):
        """How a hot-path call treats masks (`_derive_plain`), or None when the
        layer's calls take the full path. 0: no mask; 1: the input's mask
        passes through (`supports_masking`); 2: `call` takes `mask=` and
        `compute_mask` is Layer's: an input with a mask, or an explicit
        `mask=`, takes the full path (which passes it), an unmasked call
        needs nothing more; 3: the output's mask is `compute_mask(inputs,
        input mask)` (a cheap, side-effect-free `compute_mask`); 4 (merge
        layers): a list of tensors of the compute dtype, none masked, takes
        the hot path (the output has no mask), anything else the full one. A class whose
        `call` takes `mask=` or that overrides `compute_mask` stays on the
        full path unless it answers here (BatchNormalization: 2, Embedding:
        0 or 3)."""
        if type(self)._has_compute_mask or self._call_has_mask:
            return None
        return 1 if self.__dict__.get("supports_masking") else 0

    def _derive_plain(self):
        """Decides whether calls can take the hot path in `forward`, from the
        attributes in `_PLAIN_KEYS` and the class's call signature. Run by
        the first full-path call after any of those attributes was set
        (`__setattr__` resets `_plain` to None, "unknown", which the hot path
        reads as False)."""
        d = self.__dict__
        spec = d.get("_input_spec")
        fast_spec = None
        if isinstance(spec, (list, tuple)) and len(spec) == 1:
            spec = spec[0]
        if isinstance(spec, InputSpec) and spec.dtype is None and spec.shape is None and not spec.name and not spec.allow_last_axis_squeeze:
            fast_spec = (spec.ndim, spec.min_ndim, spec.max_ndim, tuple((a, v) for a, v in spec.axes.items() if v is not None))
        mask_mode = self._hot_mask_mode()
        plain = (
            d.get("built")
            and (spec is None or fast_spec is not None)
            and d.get("activity_regularizer") is None
            and not d.get("dynamic")
            and not d.get("_mixed")
            and mask_mode is not None
            and not type(self)._call_arg_masks
            and d.get("_initial_weights") is None
            and d.get("_remat_mode") is None
            and not d.get("_quantized_dispatch")
        )
        # the plan `forward` reads: only constants (dynamo guards a tuple of them with one check);
        # the class's `training` flags ride along so that a hot call reads no class attribute
        cls = type(self)
        training_plan = (
            (cls._call_training_pos, cls._call_training_default, cls._call_training_unset,
             bool(self._call_uses_training()), cls._no_mode_watch)
            if cls._call_has_training else None
        )
        # the weight whose dtype tells a `functional_call` of other-dtype weights (see `weight_substitution`)
        anchor = d["_weight_anchor"] = weight_substitution.anchor(self, d)
        if anchor is None and d["_modules"] and "_anchor_pending" not in d:
            d["_anchor_pending"] = True  # (once more after the call in progress, which may build its layers)
        # in the plan only constants: where a leaf layer's anchor lives ("_parameters"/"_buffers", key) and
        # its dtype, read under torch.compile (the anchor itself, a dict and a Variable, would cost ~10
        # guards per compiled call); a model's anchor is checked in eager calls only (`_weight_anchor`)
        d["_plain"] = (
            (d["_compute_torch_dtype"], mask_mode, fast_spec, training_plan, weight_substitution.plan_spot(d, anchor))
            if plain else False
        )

    def _build_once(self, inputs, call=None):
        """The first call's build, one thread at a time: a thread that finds
        the layer built by another while it waited uses those weights.
        `call`: the call's `(args, kwargs)`, for a `build` taking several shapes."""
        if torch.compiler.is_compiling():
            if self._modules or type(self)._builds_outside_compile or type(self).build is not Layer.build:
                # making weights and sublayers: dynamo traced it only in simple cases
                _build_outside_the_trace(self, inputs, call)
            else:
                self._build_on_first_call(inputs, call)  # nothing to make: traced, no graph break
            return
        with BUILD_LOCK:
            if not self.__dict__["built"]:
                self._build_on_first_call(inputs, call)

    def _build_on_first_call(self, inputs, call=None):
        shapes = tree.map_shapes(inputs)
        device = tree.first_device(inputs)
        hint = self.__dict__["_device_hint"]
        if hint is not None and device is not None and device.type != "meta" and not layer_moves.same_device(device, hint):
            raise ValueError(
                f"Layer '{self.name}' was moved to device {hint} before it was built, so it builds its "
                f"weights there, but its first call received inputs on device {device}. Move the inputs "
                f"to {hint} (`x.to({str(hint)!r})`) or the layer to {device} (`layer.to({str(device)!r})`)."
            )
        state = ctx.state()
        previous = state.build_device
        state.build_device = device
        named = build_shapes.named_build_shapes(self, *call) if call is not None else None
        try:
            if named:
                self.build(**named)
            else:
                self.build(shapes)
        finally:
            state.build_device = previous
        d = self.__dict__
        self.built = True
        if d["_build_input_shape"] is None:
            d["_build_input_shape"] = shapes
        if d["_initial_weights"] is not None:
            self.set_weights(d["_initial_weights"])
            d["_initial_weights"] = None

    # ----------------------------------------------------------- masking
    def compute_mask(self, inputs, mask=None):
        """Computes an output mask. The base class passes `mask` through when
        `supports_masking` is True and returns None otherwise."""
        if not self.supports_masking:
            return None
        return mask

    # ---------------------------------------------------- layer traversal
    def _flatten_layers(self, include_self=True, recursive=True):
        """Keras layers below this one, depth first (through plain torch
        containers too), each once."""
        seen = set()
        if include_self:
            seen.add(id(self))
            yield self
        stack = list(self._modules.values())[::-1]
        while stack:
            module = stack.pop()
            if module is None or id(module) in seen:
                continue
            seen.add(id(module))
            if isinstance(module, Layer):
                if getattr(module, "_is_metric", False):
                    continue
                yield module
                if not recursive:
                    continue
            stack.extend(list(module._modules.values())[::-1])

    @property
    def _layers(self):
        return list(self._flatten_layers(include_self=False, recursive=False))

    # ---------------------------------------------------------- torch side
    def named_modules(self, memo=None, prefix="", remove_duplicate=True):
        """torch's `named_modules()`. It is also the walk behind every
        `parameters()` / `named_parameters()` call, including one made on a
        plain torch module holding this layer: built-in layers not built yet
        contribute uninitialized parameters that their build fills in place;
        an unbuilt custom layer cannot, and a `UserWarning` then says the
        parameter list is partial (see `lazy_weights.warn_if_partial`)."""
        if not self.__dict__.get("built"):  # (built: nothing to check per step)
            lazy_weights.warn_if_partial(self)
        return nn.Module.named_modules(self, memo, prefix, remove_duplicate)

    def register_forward_hook(self, hook, *args, **kwargs):
        """torch's `register_forward_hook`. A hook that returns a new output
        keeps the Keras mask of the output it replaces (see `hook_masks`)."""
        return hook_masks.bracket(
            self, "forward_hook", nn.Module.register_forward_hook(self, hook, *args, **kwargs)
        )

    def register_forward_pre_hook(self, hook, *args, **kwargs):
        """torch's `register_forward_pre_hook`. A hook that returns new inputs
        keeps the Keras mask of the first input it replaces (see `hook_masks`)."""
        return hook_masks.bracket(
            self, "forward_pre_hook", nn.Module.register_forward_pre_hook(self, hook, *args, **kwargs)
        )

    def __prepare_scriptable__(self):
        """`torch.jit.script` calls this first: say plainly that TorchScript cannot compile a Keras layer
        (its call is the Keras pipeline: `*args, **kwargs`, masks, Python objects) instead of a
        TorchScript frontend error inside kerasish's code."""
        raise RuntimeError(
            f"torch.jit.script cannot compile the kerasish layer '{self.name}' ({type(self).__name__}). "
            "Use torch.compile(model), torch.export.export / model.export(path, format=\"torch\"), or "
            "torch.jit.trace(model, example_inputs) for a TorchScript module."
        )

    def _apply(self, fn, recurse=True):
        """`.to()`, `.half()`, `.cuda()`...: see `layer_moves.apply`."""
        return layer_moves.apply(self, fn, recurse, super()._apply)

    def _constant_buffer_value(self, name):
        """The value of the non-persistent buffer `name`, computed again from the layer's config (a
        tensor or a Python scalar); None when the layer cannot. Used after `to_empty()`."""
        return None

    def extra_repr(self) -> str:
        try:
            config = self.get_config()
        except NotImplementedError:
            config = {"name": self.name}
        skip = ("dtype", "trainable", "quantization_config")
        parts = [f"{k}={v!r}" for k, v in config.items() if k not in skip and v is not None and not isinstance(v, dict)]
        if self.compute_dtype != "float32":
            parts.append(f"dtype_policy={self._dtype_policy.name!r}")
        if not self.built:
            parts.append("input_shape=?")
            return ", ".join(parts)
        shape = self._build_input_shape
        if shape is not None:
            parts.append(f"input_shape={shape}")
        own = [(k, v) for k, v in list(self._parameters.items()) + list(self._buffers.items()) if v is not None]
        parts.extend(f"{k}={tuple(v.shape)}" for k, v in own)
        return ", ".join(parts)

    def __repr__(self):
        return nn.Module.__repr__(self)

    def __deepcopy__(self, memo):
        """`copy.deepcopy`: the copy Python's default protocol makes; an unbuilt
        copy also remembers its original weakly (see `lazy_weights`:
        pairing it with that original once built fails loudly). Reached
        through a wrapper that forwards attribute reads (`torch.compile`'s
        OptimizedModule), the wrapper is copied, as torch copies it around
        its own modules."""
        caller = sys._getframe(1)
        wrapper = caller.f_locals.get("x") if caller.f_code is copy.deepcopy.__code__ else None
        if wrapper is not None and wrapper is not self and not isinstance(wrapper, Layer):
            # `copy.deepcopy(torch.compile(layer))`: the OptimizedModule forwards attribute reads, this
            # method's too, to the layer; torch copies the wrapper (a compiled copy of a copy of the
            # module), not the module alone, which gave an uncompiled copy
            return copy._reconstruct(wrapper, memo, *wrapper.__reduce_ex__(4))
        new = copy._reconstruct(self, memo, *self.__reduce_ex__(4))
        lazy_weights.remember_source(new, self)
        return new

    def __getstate__(self):
        state = nn.Module.__getstate__(self)
        state.pop("_copied_from", None)  # (a weak reference: neither picklable nor meaningful elsewhere)
        state.pop("_weight_anchor", None)  # (derived again with the plan)
        return state

    def __setstate__(self, state):
        nn.Module.__setstate__(self, state)
        if "_plain" in self.__dict__:
            # derived again on the next call (a layer pickled by an older version holds another form)
            self.__dict__["_plain"] = None
            self.__dict__.pop("_fast_spec", None)

    # Keras 2 name; same object in Keras 3
    @property
    def stateful(self) -> bool:
        return self.__dict__.get("_stateful", False)

    @stateful.setter
    def stateful(self, value):
        self.__dict__["_stateful"] = bool(value)


Layer.build = _wrap_build(Layer.__dict__["build"])


def _build_outside_the_trace(layer, inputs, call=None) -> None:
    """The first call's build under `torch.compile` of a model or a layer with sublayers (compiled before
    its first call, torch's habit): run eagerly, at a graph break, as dynamo initializes torch's own lazy
    modules outside the graph. Traced, a model's build (which makes an `InputLayer` and sublayers) failed
    inside dynamo with an unrelated error; the calls after it trace the built model."""
    with BUILD_LOCK:
        if not layer.__dict__["built"]:
            layer._build_on_first_call(inputs, call)


_FULLGRAPH_BUILD = (
    "a kerasish layer or model builds its weights on its first call, outside the graph: under "
    "torch.compile(fullgraph=True) call it once (or `model.build(input_shape)`) before compiling"
)
try:  # (torch >= 2.7 shows a reason in the graph-break message)
    _build_outside_the_trace = torch.compiler.disable(_build_outside_the_trace, reason=_FULLGRAPH_BUILD)
except TypeError:
    _build_outside_the_trace = torch.compiler.disable(_build_outside_the_trace)


def _populate_argument_masks(arg_masks, args, kwargs):
    """Keras 3's rule for a call with more than one tensor argument: each argument `<name>` whose
    `<name>_mask` the signature takes (and the caller left None) gets the mask its tensor carries."""
    values = {name: (args[position] if position < len(args) else kwargs.get(name)) for position, name in arg_masks}
    tensors = sum(isinstance(v, torch.Tensor) for v in args) + sum(
        isinstance(v, torch.Tensor) for k, v in kwargs.items() if not k.endswith("_mask") and k != "mask")
    if tensors < 2:
        return
    for name, value in values.items():
        key = f"{name}_mask"
        if kwargs.get(key) is None and value is not None:
            mask = tree.get_mask(value)
            if mask is not None:
                kwargs[key] = mask


_is_compiling = torch.compiler.is_compiling

# a kerasish layer registered under a user's torch module starts in training mode, as torch modules do
torch_parent_mode.install()
