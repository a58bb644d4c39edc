"""Keras variables that are real torch tensors.

A trainable Keras weight is a `torch.nn.Parameter`; a non-trainable one is a
tensor registered as a module buffer. Both are instances of `Variable`, a
tensor subclass that adds the Keras variable API (`assign`, `assign_add`,
`assign_sub`, `numpy()`, `value`, `name`, `path`, `trainable`, `regularizer`,
`constraint`) without changing how torch computes with them: the subclass
disables `__torch_function__`, so every op on a variable runs as on a plain
tensor and returns a plain tensor.

Differences from Keras worth knowing:
- `variable.dtype` is the torch dtype (`torch.float32`), as torch code relies on.
- `variable.name` follows Keras 3 ("kernel"); the Keras 2 form is
  `variable.path + ":0"`.
"""

from __future__ import annotations

import copy
import weakref

import numpy as np
import torch
from torch._C import _disabled_torch_function_impl

from kerasish.backend import dtypes
from kerasish.layers import call_context as ctx
from kerasish.utils import naming


def forget_autocast_casts() -> None:
    """Drops `torch.autocast`'s cached low-precision copies of the weights.

    Inside one autocast region torch casts each trainable parameter once and
    reuses that copy until the region exits, so an in-place write (an
    optimizer step, `assign`, `set_weights`) made inside the region would be
    invisible to every later forward in it: a `fit` wrapped in
    `torch.autocast` trained on its first step's weights forever. Keras 3
    reads the new values; every kerasish weight write calls this.
    """
    if not torch.compiler.is_compiling():
        torch.clear_autocast_cache()


def _snapshot(cpu: torch.Tensor, variable: torch.Tensor) -> torch.Tensor:
    """`cpu` (the variable's value on the CPU) as a tensor that owns its memory:
    a CPU variable's value is its own storage, so it is cloned; `.cpu()` of a
    device variable is already a fresh copy. A `variable.detach()` view is the
    torch idiom for a view of the storage (`w.detach().numpy()`): it shares.
    The snapshot is C-contiguous, as Keras's arrays are, also for a weight
    stored in another memory order (`kerasish.layers.weight_layout`)."""
    if variable.__dict__.get("_detached"):
        return cpu  # (a `detach()` view converts as a torch tensor does: sharing its storage)
    if variable.device.type != "cpu":
        return cpu.contiguous()
    return cpu.clone(memory_format=torch.contiguous_format)

_AGGREGATIONS = (None, "none", "mean", "sum", "only_first_replica")
_SYNCHRONIZATIONS = (None, "none", "on_read", "on_write", "auto")


def check_aggregation(aggregation, synchronization) -> tuple:
    """`(aggregation, synchronization)` validated and standardized as Keras 3's
    `Variable` does (None becomes "none"; tf.keras 2 enum members are read
    by their name)."""
    aggregation = getattr(aggregation, "name", aggregation)
    synchronization = getattr(synchronization, "name", synchronization)
    if isinstance(aggregation, str):
        aggregation = aggregation.lower()
    if isinstance(synchronization, str):
        synchronization = synchronization.lower()
    if aggregation not in _AGGREGATIONS:
        raise ValueError(
            "Invalid value for argument `aggregation`. Expected one of `None`, `'none'`, `'mean'`, `'sum'`, "
            f"`'only_first_replica'`. Received: aggregation={aggregation}"
        )
    if synchronization not in _SYNCHRONIZATIONS:
        raise ValueError(
            "Invalid value for argument `synchronization`. Expected one of `None`, `'none'`, `'on_read'`, "
            f"`'on_write'`, `'auto'`. Received: synchronization={synchronization}"
        )
    return aggregation or "none", synchronization or "none"


class VariableSynchronization:
    """Accepted for `add_weight(synchronization=...)` compatibility."""

    AUTO = "auto"
    NONE = "none"
    ON_WRITE = "on_write"
    ON_READ = "on_read"


class VariableAggregation:
    """Accepted for `add_weight(aggregation=...)` compatibility."""

    NONE = "none"
    SUM = "sum"
    MEAN = "mean"
    ONLY_FIRST_REPLICA = "only_first_replica"


def _initial_tensor(initial_value, shape, dtype) -> torch.Tensor:
    if callable(initial_value) and not isinstance(initial_value, torch.Tensor):
        if shape is None:
            raise ValueError(
                "When creating a Variable from an initializer, the `shape` "
                f"argument should be specified. Received: initializer={initial_value} and shape={shape}"
            )
        value = initial_value(tuple(shape), dtype=dtype if dtype is not None else dtypes.floatx())
    elif isinstance(initial_value, torch.Tensor):
        value = initial_value.detach()
    else:
        value = torch.as_tensor(np.asarray(initial_value))
        if dtype is None and value.is_floating_point():
            value = value.to(dtypes.to_torch_dtype(dtypes.floatx()))
    if dtype is not None:
        value = value.to(dtypes.to_torch_dtype(dtype))
    if shape is not None and tuple(value.shape) != tuple(shape):
        raise ValueError(
            f"Initial value has shape {tuple(value.shape)}, which is incompatible "
            f"with the requested shape={tuple(shape)}."
        )
    # own storage, never an alias of the caller's array
    return value.clone() if value.data_ptr() != 0 else value


