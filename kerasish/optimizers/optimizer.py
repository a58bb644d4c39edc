"""`keras.optimizers.Optimizer`: a `torch.optim.Optimizer` built the Keras way.

An optimizer is constructed without parameters (`Adam(learning_rate=1e-3)`)
and bound to them by `build(var_list)` or by the first
`apply_gradients(zip(grads, vars))` / `apply(grads, vars)`. Once built it is a
regular torch optimizer: `param_groups`, `state`, `state_dict()`,
`load_state_dict()`, `zero_grad()` and torch LR schedulers all work, and
`step()` applies each bound parameter's `.grad`.

Every update follows Keras 3's order: divide by `loss_scale_factor`,
(accumulate gradients), clip (`clipnorm` per tensor, `global_clipnorm` over
all, or `clipvalue`), weight decay `var *= 1 - weight_decay * lr`, the
optimizer's update rule, EMA of the weights, then each variable's
`constraint`. Updates run as `torch._foreach_*` passes over the lists of
parameters.
"""

from __future__ import annotations

import collections.abc
import functools
import math
import operator
import numbers
import re
import threading
import warnings
import weakref
from collections import defaultdict
from typing import ClassVar

import numpy as np
import torch
from torch.nn.parameter import is_lazy

from kerasish.layers import no_mode_warning
from kerasish.optimizers import schedules as lr_schedules
from kerasish import variables as kvars
from kerasish.utils import naming
from kerasish.variables import forget_autocast_casts
from kerasish.variables import replacement_of
from kerasish.saving.serialization_lib import (
    deserialize_keras_object,
    serialize_keras_object,
)


def _mark_stepped(optimizer) -> None:
    """What torch's `optimizer.step()` wrapper records for an attached LR scheduler (`_opt_called`): `fit` and
    `apply` update without calling `step()`, and the scheduler warned that it was stepped first."""
    d = optimizer.__dict__
    if "_opt_called" not in d and not torch.compiler.is_compiling():  # (torch never resets it: once)
        d["_opt_called"] = True


def _sqrt(x):
    """`math.sqrt` for floats (eager), `Tensor.sqrt` for the traced 0-d step."""
    return x.sqrt() if isinstance(x, torch.Tensor) else math.sqrt(x)


def _adam_alpha(lr, beta_1: float, beta_2: float, step):
    """Adam's step size `lr * sqrt(1 - beta_2**t) / (1 - beta_1**t)` in
    float32, each operation rounded as Keras 3 (torch backend) rounds it for
    float32 weights (the powers as NumPy float32 scalars, which round as
    torch's 0-d float32 `pow` that Keras calls); a Python float in eager
    mode. Under `torch.compile` (a 0-d tensor `step` or `lr`) the same
    formula on float32 tensors."""
    if isinstance(step, torch.Tensor) or isinstance(lr, torch.Tensor):
        return lr * _sqrt(1 - beta_2**step) / (1 - beta_1**step)
    step = np.float32(step)
    bias_2 = _f32_sqrt(_ONE - np.float32(beta_2) ** step)
    return float(np.float32(lr) * bias_2 / (_ONE - np.float32(beta_1) ** step))


_ONE = np.float32(1.0)


def _bias_correction(beta: float, step):
    """`1 - beta**t` in float32 as Keras rounds it (a float in eager mode,
    the float32 tensor formula under `torch.compile`)."""
    if isinstance(step, torch.Tensor):
        return 1 - beta**step
    return float(_ONE - np.float32(beta) ** np.float32(step))


_scratch = threading.local()


def _f32_sqrt(x: np.float32) -> np.float32:
    """`sqrt(x)` rounded as torch's CPU float32 kernel rounds it, which is what
    Keras on torch computes its step sizes with (it is not always correctly
    rounded: ~20% of values differ from `np.sqrt` by an ulp). A per-thread
    0-d scratch tensor keeps it to ~2.5 us per step (CPU)."""
    try:
        buf = _scratch.f32
    except AttributeError:
        buf = _scratch.f32 = torch.zeros((), dtype=torch.float32)
    return np.float32(buf.fill_(float(x)).sqrt_().item())


def _addcdiv_(params, tensor1, tensor2, value) -> None:
    """`params += value * tensor1 / tensor2`, `value` a number or a 0-d tensor."""
    if isinstance(value, torch.Tensor):
        torch._foreach_add_(params, torch._foreach_mul(torch._foreach_div(tensor1, tensor2), value))
    else:
        torch._foreach_addcdiv_(params, tensor1, tensor2, value=value)


def _scaled_add_(tensors, others, scale) -> None:
    """`tensors += scale * others`, `scale` a number or a 0-d tensor."""
    if isinstance(scale, torch.Tensor):
        torch._foreach_add_(tensors, torch._foreach_mul(others, scale))
    else:
        torch._foreach_add_(tensors, others, alpha=scale)


def _to_snake_case(name: str) -> str:
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _stacklevel_outside_kerasish() -> int:
    """`warnings.warn`'s stacklevel of the first caller outside kerasish (subclass
    constructors nest to different depths)."""
    import sys

    level, frame = 1, sys._getframe(1)
    while frame is not None and frame.f_globals.get("__name__", "").startswith("kerasish"):
        level += 1
        frame = frame.f_back
    return level


def _keras2_lr_and_decay(learning_rate, kwargs: dict):
    """Pops Keras 2's `lr` and `decay` from `kwargs`: returns `(learning_rate, decay)`.

    tf.keras 2 took `lr` as the learning rate (it won over `learning_rate`)
    and `decay` as time-based decay; Keras 3 refuses `lr` and ignores `decay`.
    """
    if "lr" in kwargs:
        lr = kwargs.pop("lr")
        warnings.warn(
            "The `lr` argument is deprecated, use `learning_rate` instead.", UserWarning,
            stacklevel=_stacklevel_outside_kerasish(),
        )
        if lr is not None:
            learning_rate = lr
    decay = kwargs.pop("decay", None)
    decay = 0.0 if decay is None else decay
    if isinstance(decay, torch.Tensor | np.ndarray) and np.ndim(decay) == 0:
        decay = float(decay)
    if not isinstance(decay, numbers.Real) or isinstance(decay, bool) or decay < 0:
        raise ValueError(f"Argument `decay` must be a float >= 0 (Keras 2 time-based decay). Received: decay={decay}")
    return learning_rate, float(decay)


# the param-group keys a kerasish optimizer honours ("param_names": torch's own, from named_parameters();
# "initial_lr": a torch lr_scheduler's bookkeeping)
_GROUP_KEYS_READ = frozenset({"params", "lr", "weight_decay", "param_names", "initial_lr"})
# where `state_dict()` keeps the Keras state (iterations, ...) a second time: in the first param group,
# which torch's distributed-checkpoint helpers keep (they drop every other top-level key)
_GROUP_KEY = "keras_state"
# the Keras attributes behind a torch param-group key (`Optimizer._group_hparam`)
_HPARAM_ATTRS = {"betas": ("beta_1", "beta_2"), "momentum": ("momentum",)}


def _stored_tensor(value) -> torch.Tensor:
    """A stored optimizer variable as a tensor: weight stores hand bfloat16 back as a torch tensor
    (NumPy has no bfloat16), everything else as an array."""
    if isinstance(value, torch.Tensor):
        return value
    return torch.as_tensor(np.asarray(value))


def _loss_scale_layout(store, variables) -> bool:
    """Whether `store` is Keras's LossScaleOptimizer layout around optimizer `variables`: 4 scalars,
    then arrays shaped exactly like `variables`."""
    def shape(key):
        return tuple(_stored_tensor(store[key]).shape)

    if any(shape(str(i)) != () for i in range(4)):
        return False
    return all(shape(str(i + 4)) == tuple(v.shape) for i, v in enumerate(variables))


class _ShiftedStore:
    """A read view of `store` from index `offset` on (`"0"` is `store[str(offset)]`),
    keeping its `keras_version`."""

    def __init__(self, store, offset, count):
        self._store = store
        self._offset = offset
        self._count = count
        self.keras_version = getattr(store, "keras_version", None)

    def keys(self):
        return [str(i) for i in range(self._count)]

    def __len__(self):
        return self._count

    def __contains__(self, key):
        return str(key).isdigit() and int(key) < self._count

    def __getitem__(self, key):
        return self._store[str(int(key) + self._offset)]

    def shape(self, key):
        return store_shape(self._store, str(int(key) + self._offset))


