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

import functools
import inspect
import types

import torch
from torch import nn

from kerasish import dtype_policies
from kerasish.layers import call_context as ctx
from kerasish.layers import input_checks
from kerasish.layers import layer_weights
from kerasish.layers.input_spec import InputSpec
from kerasish.layers.input_spec import assert_input_compatibility
from kerasish.layers.layer_config import LayerConfigMixin
from kerasish.layers.layer_graph import LayerGraphMixin
from kerasish.layers.layer_losses import LayerLossesMixin
from kerasish.layers.layer_weights import LayerWeightsMixin
from kerasish.utils import naming
from kerasish.utils import tree

# Keras layer kwargs accepted by every layer (Keras 2 and Keras 3 spellings).
_ALLOWED_KWARGS = frozenset(
    {"input_shape", "input_dim", "batch_size", "batch_input_shape", "weights", "implementation", "input_dtype"}
)
# Attributes nn.Module.__call__ reads first: missing means __init__ was skipped.
# Attributes that decide whether a call can take the hot path.
_PLAIN_KEYS = frozenset({"built", "supports_masking", "activity_regularizer", "dynamic", "_initial_weights"})
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
        device = ctx.BUILD_DEVICE[0]
        if device is None:
            device = d.get("_device_hint")
        previous_device = ctx.BUILD_DEVICE[0]
        ctx.BUILD_DEVICE[0] = device
        try:
            with naming.name_scope(self.name):
                out = build(self, *args, **kwargs)
        finally:
            ctx.BUILD_DEVICE[0] = previous_device
            d["_in_build"] = False
        d["built"] = True
        if args:
            d["_build_input_shape"] = args[0]
        self._update_plain()
        return out

    wrapped._kerasish_build_wrapper = True
    return wrapped