class Variable(torch.Tensor):
    """A Keras variable: `keras.Variable(initial_value, trainable=True, name=None, dtype=None)`.

    Returns a `TrainableVariable` (an `nn.Parameter`) or a
    `NonTrainableVariable` (a buffer-to-be). Set as an attribute of a Layer, it
    is tracked as a weight, as in Keras.

    Args:
        initial_value: a tensor, array, number, or an initializer callable
            (then `shape` is required).
        trainable: whether gradients flow to it. Defaults to True.
        name: the variable's name. Defaults to a fresh "variable",
            "variable_1", ... (one counter per session, as Keras's `auto_name`).
        dtype: its dtype. Defaults to the dtype of `initial_value` (floats:
            `floatx()`).
        shape: the shape, required when `initial_value` is a callable.

    Example:
        >>> v = keras.Variable(np.zeros((2,)), name="total", trainable=False)
        >>> v.assign_add(torch.ones(2)).numpy()
        array([1., 1.], dtype=float32)
    """

    __torch_function__ = _disabled_torch_function_impl

    def __new__(
        cls,
        initial_value=None,
        trainable=True,
        name=None,
        dtype=None,
        shape=None,
        *,
        initializer=None,
        regularizer=None,
        constraint=None,
        aggregation="none",
        synchronization="auto",
        **kwargs,
    ):
        aggregation, synchronization = check_aggregation(aggregation, synchronization)
        if initial_value is None:
            initial_value = initializer
        if initial_value is None:
            raise ValueError("A Variable needs an `initial_value` (or `initializer` and `shape`).")
        if cls is Variable:
            cls = TrainableVariable if trainable else NonTrainableVariable
        data = _initial_tensor(initial_value, shape, dtype)
        if cls is NonTrainableVariable and trainable:
            trainable = False
        scope_device = ctx.state().device  # `keras.device(...)`
        if scope_device is not None and data.device != scope_device:
            data = data.to(scope_device)
        var = torch.Tensor._make_subclass(cls, data, bool(trainable) and data.is_floating_point())
        d = var.__dict__
        # Keras: `name or auto_name("variable")`, so unnamed weights get distinct paths
        d["_kname"] = name if name else naming.auto_name("variable")
        d["_kpath"] = naming.current_path(d["_kname"])
        d["regularizer"] = regularizer
        d["constraint"] = constraint
        d["_auto_key"] = False
        d["_autocast"] = kwargs.get("autocast", True)
        if aggregation != "none":
            d["_aggregation"] = aggregation
        if synchronization != "auto":
            d["_synchronization"] = synchronization
        if callable(initial_value) and not isinstance(initial_value, torch.Tensor):
            d["_initializer"] = initial_value  # (for `Layer.reset_parameters`)
        return var

    def __init__(self, *args, **kwargs):  # the work happens in __new__
        pass

    # -- Keras variable API -------------------------------------------------
    @property
    def name(self) -> str:
        return self.__dict__.get("_kname", "variable")

    @property
    def path(self) -> str:
        return self.__dict__.get("_kpath", self.name)

    @property
    def value(self) -> torch.Tensor:
        """The current value (the tensor itself, for use in computations)."""
        return self

    @property
    def aggregation(self) -> str:
        """How a distributed variable is aggregated across replicas (Keras 3):
        "none" (the default), "mean", "sum" (metric variables) or
        "only_first_replica" (an optimizer's iteration and learning rate).
        kerasish's `keras.distribution` reduces by its own rules; the value is
        kept for Keras code that reads it."""
        return self.__dict__.get("_aggregation", "none")

    @property
    def synchronization(self) -> str:
        """When a distributed variable is synchronized (Keras 3): "auto" (the
        default), "on_read" (metric variables), "on_write" or "none"."""
        return self.__dict__.get("_synchronization", "auto")

    @property
    def overwrite_with_gradient(self) -> bool:
        """Whether an optimizer overwrites this variable with its gradient
        instead of a descent step (float8 scales, as Keras 3). Defaults to
        False."""
        return self.__dict__.get("overwrite_with_gradient", False)

    @overwrite_with_gradient.setter
    def overwrite_with_gradient(self, value) -> None:
        if not isinstance(value, bool):
            raise TypeError(f"`overwrite_with_gradient` must be a boolean. Received: {value}")
        self.__dict__["overwrite_with_gradient"] = value

    @property
    def trainable(self) -> bool:
        return self.requires_grad

    @trainable.setter
    def trainable(self, value: bool) -> None:
        if value and not isinstance(self, torch.nn.Parameter):
            raise ValueError(
                f"Variable '{self.path}' is non-trainable (a registered buffer) and cannot "
                "become trainable; create it with `trainable=True` instead."
            )
        self.requires_grad_(bool(value))

    def numpy(self, *, force: bool = False) -> np.ndarray:
        """The value as a NumPy array (torch's signature, `force` accepted).

        Keras semantics, not torch's: a variable that requires grad or lives
        on an accelerator converts without `force=True`, and the array is a
        snapshot (a copy), so writing into it never changes the weight and the
        next update never changes an array already taken. (torch's `numpy()`
        refuses a tensor that requires grad; a torch user who wants a view
        of a weight's storage has `variable.detach().numpy()`.)
        """
        out = torch.Tensor.detach(self).cpu()
        if force:
            out = out.resolve_conj().resolve_neg()
        return dtypes.tensor_to_numpy(_snapshot(out, self))  # bfloat16: ml_dtypes.bfloat16, as Keras

    def detach(self):
        """A view of the same storage, cut from the autograd graph, of the
        same Keras class (torch requires this of tensor subclasses: an
        `nn.Parameter(variable)`, as `weight_norm` and other parametrizations
        make, goes through `detach()`). Pickled, the view is a plain tensor,
        so a `state_dict()` loads with `torch.load(weights_only=True)`."""
        if torch.compiler.is_compiling():
            # traced code only computes with the view: keep it a plain tensor (no graph break)
            return torch.Tensor.detach(self)
        out = torch.Tensor._make_subclass(type(self), torch.Tensor.detach(self), False)
        out.__dict__.update(self.__dict__)
        out.__dict__.pop("_is_param", None)
        out.__dict__["_detached"] = True
        return out

    def __array__(self, dtype=None, copy=None):
        if copy is False and not self.__dict__.get("_detached"):
            raise ValueError(
                f"Variable '{self.name}': a NumPy array of a variable is always a copy (as in Keras); "
                "`copy=False` cannot be honoured. Use `variable.detach().numpy()` for a view of its storage."
            )
        out = dtypes.tensor_to_numpy(_snapshot(torch.Tensor.detach(self).cpu(), self))
        if dtype is not None and out.dtype != np.dtype(dtype):
            return out.astype(dtype)
        # `np.array(v)` and `np.asarray(v)` are snapshots, as in Keras: never a view of the live weight
        return out.copy() if copy and self.__dict__.get("_detached") else out

    def _check_assign(self, value) -> torch.Tensor:
        if dtypes.is_bfloat16_array(value):
            value = dtypes.bfloat16_array_to_tensor(value)
        elif not isinstance(value, torch.Tensor):
            value = torch.as_tensor(np.asarray(value))
        if value.shape != self.shape:
            try:
                value = value.expand(self.shape)
            except RuntimeError:
                raise ValueError(
                    f"The shape of the target variable and the shape of the target value in "
                    f"`variable.assign(value)` must match. variable.shape={tuple(self.shape)}, "
                    f"Received: value.shape={tuple(value.shape)}. Target variable: {self.path}"
                ) from None
        return value

    def assign(self, value):
        """Sets the value in place (no gradient is recorded). Returns the variable."""
        value = self._check_assign(value)
        with torch.no_grad():
            self.copy_(value)
        if self.requires_grad:
            forget_autocast_casts()
        return self

    def assign_add(self, delta):
        delta = self._check_assign(delta)
        with torch.no_grad():
            self.add_(delta.to(self.dtype))
        if self.requires_grad:
            forget_autocast_casts()
        return self

    def assign_sub(self, delta):
        delta = self._check_assign(delta)
        with torch.no_grad():
            self.sub_(delta.to(self.dtype))
        if self.requires_grad:
            forget_autocast_casts()
        return self

    # -- copying and pickling keep the class and the Keras metadata ---------
    def _keras_meta(self) -> dict:
        return {k: v for k, v in self.__dict__.items()}

    def __deepcopy__(self, memo):
        if id(self) in memo:
            return memo[id(self)]
        new = _rebuild_variable(type(self), self.data.clone(memory_format=torch.preserve_format), self.requires_grad, {})
        memo[id(self)] = new
        new.__dict__.update(copy.deepcopy(self._keras_meta(), memo))
        return new

    def __reduce_ex__(self, proto):
        d = self.__dict__
        if (d.get("_detached") or d.get("_state_view")) and not d.get("_is_param"):
            # a detached view (e.g. a `state_dict()` value): a plain tensor
            return torch.Tensor._make_subclass(torch.Tensor, self, False).__reduce_ex__(proto)
        meta = self._keras_meta()
        if "<" in getattr(meta.get("_initializer"), "__qualname__", ""):
            # a lambda or a layer's own local initializer (int4 packing): not picklable; a loaded copy's
            # `reset_parameters()` then says it cannot redraw this weight
            meta.pop("_initializer")
        return (_rebuild_variable, (type(self), self.data, self.requires_grad, meta))

    def __repr__(self, *, tensor_contents=None):
        kind = "trainable" if self.requires_grad else "non-trainable"
        return (
            f"<Variable path={self.path}, shape={tuple(self.shape)}, dtype={dtypes.standardize_dtype(self.dtype)}, "
            f"{kind}, value={self.detach().cpu().numpy()!r}>"
        )