def store_shape(store, key) -> tuple:
    """The shape of `store[key]`, read from the file's metadata when the store can."""
    if hasattr(store, "shape"):
        return tuple(store.shape(key))
    return tuple(np.shape(np.asarray(store[key])))


def _assign_learning_rate(optimizer, snapshot: torch.Tensor, op, value) -> torch.Tensor:
    """`optimizer.learning_rate.assign*(value)`: sets the optimizer's rate (and
    every param group's `lr`) and updates the snapshot tensor in place."""
    new = float(value) if op is None else op(float(snapshot), float(value))
    optimizer.learning_rate = new
    with torch.no_grad():
        snapshot.fill_(new)
    return snapshot


_MISSING = object()


def _same_setting(current, value) -> bool:
    """Whether a param group's `value` is the optimizer-wide setting `current` (numbers, bools, None)."""
    if current is _MISSING:
        return False
    if current is None or value is None or isinstance(current, bool) or isinstance(value, bool):
        return current is value
    return isinstance(current, numbers.Number) and isinstance(value, numbers.Number) and current == value


def _same_hparam(current, value) -> bool:
    """Whether a param group's "betas" / "momentum" `value` is the optimizer's (`_group_hparam_value`)."""
    if isinstance(current, tuple):
        return isinstance(value, tuple | list) and len(value) == len(current) and all(
            _same_setting(c, v) for c, v in zip(current, value, strict=True))
    return current is not None and _same_setting(current, value)


def _is_param_iterable(value) -> bool:
    """Whether an optimizer's first argument is torch's `params` (an iterator such as
    `model.parameters()`, or a list/tuple of tensors, `(name, tensor)` pairs or param-group dicts), which Keras's
    `learning_rate` never is."""
    if isinstance(value, torch.Tensor | str | bytes | dict | numbers.Number) or callable(value):
        return False
    if isinstance(value, collections.abc.Iterator):
        return True
    return (isinstance(value, list | tuple) and bool(value)
            and all(isinstance(v, torch.Tensor) or (isinstance(v, dict) and "params" in v)
                    or (isinstance(v, tuple) and len(v) == 2 and isinstance(v[1], torch.Tensor)) for v in value))


def _accepting_torch_construction(init):
    """Wraps a kerasish optimizer's `__init__` to also take torch's construction,
    `Adam(model.parameters(), lr=1e-3, ...)`, as torch tools do it (skorch's
    `optimizer=`, `ZeroRedundancyOptimizer(optimizer_class=...)`): the optimizer is
    built on those parameters, `lr` is the learning rate, and the other arguments
    are Keras's, by keyword. (Keras's `learning_rate` came first: the parameters
    were taken for it and `lr=` replaced them, leaving an optimizer with nothing
    to update.)"""

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        params = kwargs.pop("params", None) if "params" in kwargs else None
        if params is None and args and _is_param_iterable(args[0]):
            params, args = args[0], args[1:]
        if params is None:
            init(self, *args, **kwargs)
            self._expose_group_hparam()
            return None
        if args:
            raise TypeError(
                f"{type(self).__name__}: after the parameters (torch's `{type(self).__name__}(params, lr=...)`), "
                "pass the other arguments by keyword: positionally they would take Keras's order "
                f"(learning_rate, ...), not torch's. Received {len(args)} more positional argument(s): {args}"
            )
        if "lr" in kwargs and "learning_rate" not in kwargs:
            kwargs["learning_rate"] = kwargs.pop("lr")  # (torch's name here, not Keras 2's deprecated one)
        init(self, **kwargs)
        self._expose_group_hparam()
        self.build(params)
        return None

    return __init__


