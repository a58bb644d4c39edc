"""`keras.optimizers.Ftrl`: Follow The Regularized Leader (McMahan et al. 2013)."""

from __future__ import annotations

import torch

from kerasish.optimizers.optimizer import Optimizer


class Ftrl(Optimizer):
    """FTRL-Proximal, with Keras 3's online L2 shrinkage and `beta`.

    Per element, with `p = -learning_rate_power`:
    `n' = n + g^2`; `z += g + 2 * l2_shrinkage * w - (n'^p - n^p) / lr * w`;
    `w = (clip(z, -l1, l1) - z) / (n'^p / lr + 2 * (l2 + beta / (2 * lr)))`; `n = n'`.

    Args:
        learning_rate: Float or schedule. Defaults to 0.001.
        learning_rate_power: <= 0; how the per-element rate decays. Defaults to -0.5.
        initial_accumulator_value: >= 0, start of `n`. Defaults to 0.1.
        l1_regularization_strength: >= 0. Defaults to 0.
        l2_regularization_strength: >= 0. Defaults to 0.
        l2_shrinkage_regularization_strength: >= 0, magnitude penalty on the
            weights added to the gradient. Defaults to 0.
        beta: Adds `beta / (2 * lr)` to the L2 strength. Defaults to 0.
        **kwargs: The common `Optimizer` arguments.
    """

    _slot_names = ("accumulator", "linear")

    def __init__(self, learning_rate=0.001, learning_rate_power=-0.5, initial_accumulator_value=0.1,
                 l1_regularization_strength=0.0, l2_regularization_strength=0.0,
                 l2_shrinkage_regularization_strength=0.0, beta=0.0, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None, gradient_accumulation_steps=None, name=None,
                 **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum, ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor, gradient_accumulation_steps=gradient_accumulation_steps,
                         name=name, **kwargs)
        for arg, value, sign in (
            ("initial_accumulator_value", initial_accumulator_value, "positive or zero"),
            ("learning_rate_power", -learning_rate_power, "negative or zero"),
            ("l1_regularization_strength", l1_regularization_strength, "positive or zero"),
            ("l2_regularization_strength", l2_regularization_strength, "positive or zero"),
            ("l2_shrinkage_regularization_strength", l2_shrinkage_regularization_strength, "positive or zero"),
        ):
            if value < 0.0:
                shown = -value if arg == "learning_rate_power" else value
                raise ValueError(f"`{arg}` needs to be {sign}. Received: {arg}={shown}.")
        self.learning_rate_power = learning_rate_power
        self.initial_accumulator_value = initial_accumulator_value
        self.l1_regularization_strength = l1_regularization_strength
        self.l2_regularization_strength = l2_regularization_strength
        self.l2_shrinkage_regularization_strength = l2_shrinkage_regularization_strength
        self.beta = beta
        self._slot_initial_values = {"accumulator": float(initial_accumulator_value)}

    def _update(self, params, grads, slots, lr, step):
        l1 = self.l1_regularization_strength
        shrink = self.l2_shrinkage_regularization_strength
        # Keras's roundings: `l2 + beta / (2 * lr)` on float32 0-d tensors (a number
        # divided by a tensor is `reciprocal() * number` in torch), and the power
        # through torch's general `pow` with a tensor exponent (a number exponent
        # of 0.5 takes the `sqrt` fast path, which rounds differently)
        if isinstance(lr, torch.Tensor) or torch.compiler.is_compiling():
            l2 = self.l2_regularization_strength + self.beta / (2.0 * lr)
        else:
            lr32 = torch.tensor(lr, dtype=torch.float32)
            l2 = (self.l2_regularization_strength + (2.0 * lr32).reciprocal() * self.beta).item()
        for w, g, n, z in zip(params, grads, slots["accumulator"], slots["linear"]):
            power = torch.tensor(-self.learning_rate_power, dtype=torch.float32, device=w.device)
            new_n = n + g * g
            new_n_pow = torch.pow(new_n, power)
            z.add_(g + 2 * shrink * w - (new_n_pow - torch.pow(n, power)) / lr * w)
            quadratic = new_n_pow / lr + 2 * l2
            w.copy_((torch.clamp(z, -l1, l1) - z) / quadratic)
            n.copy_(new_n)

    def get_config(self):
        config = super().get_config()
        config.update({
            "learning_rate_power": self.learning_rate_power,
            "initial_accumulator_value": self.initial_accumulator_value,
            "l1_regularization_strength": self.l1_regularization_strength,
            "l2_regularization_strength": self.l2_regularization_strength,
            "l2_shrinkage_regularization_strength": self.l2_shrinkage_regularization_strength,
            "beta": self.beta,
        })
        return config