def state_view(tensor: torch.Tensor, name: str, path: str) -> "NonTrainableVariable":
    """A non-trainable Keras variable sharing `tensor`'s storage (optimizer state seen through
    `optimizer.variables`). Pickled, it is a plain tensor, as the state itself is. State held in
    another tensor subclass (a sharded DTensor under ModelParallel/FSDP2) is returned as it is."""
    if type(tensor) is not torch.Tensor:
        return tensor
    view = torch.Tensor._make_subclass(NonTrainableVariable, torch.Tensor.detach(tensor), False)
    view.__dict__.update(_kname=name, _kpath=path, regularizer=None, constraint=None, _auto_key=False,
                         _autocast=False, _state_view=True)
    if name in ("iteration", "learning_rate"):  # Keras makes both with aggregation="only_first_replica"
        view.__dict__["_aggregation"] = "only_first_replica"
    return view


def _rebuild_variable(cls, data, requires_grad, meta):
    var = torch.Tensor._make_subclass(cls, data, requires_grad)
    var.__dict__.update(meta)
    return var


class TrainableVariable(Variable, torch.nn.Parameter):
    """A trainable Keras weight: an `nn.Parameter` with the Keras variable API."""

    __torch_function__ = _disabled_torch_function_impl

    def __new__(cls, initial_value=None, trainable=True, name=None, dtype=None, shape=None, **kwargs):
        # `nn.Parameter`'s keywords, as torch code rebuilding a parameter
        # by its class (`type(p)(data=..., requires_grad=...)`) passes them
        if initial_value is None and "data" in kwargs:
            initial_value = kwargs.pop("data")
        if "requires_grad" in kwargs:
            trainable = kwargs.pop("requires_grad")
        return Variable.__new__(cls, initial_value, trainable, name, dtype, shape, **kwargs)