class Optimizer(torch.optim.Optimizer):
    """Base class of Keras optimizers on torch.

    Subclasses set `_slot_names` (per-variable state created at build, in
    Keras's order) and implement `_update(params, grads, slots, lr, step)`,
    where `slots[name]` is the list of that slot's tensors aligned with
    `params`, `lr` is the learning rate and `step` the 1-based update count:
    Python floats in eager mode; under `torch.compile` either may be a 0-d
    float32 tensor (`_update_lr`, `_step_number`), so updates scale with
    `_scaled_add_` / `_addcdiv_` rather than `alpha=` / `value=`.

    Args:
        learning_rate: Float, a `schedules.LearningRateSchedule` (evaluated at
            `iterations`), or a zero-argument callable.
        weight_decay: If set, `var *= 1 - weight_decay * lr` before each update.
        clipnorm: Clip each gradient to this L2 norm.
        clipvalue: Clip each gradient element to `[-clipvalue, clipvalue]`.
        global_clipnorm: Clip all gradients jointly to this global L2 norm.
        use_ema: Keep an exponential moving average of the weights.
        ema_momentum: EMA momentum.
        ema_overwrite_frequency: Overwrite the weights with their EMA every
            this many iterations.
        loss_scale_factor: Gradients are divided by this factor.
        gradient_accumulation_steps: Apply the mean of the gradients of
            this many consecutive calls.
        name: Optimizer name.
        lr: Keras 2 spelling of `learning_rate` (deprecated; warns). When
            given it wins over `learning_rate`, as in tf.keras 2.
        decay: Keras 2 time-based decay, `lr_t = lr / (1 + decay * iterations)`
            applied on top of the (float or scheduled) learning rate, as the
            tf.keras 2 legacy optimizers did. Keras 3 ignores `decay`;
            kerasish honours it so ported programs train the same. Defaults
            to 0 (no decay).

    Example:
        >>> opt = keras.optimizers.Adam(1e-3).build(model.parameters())
        >>> loss.backward(); opt.step(); opt.zero_grad()
    """

    _keras_module = "keras.optimizers"
    _slot_names: tuple[str, ...] = ()
    # How Keras orders the slots in `variables` (and so in a `.keras` file's
    # `optimizer/vars/<i>`): each `add_optimizer_variables(var_list, names)`
    # call in Keras's `build` is one group, interleaved per variable (m0, v0,
    # m1, v1, ...); groups follow each other. None: one group of `_slot_names`.
    _slot_groups: tuple[tuple[str, ...], ...] | None = None
    _slot_initial_values: ClassVar[dict[str, float]] = {}
    # The torch param-group key of the setting torch's momentum-cycling schedulers drive (OneCycleLR /
    # CyclicLR with `cycle_momentum=True`: "betas" for Adam-like optimizers, "momentum" for SGD / RMSprop;
    # its Keras attribute(s) in `_HPARAM_ATTRS`). Exposed in `defaults` and every group; a value a scheduler
    # writes there is read back before the next update (`_sync_group_hparam`), as torch's Adam reads
    # `group["betas"]`. None: nothing exposed (torch's schedulers then refuse `cycle_momentum=True`).
    _group_hparam: ClassVar[str | None] = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._keras_module = "keras.optimizers" if cls.__module__.startswith("kerasish.optimizers") else None
        if cls.__module__.startswith("kerasish.optimizers") and "__init__" in cls.__dict__:
            cls.__init__ = _accepting_torch_construction(cls.__dict__["__init__"])

    def __init__(
        self,
        learning_rate=0.001,
        weight_decay=None,
        clipnorm=None,
        clipvalue=None,
        global_clipnorm=None,
        use_ema=False,
        ema_momentum=0.99,
        ema_overwrite_frequency=None,
        loss_scale_factor=None,
        gradient_accumulation_steps=None,
        name=None,
        **kwargs,
    ):
        learning_rate, decay = _keras2_lr_and_decay(learning_rate, kwargs)
        if kwargs:
            raise ValueError(f"Argument(s) not recognized: {kwargs}")
        if gradient_accumulation_steps and not gradient_accumulation_steps >= 2:
            raise ValueError(
                "`gradient_accumulation_steps` must be an integer >= 2. "
                f"Received: gradient_accumulation_steps={gradient_accumulation_steps}"
            )
        if use_ema:
            if ema_momentum > 1 or ema_momentum < 0:
                raise ValueError(f"`ema_momentum` must be in the range [0, 1]. Received: ema_momentum={ema_momentum}")
            if ema_overwrite_frequency and (
                not isinstance(ema_overwrite_frequency, int) or ema_overwrite_frequency < 1
            ):
                raise ValueError(
                    "`ema_overwrite_frequency` must be an integer >= 1 or None. "
                    f"Received: ema_overwrite_frequency={ema_overwrite_frequency}"
                )
        if sum(a is not None for a in (clipnorm, clipvalue, global_clipnorm)) > 1:
            raise ValueError(
                "Only one of `clipnorm`, `clipvalue` and `global_clipnorm` can be set. Received: "
                f"clipnorm={clipnorm}, clipvalue={clipvalue}, global_clipnorm={global_clipnorm}"
            )
        self._schedule = None
        lr_value = self._check_learning_rate(learning_rate)
        # torch.optim.Optimizer refuses an empty parameter list: initialise its
        # bookkeeping (hooks, step patching) on a placeholder, then drop it.
        self._bootstrapping = True
        torch.optim.Optimizer.__init__(self, [torch.zeros(0, requires_grad=True)], {"lr": lr_value})
        self._bootstrapping = False
        # Until `build`, one pending group with no parameters holds the learning rate, so that an LR scheduler
        # made before the first step (torch's, timm's, transformers' `get_scheduler`) has a group to record
        # and drive; `build` fills it (keeping what the scheduler wrote) instead of adding a new group. With
        # no group at all, timm's schedulers silently never changed the rate and torch's failed at `step()`.
        self.param_groups = [{"params": [], "lr": lr_value}]
        self.state = defaultdict(dict)
        # Keras's `auto_name`: "adam", "adam_1", ... per session (`clear_session` restarts the count)
        self.name = name or naming.auto_name(_to_snake_case(self.__class__.__name__))
        self._lr_value = lr_value
        self.decay = decay
        self.weight_decay = weight_decay
        self.clipnorm = clipnorm
        self.clipvalue = clipvalue
        self.global_clipnorm = global_clipnorm
        self.use_ema = use_ema
        self.ema_momentum = ema_momentum
        self.ema_overwrite_frequency = ema_overwrite_frequency
        self.loss_scale_factor = loss_scale_factor
        self.gradient_accumulation_steps = gradient_accumulation_steps
        # int32, as Keras 3's `iteration` variable (dtype "int"): summaries' optimizer bytes, saved files
        self._iterations = torch.zeros((), dtype=torch.int32)
        self._param_index: dict[int, tuple[int, int]] = {}
        self._exclude_ids: set[int] = set()
        self._exclude_pattern = None
        self._custom_variables = []  # Keras 3 style subclasses' `add_variable` slots, in creation order
        self.built = False

    # ------------------------------------------------------------ learning rate

    def _check_learning_rate(self, learning_rate) -> float:
        if isinstance(learning_rate, lr_schedules.LearningRateSchedule) or (
            callable(learning_rate) and not isinstance(learning_rate, torch.Tensor)
        ):
            self._schedule = learning_rate
            return 0.0
        if isinstance(learning_rate, torch.Tensor | np.ndarray) and np.ndim(learning_rate) == 0:
            learning_rate = float(learning_rate)
        if not isinstance(learning_rate, numbers.Real) or isinstance(learning_rate, bool):
            raise ValueError(  # noqa: TRY004 (Keras raises ValueError)
                "Argument `learning_rate` should be float, or an instance of LearningRateSchedule, or a callable "
                "(that takes in the current iteration value and returns the corresponding learning rate value). "
                f"Received instead: learning_rate={learning_rate}"
            )
        self._schedule = None
        return float(learning_rate)

    def _current_lr(self, group: dict | None = None) -> float:
        """The learning rate for this update as a Python float."""
        if isinstance(self._schedule, lr_schedules.LearningRateSchedule):
            return float(self._schedule(self._iterations))
        if self._schedule is not None:
            return float(self._schedule())
        if group is not None:
            return float(group["lr"])
        return float(self.param_groups[0]["lr"]) if self.param_groups else self._lr_value

    @property
    def learning_rate(self) -> torch.Tensor:
        """The current learning rate (a 0-d float32 tensor); settable to a float or a schedule.

        The tensor is a snapshot; its `assign`/`assign_add`/`assign_sub` (Keras 3's
        variable methods, for a float learning rate) and
        `keras.backend.set_value(optimizer.learning_rate, v)` (Keras 2) write
        through to the optimizer and its `param_groups`."""
        value = torch.tensor(self._current_lr(), dtype=torch.float32)
        value._kerasish_lr_owner = self  # lets K.set_value write the learning rate back
        if self._schedule is None:
            # Keras 3 returns its `learning_rate` Variable here: user code and
            # callbacks write it with `optimizer.learning_rate.assign(v)`
            for name, op in (("assign", None), ("assign_add", operator.add), ("assign_sub", operator.sub)):
                setattr(value, name, functools.partial(_assign_learning_rate, self, value, op))
        return value

    @learning_rate.setter
    def learning_rate(self, learning_rate) -> None:
        if isinstance(self._schedule, lr_schedules.LearningRateSchedule) and not callable(learning_rate):
            raise TypeError(
                "This optimizer was created with a `LearningRateSchedule` object as its `learning_rate` "
                "constructor argument, hence its learning rate is not settable. If you need the learning rate "
                "to be settable, you should instantiate the optimizer with a float `learning_rate` argument."
            )
        value = self._check_learning_rate(learning_rate)
        self._lr_value = value
        for group in self.param_groups:
            group["lr"] = value  # (0.0 for a schedule: the groups' rate is then not read)

    @property
    def lr(self) -> torch.Tensor:
        """Keras 2 alias of `learning_rate` (readable, settable, and usable with
        `K.get_value` / `K.set_value`)."""
        return self.learning_rate

    @lr.setter
    def lr(self, value) -> None:
        self.learning_rate = value

    def _decayed_lr(self, lr: float) -> float:
        """Keras 2's time-based decay: `lr / (1 + decay * iterations)` (iterations before this update)."""
        if not self.decay:
            return lr
        return lr / (1.0 + self.decay * float(int(self.iterations)))

    def _update_lr(self, group: dict | None, device: torch.device):
        """The learning rate of this update: a Python float in eager mode;
        under `torch.compile` a 0-d float32 tensor on `device` when it
        depends on the step (a `LearningRateSchedule` evaluated on the
        `iterations` tensor, Keras 2's `decay`), so that the compiled step
        reads it from the graph: no `float()` graph break, no recompile per
        new value. A constant rate stays a Python float either way."""
        if not torch.compiler.is_compiling():
            return self._decayed_lr(self._current_lr(group))
        if isinstance(self._schedule, lr_schedules.LearningRateSchedule):
            lr = torch.as_tensor(self._schedule(self._iterations)).to(device=device, dtype=torch.float32)
        elif self._schedule is not None:
            lr = self._schedule()
            lr = lr.to(device=device, dtype=torch.float32) if isinstance(lr, torch.Tensor) else float(lr)
        else:
            lr = self._current_lr(group)
        if self.decay:
            lr = lr / (1.0 + self.decay * self.iterations.to(device=device, dtype=torch.float32))
        return lr

    @property
    def iterations(self) -> torch.Tensor:
        """Number of updates applied (int32 tensor, as Keras); counts accumulated steps when
        `gradient_accumulation_steps` is set, as Keras does."""
        if self.gradient_accumulation_steps:
            return self._iterations // self.gradient_accumulation_steps
        return self._iterations

    @iterations.setter
    def iterations(self, value) -> None:
        self._iterations.fill_(int(value))

    # ------------------------------------------------------------------- build

    def build(self, var_list):
        """Binds the optimizer to `var_list` and creates its state. Returns `self`.

        Args:
            var_list: Tensors/parameters (e.g. `model.parameters()`) or torch
                param-group dicts (`{"params": [...], "lr": ...}`).
        """
        if self.built:
            return self
        var_list = list(var_list)
        if var_list and isinstance(var_list[0], dict):
            groups = var_list
        else:
            groups = [{"params": var_list}]
        if type(self).update_step is not Optimizer.update_step:
            # a Keras 3 style subclass makes its slots in its own `build`, shaped like the variables
            for group in groups:
                for p in group["params"]:
                    self._refuse_lazy(p)
        pending = self._pending_group()
        hparam = self._group_hparam
        if pending is not None and len(groups) > 1 and (
                {k for k in pending if k != hparam or pending[k] != self.__dict__.get("_hparam_written")}
                - {"params", "lr"} or pending["lr"] != self._lr_value):
            raise ValueError(
                f"{type(self).__name__} '{self.name}' was given {len(groups)} param groups to build on, but an LR "
                "scheduler was attached before the build, when the optimizer had one group: it would schedule "
                "only the first group, silently. Build the optimizer first (e.g. "
                "`optimizer.build(param_groups)`), then create the scheduler. "
                f"Received: {len(groups)} param groups, pending group keys={sorted(pending)}"
            )
        self.defaults["lr"] = self._lr_value
        for group in groups:
            self.add_param_group(dict(group))
        self.built = True
        return self

    def add_param_group(self, param_group: dict) -> None:
        """Adds a torch param group and creates its Keras state. A group may set "lr" and
        "weight_decay" (read per group); other torch keys ("momentum", "betas", "eps", ...) are refused:
        a Keras optimizer's other settings are optimizer-wide and would be silently ignored."""
        if not self._bootstrapping and isinstance(param_group, dict):
            # (a key holding the optimizer-wide value is not ignored: ZeroRedundancyOptimizer copies the
            # constructor's arguments into each group it hands the optimizer it makes)
            hparam = self._group_hparam
            unread = sorted(k for k in param_group if k not in _GROUP_KEYS_READ
                            and not _same_setting(self.__dict__.get(k, _MISSING), param_group[k])
                            and not (k == hparam and _same_hparam(self._group_hparam_value(), param_group[k])))
            if unread:
                raise ValueError(
                    f"{type(self).__name__} '{self.name}' reads only 'lr' and 'weight_decay' from a param group; "
                    f"its other settings are optimizer-wide (constructor arguments), so {unread} would be silently "
                    "ignored. Give those parameters their own optimizer (or use keras.optimizers.MultiOptimizer). "
                    f"Received: param_group keys={sorted(param_group)}"
                )
        if not self._bootstrapping and isinstance(param_group, dict):
            param_group = self._take_pending_group(param_group)
        super().add_param_group(param_group)
        if self._bootstrapping:
            return
        gi = len(self.param_groups) - 1
        for pi, p in enumerate(self.param_groups[gi]["params"]):
            self._param_index[id(p)] = (gi, pi)
            if not is_lazy(p):
                # (a placeholder of a layer not built yet, e.g. `build(model.parameters())` before the first
                # call: filled in place when the layer builds; its state is made at its first update, as
                # torch optimizers make theirs)
                self._init_state(p)

    def _group_hparam_value(self):
        """The current value of `_group_hparam`'s attribute(s) in torch's form (`(beta_1, beta_2)` or
        `momentum`), or None where one is not a plain number (a callable / tensor beta: not exposed)."""
        values = tuple(self.__dict__.get(a) for a in _HPARAM_ATTRS[self._group_hparam])
        if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values):
            return None
        values = tuple(float(v) for v in values)
        return values if self._group_hparam == "betas" else values[0]

    def _expose_group_hparam(self) -> None:
        """Puts `_group_hparam`'s current value in `defaults` and in every param group."""
        key = self._group_hparam
        if key is None:
            return
        value = self._group_hparam_value()
        if value is None:
            self.defaults.pop(key, None)
            for group in self.param_groups:
                group.pop(key, None)
            self.__dict__["_hparam_written"] = None
            return
        self.defaults[key] = value
        for group in self.param_groups:
            group[key] = value
        self.__dict__["_hparam_written"] = value

    def _sync_group_hparam(self) -> None:
        """Before an update: a "betas" / "momentum" that a torch scheduler (OneCycleLR, CyclicLR) wrote into
        the param groups becomes the optimizer's `beta_1`/`beta_2` / `momentum` for this update; a value set
        on the attribute (`optimizer.beta_1 = ...`, Keras's way) is written back into the groups.

        The usual case (nothing changed) compares each group's value with the attributes the update reads
        anyway: under torch.compile that adds only the groups' value guards."""
        key = self._group_hparam
        current = (self.beta_1, self.beta_2) if key == "betas" else self.momentum
        for group in self.param_groups:
            if group.get(key, current) != current:
                self._adopt_group_hparam()
                return

    def _adopt_group_hparam(self) -> None:
        key = self._group_hparam
        written = self.__dict__.get("_hparam_written")
        groups = self.param_groups
        if written is None or all(group.get(key, written) == written for group in groups):
            # no scheduler wrote (or nothing was exposed): the attribute was set, the groups follow it
            self._expose_group_hparam()
            return
        attrs = _HPARAM_ATTRS[key]
        values = {tuple(float(x) for x in group[key]) if key == "betas" else float(group[key])
                  for group in groups if key in group}
        if len(values) > 1:
            raise ValueError(
                f"{type(self).__name__} '{self.name}' has one {' / '.join(attrs)} for all its variables (a Keras "
                f"optimizer's settings are optimizer-wide), but its param groups were given different {key!r}: "
                f"{sorted(values)}. Schedule them to the same value (one `max_momentum` / `base_momentum`), or "
                "give each group its own optimizer (keras.optimizers.MultiOptimizer). "
                f"Received: param_groups {key}={[group.get(key) for group in groups]}"
            )
        (value,) = values
        if key == "momentum" and value != 0 and "momentum" not in self._slot_names:
            raise ValueError(
                f"{type(self).__name__} '{self.name}' was created with momentum={self.momentum} and has no momentum "
                f"slots, but its param groups were given momentum={value} (a torch scheduler with "
                "`cycle_momentum=True`, e.g. OneCycleLR's default). Create the optimizer with a nonzero `momentum`, "
                "or pass `cycle_momentum=False` to the scheduler."
            )
        # (plain attribute stores: torch.compile replays them on the optimizer, not `setattr` / `__dict__` ones)
        if key == "betas":
            self.beta_1, self.beta_2 = value
        else:
            self.momentum = value
        for group in groups:
            group[key] = value
        self._hparam_written = value

    def _pending_group(self) -> dict | None:
        """The parameterless group an unbuilt optimizer holds its learning rate in (see `__init__`)."""
        groups = self.param_groups
        if self.built or self.__dict__.get("_pending_taken"):
            return None
        if len(groups) == 1 and not groups[0]["params"]:
            return groups[0]
        return None

    def _take_pending_group(self, param_group: dict) -> dict:
        """The first real group replaces the pending one and inherits what an LR scheduler wrote into it
        (its current "lr", "initial_lr", ...) unless the group sets its own value."""
        pending = self._pending_group()
        if pending is None:
            return param_group
        del self.param_groups[0]  # in place: a LossScaleOptimizer shares this list
        self._pending_taken = True  # (a first group given with no parameters is a group, not the pending one)
        merged = {k: v for k, v in pending.items() if k != "params"}
        merged.update(param_group)
        return merged

    def __getstate__(self) -> dict:
        # torch's Optimizer pickles only defaults/state/param_groups: the
        # Keras settings (clipping, EMA, schedule, iterations...) went missing
        # in a deepcopy, a pickle or a torch.save of a compiled model. The
        # tables keyed by id() are rebuilt for the copy's own tensors.
        state = {k: v for k, v in self.__dict__.items() if not (k.startswith("_optimizer_") and k.endswith("_hooks"))}
        state.pop("_param_index", None)
        state.pop("_exclude_ids", None)
        return state

    def __setstate__(self, state: dict) -> None:
        super().__setstate__(state)
        self._param_index = {
            id(p): (gi, pi) for gi, g in enumerate(self.param_groups) for pi, p in enumerate(g["params"])
        }
        self._exclude_ids = {id(v) for v in self.__dict__.get("_exclude_vars", ())}

    def _init_state(self, p: torch.Tensor) -> None:
        state = self.state[p]
        if self.use_ema and "average" not in state:
            state["average"] = p.detach().clone(memory_format=torch.preserve_format).zero_()
        if self.gradient_accumulation_steps and "gradient_accumulator" not in state:
            state["gradient_accumulator"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        for name in self._slot_names:
            if name not in state:
                init = self._slot_initial_values.get(name, 0.0)
                state[name] = torch.full_like(p, init, memory_format=torch.preserve_format)

    @property
    def _trainable_variables(self) -> list:
        return [p for g in self.param_groups for p in g["params"]]

    @property
    def variables(self) -> list:
        """Optimizer state in Keras's order: iterations, learning rate (float
        only), EMA averages, gradient accumulators, then per-variable slots."""
        self._follow_moved_variables()
        named = [(self._iterations, "iteration")]
        if self._schedule is None:
            named.append((self.learning_rate, "learning_rate"))
        params = self._trainable_variables
        refs = [_reference_name(p, i) for i, p in enumerate(params)]
        for key in ("average", "gradient_accumulator"):
            named += [(self.state[p][key], f"{ref}_{key}") for p, ref in zip(params, refs) if key in self.state[p]]
        for group in self._slot_groups or (self._slot_names,):
            for p, ref in zip(params, refs):
                named += [(self.state[p][k], f"{ref}_{k}") for k in group if k in self.state[p]]
        return ([self._state_view(t, name) for t, name in named] + list(self.__dict__.get("_custom_variables", ()))
                + self._extra_variables())

    def _state_view(self, tensor: torch.Tensor, name: str):
        """`tensor` (a piece of optimizer state) seen as a Keras variable named as Keras names
        it (`name`, path `<optimizer>/<name>`): it shares the state's storage, so `assign` and
        `copy_` write the optimizer's state. One view per state tensor while it lives."""
        views = _STATE_VIEWS.get(self)
        if views is None:
            views = _STATE_VIEWS[self] = {}
        hit = views.get(id(tensor))
        if hit is not None and hit[0]() is tensor and hit[1].name == name:
            return hit[1]
        for key in [k for k, (ref, _) in views.items() if ref() is None]:
            del views[key]  # state replaced (load_state_dict, a rebuilt optimizer)
        view = kvars.state_view(tensor, name, f"{self.name}/{name}")
        if view is tensor:
            return tensor  # (sharded state keeps its own type)
        assign = tensor.__dict__.get("assign")
        if assign is not None:  # the learning rate: its assign methods write through to the optimizer
            for method in ("assign", "assign_add", "assign_sub"):
                view.__dict__[method] = tensor.__dict__[method]
            view.__dict__["_kerasish_lr_owner"] = tensor.__dict__.get("_kerasish_lr_owner")
            return view  # (a fresh snapshot each call: nothing to keep)
        views[id(tensor)] = (weakref.ref(tensor), view)
        return view

    def _extra_variables(self) -> list:
        return []

    # ----------------------------------------------------------------- updates

    def apply_gradients(self, grads_and_vars):
        """Applies `(gradient, variable)` pairs; returns `iterations`."""
        grads, variables = zip(*grads_and_vars)
        self.apply(grads, variables)
        return self._iterations

    def apply(self, grads, trainable_variables=None) -> None:
        """Applies `grads` to `trainable_variables` (or to the built variables).

        `None` gradients are skipped with a warning; all `None` raises.
        """
        grads = list(grads)
        if not grads:
            return
        if trainable_variables is None:
            if not self.built:
                raise ValueError(
                    "When passing `grads` without `variables`, the optimizer must already be built on a list of "
                    "variables. Call `optimizer.build(trainable_variables)` first."
                )
            variables = self._trainable_variables
            if len(grads) != len(variables):
                raise ValueError(
                    f"When passing `grads` as a list of gradient tensors, the gradients must match "
                    f"`optimizer.variables` one-to-one. Received a list of {len(grads)} gradients, but the "
                    f"optimizer is tracking {len(variables)} trainable variables."
                )
        else:
            variables = list(trainable_variables)
            if not self.built:
                self.build(variables)
            for v in variables:
                if id(v) not in self._param_index and not self._follow_replaced(v):
                    raise ValueError(
                        f"Unknown variable: {getattr(v, 'name', None) or tuple(v.shape)}. This optimizer can only be "
                        "called for the variables it was originally built with. When working with a new set of "
                        "variables, you should recreate a new optimizer instance."
                    )
        pairs = [(g, v) for g, v in zip(grads, variables) if g is not None]
        if not pairs:
            raise ValueError("No gradients provided for any variable.")
        if len(pairs) != len(variables):
            missing = [getattr(v, "name", None) or f"#{i}" for i, (g, v) in enumerate(zip(grads, variables)) if g is None]
            warnings.warn(f"Gradients do not exist for variables {missing} when minimizing the loss.", stacklevel=2)
        if "_opt_called" not in self.__dict__:
            _mark_stepped(self)
        self._apply_pairs(pairs)

    def stateless_apply(self, optimizer_variables, grads, trainable_variables):
        """The update `apply(grads)` would make, computed from given values and
        returned instead of applied (Keras 3).

        Args:
            optimizer_variables: Tensors, one per `self.variables` (in order),
                holding the optimizer's state to start from.
            grads: Gradients, one per trainable variable the optimizer was
                built on.
            trainable_variables: Tensors, one per variable the optimizer was
                built on, holding the model values to update.

        Returns:
            `(new_trainable_variables, new_optimizer_variables)`: lists of new
            tensors. The optimizer's own state, the model's variables and the
            given tensors are left unchanged (Keras 3.15 on torch writes into
            some of the given tensors; kerasish never does). The update runs
            on the optimizer's own variables, which hold the given values
            meanwhile and are restored afterwards: it is not differentiable
            with respect to the given values, and no other thread should use
            the optimizer or the model during the call.

        Raises:
            ValueError: the optimizer is not built, or a list's length or a
                tensor's shape does not match.
            RuntimeError: called inside a `keras.StatelessScope` (Keras
                allows it; call it outside the scope, the result is the same).

        Example (a JAX-style step on torch):
            >>> opt_vars = [v.detach().clone() for v in optimizer.variables]
            >>> new_tv, opt_vars = optimizer.stateless_apply(opt_vars, grads, tv)
        """
        from kerasish.optimizers.stateless import stateless_apply

        return stateless_apply(self, optimizer_variables, grads, trainable_variables)

    @torch.no_grad()
    def step(self, closure=None):
        """torch-style update from each bound parameter's `.grad`.

        Parameters whose `.grad` is None or with `requires_grad=False` are
        skipped. Returns `closure()`'s loss when a closure is given.
        """
        self._check_built_for_step()
        loss = None
        if self._schedule is not None:
            self._check_no_torch_lr(self.param_groups)
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if any(p.grad is None and replacement_of(p) is not None for g in self.param_groups for p in g["params"]):
            self._follow_replaced()
        pairs = [
            (p.grad, p) for g in self.param_groups for p in g["params"] if p.grad is not None and p.requires_grad
        ]
        if pairs:
            self._apply_pairs(pairs)
        return loss

    def _check_built_for_step(self) -> None:
        """A torch-style `step()` updates the variables given to `build`; unbuilt, it used to update
        nothing, silently (torch refuses an optimizer without parameters at construction)."""
        if not self.built or not any(g["params"] for g in self.param_groups):
            raise ValueError(
                f"{type(self).__name__} '{self.name}' has no variables to update: `step()` applies the `.grad` of "
                "the variables the optimizer was built on. Build it first, e.g. "
                "`optimizer.build(model.parameters())`, or pass the variables with "
                "`apply_gradients(zip(grads, variables))` (a model's `trainable_variables` is empty until the "
                f"model is built). Received: optimizer.built={self.built}, variables=[]"
            )

    def _check_no_torch_lr(self, groups) -> None:
        """With a Keras schedule the learning rate is the schedule's, and `param_groups`' "lr" (0.0) is never
        read: refuse a torch lr_scheduler attached to this optimizer (every one but ReduceLROnPlateau leaves
        "initial_lr" in the groups) or an "lr" written into a group, which would be silently ignored."""
        for group in groups:
            if "initial_lr" in group or group["lr"] != 0.0:
                attached = f", initial_lr={group['initial_lr']} (a torch lr_scheduler is attached)" if (
                    "initial_lr" in group) else ""
                raise ValueError(
                    f"{type(self).__name__} '{self.name}' takes its learning rate from its Keras schedule "
                    f"({type(self._schedule).__name__}); `param_groups`' 'lr' is not read, so a torch lr_scheduler or "
                    "a per-group 'lr' would be silently ignored. Create the optimizer with a float `learning_rate` to "
                    "drive it with a torch lr_scheduler (or per-group rates), or use the Keras schedule alone. "
                    f"Received: param_groups lr={group['lr']}{attached}"
                )

    @torch.no_grad()
    def _follow_replaced(self, variable=None) -> bool:
        """Rebinds the optimizer from weights that a layer replaced (`load_state_dict(assign=True)`, e.g.
        after building on the meta device) to their replacements, with their state (moments on the new
        weight's device; fresh, zero moments where the old state was on the meta device). Returns whether
        `variable` (if given) is now bound. torch's own optimizers keep updating the replaced tensors."""
        found = False
        for gi, group in enumerate(self.param_groups):
            for pi, old in enumerate(group["params"]):
                new = replacement_of(old)
                if new is None:
                    continue
                group["params"][pi] = new
                self._param_index.pop(id(old), None)
                self._param_index[id(new)] = (gi, pi)
                state = self.state.pop(old, {})
                if any(isinstance(t, torch.Tensor) and t.is_meta for t in state.values()):
                    state = {}
                self.state[new] = {k: t.to(new.device) if isinstance(t, torch.Tensor) and t.shape == new.shape
                                   else t for k, t in state.items()}
                self._init_state(new)
                if id(old) in self._exclude_ids:
                    self._exclude_vars = [new if v is old else v for v in self._exclude_vars]
                    self._exclude_ids = {id(v) for v in self._exclude_vars}
                found = found or new is variable
        return found

    @torch.no_grad()
    def _follow_moved_variables(self) -> None:
        """After `model.double()` / `.half()` / `.bfloat16()` / `.to(device)` of a model whose optimizer
        already holds state: each variable's slots (moments, EMA average, gradient accumulator) take the
        variable's dtype and device, the dtype Keras gives the slots of a variable of that dtype
        (`add_variable_from_reference`). Before, they stayed float32 and the step ran in float32 for
        float64 weights. The slots a subclass makes in its own `build` with `add_variable_from_reference`
        / `add_optimizer_variables` follow too, converted in place (the subclass's lists keep them);
        ones made with plain `add_variable` keep the dtype they were given, as in Keras."""
        if torch.compiler.is_compiling():
            return  # (a compiled step: the eager first step and `variables` did it)
        moves = _moves_version()
        if self.__dict__.get("_moves_seen") == moves:
            return
        self.__dict__["_moves_seen"] = moves
        for p in self._trainable_variables:
            state = self.state.get(p)
            if not state or is_lazy(p):
                continue
            for key, t in list(state.items()):
                if (isinstance(t, torch.Tensor) and t.shape == p.shape and t.is_floating_point()
                        and (t.dtype != p.dtype or t.device != p.device)):
                    state[key] = t.to(device=p.device, dtype=p.dtype)
        for slot, reference in self.__dict__.get("_reference_slots", ()):
            while (newer := replacement_of(reference)) is not None:
                reference = newer
            if (slot.is_floating_point() and reference.is_floating_point() and not is_lazy(reference)
                    and slot.shape == reference.shape
                    and (slot.dtype != reference.dtype or slot.device != reference.device)):
                slot.data = slot.data.to(device=reference.device, dtype=reference.dtype)

    @torch.no_grad()
    def _apply_pairs(self, pairs) -> None:
        if no_mode_warning._PENDING:  # a backward pass through a layer in the "no mode" state (warns once)
            no_mode_warning.on_step()
        pairs = [(g, v) for g, v in pairs if getattr(v, "requires_grad", True) or not isinstance(v, torch.nn.Parameter)]
        if not pairs:
            return
        variables = [v for _, v in pairs]
        grads = []
        for g, v in pairs:
            g = torch.as_tensor(g, device=v.device).detach()
            if g.dtype != v.dtype:
                g = g.to(v.dtype)
            grads.append(g)
        self._follow_moved_variables()
        for v in variables:
            if v not in self.state or not self.state[v]:
                self._init_state(v)
        if self.loss_scale_factor is not None:
            grads = torch._foreach_div(grads, float(self.loss_scale_factor))
        if self.gradient_accumulation_steps:
            steps = self.gradient_accumulation_steps
            accs = [self.state[v]["gradient_accumulator"] for v in variables]
            if torch.compiler.is_compiling():
                self._accumulate_or_update_traced(grads, variables, accs, steps)
            elif (int(self._iterations) + 1) % steps == 0:
                grads = torch._foreach_div(torch._foreach_add(grads, accs), float(steps))
                self._update_all(grads, variables)
                torch._foreach_zero_(accs)
            else:
                torch._foreach_add_(accs, grads)
        else:
            self._update_all(grads, variables)
        if self.use_ema:
            self._update_ema()
        for v in variables:
            constraint = getattr(v, "constraint", None)
            if callable(constraint):
                v.copy_(constraint(v))
        self._iterations += 1
        forget_autocast_casts()

    def _accumulate_or_update_traced(self, grads, variables, accs, steps) -> None:
        """Keras's `ops.cond(is_update_step, update, accumulate)` under
        `torch.compile`, as selects on the `iterations` tensor: the update
        runs at every step and what it writes (the variables, their slots,
        `_step_state_tensors`) is put back on the accumulation steps. No
        `int(iterations)` graph break; one graph for both kinds of step."""
        update = ((self._iterations + 1) % steps == 0).to(variables[0].device)
        touched = list(variables) + [
            t for v in variables for t in (self.state[v].get(k) for k in self._slot_names) if t is not None
        ]
        touched += self._step_state_tensors()
        saved = [t.clone() for t in touched]
        self._update_all(torch._foreach_div(torch._foreach_add(grads, accs), float(steps)), variables)
        torch._foreach_copy_(touched, [torch.where(update.to(t.device), t, old) for t, old in zip(touched, saved)])
        summed = torch._foreach_add(accs, grads)
        torch._foreach_copy_(accs, [torch.where(update, torch.zeros_like(a), a) for a in summed])

    def _step_state_tensors(self) -> list:
        """Optimizer-wide tensors the update writes in place (Nadam's
        momentum product), besides the variables and their slots."""
        return []

    def _update_all(self, grads, variables) -> None:
        if self._group_hparam is not None:
            self._sync_group_hparam()
        grads = self._clip_gradients(grads)
        step = self._step_number(variables)
        self._begin_step(step)
        by_group: dict[int, list[int]] = defaultdict(list)
        for i, v in enumerate(variables):
            by_group[self._param_index.get(id(v), (0, 0))[0]].append(i)
        for gi, idx in by_group.items():
            group = self.param_groups[gi] if self.param_groups else None
            lr = self._update_lr(group, variables[0].device)
            params = [variables[i] for i in idx]
            group_grads = [grads[i] for i in idx]
            self._apply_weight_decay(params, lr, group)
            # a slot a variable does not have (Muon: no velocity on its Muon-updated matrices) reads None
            slots = {name: [self.state[p].get(name) for p in params] for name in self._slot_names}
            self._update(params, group_grads, slots, lr, step)

    def _step_number(self, variables):
        """The 1-based number of this update: a Python float in eager mode
        (read from the host-side `iterations` counter: no device sync), a
        0-d float32 tensor on the variables' device under `torch.compile`,
        so that the bias corrections are traced instead of breaking the
        graph on `int(iterations)` (and the compiled step is not
        specialized on, and recompiled for, every step number)."""
        if torch.compiler.is_compiling():
            return (self.iterations + 1).to(device=variables[0].device, dtype=torch.float32)
        return float(int(self.iterations) + 1)

    def _begin_step(self, step) -> None:
        """Hook for per-step global state (Nadam's momentum product)."""

    def _update(self, params, grads, slots, lr: float, step: float) -> None:
        if type(self).update_step is Optimizer.update_step:
            raise NotImplementedError(
                f"{type(self).__name__} must implement `update_step(gradient, variable, learning_rate)` "
                "(Keras 3's way to write an optimizer)."
            )
        # a Keras 3 style subclass: one `update_step` per variable, the learning rate as a float32 tensor
        rate = None
        for p, g in zip(params, grads):
            if rate is None or rate.device != p.device:
                rate = torch.as_tensor(lr, dtype=torch.float32, device=p.device)
            self.update_step(g, p, rate)

    # ------------------------------------------ Keras 3's subclassing API
    # A custom optimizer written for Keras 3 creates its slots in `build` with
    # `add_variable_from_reference` / `add_variable` / `add_optimizer_variables`,
    # updates them in `update_step(gradient, variable, learning_rate)` with
    # `assign` / `assign_add` / `assign_sub`, and finds a variable's slots with
    # `_get_variable_index`. Those slots are kerasish variables kept in creation
    # order: in `variables` (after Keras's own), saved files and `state_dict()`.

    def update_step(self, gradient, variable, learning_rate):
        """Updates one variable (override in a Keras 3 style subclass)."""
        raise NotImplementedError

    def add_variable(self, shape, initializer="zeros", dtype=None, aggregation="none", layout=None, name=None):
        """A non-trainable optimizer variable of `shape`, drawn from
        `initializer`, tracked in `variables` (path `<optimizer name>/<name>`)."""
        from kerasish import initializers
        from kerasish import variables as kvariables
        from kerasish.backend import floatx

        if not hasattr(self, "_custom_variables"):
            raise RuntimeError(
                f"It looks like you forgot to call `super().__init__()` in the constructor of {type(self).__name__}."
            )
        init = initializers.get(initializer)
        dtype = dtype or floatx()
        shape = tuple(int(d) for d in shape)
        device = getattr(self, "_variable_device", None)
        value = init(shape, dtype=dtype)
        value = torch.as_tensor(value) if not isinstance(value, torch.Tensor) else value
        if device is not None:
            value = value.to(device)
        variable = kvariables.Variable(value.detach(), trainable=False, name=name or "variable", dtype=dtype,
                                       aggregation=aggregation)
        variable.__dict__["_kpath"] = f"{self.name}/{name or 'variable'}"
        self._custom_variables.append(variable)
        return variable

    def _refuse_lazy(self, variable) -> None:
        if isinstance(variable, torch.nn.parameter.UninitializedTensorMixin):
            raise ValueError(
                f"{type(self).__name__} '{self.name}' makes its slots shaped like the variables it is built on, "
                "and one is a lazy weight of a model that has not been called yet. Call the model once (or "
                "`model.build(input_shape)`) before building the optimizer on `model.parameters()`."
            )

    def add_variable_from_reference(self, reference_variable, name=None, initializer="zeros"):
        """A variable shaped and typed as `reference_variable` (Keras names it
        `<reference path with "/" as "_">_<name>`), on its device."""
        name = name or "var"
        self._refuse_lazy(reference_variable)
        path = getattr(reference_variable, "path", None)
        prefix = path.replace("/", "_") if isinstance(path, str) else (
            str(getattr(reference_variable, "name", "variable")).replace("/", "_").replace(":", "_"))
        self._variable_device = reference_variable.device
        try:
            from kerasish.backend import standardize_dtype

            slot = self.add_variable(tuple(reference_variable.shape), initializer=initializer,
                                     dtype=standardize_dtype(reference_variable.dtype), name=f"{prefix}_{name}")
        finally:
            self._variable_device = None
        # the slot follows its variable's dtype and device after `model.double()` / `.half()` / `.to()`
        self.__dict__.setdefault("_reference_slots", []).append((slot, reference_variable))
        return slot

    def add_optimizer_variables(self, trainable_variables, name, initializer="zeros"):
        """`add_variable_from_reference` for each variable: a list for one
        `name`, a tuple of lists for a list of names (each with its own or a
        shared `initializer`). Variables marked `overwrite_with_gradient` get None."""
        names = [name] if isinstance(name, str) else list(name)
        inits = [initializer] if isinstance(name, str) else (
            list(initializer) if isinstance(initializer, (list, tuple)) else [initializer] * len(names))
        if len(names) != len(inits):
            raise ValueError("The number of provided names must match the number of provided initializers.  "
                             f"Received name='{name}', initializer='{initializer}'")
        out = tuple([] for _ in names)
        for variable in trainable_variables:
            for i, (n, init) in enumerate(zip(names, inits)):
                out[i].append(None if getattr(variable, "overwrite_with_gradient", False)
                              else self.add_variable_from_reference(variable, name=n, initializer=init))
        return out[0] if isinstance(name, str) else out

    @torch.no_grad()
    def assign(self, variable, value):
        """`variable[...] = value` in place (a model or an optimizer variable)."""
        variable.copy_(torch.as_tensor(value, device=variable.device))

    @torch.no_grad()
    def assign_add(self, variable, value):
        variable.add_(torch.as_tensor(value, device=variable.device).to(variable.dtype))

    @torch.no_grad()
    def assign_sub(self, variable, value):
        variable.sub_(torch.as_tensor(value, device=variable.device).to(variable.dtype))

    def _get_variable_index(self, variable) -> int:
        """The position of `variable` among the variables the optimizer was built on."""
        for i, p in enumerate(self._trainable_variables):
            if p is variable:
                return i
        raise KeyError(f"{type(self).__name__} '{self.name}' was not built on the variable {getattr(variable, 'path', variable)!r}")

    def set_weights(self, weights) -> None:
        """Sets `variables` from a list of arrays (Keras's order and shapes)."""
        if not self.built:
            raise ValueError(
                "You are calling `set_weights()` on an optimizer that has not yet been built. Please call "
                "`optimizer.build(trainable_variables)` to create the optimizer weights before calling "
                "`set_weights()`."
            )
        for variable, weight in zip(self.variables, weights):
            if tuple(variable.shape) != tuple(np.shape(weight)):
                raise ValueError(f"Optimizer variable {variable.path} has shape {tuple(variable.shape)} not "
                                 f"compatible with provided weight shape {tuple(np.shape(weight))}.")
            variable.assign(weight)

    def _clip_gradients(self, grads):
        # torch's fused norm kernel, not Keras's sqrt(sum(g * g)): it sums in
        # another order (an ulp or two apart), and Keras's needs a temporary
        # copy of the gradients (+4.8% / +1.6% of an MLP training step)
        if self.clipnorm and self.clipnorm > 0:
            c = float(self.clipnorm)
            norms = torch._foreach_norm(grads)
            scales = [c / torch.clamp(n, min=c) for n in norms]
            return torch._foreach_mul(grads, scales)
        if self.global_clipnorm and self.global_clipnorm > 0:
            c = float(self.global_clipnorm)
            norms = torch._foreach_norm(grads)
            devices = {g.device for g in grads}
            dev = grads[0].device
            norm = torch.sqrt(sum((torch.square(n.to(dev, torch.float32)) for n in norms), torch.zeros((), device=dev)))
            scale = c * torch.minimum(1.0 / norm, torch.tensor(1.0 / c, device=dev)) + (norm - norm)
            if len(devices) == 1:
                return torch._foreach_mul(grads, scale.to(grads[0].dtype))
            return [g * scale.to(g.device, g.dtype) for g in grads]
        if self.clipvalue and self.clipvalue > 0:
            c = float(self.clipvalue)
            return torch._foreach_clamp_max(torch._foreach_clamp_min(grads, -c), c)
        return grads

    def exclude_from_weight_decay(self, var_list=None, var_names=None) -> None:
        """Excludes variables (by identity, or by regex on their `name`/`path`) from weight decay."""
        if self.built:
            raise ValueError("`exclude_from_weight_decay()` can only be configured before the optimizer is built.")
        self._exclude_vars = list(var_list) if var_list else []  # kept so that a copy can find them again
        self._exclude_ids = {id(v) for v in self._exclude_vars}
        self._exclude_pattern = re.compile("|".join(set(var_names))) if var_names else None

    def _use_weight_decay(self, variable) -> bool:
        if id(variable) in self._exclude_ids:
            return False
        if self._exclude_pattern is not None:
            name = getattr(variable, "path", None) or getattr(variable, "name", None)
            if isinstance(name, str) and re.search(self._exclude_pattern, name) is not None:
                return False
        return True

    def _apply_weight_decay(self, params, lr: float, group: dict | None) -> None:
        wd = group.get("weight_decay", self.weight_decay) if group is not None else self.weight_decay
        if wd is None:
            return
        decayed = [p for p in params if self._use_weight_decay(p)]
        if decayed:
            if isinstance(lr, torch.Tensor) or torch.compiler.is_compiling():
                torch._foreach_mul_(decayed, 1.0 - float(wd) * lr)
            else:  # in float32, as Keras computes it from its float32 learning-rate tensor
                torch._foreach_mul_(decayed, float(_ONE - np.float32(wd) * np.float32(lr)))

    def _update_ema(self) -> None:
        """Keras's EMA of the weights: `average = m * average + (1 - m) * var`
        with `m = 0` at the first update (the average starts at the weights),
        then every `ema_overwrite_frequency` updates the weights take their
        average. Under `torch.compile` both decisions are tensor ops on the
        `iterations` tensor (no `int()` graph break, one graph for every
        step)."""
        params = self._trainable_variables
        averages = [self.state[p]["average"] for p in params]
        freq = self.ema_overwrite_frequency
        if torch.compiler.is_compiling():
            iterations = self.iterations.to(params[0].device)
            momentum = (iterations != 0).to(torch.float32) * float(self.ema_momentum)
            torch._foreach_mul_(averages, momentum)
            torch._foreach_add_(averages, torch._foreach_mul(params, 1.0 - momentum))
            if freq:
                overwrite = (iterations + 1) % freq == 0
                torch._foreach_copy_(params, [torch.where(overwrite, a, p) for a, p in zip(averages, params)])
            return
        momentum = 0.0 if int(self.iterations) == 0 else float(self.ema_momentum)
        torch._foreach_mul_(averages, momentum)
        # `1 - momentum` in float32, as Keras computes it from its float32 momentum tensor
        # (Keras also rounds the product before the sum, which `add_(alpha=)` may fuse:
        # an ulp apart now and then; its order costs a temporary copy of the weights)
        torch._foreach_add_(averages, params, alpha=float(_ONE - np.float32(momentum)))
        if freq and (int(self.iterations) + 1) % freq == 0:
            torch._foreach_copy_(params, averages)

    @torch.no_grad()
    def finalize_variable_values(self, var_list=None) -> None:
        """Overwrites the variables with their EMA (when `use_ema=True`)."""
        if self.use_ema:
            params = self._trainable_variables if var_list is None else list(var_list)
            for p in params:
                p.copy_(self.state[p]["average"])

    def scale_loss(self, loss):
        """Multiplies `loss` by `loss_scale_factor` when set."""
        return loss * self.loss_scale_factor if self.loss_scale_factor is not None else loss

    # ------------------------------------------------------ state and configs

    def state_dict(self) -> dict:
        """torch's state dict plus a `"keras"` entry (iterations, global state), also kept in the first
        param group: torch's `torch.distributed.checkpoint.state_dict.get_state_dict` /
        `set_state_dict` (and FSDP's optimizer state dicts) keep only `state` and `param_groups`."""
        sd = super().state_dict()
        keras_state = {"iterations": int(self._iterations), **self._extra_state()}
        if self.__dict__.get("_custom_variables"):
            keras_state["custom_variables"] = [v.detach().clone() for v in self._custom_variables]
        sd["keras"] = keras_state
        if sd["param_groups"]:
            sd["param_groups"][0][_GROUP_KEY] = keras_state
        return sd

    def load_state_dict(self, state_dict: dict) -> None:
        """Restores `state_dict()`'s output (the optimizer must be built on matching parameters)."""
        state_dict = dict(state_dict)
        saved = sum(len(g.get("params", ())) for g in state_dict.get("param_groups", ()))
        if saved and not any(g["params"] for g in self.param_groups):
            raise ValueError(
                f"{type(self).__name__} '{self.name}' has no variables: `load_state_dict` restores the state of "
                "the variables the optimizer was built on, in order. Build it on the model's variables first, "
                "e.g. `optimizer.build(model.parameters())` (a model's `trainable_variables` is empty until the "
                f"model is built), then load. Received: a state dict for {saved} variable(s), "
                f"optimizer.built={self.built}"
            )
        groups = state_dict.get("param_groups")
        in_group = None
        if groups and any(_GROUP_KEY in g for g in groups):
            state_dict["param_groups"] = [dict(g) for g in groups]  # (the caller's dicts stay as they are)
            for g in state_dict["param_groups"]:
                in_group = g.pop(_GROUP_KEY, None) or in_group
        extra = dict(state_dict.pop("keras", None) or in_group or {})
        super().load_state_dict(state_dict)
        if "iterations" in extra:
            self._iterations.fill_(int(extra.pop("iterations")))
        custom = extra.pop("custom_variables", None)
        if custom is not None:
            own = self.__dict__.get("_custom_variables", [])
            if len(custom) != len(own):
                raise ValueError(f"{type(self).__name__} '{self.name}' has {len(own)} variables of its own "
                                 f"(add_variable), the state dict {len(custom)}.")
            with torch.no_grad():
                for v, value in zip(own, custom):
                    v.copy_(value.to(v.device))  # in place: the subclass's own lists keep pointing at them
        self._load_extra_state(extra)
        if self.param_groups:
            self._lr_value = float(self.param_groups[0]["lr"])
        if self._group_hparam is not None and self.__dict__.get("_hparam_written") is not None:
            # groups saved with "betas" / "momentum" set them, as in torch; groups saved without (before
            # these were exposed) get the current value, which a momentum-cycling scheduler made later reads
            for group in self.param_groups:
                group.setdefault(self._group_hparam, self._hparam_written)
            self._sync_group_hparam()
        self.built = True

    def _extra_state(self) -> dict:
        return {}

    def _load_extra_state(self, extra: dict) -> None:
        pass

    def save_own_variables(self, store) -> None:
        """Writes `variables` to `store["0"], store["1"], ...` as NumPy arrays."""
        for i, v in enumerate(self.variables):
            store[str(i)] = v.detach().cpu().numpy()

    @torch.no_grad()
    def _variables_in_file_order(self, store) -> list:
        """`variables` in the order the Keras release that wrote `store` kept
        them (`store.keras_version`, None when unknown); the same as
        `variables` unless a subclass's layout changed between releases."""
        return self.variables

    def load_own_variables(self, store) -> None:
        """Inverse of `save_own_variables` (skipped with a warning on a count mismatch)."""
        variables = self.variables
        if len(store.keys()) == len(variables) + 4 and _loss_scale_layout(store, variables):
            # Keras wraps the optimizer of a "mixed_float16" model in a LossScaleOptimizer and saves its 4
            # own variables (iteration, learning rate, step counter, scale) before this optimizer's; kerasish's
            # fit scales with a GradScaler (which starts again from 2**15): load this optimizer's part
            store = _ShiftedStore(store, 4, len(variables))
        variables = self._variables_in_file_order(store)
        if len(store.keys()) != len(variables):
            warnings.warn(
                f"Skipping variable loading for optimizer '{self.name}', because it has {len(variables)} variables "
                f"whereas the saved optimizer has {len(store.keys())} variables.",
                stacklevel=2,
            )
            return
        offset = 1
        self._iterations.fill_(int(np.asarray(store["0"])))
        if self._schedule is None:
            self.learning_rate = float(np.asarray(store["1"]))
            offset = 2
        for i, v in enumerate(variables[offset:], start=offset):
            v.copy_(_stored_tensor(store[str(i)]).to(device=v.device, dtype=v.dtype))

    def get_config(self) -> dict:
        """Keras config: learning rate (float or serialized schedule) and the common arguments."""
        if isinstance(self._schedule, lr_schedules.LearningRateSchedule):
            learning_rate = lr_schedules.serialize(self._schedule)
        elif self._schedule is not None:
            learning_rate = serialize_keras_object(self._schedule)
        else:
            learning_rate = self._current_lr()
        return {
            "name": self.name,
            "learning_rate": learning_rate,
            "weight_decay": self.weight_decay,
            "clipnorm": self.clipnorm,
            "global_clipnorm": self.global_clipnorm,
            "clipvalue": self.clipvalue,
            "use_ema": self.use_ema,
            "ema_momentum": self.ema_momentum,
            "ema_overwrite_frequency": self.ema_overwrite_frequency,
            "loss_scale_factor": self.loss_scale_factor,
            "gradient_accumulation_steps": self.gradient_accumulation_steps,
            # Keras 2's `decay` only when set (Keras 3 configs have no such key)
            **({"decay": self.decay} if self.decay else {}),
        }

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None):
        """Creates an optimizer from `get_config()`'s output (Keras 2's `lr` / `decay` keys too)."""
        config = dict(config)
        if isinstance(config.get("learning_rate"), dict):
            config["learning_rate"] = deserialize_keras_object(
                config["learning_rate"], module_objects=lr_schedules._SCHEDULES, custom_objects=custom_objects
            )
        return cls(**config)

    def __repr__(self) -> str:
        return f"<{self.__class__.__name__} name={self.name!r} learning_rate={self._current_lr():g}>"


def _moves_version() -> int:
    from kerasish.layers.layer_moves import moves_version

    return moves_version()


def _reference_name(param, index: int) -> str:
    """Keras's prefix for the optimizer variables of `param`: its path with '/' as '_' (a torch
    parameter without a Keras path: `param_<index in the optimizer's list>`)."""
    path = getattr(param, "path", None)
    return path.replace("/", "_") if isinstance(path, str) else f"param_{index}"


# optimizer -> {id(state tensor): (weakref to it, its variable view)}: outside the optimizer's
# __dict__, so pickling and copying an optimizer never meet the weak references
_STATE_VIEWS: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()
