"""`keras.optimizers.ScheduleFreeAdamW` (Defazio et al. 2024), Keras 3's formulation."""

from __future__ import annotations

import functools

import numpy as np
import torch

from kerasish.optimizers.optimizer import _ONE
from kerasish.optimizers.optimizer import Optimizer


@functools.lru_cache(maxsize=16)
def _float32_constants(beta_1: float, beta_2: float, epsilon: float) -> tuple:
    """`beta_1`, `epsilon`, `1 - beta_1`, `1 - beta_2` as Keras has them: float32
    tensors first, then subtracted in float32 (`1 - beta_1` is 0.100000024)."""
    f32 = np.float32
    return float(f32(beta_1)), float(f32(epsilon)), float(_ONE - f32(beta_1)), float(_ONE - f32(beta_2))


class ScheduleFreeAdamW(Optimizer):
    """Schedule-Free AdamW: interpolation and averaging instead of a learning-rate schedule.

    Keras's update, per variable `y` (the model weight) with slots `z`
    (`"momentum"`, initialised to a copy of the weight when the optimizer is
    built) and `v` (`"velocity"`), at step `t` (1-based):

        lr_t = lr * min(t / warmup_steps, 1)       (no warmup when warmup_steps=0)
        v = beta_2 * v + (1 - beta_2) * g^2
        z_new = z - lr_t * g / (sqrt(v / (1 - beta_2^t)) + epsilon)
        x = (y - (1 - beta_1) * z_new) / beta_1    (the average, "recovered")
        x = (1 - 1/t) * x + (1/t) * z_new
        y = (1 - beta_1) * z_new + beta_1 * x

    Note: the recovery of `x` uses the *updated* `z`: Keras 3.15 on the torch
    backend reads `momentum.value` after `assign_sub` has changed it in
    place, so that is the number Keras produces and kerasish reproduces it
    (the paper, and Keras on JAX, where variables are immutable, recover
    `x` with the `z` from before the update; the difference moves `x` by
    `(1 - beta_1) / beta_1` of the step).
    Unlike the reference `schedulefree` package there is no train/eval
    weight swap: the model always holds `y`, as in Keras. Decoupled
    `weight_decay` (if set) shrinks `y` before the update.

    Args:
        learning_rate: Float or schedule. Defaults to 0.0025.
        beta_1: Interpolation between `z` and `x`. Defaults to 0.9.
        beta_2: Second-moment decay. Defaults to 0.999.
        epsilon: Added after the bias-corrected square root. Defaults to 1e-8.
        warmup_steps: Linear learning-rate warmup steps. Defaults to 0.
        **kwargs: The common `Optimizer` arguments.
    """

    _slot_names = ("momentum", "velocity")

    def __init__(self, learning_rate=0.0025, beta_1=0.9, beta_2=0.999, epsilon=1e-8, warmup_steps=0,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False,
                 ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum, ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor, gradient_accumulation_steps=gradient_accumulation_steps,
                         name=name, **kwargs)
        if not isinstance(warmup_steps, int) or isinstance(warmup_steps, bool) or warmup_steps < 0:
            raise ValueError(
                "Argument `warmup_steps` of ScheduleFreeAdamW must be an integer >= 0. "
                f"Received: warmup_steps={warmup_steps}"
            )
        if beta_1 == 0:
            raise ValueError("Argument `beta_1` of ScheduleFreeAdamW must be non-zero (the average is recovered "
                             f"by dividing by it). Received: beta_1={beta_1}")
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.warmup_steps = warmup_steps

    def _init_state(self, p: torch.Tensor) -> None:
        state = self.state[p]
        if "momentum" not in state:
            # z starts at the weight's value when the optimizer is built, as in Keras
            state["momentum"] = p.detach().clone(memory_format=torch.preserve_format)
        super()._init_state(p)

    def _update(self, params, grads, slots, lr, step):
        if isinstance(step, torch.Tensor) or isinstance(lr, torch.Tensor):
            b1, b2, eps = self.beta_1, self.beta_2, self.epsilon
            if self.warmup_steps > 0:
                factor = step / self.warmup_steps
                lr = lr * (torch.clamp(factor, max=1.0) if isinstance(factor, torch.Tensor) else min(factor, 1.0))
            one_b1, one_b2, bias_correction_2 = 1 - b1, 1 - b2, 1 - b2**step
            weight = 1.0 / step
            one_weight = 1 - weight
        else:
            # the scalars in float32 with Keras's roundings: Keras casts lr, the step and the
            # betas to float32 tensors first (`1 - beta_1` is then 0.100000024, not 0.1), and a
            # number divided by a tensor is torch's `reciprocal() * number`; NumPy's float32
            # scalars round these operations as torch's 0-d CPU kernels do (powers: see
            # `_adam_alpha`; division and reciprocal are correctly rounded in both)
            f32 = np.float32
            b1, eps, one_b1, one_b2 = _float32_constants(self.beta_1, self.beta_2, self.epsilon)
            t = f32(step)
            lr32 = f32(lr)
            if self.warmup_steps > 0:
                lr32 = lr32 * min(t / f32(self.warmup_steps), _ONE)
            weight32 = _ONE / t
            lr, weight, one_weight = float(lr32), float(weight32), float(_ONE - weight32)
            bias_correction_2 = float(_ONE - f32(self.beta_2) ** t)
        for y, g, z, v in zip(params, grads, slots["momentum"], slots["velocity"]):
            # Keras updates `v += (g^2 - v) * (1 - beta_2)`: two more passes per weight for an
            # ulp now and then (as Adam's `addcmul`, see `Adam`)
            v.mul_(self.beta_2).addcmul_(g, g, value=one_b2)
            denom = (v / bias_correction_2).sqrt_().add_(eps)
            z.sub_(lr * g / denom)
            x = (y - one_b1 * z) / b1
            x = one_weight * x + weight * z
            y.copy_(one_b1 * z + b1 * x)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon, "warmup_steps": self.warmup_steps}
        )
        return config
