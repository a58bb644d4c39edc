"""`keras.optimizers.Adafactor`: factored second moments (Shazeer & Stern 2018), as Keras 3."""

from __future__ import annotations

import math

import torch

from kerasish.optimizers.optimizer import Optimizer


def _rms(x: torch.Tensor) -> torch.Tensor:
    return torch.sqrt(torch.mean(torch.square(x)))


class Adafactor(Optimizer):
    """Adafactor with Keras 3's update, step for step.

    State per weight, in Keras's order: `r`, `c`, `velocity`. For a weight of rank >= 2 the second moment is kept as a row factor `r`
    (shape `w.shape[:-1]`) and a column factor `c` (`w.shape[:-2] + w.shape[-1:]`),
    and `v = (r / mean(r))[..., None] * c[..., None, :]` (Keras's form); rank
    0/1 weights keep a full `v`. With `beta_2_t = 1 - t ** beta_2_decay`,
    `u = g / sqrt(v)` is clipped to RMS `clip_threshold` and
    `w -= max(epsilon_2, rms(w)) * min(lr, 1 / sqrt(t)) * u`.

    Args:
        learning_rate: Float or schedule. Defaults to 0.001.
        beta_2_decay: Decay exponent of the second moment. Defaults to -0.8.
        epsilon_1: Added to `g ** 2`. Defaults to 1e-30.
        epsilon_2: Lower bound of the relative step scale. Defaults to 1e-3.
        clip_threshold: RMS clipping threshold of the update. Defaults to 1.0.
        relative_step: Cap a float learning rate at `1 / sqrt(t)`. Defaults to True.
        **kwargs: The common `Optimizer` arguments.
    """

    _slot_names = ("r", "c", "velocity")

    def __init__(self, learning_rate=0.001, beta_2_decay=-0.8, epsilon_1=1e-30, epsilon_2=1e-3, clip_threshold=1.0,
                 relative_step=True, weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum, ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor, gradient_accumulation_steps=gradient_accumulation_steps,
                         name=name, **kwargs)
        self.beta_2_decay = beta_2_decay
        self.epsilon_1 = epsilon_1
        self.epsilon_2 = epsilon_2
        self.clip_threshold = clip_threshold
        self.relative_step = relative_step

    def _init_state(self, p: torch.Tensor) -> None:
        state = self.state[p]
        if self.use_ema and "average" not in state:
            state["average"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        if self.gradient_accumulation_steps and "gradient_accumulator" not in state:
            state["gradient_accumulator"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        if "r" not in state:
            # factored second moments; Keras keeps unused scalar placeholders for rank < 2
            factored = p.ndim >= 2
            state["r"] = p.new_zeros(p.shape[:-1] if factored else ())
            state["c"] = p.new_zeros(p.shape[:-2] + p.shape[-1:] if factored else ())
        if "velocity" not in state:
            state["velocity"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def _update(self, params, grads, slots, lr, step):
        if self._schedule is None and self.relative_step:
            lr = min(lr, 1 / math.sqrt(step))
        rho = min(lr, 1 / math.sqrt(step))
        beta = 1 - step**self.beta_2_decay
        for w, g, r, c, v in zip(params, grads, slots["r"], slots["c"], slots["velocity"]):
            alpha = torch.clamp(_rms(w), min=self.epsilon_2) * rho
            g2 = torch.square(g) + self.epsilon_1
            if w.ndim >= 2:
                r.mul_(beta).add_(g2.mean(dim=-1), alpha=1 - beta)
                c.mul_(beta).add_(g2.mean(dim=-2), alpha=1 - beta)
                v.copy_((r / r.mean(dim=-1, keepdim=True)).unsqueeze(-1) * c.unsqueeze(-2))
            else:
                v.mul_(beta).add_(g2, alpha=1 - beta)
            u = g / torch.sqrt(v)
            u = u / torch.clamp(_rms(u) / self.clip_threshold, min=1.0)
            w.sub_(alpha * u)

    def get_config(self):
        config = super().get_config()
        config.update({"beta_2_decay": self.beta_2_decay, "epsilon_1": self.epsilon_1, "epsilon_2": self.epsilon_2,
                       "clip_threshold": self.clip_threshold, "relative_step": self.relative_step})
        return config