class NonTrainableVariable(Variable):
    """A non-trainable Keras weight (stored as a module buffer)."""

    def __new__(cls, initial_value=None, trainable=False, name=None, dtype=None, shape=None, **kwargs):
        return Variable.__new__(cls, initial_value, False, name, dtype, shape, **kwargs)


def _is_live_variable(t) -> bool:
    """A Variable that is some layer's weight (not a `detach()` view)."""
    return isinstance(t, Variable) and not t.__dict__.get("_detached")


def rewrap_like(new: torch.Tensor, old: torch.Tensor) -> torch.Tensor:
    """Re-attaches the Keras class and metadata of `old` to `new` (after torch
    replaced a buffer by a converted copy, e.g. in `.to()` or `.half()`)."""
    if not isinstance(old, Variable) or new is None or new is old or _is_live_variable(new):
        return new
    cls = type(old)
    requires_grad = new.requires_grad if isinstance(old, torch.nn.Parameter) else False
    return _rebuild_variable(cls, new.detach() if not requires_grad else new.data, requires_grad, old._keras_meta())


# id(old weight) -> (weakref to it, weakref to the Parameter that replaced it in its layer), written by
# `load_state_dict(assign=True)`, so that an optimizer bound to the old one follows (see
# `Optimizer._follow_replaced`). Kept outside the variables' own `__dict__`, which pickles with them;
# keyed by id (tensors compare elementwise), the entry dropped when the old weight is collected.
_REPLACED: dict = {}


def record_replacement(old: torch.Tensor, new: torch.Tensor) -> None:
    """Notes that `new` took `old`'s place as a layer weight."""
    key = id(old)

    def drop(ref):
        held = _REPLACED.get(key)
        if held is not None and held[0] is ref:
            del _REPLACED[key]

    _REPLACED[key] = (weakref.ref(old, drop), weakref.ref(new))


def replacement_of(old: torch.Tensor):
    """The weight that replaced `old` (following repeated replacements), or None."""
    out = None
    while _REPLACED:
        held = _REPLACED.get(id(old))
        if held is None or held[0]() is not old:
            break
        new = held[1]()
        if new is None:
            break
        out = old = new
    return out
