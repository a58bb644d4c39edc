"""`keras.optimizers.Lamb`: Adam with a per-tensor trust ratio (You et al. 2019)."""

from __future__ import annotations

import torch

from kerasish.optimizers.optimizer import Optimizer
from kerasish.optimizers.optimizer import _bias_correction


class Lamb(Optimizer):
    """LAMB: the bias-corrected Adam direction `u = m_hat / (sqrt(v_hat) + eps)`
    scaled per tensor by the trust ratio `||w|| / ||u||` (1 when either norm
    is 0): `var -= lr * ratio * u`. As Keras 3, epsilon is added after the
    bias-corrected square root.

    Args:
        learning_rate: Float or schedule. Defaults to 0.001.
        beta_1: Decay of the first moment. Defaults to 0.9.
        beta_2: Decay of the second moment. Defaults to 0.999.
        epsilon: Added to `sqrt(v_hat)`. Defaults to 1e-7.
        **kwargs: The common `Optimizer` arguments.
    """

    _slot_names = ("momentum", "velocity")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-7, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None, gradient_accumulation_steps=None, name=None,
                 **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum, ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor, gradient_accumulation_steps=gradient_accumulation_steps,
                         name=name, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon

    def _update(self, params, grads, slots, lr, step):
        b1, b2 = self.beta_1, self.beta_2
        m, v = slots["momentum"], slots["velocity"]
        # Keras's roundings: `m += (g - m) * (1 - b1)`, `v += (g^2 - v) * (1 - b2)`
        torch._foreach_add_(m, torch._foreach_mul(torch._foreach_sub(grads, m), 1 - b1))
        torch._foreach_add_(v, torch._foreach_mul(torch._foreach_sub(torch._foreach_mul(grads, grads), v), 1 - b2))
        m_hat = torch._foreach_div(m, _bias_correction(b1, step))  # float32, as Keras
        denom = torch._foreach_sqrt(torch._foreach_div(v, _bias_correction(b2, step)))
        torch._foreach_add_(denom, self.epsilon)
        updates = torch._foreach_div(m_hat, denom)
        # `sqrt(sum(x ** 2))` as Keras computes the norms (`_foreach_norm` reduces in another order, which
        # rounds differently on some CPUs)
        w_norms = [torch.sqrt(torch.sum(torch.pow(p, 2))) for p in params]
        u_norms = [torch.sqrt(torch.sum(torch.pow(u, 2))) for u in updates]
        for p, u, wn, un in zip(params, updates, w_norms, u_norms):
            ratio = torch.where((wn > 0) & (un > 0), wn / un, torch.ones_like(wn))
            p.sub_(u * (ratio * lr))

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon})
        return config
