"""`keras.optimizers.schedules`: learning-rate schedules with Keras 3 formulas.

Each schedule maps a step (int or tensor) to a 0-d float32 tensor, computed in
the dtype of `initial_learning_rate` as a tensor (float32), as Keras does.
Only tensor ops on the step, no Python branch on its value: a compiled
optimizer step evaluates the schedule on its `iterations` tensor inside the
graph.
"""

from __future__ import annotations

import math

import torch

from kerasish.saving.serialization_lib import (
    deserialize_keras_object,
    serialize_keras_object,
)

_F32 = torch.float32


def _t(x, dtype=_F32) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.detach().to(dtype)
    return torch.tensor(x, dtype=dtype)


class LearningRateSchedule:
    """Base class: subclasses implement `__call__(step)` and `get_config()`.

    Example:
        >>> class Halve(keras.optimizers.schedules.LearningRateSchedule):
        ...     def __call__(self, step):
        ...         return 0.1 * 0.5 ** (step // 100)
        ...     def get_config(self):
        ...         return {}
    """

    _keras_module = "keras.optimizers.schedules"

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        builtin = cls.__module__.startswith("kerasish.optimizers")
        cls._keras_module = "keras.optimizers.schedules" if builtin else None

    def __call__(self, step):
        raise NotImplementedError(
            f"Learning rate schedule '{self.__class__.__name__}' must override `__call__(self, step)`."
        )

    def get_config(self) -> dict:
        raise NotImplementedError(
            f"Learning rate schedule '{self.__class__.__name__}' must override `get_config()` in order to be "
            "serializable."
        )

    @classmethod
    def from_config(cls, config: dict):
        """Creates the schedule from its config."""
        return cls(**config)


def _check_steps(name, value):
    if value <= 0:
        raise ValueError(f"Argument `{name}` must be > 0. Received: {name}={value}")


