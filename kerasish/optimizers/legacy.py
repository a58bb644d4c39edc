"""`keras.optimizers.legacy`: tf.keras 2's legacy optimizers.

Before TF 2.11 these were tf.keras's only optimizers (`tf.keras.optimizers.Adam`
was this `Adam`), and from TF 2.11 to 2.15 Keras 2 programs name them
`tf.keras.optimizers.legacy.*`; every Keras 2 `.h5` file with a training
config saved before TF 2.11 holds one. Keras 3 removed them (its
`keras.optimizers.legacy.Adam()` raises ImportError). kerasish keeps them so a
ported Keras 2 program, or a Keras 2 file resumed with `load_model`, trains as
tf.keras 2 did:

- the constructor arguments, defaults and names of tf.keras 2 (`name="Adam"`,
  Keras 2's `lr` and time-based `decay`, `clipnorm` / `clipvalue` /
  `global_clipnorm`; any other keyword is refused with tf.keras 2's
  TypeError) and its `get_config()` (`decay` always written, clipping keys
  only when set);
- the legacy update rules where they differ from Keras 3's: `RMSprop` without
  momentum and `Adagrad` add epsilon *outside* the square root
  (`lr * g / (sqrt(v) + eps)`, Keras 3: `sqrt(v + eps)`); `Nadam`'s momentum
  schedule is `beta_1 * (1 - 0.5 * 0.96 ** (schedule_decay * t))` with
  `schedule_decay=0.004` (Keras 3: `0.96 ** t`), its `decay` argument is that
  schedule's rate (tf.keras 2 overwrote a user's `decay=` with
  `schedule_decay`, and never decays Nadam's learning rate) and it refuses a
  `LearningRateSchedule`. `SGD`, `Adam`, `Adadelta`, `Adamax`, `Ftrl` and
  `RMSprop` with momentum update as Keras 3's do (checked against recorded
  tf-keras 2.21 runs, tests/optimizers/test_legacy_optimizers.py).

They are kerasish optimizers in every other way (`torch.optim.Optimizer`s,
`compile` / `fit`, saving, `state_dict`).
"""

from __future__ import annotations

import numpy as np
import torch

from kerasish.optimizers import optimizers as _v3
from kerasish.optimizers.ftrl import Ftrl as _Ftrl
from kerasish.optimizers.legacy_base import Optimizer  # noqa: F401  (tf.keras 2's OptimizerV2 base, to subclass)
from kerasish.optimizers.legacy_base import TfKeras2Weights
from kerasish.optimizers.legacy_base import _WeightList
from kerasish.optimizers.optimizer import Optimizer as _Optimizer
from kerasish.optimizers.optimizer import _addcdiv_
from kerasish.optimizers.schedules import LearningRateSchedule

# the keyword arguments tf.keras 2's OptimizerV2 takes besides each optimizer's own
_ALLOWED_KWARGS = ("clipnorm", "clipvalue", "lr", "decay", "global_clipnorm")


def _check_kwargs(kwargs: dict) -> None:
    """tf.keras 2's checks: only `_ALLOWED_KWARGS`, none negative."""
    for key, value in kwargs.items():
        if key not in _ALLOWED_KWARGS:
            raise TypeError(
                f"Unexpected keyword argument passed to optimizer: {key}. Allowed kwargs are "
                f"{set(_ALLOWED_KWARGS)}."
            )
        if value is not None and not isinstance(value, dict | LearningRateSchedule) and value < 0:
            raise ValueError(f"Expected {key} >= 0, received: {value}")
    if kwargs.get("clipnorm") is not None and kwargs.get("global_clipnorm") is not None:
        raise ValueError(
            "Cannot accept both `clipnorm` and `global_clipnorm`. Received: "
            f"`clipnorm`={kwargs['clipnorm']}, `global_clipnorm`={kwargs['global_clipnorm']}."
        )


