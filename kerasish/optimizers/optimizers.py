"""Keras 3 optimizers with Keras's update maths, as `torch._foreach_*` passes.

Where the maths differ from `torch.optim`'s optimizer of the same name, the
class docstring says how; results match Keras 3 (torch backend), not torch.
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from kerasish.optimizers.optimizer import _ONE
from kerasish.optimizers.optimizer import Optimizer
from kerasish.optimizers.optimizer import _adam_alpha
from kerasish.optimizers.optimizer import _addcdiv_
from kerasish.optimizers.optimizer import _bias_correction
from kerasish.optimizers.optimizer import _scaled_add_
from kerasish.optimizers.optimizer import store_shape
from kerasish import variables as kvars
from kerasish.backend import dtypes as _dtypes
from kerasish.utils import naming


class SGD(Optimizer):
    """Gradient descent with optional (Nesterov) momentum.

    Keras's momentum convention differs from `torch.optim.SGD`: Keras keeps a
    velocity that already includes the learning rate, `m = momentum * m - lr * g;
    var += m` (Nesterov: `var += momentum * m - lr * g`), whereas torch keeps
    `b = momentum * b + g; var -= lr * b`. They agree only for a constant lr.

    Args:
        learning_rate: Float or schedule (default 0.01).
        momentum: Float in [0, 1].
        nesterov: Whether to use Nesterov momentum.
        **kwargs: The common `Optimizer` arguments.
    """

    _group_hparam = "momentum"

    def __init__(self, learning_rate=0.01, momentum=0.0, nesterov=False, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None,
                 loss_scale_factor=None, gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum, ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor, gradient_accumulation_steps=gradient_accumulation_steps,
                         name=name, **kwargs)
        if isinstance(momentum, bool) or not isinstance(momentum, (int, float)) or momentum < 0 or momentum > 1:
            raise ValueError("`momentum` must be a float between [0, 1].")
        self.momentum = float(momentum)
        self.nesterov = nesterov
        self._slot_names = ("momentum",) if self.momentum != 0 else ()

    def _update(self, params, grads, slots, lr, step):
        if self.momentum != 0:
            bufs = slots["momentum"]
            torch._foreach_mul_(bufs, self.momentum)
            _scaled_add_(bufs, grads, -lr)
            if self.nesterov:
                _scaled_add_(params, grads, -lr)
                torch._foreach_add_(params, bufs, alpha=self.momentum)
            else:
                torch._foreach_add_(params, bufs)
        else:
            _scaled_add_(params, grads, -lr)

    def get_config(self):
        config = super().get_config()
        config.update({"momentum": self.momentum, "nesterov": self.nesterov})
        return config


class Adam(Optimizer):
    """Adam (optionally AMSGrad).

    Keras puts epsilon outside the bias-corrected square root:
    `alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t); var -= alpha * m / (sqrt(v) + eps)`,
    whereas `torch.optim.Adam` uses `lr / (1 - beta_1^t) * m / (sqrt(v / (1 - beta_2^t)) + eps)`;
    Keras's default epsilon is also 1e-7 (torch: 1e-8).

    `alpha` is computed in float32 with Keras's roundings, so float32 weights
    follow Keras's numbers (the second moment is updated with `addcmul`, which
    can differ from Keras's `v + (g * g) * (1 - beta_2)` by an ulp now and
    then: Keras's order costs a temporary copy of the gradients).

    bfloat16 weights (a `"bfloat16"` dtype policy) differ from Keras 3 on
    purpose: kerasish computes `alpha` in float32, not in the weight's dtype,
    and keeps the moments in the weight's dtype, so bfloat16 weights train. Keras 3
    casts `beta_2` (and `learning_rate`, the step count) to the weight's dtype
    first; 0.999 rounds to 1.0 in bfloat16, so `1 - beta_2**t` is 0, `alpha`
    is 0 and Keras's Adam/AdamW never move a bfloat16 weight (no error, no
    warning). Keras's numbers are a rounding artefact, not documented behaviour.

    Args:
        learning_rate: Float or schedule (default 0.001).
        beta_1: Decay of the first moment.
        beta_2: Decay of the second moment.
        epsilon: Added to `sqrt(v)`.
        amsgrad: Use the running maximum of `v`.
        **kwargs: The common `Optimizer` arguments.
    """

    _group_hparam = "betas"

    _slot_names = ("momentum", "velocity")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07, amsgrad=False,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False,
                 ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum, ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor, gradient_accumulation_steps=gradient_accumulation_steps,
                         name=name, **kwargs)
        self.beta_1 = beta_1
        self.beta_2 = beta_2
        self.epsilon = epsilon
        self.amsgrad = amsgrad
        if amsgrad:
            self._slot_names = ("momentum", "velocity", "velocity_hat")
            # Keras builds the maxima after all the moments: m0, v0, m1, v1, ..., vhat0, vhat1, ...
            self._slot_groups = (("momentum", "velocity"), ("velocity_hat",))

    def _update(self, params, grads, slots, lr, step):
        b1, b2 = self.beta_1, self.beta_2
        alpha = _adam_alpha(lr, b1, b2, step)
        m, v = slots["momentum"], slots["velocity"]
        torch._foreach_mul_(m, b1)
        torch._foreach_add_(m, grads, alpha=1 - b1)
        torch._foreach_mul_(v, b2)
        # Keras rounds g * g before scaling it (addcmul scales g first: an ulp apart
        # now and then); Keras's order costs a temporary list, +2% on a fit step
        torch._foreach_addcmul_(v, grads, grads, value=1 - b2)
        if self.amsgrad:
            torch._foreach_maximum_(slots["velocity_hat"], v)
            v = slots["velocity_hat"]
        denom = torch._foreach_sqrt(v)
        torch._foreach_add_(denom, self.epsilon)
        _addcdiv_(params, m, denom, -alpha)  # (-alpha * m) / denom: Keras's (m * alpha) / denom

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon, "amsgrad": self.amsgrad})
        return config


class AdamW(Adam):
    """Adam with decoupled weight decay (`var *= 1 - weight_decay * lr` before the Adam step).

    Same as `torch.optim.AdamW`'s decay, with Keras's Adam epsilon placement
    (see `Adam`) and default `weight_decay=0.004` (torch: 0.01).
    """

    def __init__(self, learning_rate=0.001, weight_decay=0.004, beta_1=0.9, beta_2=0.999, epsilon=1e-07,
                 amsgrad=False, clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False,
                 ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon,
                         amsgrad=amsgrad, weight_decay=weight_decay, clipnorm=clipnorm, clipvalue=clipvalue,
                         global_clipnorm=global_clipnorm, use_ema=use_ema, ema_momentum=ema_momentum,
                         ema_overwrite_frequency=ema_overwrite_frequency, loss_scale_factor=loss_scale_factor,
                         gradient_accumulation_steps=gradient_accumulation_steps, name=name, **kwargs)
        if self.weight_decay is None:
            raise ValueError("Argument `weight_decay` must be a float. Received: weight_decay=None")


class RMSprop(Optimizer):
    """RMSprop (optionally centered, with momentum).

    Keras adds epsilon inside the square root, `var -= lr * g / sqrt(v + eps)`
    (centered: `sqrt(v - mean_g^2 + eps)`), and its momentum buffer holds
    `lr * g / sqrt(...)`; `torch.optim.RMSprop` uses `sqrt(v) + eps` and applies
    lr after the momentum buffer.

    Args:
        learning_rate: Float or schedule (default 0.001).
        rho: Decay of the squared-gradient average.
        momentum: Momentum factor.
        epsilon: Added inside the square root.
        centered: Normalise by the gradient variance estimate.
        **kwargs: The common `Optimizer` arguments.
    """

    _group_hparam = "momentum"

    def __init__(self, learning_rate=0.001, rho=0.9, momentum=0.0, epsilon=1e-07, centered=False,
                 weight_decay=None, clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False,
                 ema_momentum=0.99, ema_overwrite_frequency=None, loss_scale_factor=None,
                 gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum, ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor, gradient_accumulation_steps=gradient_accumulation_steps,
                         name=name, **kwargs)
        self.rho = rho
        self.momentum = momentum
        self.epsilon = epsilon
        self.centered = centered
        names = ["velocity"]
        if momentum > 0:
            names.append("momentum")
        if centered:
            names.append("average_gradient")
        self._slot_names = tuple(names)
        # Keras builds each kind for every variable in turn: all velocities, then momentums, then averages
        self._slot_groups = tuple((n,) for n in names)

    def _update(self, params, grads, slots, lr, step):
        rho = self.rho
        v = slots["velocity"]
        torch._foreach_mul_(v, rho)
        torch._foreach_addcmul_(v, grads, grads, value=1 - rho)
        denom = torch._foreach_add(v, self.epsilon)
        if self.centered:
            avg = slots["average_gradient"]
            torch._foreach_mul_(avg, rho)
            torch._foreach_add_(avg, grads, alpha=1 - rho)
            torch._foreach_addcmul_(denom, avg, avg, value=-1)
        torch._foreach_sqrt_(denom)
        increments = torch._foreach_div(torch._foreach_mul(grads, lr), denom)
        if self.momentum > 0:
            mom = slots["momentum"]
            torch._foreach_mul_(mom, self.momentum)
            torch._foreach_add_(mom, increments)
            torch._foreach_sub_(params, mom)
        else:
            torch._foreach_sub_(params, increments)

    def get_config(self):
        config = super().get_config()
        config.update({"rho": self.rho, "momentum": self.momentum, "epsilon": self.epsilon, "centered": self.centered})
        return config


class Adagrad(Optimizer):
    """Adagrad: `acc += g^2; var -= lr * g / sqrt(acc + eps)`.

    Differs from `torch.optim.Adagrad`: the accumulator starts at
    `initial_accumulator_value=0.1` (torch: 0) and epsilon (1e-7) is inside
    the square root (torch: `sqrt(acc) + 1e-10`).
    """

    _slot_names = ("accumulator",)

    def __init__(self, learning_rate=0.001, initial_accumulator_value=0.1, epsilon=1e-07, weight_decay=None,
                 clipnorm=None, clipvalue=None, global_clipnorm=None, use_ema=False, ema_momentum=0.99,
                 ema_overwrite_frequency=None, loss_scale_factor=None, gradient_accumulation_steps=None, name=None,
                 **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum, ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor, gradient_accumulation_steps=gradient_accumulation_steps,
                         name=name, **kwargs)
        self.initial_accumulator_value = initial_accumulator_value
        self.epsilon = epsilon
        self._slot_initial_values = {"accumulator": float(initial_accumulator_value)}

    def _update(self, params, grads, slots, lr, step):
        acc = slots["accumulator"]
        torch._foreach_addcmul_(acc, grads, grads)
        denom = torch._foreach_add(acc, self.epsilon)
        torch._foreach_sqrt_(denom)
        _addcdiv_(params, grads, denom, -lr)

    def get_config(self):
        config = super().get_config()
        config.update({"initial_accumulator_value": self.initial_accumulator_value, "epsilon": self.epsilon})
        return config


class Adadelta(Optimizer):
    """Adadelta. Same maths as `torch.optim.Adadelta` (epsilon inside both
    square roots) but Keras defaults: `learning_rate=0.001` (torch: 1.0),
    `rho=0.95` (torch: 0.9), `epsilon=1e-7` (torch: 1e-6)."""

    _slot_names = ("accumulated_grad", "accumulated_delta_var")

    def __init__(self, learning_rate=0.001, rho=0.95, epsilon=1e-07, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None,
                 loss_scale_factor=None, gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum, ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor, gradient_accumulation_steps=gradient_accumulation_steps,
                         name=name, **kwargs)
        self.rho = rho
        self.epsilon = epsilon

    def _update(self, params, grads, slots, lr, step):
        rho, eps = self.rho, self.epsilon
        acc_g, acc_d = slots["accumulated_grad"], slots["accumulated_delta_var"]
        torch._foreach_mul_(acc_g, rho)
        torch._foreach_addcmul_(acc_g, grads, grads, value=1 - rho)
        rms_d = torch._foreach_sqrt(torch._foreach_add(acc_d, eps))
        rms_g = torch._foreach_sqrt(torch._foreach_add(acc_g, eps))
        delta = torch._foreach_div(torch._foreach_mul(rms_d, grads), rms_g)
        torch._foreach_neg_(delta)
        torch._foreach_mul_(acc_d, rho)
        torch._foreach_addcmul_(acc_d, delta, delta, value=1 - rho)
        _scaled_add_(params, delta, lr)

    def get_config(self):
        config = super().get_config()
        config.update({"rho": self.rho, "epsilon": self.epsilon})
        return config


class Adamax(Optimizer):
    """Adamax: `u = max(beta_2 * u, |g|); var -= lr * m / ((u + eps) * (1 - beta_1^t))`.

    `torch.optim.Adamax` adds epsilon to `|g|` inside the max instead.
    """

    _group_hparam = "betas"

    _slot_names = ("momentum", "norm")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07, weight_decay=None,
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
        m, u = slots["momentum"], slots["norm"]
        torch._foreach_mul_(m, self.beta_1)
        torch._foreach_add_(m, grads, alpha=1 - self.beta_1)
        torch._foreach_mul_(u, self.beta_2)
        torch._foreach_maximum_(u, torch._foreach_abs(grads))
        denom = torch._foreach_add(u, self.epsilon)
        torch._foreach_mul_(denom, _bias_correction(self.beta_1, step))
        _addcdiv_(params, m, denom, -lr)

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon})
        return config


class Nadam(Optimizer):
    """Nesterov Adam with Keras's momentum schedule `u_t = beta_1 * (1 - 0.5 * 0.96^t)`.

    `torch.optim.NAdam` uses `0.96^(t * momentum_decay)` with
    `momentum_decay=0.004` and puts epsilon after bias-correcting `sqrt(v)` differently.
    """

    _group_hparam = "betas"

    _slot_names = ("momentum", "velocity")

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.999, epsilon=1e-07, weight_decay=None,
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
        # the running product of the momentum schedule, float32 as Keras's (a float32 model's) variable;
        # `variables` exposes it as Keras's last optimizer variable, named as Keras names it (`build`)
        self._u_product = torch.ones((), dtype=torch.float32)
        self._u_product_view = None
        self._u_t = self._u_product_t = self._u_product_t1 = self._u_t1 = 1.0

    def build(self, var_list):
        if not self.built:
            # Keras makes it in `build` as an unnamed variable: "variable", then "variable_1", ... per
            # process, from the counter every unnamed `keras.Variable` draws from
            self._u_product_name = naming.auto_name("variable")
            # in the first weight's dtype (floatx without weights), as Keras 3's Nadam and tf.keras 2's
            # legacy Nadam (`momentum_cache`) make it: float64 / float16 / bfloat16 in such models
            var_list = list(var_list)
            first = var_list[0]["params"] if var_list and isinstance(var_list[0], dict) else var_list
            first = next(iter(first), None)
            dtype = first.dtype if isinstance(first, torch.Tensor) else getattr(torch, _dtypes.floatx())
            if dtype.is_floating_point and dtype != self._u_product.dtype:
                self._u_product = self._u_product.to(dtype)
        return super().build(var_list)

    def _begin_step(self, step):
        # the running product of the momentum schedule is a 0-d tensor (the first weight's dtype) updated
        # in place: read on the host in eager mode (no device sync), traced under torch.compile (not a
        # constant the graph would be specialized on), where `step` is a 0-d tensor on the weights' device
        b1 = self.beta_1
        if isinstance(step, torch.Tensor):
            step = step.double()
            b1, base = (b1, 0.96) if self._u_product.dtype == torch.float32 else self._schedule_constants()
            u_t = b1 * (1.0 - 0.5 * base ** self._schedule_power(step))
            u_t1 = b1 * (1.0 - 0.5 * base ** self._schedule_power(step + 1))
            prod = (self._u_product.to(step.device) * u_t).to(self._u_product.dtype)
            self._u_product.copy_(prod)
        elif self._u_product.dtype != torch.float32:
            # a float64 / float16 / bfloat16 model: the schedule and the product in that dtype, each
            # operation rounded to it, as Keras's tensors of that dtype compute them
            dtype = self._u_product.dtype

            def schedule(t):
                beta_1, base = self._schedule_constants()
                decay = torch.tensor(base, dtype=dtype) ** self._schedule_power_as(t, dtype)
                return float(torch.tensor(beta_1, dtype=dtype) * (1.0 - 0.5 * decay))

            u_t, u_t1 = schedule(step), schedule(step + 1)
            prod_t = self._u_product * torch.tensor(u_t, dtype=dtype)
            self._u_product.copy_(prod_t)
            self._u_t, self._u_t1 = u_t, u_t1
            self._u_product_t = float(prod_t)
            self._u_product_t1 = float(prod_t * torch.tensor(u_t1, dtype=dtype))
            return
        else:  # in float32 with Keras's roundings (its schedule and product are float32 tensors)
            f32 = np.float32
            u_t = float(f32(b1) * (_ONE - f32(0.5) * f32(0.96) ** self._schedule_power(step)))
            u_t1 = float(f32(b1) * (_ONE - f32(0.5) * f32(0.96) ** self._schedule_power(step + 1)))
            prod = float(f32(float(self._u_product)) * f32(u_t))
            self._u_product.fill_(prod)
        self._u_t, self._u_t1 = u_t, u_t1
        self._u_product_t = prod
        self._u_product_t1 = prod * u_t1 if isinstance(step, torch.Tensor) else float(np.float32(prod) * np.float32(u_t1))

    def _schedule_power(self, step):
        """The exponent of 0.96 in the momentum schedule at `step` (a float32 scalar, or a float64
        0-d tensor under torch.compile): `t` (tf.keras 2's legacy Nadam: `schedule_decay * t`)."""
        return step if isinstance(step, torch.Tensor) else np.float32(step)

    def _schedule_constants(self):
        """`(beta_1, 0.96)` as the schedule reads them in a float64 / float16 / bfloat16 model (Keras 3:
        the Python floats, cast to the weights' dtype)."""
        return self.beta_1, 0.96

    def _schedule_power_as(self, step, dtype):
        """`_schedule_power` as a 0-d tensor of `dtype` (the product's dtype when it is not float32)."""
        return torch.tensor(float(step), dtype=dtype)

    def _update(self, params, grads, slots, lr, step):
        b1, b2 = self.beta_1, self.beta_2
        m, v = slots["momentum"], slots["velocity"]
        torch._foreach_mul_(m, b1)
        torch._foreach_add_(m, grads, alpha=1 - b1)
        torch._foreach_mul_(v, b2)
        torch._foreach_addcmul_(v, grads, grads, value=1 - b2)
        m_hat = torch._foreach_mul(m, self._u_t1 / (1 - self._u_product_t1))
        _scaled_add_(m_hat, grads, (1 - self._u_t) / (1 - self._u_product_t))
        denom = torch._foreach_sqrt(torch._foreach_div(v, _bias_correction(b2, step)))
        torch._foreach_add_(denom, self.epsilon)
        _addcdiv_(params, m_hat, denom, -lr)

    def _extra_variables(self):
        if not self.built:
            return []
        view = self._u_product_view
        if view is None or view.data_ptr() != self._u_product.data_ptr():
            # a Keras variable sharing the product's storage: `assign` / `set_state_tree` /
            # `stateless_apply` write the optimizer's own state (Keras: an unnamed backend.Variable)
            name = self.__dict__.get("_u_product_name", "variable")
            view = self._u_product_view = kvars.state_view(self._u_product, name, name)
        return [view]

    def _step_state_tensors(self):
        return [self._u_product]

    def _extra_state(self):
        return {"u_product": float(self._u_product)}

    def _load_extra_state(self, extra):
        if "u_product" in extra:
            self._u_product.fill_(float(extra["u_product"]))

    def _u_product_index(self, store):
        """Where the file keeps `u_product` among `variables`' count of entries.

        Keras 3.0-3.9 built it right after the base variables (iterations,
        learning rate, EMA averages, gradient accumulators), before the
        moments; Keras 3.10 and later after the moments, last. The release
        comes from the archive's metadata; for a bare `.weights.h5` the
        shapes decide, and where both layouts fit them (a model whose first
        trainable weight is a scalar) the current one is read, with a warning.
        """
        variables = self.variables
        last = len(variables) - 1
        if not self.built or len(store) != len(variables):
            return last
        at = last - len(self._slot_names) * len(self._trainable_variables)
        version = getattr(store, "keras_version", None)
        if version is not None:
            return at if tuple(version) < (3, 10) else last

        def fits(order):
            return all(store_shape(store, str(i)) == tuple(v.shape) for i, v in enumerate(order))

        old = variables[:at] + variables[-1:] + variables[at:-1]
        if fits(variables):
            if at < last and fits(old):
                warnings.warn(
                    f"Nadam '{self.name}': the weights file does not say which Keras wrote it, and its optimizer "
                    "variables fit both Keras 3.0-3.9's order (u_product before the moments) and 3.10+'s "
                    "(u_product last); reading the 3.10+ order. Load the `.keras` archive to be sure.",
                    stacklevel=4,
                )
            return last
        return at if fits(old) else last

    def _variables_in_file_order(self, store):
        variables = self.variables
        at = self._u_product_index(store)
        return variables[:at] + variables[-1:] + variables[at:-1]

    def load_own_variables(self, store):
        if self.built and len(store) == len(self.variables) + 4:  # inside Keras's LossScaleOptimizer layout
            at = 4 + len(self.variables) - 1
        else:
            at = self._u_product_index(store)
        super().load_own_variables(store)
        if self.built and len(store) in (len(self.variables), len(self.variables) + 4) and str(at) in store:
            self._u_product.fill_(float(np.asarray(store[str(at)])))

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2, "epsilon": self.epsilon})
        return config


