"""`keras.optimizers.Muon`: orthogonalised momentum for matrices, AdamW for the rest."""

from __future__ import annotations

import re

import numpy as np
import torch

from kerasish.optimizers.optimizer import Optimizer
from kerasish.optimizers.optimizer import _adam_alpha
from kerasish.optimizers.optimizer import _sqrt

# Keras's Newton-Schulz normalisation: x / (||x||_F + 1e-7)
_NS_EPSILON = 1e-7


def zeropower_via_newtonschulz5(x: torch.Tensor, steps: int, a: float, b: float, c: float) -> torch.Tensor:
    """The quintic Newton-Schulz iteration of Muon: approximately `U V^T` of `x = U S V^T`.

    `x` is normalised by its Frobenius norm, the iteration runs on the wide
    orientation (the transpose when `rows > cols`) and the result has `x`'s shape.
    """
    if x.ndim < 2:
        raise ValueError(
            f"Expected gradient or momentum to have at least 2 dimensions. Received: shape={tuple(x.shape)}"
        )
    tall = x.shape[-2] > x.shape[-1]
    if tall:
        x = x.transpose(-2, -1)
    x = x / (torch.linalg.vector_norm(x, dim=(-2, -1), keepdim=True) + _NS_EPSILON)
    for _ in range(steps):
        gram = x @ x.transpose(-2, -1)
        poly = b * gram + (c * gram) @ gram
        x = a * x + poly @ x
    if tall:
        x = x.transpose(-2, -1)
    return x


