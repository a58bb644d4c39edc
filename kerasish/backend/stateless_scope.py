"""`keras.StatelessScope` and `keras.SymbolicScope`.

kerasish variables are torch tensors that layers pass straight to torch
functions, so a stateless scope cannot swap a value behind a getter as Keras
does. It installs a `TorchFunctionMode` instead: while the scope is open,

- every torch function (or tensor method) given a mapped variable receives
  the mapped value (gradients flow to the value, not to the variable);
- an in-place op on any variable (`assign`, `assign_add`, `copy_`, `add_`,
  `+=`, `_foreach_*_`, BatchNormalization's moving-statistics update) is
  applied to a copy of the variable's current value and recorded: the
  variable is left untouched and `scope.get_current_value(variable)` returns
  the new value.
"""

from __future__ import annotations

import torch
from torch.overrides import TorchFunctionMode
from torch.utils import _pytree as pytree

from kerasish.layers import call_context as ctx


def _variable_cls():
    from kerasish.variables import Variable

    return Variable


def _is_inplace(func) -> bool:
    name = getattr(func, "__name__", "")
    if name.startswith("__i") and name.endswith("__") and name not in ("__init__", "__index__", "__int__",
                                                                         "__invert__", "__iter__"):
        return True  # __iadd__, __imul__, ...
    return name.endswith("_") and not name.endswith("__")


# attributes of the variable object itself, not of its value
_OWN_ATTRIBUTES = {
    getattr(torch.Tensor, name).__get__
    for name in ("requires_grad", "grad", "is_leaf", "grad_fn", "_version", "_base", "_cdata")
    if hasattr(getattr(torch.Tensor, name, None), "__get__")
}


class _StatelessMode(TorchFunctionMode):
    def __init__(self, scope):
        super().__init__()
        self.scope = scope
        self.variable = _variable_cls()

    def _current(self, var):
        value = self.scope.state_mapping.get(id(var))
        return torch.Tensor.detach(var) if value is None else value

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _OWN_ATTRIBUTES:
            return func(*args, **kwargs)
        variable = self.variable
        if args and _is_inplace(func):
            target = args[0]
            targets = target if isinstance(target, (list, tuple)) else [target]
            if targets and all(isinstance(t, variable) for t in targets):
                copies = [self._current(t).clone() for t in targets]
                new_target = copies if isinstance(target, (list, tuple)) else copies[0]
                rest = pytree.tree_map(self._swap, (args[1:], kwargs))
                func(new_target, *rest[0], **rest[1])
                for var, value in zip(targets, copies):
                    self.scope.state_mapping[id(var)] = value
                return target
        args, kwargs = pytree.tree_map(self._swap, (args, kwargs))
        return func(*args, **kwargs)

    def _swap(self, x):
        if isinstance(x, self.variable):
            value = self.scope.state_mapping.get(id(x))
            if value is not None:
                return value
        return x