class Layer(LayerWeightsMixin, LayerLossesMixin, LayerGraphMixin, LayerConfigMixin, nn.Module):
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
    call; otherwise `module.training`. Layers start in inference mode, as in
    Keras (unlike torch modules, which start in training mode).

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
    _call_has_mask = False
    _call_first_arg = "inputs"
    _has_compute_mask = False
    _init_signature = None
    # True on layers whose math needs floats (Dense, Conv, RNN, norms): an
    # integer/bool input tensor is cast to the compute dtype, as Keras's ops promote it
    _float_inputs = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "build" in cls.__dict__ and not getattr(cls.__dict__["build"], "_kerasish_build_wrapper", False):
            cls.build = _wrap_build(cls.__dict__["build"])
        if "forward" not in cls.__dict__ and cls.forward is Layer.forward:
            cls.forward = _forward_for(cls)
        call = cls.call
        params = inspect.signature(call).parameters
        names = list(params)[1:]
        var_kw = any(p.kind == p.VAR_KEYWORD for p in params.values())
        cls._call_has_training = "training" in params or var_kw
        cls._call_has_mask = "mask" in params
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
        d["_losses"] = []
        d["_callable_losses"] = []
        d["_no_autocast"] = set()  # weights created with add_weight(autocast=False)
        d["_metrics"] = []
        d["_inbound_nodes"] = []
        d["_device_hint"] = None
        d["_weight_cast"] = None
        d["_build_input_shape"] = None
        d["_plain"] = False
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
        # Keras layers start in inference mode
        self.training = False
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
        cast = d["_weight_cast"]
        if cast is not None and value is not None and value.dtype != cast and value.is_floating_point():
            if name not in d["_no_autocast"]:
                return value.to(cast)
        return value

    def __setattr__(self, name, value):
        d = self.__dict__
        if "_keras_init" not in d and isinstance(value, (nn.Module, torch.Tensor)):
            raise _super_init_error(type(self))
        if isinstance(value, torch.Tensor) and self._track_variable_attr(name, value):
            return
        if isinstance(value, (list, tuple, dict)) and not name.startswith("_"):
            from kerasish.layers.tracking import track_container

            modules = d.get("_modules")
            if modules is not None and type(modules.get(name)).__name__ == "_ListSlots":
                del modules[name]  # the attribute is being replaced
            value = track_container(value, self, name)
            if isinstance(value, list):
                object.__setattr__(self, name, value)  # a list; its layers live in _modules[name]
                return
        nn.Module.__setattr__(self, name, value)
        if name in _PLAIN_KEYS:
            self._update_plain()

    def __delattr__(self, name):
        nn.Module.__delattr__(self, name)

    # ---------------------------------------------------------------- dtypes
    def _set_dtype_fast_path(self):
        d = self.__dict__
        policy = d["_dtype_policy"]
        d["_compute_torch_dtype"] = policy.compute_torch_dtype
        d["_cast_inputs"] = d["autocast"] and policy.compute_torch_dtype.is_floating_point
        d["_mixed"] = policy.compute_torch_dtype != policy.variable_torch_dtype
        self._update_plain()

    @property
    def dtype_policy(self):
        return self._dtype_policy

    @dtype_policy.setter
    def dtype_policy(self, value):
        self.__dict__["_dtype_policy"] = dtype_policies.get(value)
        self._set_dtype_fast_path()

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
        self._update_plain()

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
        """The Keras `__call__` pipeline (see the module docstring)."""
        d = self.__dict__
        if d["_plain"] and args:
            # Hot path: a built layer with no input_spec, masking, activity
            # regularizer or mixed policy, called on a single tensor.
            x = args[0]
            if type(x) is torch.Tensor and (
                x.dtype is d["_compute_torch_dtype"] or not (x.is_floating_point() or self._float_inputs or x.is_complex())
            ):
                spec = d["_fast_spec"]
                if spec is not None:
                    ndim, min_ndim, max_ndim, axes = spec
                    n = x.dim()
                    if (
                        (ndim is not None and n != ndim)
                        or (min_ndim is not None and n < min_ndim)
                        or (max_ndim is not None and n > max_ndim)
                        or (axes and not _axes_match(x, n, axes))
                    ):
                        assert_input_compatibility(d["_input_spec"], x, d["name"])  # raises
                stack = ctx.CALL_STACK
                training = kwargs.get("training") if kwargs else None
                if training is None:
                    training = stack[-1] if stack else d["training"]
                if self._call_has_training:
                    kwargs["training"] = training
                elif kwargs and "training" in kwargs:
                    del kwargs["training"]
                if kwargs and "mask" in kwargs:  # this class's call takes no mask
                    del kwargs["mask"]
                if not stack and ctx.LOSS_LAYERS:
                    ctx.clear_call_losses()
                if d["_modules"]:
                    # sublayers inherit this call's training mode
                    stack.append(training)
                    try:
                        outputs = self.call(*args, **kwargs)
                    finally:
                        stack.pop()
                else:
                    outputs = self.call(*args, **kwargs)
                if outputs is None:
                    self._raise_none_output()
                if d["supports_masking"]:
                    mask = tree.get_mask(x)
                    if mask is not None:
                        tree.set_mask(outputs, mask)
                return outputs
        return self._keras_call(args, kwargs)

    def _raise_none_output(self):
        raise ValueError(
            f"Layer '{self.name}': the `call()` method of {type(self).__name__} returned None, "
            "an invalid value. It must return a tensor or a nested structure of tensors."
        )

    def _update_plain(self):
        """Recomputes whether calls can take the hot path in `forward`."""
        d = self.__dict__
        spec = d.get("_input_spec")
        fast_spec = None
        if isinstance(spec, (list, tuple)) and len(spec) == 1:
            spec = spec[0]
        if isinstance(spec, InputSpec) and spec.dtype is None and spec.shape is None and not spec.name and not spec.allow_last_axis_squeeze:
            fast_spec = (spec.ndim, spec.min_ndim, spec.max_ndim, tuple((a, v) for a, v in spec.axes.items() if v is not None))
        d["_fast_spec"] = fast_spec
        d["_plain"] = bool(
            d.get("built")
            and (spec is None or fast_spec is not None)
            and d.get("activity_regularizer") is None
            and not d.get("dynamic")
            and not d.get("_mixed")
            and not type(self)._has_compute_mask
            and not self._call_has_mask
            and d.get("_initial_weights") is None
        )

    def _keras_call(self, args, kwargs):
        d = self.__dict__
        if args:
            inputs = args[0]
        else:
            first = self._call_first_arg
            if first not in kwargs:
                raise ValueError(
                    f"Layer '{d['name']}': the first argument to `Layer.call` must always be passed "
                    f"(as a positional argument or as `{first}=`)."
                )
            inputs = kwargs.pop(first)
            args = (inputs,)
        if type(inputs) is not torch.Tensor:
            if tree.any_symbolic(inputs) or tree.any_symbolic_args(args, kwargs):
                from kerasish.models import symbolic_ops

                return symbolic_ops.symbolic_layer_call(self, args, kwargs)
            input_checks.check_raw_inputs(self, inputs)
            inputs = tree.convert_inputs(inputs)
            args = (inputs, *args[1:])
        elif inputs.dtype.is_complex:
            input_checks.check_complex(self, inputs)
        if not d["built"]:
            self._build_on_first_call(inputs)
        if d["_input_spec"] is not None:
            assert_input_compatibility(d["_input_spec"], inputs, d["name"])
        if d["_cast_inputs"]:
            cast = tree.cast_floating(inputs, d["_compute_torch_dtype"])
            if cast is not inputs:
                inputs = cast
                args = (inputs, *args[1:])
        if self._float_inputs and type(inputs) is torch.Tensor and not inputs.is_floating_point():
            inputs = _cast_int_input(inputs, d["_compute_torch_dtype"])
            args = (inputs, *args[1:])
        # training: explicit argument > the outer call > module.training
        stack = ctx.CALL_STACK
        training = kwargs.get("training")
        if training is None:
            training = stack[-1] if stack else d["training"]
        if self._call_has_training:
            kwargs["training"] = training
        elif "training" in kwargs:
            del kwargs["training"]
        if not self._call_has_mask and "mask" in kwargs:
            # Keras drops `mask=` for a call() that does not take it
            kwargs.pop("mask")
        if self._call_has_mask and kwargs.get("mask") is None:
            mask = tree.get_mask(inputs)
            if mask is not None:
                kwargs["mask"] = mask
        if not stack and ctx.LOSS_LAYERS:
            ctx.clear_call_losses()
        stack.append(training)
        if d["_mixed"]:
            d["_weight_cast"] = d["_compute_torch_dtype"]
        scope = naming._name_scope
        scope.append(d["name"])  # sublayers built inside get "outer/inner/kernel" paths
        try:
            if d["dynamic"]:
                outputs = _eager_call(self, args, kwargs)
            else:
                outputs = self.call(*args, **kwargs)
        finally:
            scope.pop()
            stack.pop()
            d["_weight_cast"] = None
        if outputs is None:
            self._raise_none_output()
        if d["activity_regularizer"] is not None:
            self._add_activity_loss(outputs)
        if self._has_compute_mask or (d["supports_masking"] and self._call_has_mask):
            previous = kwargs.get("mask") if self._call_has_mask else tree.get_mask(inputs)
            if self._has_compute_mask or previous is not None:
                tree.set_mask(outputs, self.compute_mask(inputs, previous))
        elif d["supports_masking"]:
            previous = tree.get_mask(inputs)
            if previous is not None:
                tree.set_mask(outputs, previous)
        return outputs

    def _build_on_first_call(self, inputs):
        shapes = tree.map_shapes(inputs)
        device = tree.first_device(inputs)
        previous = ctx.BUILD_DEVICE[0]
        ctx.BUILD_DEVICE[0] = device
        try:
            self.build(shapes)
        finally:
            ctx.BUILD_DEVICE[0] = previous
        d = self.__dict__
        d["built"] = True
        if d["_build_input_shape"] is None:
            d["_build_input_shape"] = shapes
        if d["_initial_weights"] is not None:
            self.set_weights(d["_initial_weights"])
            d["_initial_weights"] = None
        self._update_plain()

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
    def _apply(self, fn, recurse=True):
        """`.to()`, `.half()`, `.cuda()`...: buffers keep their Keras class, and
        a float dtype change (`.half()`, `.to(torch.bfloat16)`) becomes the
        layer's dtype policy so inputs are cast to match the weights."""
        old_buffers = dict(self._buffers)
        super()._apply(fn, recurse)
        layer_weights.rewrap_buffers(self, old_buffers)
        probe = fn(torch.empty(0))
        d = self.__dict__
        d["_device_hint"] = probe.device
        if probe.dtype != torch.float32 and probe.dtype.is_floating_point:
            if self._dtype_policy.variable_torch_dtype != probe.dtype:
                self.dtype_policy = dtype_policies.DTypePolicy(probe.dtype)
        elif probe.dtype == torch.float32 and self._dtype_policy.variable_torch_dtype != torch.float32:
            self.dtype_policy = dtype_policies.DTypePolicy("float32")
        return self

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

    def __setstate__(self, state):
        nn.Module.__setstate__(self, state)

    # Keras 2 name; same object in Keras 3
    @property
    def stateful(self) -> bool:
        return self.__dict__.get("_stateful", False)

    @stateful.setter
    def stateful(self, value):
        self.__dict__["_stateful"] = bool(value)