class Muon(Optimizer):
    """Muon (Jordan et al. 2024; Moonlight scaling, Liu et al. 2025), Keras 3's variant.

    Each 2-D variable not excluded takes the Muon step: Nesterov momentum
    `m = momentum * m + g; u = g + momentum * m` (plain: `u = m`), then
    `var -= lr * NS5(u) * sqrt(max(rows, cols)) * rms_rate` (no scaling when
    `rms_rate=None`), where `NS5` is 5 quintic Newton-Schulz steps. Every
    other variable takes Keras's Adam step with `lr * adam_lr_ratio`: those
    of rank != 2, those whose `path` contains "embedding" (when
    `exclude_embeddings`), and those whose `path` matches (`re.search`) a
    pattern of `exclude_layers`. Weight decay uses `adam_weight_decay` for
    Adam variables and `weight_decay` for Muon ones, times the (unscaled)
    learning rate. A torch parameter without a Keras `path` matches on its
    `name` (or "").

    Args:
        learning_rate: Float or schedule. Defaults to 0.001.
        adam_beta_1: Adam's first-moment decay. Defaults to 0.9.
        adam_beta_2: Adam's second-moment decay. Defaults to 0.999.
        adam_weight_decay: Decoupled weight decay of the Adam variables. Defaults to 0.004.
        epsilon: Adam's epsilon (outside the square root). Defaults to 1e-7.
        weight_decay: Decoupled weight decay of the Muon variables. Defaults to 0.004.
        exclude_layers: Regex patterns of variable paths that take the Adam step.
        exclude_embeddings: Embeddings take the Adam step. Defaults to True.
        muon_a, muon_b, muon_c: Newton-Schulz coefficients (3.4445, -4.7750, 2.0315).
        adam_lr_ratio: Adam's learning rate over the main one. Defaults to 1.
        momentum: Muon's momentum. Defaults to 0.95.
        ns_steps: Newton-Schulz iterations. Defaults to 5.
        nesterov: Nesterov momentum. Defaults to True.
        rms_rate: Moonlight's update scale, or None. Defaults to 0.2.
        **kwargs: The common `Optimizer` arguments.
    """

    _slot_names = ("momentum", "velocity")

    def __init__(self, learning_rate=0.001, adam_beta_1=0.9, adam_beta_2=0.999, adam_weight_decay=0.004,
                 epsilon=1e-7, weight_decay=0.004, clipnorm=None, clipvalue=None, global_clipnorm=None,
                 use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, exclude_layers=None, exclude_embeddings=True,
                 muon_a=3.4445, muon_b=-4.7750, muon_c=2.0315, adam_lr_ratio=1, momentum=0.95, ns_steps=5,
                 nesterov=True, rms_rate=0.2, **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum, ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor, gradient_accumulation_steps=gradient_accumulation_steps,
                         name=name, **kwargs)
        if isinstance(ns_steps, bool) or not isinstance(ns_steps, int) or ns_steps < 0:
            raise ValueError(f"Argument `ns_steps` of Muon must be an integer >= 0. Received: ns_steps={ns_steps}")
        if isinstance(exclude_layers, str):
            raise TypeError(
                "Argument `exclude_layers` of Muon must be a list of regex strings, not a string. "
                f"Received: exclude_layers={exclude_layers!r}"
            )
        self.adam_beta_1 = adam_beta_1
        self.adam_beta_2 = adam_beta_2
        self.epsilon = epsilon
        self.muon_a = muon_a
        self.muon_b = muon_b
        self.muon_c = muon_c
        self.adam_lr_ratio = adam_lr_ratio
        self.momentum = momentum
        self.ns_steps = ns_steps
        self.nesterov = nesterov
        self.exclude_embeddings = exclude_embeddings
        self.exclude_layers = list(exclude_layers or [])
        self.adam_weight_decay = adam_weight_decay
        self.rms_rate = rms_rate

    @staticmethod
    def _path(variable) -> str:
        path = getattr(variable, "path", None) or getattr(variable, "name", None)
        return path if isinstance(path, str) else ""

    def _should_use_adamw(self, variable) -> bool:
        if variable.ndim != 2:
            return True
        path = self._path(variable)
        if self.exclude_embeddings and "embedding" in path.lower():
            return True
        return any(re.search(pattern, path) for pattern in self.exclude_layers)

    def _init_state(self, p: torch.Tensor) -> None:
        state = self.state[p]
        if self.use_ema and "average" not in state:
            state["average"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        if self.gradient_accumulation_steps and "gradient_accumulator" not in state:
            state["gradient_accumulator"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        if "momentum" not in state:
            state["momentum"] = torch.zeros_like(p, memory_format=torch.preserve_format)
        # only the Adam-updated variables have a velocity (Keras creates none for the Muon ones)
        if self._should_use_adamw(p) and "velocity" not in state:
            state["velocity"] = torch.zeros_like(p, memory_format=torch.preserve_format)

    def _apply_weight_decay(self, params, lr, group):
        for p in params:
            if not self._use_weight_decay(p):
                continue
            wd = self.adam_weight_decay if self._should_use_adamw(p) else self.weight_decay
            if group is not None and "weight_decay" in group and group["weight_decay"] is not None:
                wd = group["weight_decay"]
            if wd is not None:
                p.mul_(1.0 - float(wd) * lr)

    def _update(self, params, grads, slots, lr, step):
        b1, b2 = self.adam_beta_1, self.adam_beta_2
        if isinstance(lr, torch.Tensor) or isinstance(step, torch.Tensor):
            alpha = lr * self.adam_lr_ratio * _sqrt(1 - b2**step) / (1 - b1**step)
        else:  # float32 with Keras's roundings (its learning rate is a float32 tensor)
            alpha = _adam_alpha(float(np.float32(lr) * np.float32(self.adam_lr_ratio)), b1, b2, step)
        for p, g, m, v in zip(params, grads, slots["momentum"], slots["velocity"]):
            if v is not None:  # Keras's Adam step
                m.lerp_(g, 1 - b1)
                v.mul_(b2).addcmul_(g, g, value=1 - b2)
                p.sub_(m * alpha / (v.sqrt() + self.epsilon))
                continue
            m.mul_(self.momentum).add_(g)
            u = g + self.momentum * m if self.nesterov else m
            update = zeropower_via_newtonschulz5(u, self.ns_steps, self.muon_a, self.muon_b, self.muon_c)
            update = lr * update
            if self.rms_rate is not None:
                update = update * (max(p.shape[0], p.shape[1]) ** 0.5 * self.rms_rate)
            p.sub_(update)

    def get_config(self):
        config = super().get_config()
        config.update({
            "adam_beta_1": self.adam_beta_1, "adam_beta_2": self.adam_beta_2, "epsilon": self.epsilon,
            "exclude_layers": self.exclude_layers, "muon_a": self.muon_a, "muon_b": self.muon_b,
            "muon_c": self.muon_c, "adam_lr_ratio": self.adam_lr_ratio, "momentum": self.momentum,
            "ns_steps": self.ns_steps, "nesterov": self.nesterov, "exclude_embeddings": self.exclude_embeddings,
            "adam_weight_decay": self.adam_weight_decay, "rms_rate": self.rms_rate,
        })
        return config