class _Legacy(TfKeras2Weights):
    """What every legacy optimizer shares: tf.keras 2's arguments and config."""

    # tf.keras 2's slots in the order its `_create_slots` made them: (legacy name, kerasish slot name);
    # each slot for every variable in turn, except `_legacy_interleaved` (Ftrl: both slots of a variable)
    _legacy_slots: tuple = ()
    _legacy_interleaved = False

    @property
    def variables(self):
        # tf.keras 2 code calls `optimizer.variables()` (a method there, a property in Keras 3)
        return _WeightList(super().variables)

    @property
    def weights(self):
        """tf.keras 2's `weights`: the iteration count (Nadam: then its `momentum_cache`), then the slots
        in the order tf.keras 2 made them (empty before the optimizer is built, as there)."""
        if not self.built:
            return _WeightList()
        self._follow_moved_variables()
        out = _WeightList([self._state_view(self._iterations, "iter")])
        if hasattr(self, "_u_product"):
            out.append(self._state_view(self._u_product, "momentum_cache"))
        params = [p for p in self._trainable_variables if self.state.get(p)]
        order = ([(p, slot) for p in params for slot in self._legacy_slots] if self._legacy_interleaved
                 else [(p, slot) for slot in self._legacy_slots for p in params])
        for p, (legacy_name, name) in order:
            if name in self.state[p]:
                prefix = getattr(p, "path", None) or f"param_{len(out)}"
                out.append(self._state_view(self.state[p][name], f"{prefix}/{legacy_name}"))
        return out

    def _create_all_weights(self, var_list):
        """tf.keras 2's way to make an optimizer's state before `set_weights`."""
        self.build(list(var_list))

    def _legacy_config(self, **own) -> dict:
        config = {"name": self.name}
        for key in ("clipnorm", "clipvalue", "global_clipnorm"):
            if getattr(self, key) is not None:
                config[key] = getattr(self, key)
        lr = _Optimizer.get_config(self)["learning_rate"]
        config.update({"learning_rate": lr, "decay": self.decay, **own})
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None):
        config = dict(config)
        config.pop("is_legacy_optimizer", None)
        if "lr" in config:
            config["learning_rate"] = config.pop("lr")
        return super().from_config(config, custom_objects)


class SGD(_Legacy, _v3.SGD):
    """tf.keras 2's legacy `SGD` (the same update as Keras 3's)."""

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, name="SGD", **kwargs):
        _check_kwargs(kwargs)
        super().__init__(learning_rate=learning_rate, momentum=momentum, nesterov=nesterov, name=name, **kwargs)

    def get_config(self):
        return self._legacy_config(momentum=self.momentum, nesterov=self.nesterov)