class ExponentialDecay(LearningRateSchedule):
    """`initial_learning_rate * decay_rate ** (step / decay_steps)` (floored with `staircase`)."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="ExponentialDecay"):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name
        _check_steps("decay_steps", decay_steps)

    def __call__(self, step):
        lr = _t(self.initial_learning_rate)
        p = _t(step, lr.dtype) / _t(self.decay_steps, lr.dtype)
        if self.staircase:
            p = torch.floor(p)
        return lr * torch.pow(_t(self.decay_rate, lr.dtype), p)

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name,
        }


class PiecewiseConstantDecay(LearningRateSchedule):
    """`values[i]` for `boundaries[i-1] < step <= boundaries[i]`."""

    def __init__(self, boundaries, values, name="PiecewiseConstant"):
        if len(boundaries) != len(values) - 1:
            raise ValueError(
                "The length of boundaries should be 1 less than the length of values. Received: "
                f"boundaries={boundaries} of length {len(boundaries)}, and values={values} of length {len(values)}."
            )
        self.boundaries = boundaries
        self.values = values
        self.name = name

    def __call__(self, step):
        step = _t(step, torch.float64)
        values = [_t(v) for v in self.values]
        bounds = [float(b) for b in self.boundaries]
        dtype = values[0].dtype
        result = (step <= bounds[0]).to(dtype) * values[0]
        result = result + (step > bounds[-1]).to(dtype) * values[-1]
        for low, high, value in zip(bounds[:-1], bounds[1:], values[1:-1]):
            result = result + ((step > low) & (step <= high)).to(dtype) * value
        return result

    def get_config(self) -> dict:
        return {"boundaries": self.boundaries, "values": self.values, "name": self.name}


class PolynomialDecay(LearningRateSchedule):
    """Polynomial decay from `initial_learning_rate` to `end_learning_rate` over `decay_steps`."""

    def __init__(self, initial_learning_rate, decay_steps, end_learning_rate=0.0001, power=1.0, cycle=False,
                 name="PolynomialDecay"):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.end_learning_rate = end_learning_rate
        self.power = power
        self.cycle = cycle
        self.name = name
        _check_steps("decay_steps", decay_steps)

    def __call__(self, step):
        lr = _t(self.initial_learning_rate)
        end = _t(self.end_learning_rate)
        step = _t(step)
        decay_steps = _t(self.decay_steps)
        if self.cycle:
            multiplier = torch.where(step == 0, torch.ones(()), torch.ceil(step / self.decay_steps))
            decay_steps = decay_steps * multiplier
        else:
            step = torch.minimum(step, decay_steps)
        p = step / decay_steps
        return (lr - end) * torch.pow(1 - p, _t(self.power)) + end

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
            "end_learning_rate": self.end_learning_rate, "power": self.power, "cycle": self.cycle,
            "name": self.name,
        }


class InverseTimeDecay(LearningRateSchedule):
    """`initial_learning_rate / (1 + decay_rate * step / decay_steps)`."""

    def __init__(self, initial_learning_rate, decay_steps, decay_rate, staircase=False, name="InverseTimeDecay"):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.decay_rate = decay_rate
        self.staircase = staircase
        self.name = name
        _check_steps("decay_steps", decay_steps)

    def __call__(self, step):
        lr = _t(self.initial_learning_rate)
        p = _t(step) / _t(self.decay_steps)
        if self.staircase:
            p = torch.floor(p)
        return lr / (1.0 + _t(self.decay_rate) * p)

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
            "decay_rate": self.decay_rate, "staircase": self.staircase, "name": self.name,
        }


class CosineDecay(LearningRateSchedule):
    """Cosine decay to `alpha * lr` over `decay_steps`, after an optional
    linear warmup from `initial_learning_rate` to `warmup_target` over `warmup_steps`."""

    def __init__(self, initial_learning_rate, decay_steps, alpha=0.0, name="CosineDecay", warmup_target=None,
                 warmup_steps=0):
        self.initial_learning_rate = initial_learning_rate
        self.decay_steps = decay_steps
        self.alpha = alpha
        self.name = name
        self.warmup_steps = warmup_steps
        self.warmup_target = warmup_target
        _check_steps("decay_steps", decay_steps)

    def _decay(self, step, decay_steps, decay_from_lr):
        fraction = step / decay_steps
        cosine = 0.5 * (1.0 + torch.cos(_t(math.pi) * fraction))
        return decay_from_lr * ((1 - self.alpha) * cosine + self.alpha)

    def __call__(self, step):
        lr = _t(self.initial_learning_rate)
        decay_steps = _t(self.decay_steps)
        step = _t(step)
        if self.warmup_target is None:
            return self._decay(torch.minimum(step, decay_steps), decay_steps, lr)
        target = _t(self.warmup_target)
        warmup_steps = _t(self.warmup_steps)
        step = torch.minimum(step, decay_steps + warmup_steps)
        # Keras's `ops.cond` as a select: no host sync, one traced graph for every step
        warmup = (target - lr) * (step / warmup_steps) + lr
        return torch.where(step < warmup_steps, warmup, self._decay(step - warmup_steps, decay_steps, target))

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate, "decay_steps": self.decay_steps,
            "alpha": self.alpha, "name": self.name, "warmup_target": self.warmup_target,
            "warmup_steps": self.warmup_steps,
        }


class CosineDecayRestarts(LearningRateSchedule):
    """Cosine decay with warm restarts (SGDR); periods grow by `t_mul`, peaks by `m_mul`."""

    def __init__(self, initial_learning_rate, first_decay_steps, t_mul=2.0, m_mul=1.0, alpha=0.0, name="SGDRDecay"):
        self.initial_learning_rate = initial_learning_rate
        self.first_decay_steps = first_decay_steps
        self._t_mul = t_mul
        self._m_mul = m_mul
        self.alpha = alpha
        self.name = name
        _check_steps("first_decay_steps", first_decay_steps)

    def __call__(self, step):
        lr = _t(self.initial_learning_rate)
        alpha = _t(self.alpha)
        t_mul = _t(self._t_mul)
        m_mul = _t(self._m_mul)
        fraction = _t(step) / _t(self.first_decay_steps)
        if float(self._t_mul) == 1.0:  # (the Python value: no tensor read)
            i_restart = torch.floor(fraction)
            fraction = fraction - i_restart
        else:
            i_restart = torch.floor(torch.log(1.0 - fraction * (1.0 - t_mul)) / torch.log(t_mul))
            sum_r = (1.0 - torch.pow(t_mul, i_restart)) / (1.0 - t_mul)
            fraction = (fraction - sum_r) / torch.pow(t_mul, i_restart)
        m_fac = torch.pow(m_mul, i_restart)
        cosine = 0.5 * m_fac * (1.0 + torch.cos(_t(math.pi) * fraction))
        return lr * ((1 - alpha) * cosine + alpha)

    def get_config(self) -> dict:
        return {
            "initial_learning_rate": self.initial_learning_rate, "first_decay_steps": self.first_decay_steps,
            "t_mul": self._t_mul, "m_mul": self._m_mul, "alpha": self.alpha, "name": self.name,
        }


_SCHEDULES = {
    c.__name__: c
    for c in (LearningRateSchedule, ExponentialDecay, PiecewiseConstantDecay, PolynomialDecay,
              InverseTimeDecay, CosineDecay, CosineDecayRestarts)
}


def serialize(learning_rate_schedule) -> dict:
    """The Keras config dict of a schedule."""
    return serialize_keras_object(learning_rate_schedule)


def deserialize(config, custom_objects: dict | None = None):
    """Creates a schedule from a config dict (raises `ValueError` for unknown names)."""
    return deserialize_keras_object(
        config, module_objects=_SCHEDULES, custom_objects=custom_objects, printable_module_name="decay"
    )


__all__ = [
    "CosineDecay", "CosineDecayRestarts", "ExponentialDecay", "InverseTimeDecay", "LearningRateSchedule",
    "PiecewiseConstantDecay", "PolynomialDecay", "deserialize", "serialize",
]