class StatelessScope:
    """A scope in which variables read given values and are never updated.

    Args:
        state_mapping: Optional list of `(variable, value)` pairs: inside the
            scope the variable reads `value` (cast to its dtype; same shape).
        collect_losses: When `True`, losses added by layers called inside
            (`add_loss`) are also collected in `scope.losses`. Defaults to
            False.
        initialize_variables: Accepted for Keras compatibility (kerasish
            variables always hold a value). Defaults to True.

    Example:
        >>> mapping = [(v, torch.ones_like(v)) for v in model.weights]
        >>> with keras.StatelessScope(mapping) as scope:
        ...     y = model(x)              # computed with all-ones weights
        >>> scope.get_current_value(model.weights[0])

    Updates made inside (`variable.assign(...)`, an optimizer step, moving
    statistics) are collected, not applied: read them with
    `get_current_value(variable)` (None for a variable neither mapped nor
    updated).
    """

    def __init__(self, state_mapping=None, collect_losses=False, initialize_variables=True):
        variable = _variable_cls()
        self.collect_losses = collect_losses
        self.initialize_variables = initialize_variables
        self.losses = []
        self.state_mapping = {}
        self._refs = []  # keep mapped variables alive while their id() is a key
        for k, v in state_mapping or []:
            if not isinstance(k, variable):
                raise ValueError(
                    "Invalid reference variable in StatelessScope: all keys in argument `mapping` must be "
                    f"Variable instances. Received instead: {k}"
                )
            if not isinstance(v, torch.Tensor):
                v = torch.as_tensor(v)
            else:
                v = torch.Tensor.detach(v) if isinstance(v, variable) else v
            v = v.to(dtype=k.dtype, device=k.device)
            if tuple(v.shape) != tuple(k.shape):
                raise ValueError(
                    "Invalid variable value in StatelessScope: all values in argument `mapping` must be "
                    "tensors with a shape that matches the corresponding variable shape. For variable "
                    f"{k.path}, received invalid value with shape {tuple(v.shape)} (variable shape "
                    f"{tuple(k.shape)})."
                )
            self.state_mapping[id(k)] = v
            self._refs.append(k)
        self._mode = None
        self._previous = None

    def __enter__(self):
        state = ctx.state()
        self._previous = state.stateless
        state.stateless = self
        self._mode = _StatelessMode(self)
        self._mode.__enter__()
        return self

    def __exit__(self, *exc):
        try:
            self._mode.__exit__(*exc)
        finally:
            ctx.state().stateless = self._previous
        return False

    def add_loss(self, loss):
        self.losses.append(loss)

    def add_update(self, update):
        variable, value = update
        self._refs.append(variable)
        self.state_mapping[id(variable)] = value

    def get_current_value(self, variable):
        """The value `variable` has in this scope (mapped or updated), or None."""
        return self.state_mapping.get(id(variable))


def in_stateless_scope() -> bool:
    return ctx.state().stateless is not None


def get_stateless_scope():
    return ctx.state().stateless


class SymbolicScope:
    """Marks the symbolic stage (shape inference): while it is open,
    `add_loss` / `add_metric` record nothing, as during kerasish's own
    shape inference (Keras's `SymbolicScope`)."""

    def __enter__(self):
        state = ctx.state()
        self._previous = state.symbolic
        state.symbolic = True
        return self

    def __exit__(self, *exc):
        ctx.state().symbolic = self._previous
        return False


def in_symbolic_scope() -> bool:
    return bool(ctx.state().symbolic)


def stateless_call(layer, trainable_variables, non_trainable_variables, *args, return_losses=False, **kwargs):
    """`layer.call(*args, **kwargs)` with the given variable values, in a
    `StatelessScope` (see `Layer.stateless_call`)."""
    name = type(layer).__name__
    if not layer.built:
        raise ValueError(
            f"To call stateless_call, {name} must be built (i.e. its variables must have been already created). "
            "You can build it by calling it on some data."
        )
    for kind, given, own in (("trainable_variables", trainable_variables, layer.trainable_variables),
                             ("non_trainable_variables", non_trainable_variables, layer.non_trainable_variables)):
        if len(given) != len(own):
            raise ValueError(
                f"Argument `{kind}` must be a list of tensors corresponding 1:1 to {name}().{kind}. "
                f"Received list with length {len(given)}, but expected {len(own)} variables."
            )
    own_non_trainable = layer.non_trainable_variables
    mapping = [*zip(layer.trainable_variables, trainable_variables), *zip(own_non_trainable, non_trainable_variables)]
    losses = None
    with StatelessScope(state_mapping=mapping, collect_losses=return_losses) as scope:
        # through the layer pipeline (not `call` alone, as Keras does): the
        # training mode and weight casts reach the sublayers the kerasish way
        outputs = layer(*args, **kwargs)
        if return_losses:
            losses = list(scope.losses)
    new_non_trainable = [scope.get_current_value(v) for v in own_non_trainable]
    if return_losses:
        return outputs, new_non_trainable, losses
    return outputs, new_non_trainable