class Adam(_Legacy, _v3.Adam):
    """tf.keras 2's legacy `Adam` (the same update as Keras 3's)."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, amsgrad=False, name="Adam",
                 **kwargs):
        _check_kwargs(kwargs)
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         amsgrad=amsgrad, name=name, **kwargs)

    def get_config(self):
        return self._legacy_config(beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon,
                                   amsgrad=self.amsgrad)


class RMSprop(_Legacy, _v3.RMSprop):
    """tf.keras 2's legacy `RMSprop`. Without momentum epsilon is added
    outside the square root, `var -= lr * g / (sqrt(v) + eps)` (centered:
    `sqrt(v - mean_g^2) + eps`); with momentum the update is TF's fused
    kernel's, epsilon inside (`sqrt(v + eps)`), as Keras 3's."""

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-7, centered=False, name="RMSprop",
                 **kwargs):
        _check_kwargs(kwargs)
        super().__init__(learning_rate=learning_rate, rho=rho, momentum=momentum, epsilon=epsilon,
                         centered=centered, name=name, **kwargs)

    def _update(self, params, grads, slots, lr, step):
        if self.momentum > 0:
            return super()._update(params, grads, slots, lr, step)
        rho = self.rho
        v = slots["velocity"]
        torch._foreach_mul_(v, rho)
        torch._foreach_addcmul_(v, grads, grads, value=1 - rho)
        if self.centered:
            avg = slots["average_gradient"]
            torch._foreach_mul_(avg, rho)
            torch._foreach_add_(avg, grads, alpha=1 - rho)
            denom = torch._foreach_addcmul(v, avg, avg, value=-1)
            torch._foreach_sqrt_(denom)
        else:
            denom = torch._foreach_sqrt(v)
        torch._foreach_add_(denom, self.epsilon)
        _addcdiv_(params, grads, denom, -lr)

    def get_config(self):
        return self._legacy_config(rho=self.rho, momentum=self.momentum, epsilon=self.epsilon,
                                   centered=self.centered)


class Adagrad(_Legacy, _v3.Adagrad):
    """tf.keras 2's legacy `Adagrad`: `acc += g^2; var -= lr * g / (sqrt(acc) + eps)`
    (epsilon outside the square root; Keras 3: inside)."""

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-7, name="Adagrad", **kwargs):
        if initial_accumulator_value < 0.0:
            raise ValueError(
                "initial_accumulator_value must be non-negative: " + str(initial_accumulator_value)
            )
        _check_kwargs(kwargs)
        super().__init__(learning_rate=learning_rate, initial_accumulator_value=initial_accumulator_value,
                         epsilon=epsilon, name=name, **kwargs)

    def _update(self, params, grads, slots, lr, step):
        acc = slots["accumulator"]
        torch._foreach_addcmul_(acc, grads, grads)
        denom = torch._foreach_sqrt(acc)
        torch._foreach_add_(denom, self.epsilon)
        _addcdiv_(params, grads, denom, -lr)

    def get_config(self):
        return self._legacy_config(initial_accumulator_value=self.initial_accumulator_value, epsilon=self.epsilon)


class Adadelta(_Legacy, _v3.Adadelta):
    """tf.keras 2's legacy `Adadelta` (the same update as Keras 3's)."""

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-7, name="Adadelta", **kwargs):
        _check_kwargs(kwargs)
        super().__init__(learning_rate=learning_rate, rho=rho, epsilon=epsilon, name=name, **kwargs)

    def get_config(self):
        return self._legacy_config(rho=self.rho, epsilon=self.epsilon)


class Adamax(_Legacy, _v3.Adamax):
    """tf.keras 2's legacy `Adamax` (the same update as Keras 3's)."""

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, name="Adamax", **kwargs):
        _check_kwargs(kwargs)
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, name=name,
                         **kwargs)

    def get_config(self):
        return self._legacy_config(beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon)


class Nadam(_Legacy, _v3.Nadam):
    """tf.keras 2's legacy `Nadam`: Keras 3's update with the momentum schedule
    `u_t = beta_1 * (1 - 0.5 * 0.96 ** (schedule_decay * t))`.

    `schedule_decay` (default 0.004) is also what tf.keras 2 stores as this
    optimizer's `decay`: it overwrote a `decay=` argument with it, so `decay`
    never decays Nadam's learning rate (accepted and ignored, as there). A
    `LearningRateSchedule` is refused, as in tf.keras 2.
    """

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, name="Nadam", **kwargs):
        schedule_decay = kwargs.pop("schedule_decay", 0.004)
        kwargs.pop("decay", None)  # tf.keras 2: `kwargs["decay"] = kwargs.pop("schedule_decay", 0.004)`
        _check_kwargs(kwargs)
        if isinstance(kwargs.get("lr", learning_rate), LearningRateSchedule):
            raise ValueError(
                "The Nadam optimizer does not support tf.keras.optimizers.LearningRateSchedules as the "
                "learning rate."
            )
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, name=name,
                         **kwargs)
        if not isinstance(schedule_decay, int | float) or schedule_decay < 0:
            raise ValueError(f"decay cannot be less than 0. Received: decay={schedule_decay}.")
        self.schedule_decay = float(schedule_decay)

    def _schedule_power(self, step):
        # `schedule_decay * t` in float32, as tf.keras 2's legacy Nadam computes it
        if isinstance(step, torch.Tensor):
            return (step * self.schedule_decay).float().double()
        return np.float32(self.schedule_decay) * np.float32(step)

    def _schedule_constants(self):
        # tf.keras 2 reads `beta_1` from a float32 variable and makes the base with `tf.cast(0.96, dtype)`,
        # which converts the Python float to float32 first: both float32-rounded, then cast
        return float(np.float32(self.beta_1)), float(np.float32(0.96))

    def _schedule_power_as(self, step, dtype):
        # `schedule_decay * t` in the weights' dtype (a float64 / float16 / bfloat16 model), as tf.keras 2
        return torch.tensor(self.schedule_decay, dtype=dtype) * torch.tensor(float(step), dtype=dtype)

    def get_config(self):
        config = self._legacy_config(beta_1=self.beta_1, beta_2=self.beta_2, epsilon=self.epsilon)
        config["decay"] = self.schedule_decay
        return config

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None):
        config = dict(config)
        if "decay" in config:  # the schedule's rate (what tf.keras 2's config holds under `decay`)
            config["schedule_decay"] = config.pop("decay")
        return super().from_config(config, custom_objects)


class Ftrl(_Legacy, _Ftrl):
    """tf.keras 2's legacy `Ftrl` (the same update as Keras 3's)."""

    def __init__(self, learning_rate=0.001, learning_rate_power=-0.5, initial_accumulator_value=0.1,
                 l1_regularization_strength=0.0, l2_regularization_strength=0.0, name="Ftrl",
                 l2_shrinkage_regularization_strength=0.0, beta=0.0, **kwargs):
        _check_kwargs(kwargs)
        super().__init__(learning_rate=learning_rate, learning_rate_power=learning_rate_power,
                         initial_accumulator_value=initial_accumulator_value,
                         l1_regularization_strength=l1_regularization_strength,
                         l2_regularization_strength=l2_regularization_strength, name=name,
                         l2_shrinkage_regularization_strength=l2_shrinkage_regularization_strength, beta=beta,
                         **kwargs)

    def get_config(self):
        return self._legacy_config(
            initial_accumulator_value=self.initial_accumulator_value,
            learning_rate_power=self.learning_rate_power,
            l1_regularization_strength=self.l1_regularization_strength,
            l2_regularization_strength=self.l2_regularization_strength,
            beta=self.beta,
            l2_shrinkage_regularization_strength=self.l2_shrinkage_regularization_strength,
        )


SGD._legacy_slots = (("momentum", "momentum"),)
Adam._legacy_slots = (("m", "momentum"), ("v", "velocity"), ("vhat", "velocity_hat"))
RMSprop._legacy_slots = (("rms", "velocity"), ("momentum", "momentum"), ("mg", "average_gradient"))
Adagrad._legacy_slots = (("accumulator", "accumulator"),)
Adadelta._legacy_slots = (("accum_grad", "accumulated_grad"), ("accum_var", "accumulated_delta_var"))
Adamax._legacy_slots = (("m", "momentum"), ("v", "norm"))
Nadam._legacy_slots = (("m", "momentum"), ("v", "velocity"))
Ftrl._legacy_slots = (("accumulator", "accumulator"), ("linear", "linear"))
Ftrl._legacy_interleaved = True

ALL_OBJECTS = (SGD, Adam, RMSprop, Adagrad, Adadelta, Adamax, Nadam, Ftrl)
for _cls in ALL_OBJECTS:
    _cls._keras_module = "keras.optimizers.legacy"  # (the base class's `__init_subclass__` wrote "keras.optimizers")
ALL_OBJECTS_DICT = {cls.__name__: cls for cls in ALL_OBJECTS}