class Lion(Optimizer):
    """Lion: `var -= lr * sign(beta_1 * m + (1 - beta_1) * g); m = beta_2 * m + (1 - beta_2) * g`."""

    _group_hparam = "betas"

    _slot_names = ("momentum",)

    def __init__(self, learning_rate=0.001, beta_1=0.9, beta_2=0.99, weight_decay=None, clipnorm=None,
                 clipvalue=None, global_clipnorm=None, use_ema=False, ema_momentum=0.99, ema_overwrite_frequency=None,
                 loss_scale_factor=None, gradient_accumulation_steps=None, name=None, **kwargs):
        super().__init__(learning_rate=learning_rate, weight_decay=weight_decay, clipnorm=clipnorm,
                         clipvalue=clipvalue, global_clipnorm=global_clipnorm, use_ema=use_ema,
                         ema_momentum=ema_momentum, ema_overwrite_frequency=ema_overwrite_frequency,
                         loss_scale_factor=loss_scale_factor, gradient_accumulation_steps=gradient_accumulation_steps,
                         name=name, **kwargs)
        if beta_1 <= 0 or beta_1 > 1:
            raise ValueError(
                "Argument `beta_1` must be in the [0, 1] range. Otherwise, the optimizer degenerates to SignSGD. "
                f"Received: beta_1={beta_1}."
            )
        self.beta_1 = beta_1
        self.beta_2 = beta_2

    def _update(self, params, grads, slots, lr, step):
        m = slots["momentum"]
        c = torch._foreach_mul(m, self.beta_1)
        torch._foreach_add_(c, grads, alpha=1 - self.beta_1)
        torch._foreach_sign_(c)
        _scaled_add_(params, c, -lr)
        torch._foreach_mul_(m, self.beta_2)
        torch._foreach_add_(m, grads, alpha=1 - self.beta_2)

    def get_config(self):
        config = super().get_config()
        config.update({"beta_1": self.beta_1, "beta_2": self.beta_2})
        return config