Layer.build = _wrap_build(Layer.__dict__["build"])


def _forward_for(cls):
    """`Layer.forward` with a code object of the class's own.

    torch.compile keys its caches and its automatic-dynamic-shape memory by
    code object. Sharing `Layer.forward`'s code across every layer class would
    make the compiled code of one model count against another's recompile
    limit and mark dimensions dynamic because *another* model saw other
    shapes; hand-written torch modules each have their own `forward`, and so
    does every kerasish layer class.
    """
    base = Layer.forward
    # unique per class object (classes defined in a function share a qualname)
    name = f"{cls.__qualname__}.forward@{id(cls):x}"
    code = base.__code__.replace(co_name=name, co_qualname=name)
    fn = types.FunctionType(code, base.__globals__, "forward", base.__defaults__, base.__closure__)
    fn.__doc__ = base.__doc__
    fn.__qualname__ = f"{cls.__qualname__}.forward"
    fn.__kwdefaults__ = base.__kwdefaults__
    return fn


def _cast_int_input(x, dtype):
    """An integer/bool tensor as `dtype`, keeping its Keras mask."""
    mask = getattr(x, "_keras_mask", None)
    x = x.to(dtype)
    if mask is not None:
        x._keras_mask = mask
    return x


def _axes_match(x, n, axes) -> bool:
    shape = x.shape
    for axis, value in axes:
        if not -n <= axis < n or shape[axis] != value:
            return False
    return True


def _eager_call(layer, args, kwargs):
    return layer.call(*args, **kwargs)


# `dynamic=True`: the layer's call is never traced by torch.compile.
try:
    _eager_call = torch._dynamo.disable(_eager_call, recursive=True)  # noqa: F811
except Exception:  # pragma: no cover - dynamo missing on exotic builds
    pass
