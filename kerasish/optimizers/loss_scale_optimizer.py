"""`keras.optimizers.LossScaleOptimizer`: Keras's dynamic loss scaling around another optimizer.

How it relates to `torch.amp.GradScaler`: the policy is the same one
(GradScaler's `init_scale=2**15, growth_factor=2, backoff_factor=0.5,
growth_interval=2000` are Keras's defaults): a step whose gradients hold an
inf or NaN is skipped and halves the scale; `dynamic_growth_steps`
consecutive finite steps double it. The packaging differs: GradScaler is a
separate object (`scaler.scale(loss).backward(); scaler.step(opt);
scaler.update()`), LossScaleOptimizer *is* the optimizer
(`opt.scale_loss(loss).backward(); opt.step()`), keeps its scale and
counter as optimizer variables (saved in `.keras` files, loadable by Keras),
and divides the gradients by the scale (GradScaler multiplies by its
inverse; the same numbers for the power-of-two scales both use).

`Model.compile` wraps the Keras optimizer of a "mixed_float16" model in a
LossScaleOptimizer, as Keras 3 does (`compile(auto_scale_loss=True)`), and
fit scales the loss with it; fit falls back to a GradScaler of the same
policy only where there is no LossScaleOptimizer to do it (a `torch.optim`
optimizer, or a float32 model holding mixed_float16 layers).
"""

from __future__ import annotations

import numpy as np
import torch

from kerasish.backend.stateless_scope import get_stateless_scope
from kerasish.optimizers.optimizer import Optimizer

# base-optimizer arguments Keras's LossScaleOptimizer accepts (from old configs) only at their defaults
_BASE_DEFAULTS = {
    "weight_decay": None, "clipnorm": None, "global_clipnorm": None, "clipvalue": None, "use_ema": False,
    "ema_momentum": 0.99, "ema_overwrite_frequency": None, "loss_scale_factor": None,
    "gradient_accumulation_steps": None,
}


def _all_finite(grads) -> bool:
    """Whether every gradient is finite (one host sync per device)."""
    by_device: dict[torch.device, list] = {}
    for g in grads:
        by_device.setdefault(g.device, []).append(torch.isfinite(g).all())
    return all(bool(torch.stack(flags).all()) for flags in by_device.values())


class LossScaleOptimizer(Optimizer):
    """An optimizer that scales the loss dynamically to keep float16 gradients from underflowing.

    Multiply the loss by `scale_loss` before `backward()` (`fit` does it);
    `apply` / `apply_gradients` / `step` then check the gradients: when all
    are finite they are divided by the scale and handed to the inner
    optimizer, and after `dynamic_growth_steps` such steps in a row the
    scale doubles; when one is not finite the step is skipped (the inner
    optimizer's `iterations` does not advance) and the scale halves.

    Args:
        inner_optimizer: The `keras.optimizers.Optimizer` to wrap (its own
            `loss_scale_factor` is switched off).
        initial_scale: The first loss scale. Defaults to 2**15.
        dynamic_growth_steps: Finite steps between doublings. Defaults to 2000.
        name: Optimizer name. Defaults to "loss_scale_optimizer".

    Example:
        >>> opt = keras.optimizers.LossScaleOptimizer(keras.optimizers.Adam())
        >>> opt.build(model.parameters())
        >>> opt.scale_loss(loss_fn(model(x), y)).backward()
        >>> opt.step(); opt.zero_grad()
    """

    def __init__(self, inner_optimizer, initial_scale=2.0**15, dynamic_growth_steps=2000, name=None, **kwargs):
        if not kwargs.pop("dynamic", True):
            raise ValueError(
                "LossScaleOptimizer no longer supports `dynamic=False`. Instead, simply set `loss_scale_factor` "
                "directly on the `inner_optimizer`."
            )
        for arg, default in _BASE_DEFAULTS.items():
            if arg in kwargs and kwargs.pop(arg) != default:
                raise ValueError(
                    f"LossScaleOptimizer does not support `{arg}`. Instead, set `{arg}` on the `inner_optimizer`."
                )
        if kwargs:
            raise ValueError(f"LossScaleOptimizer does not support arguments: `{'`, `'.join(kwargs)}`.")
        if not isinstance(inner_optimizer, Optimizer):
            raise TypeError(
                "Argument `inner_optimizer` of LossScaleOptimizer must be a `keras.optimizers.Optimizer` "
                f"instance. Received: inner_optimizer={inner_optimizer!r}"
            )
        steps = dynamic_growth_steps
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(
                "Argument `dynamic_growth_steps` of LossScaleOptimizer must be an integer >= 1. "
                f"Received: dynamic_growth_steps={dynamic_growth_steps}"
            )
        if not float(initial_scale) > 0:
            raise ValueError(
                f"Argument `initial_scale` of LossScaleOptimizer must be > 0. Received: initial_scale={initial_scale}"
            )
        super().__init__(learning_rate=0.0, name=name)
        self.inner_optimizer = inner_optimizer
        # the inner optimizer's groups from the start (before its build, its pending learning-rate group): an
        # LR scheduler made on this optimizer then records and drives the inner learning rate, not this one's 0.0
        self.param_groups = inner_optimizer.param_groups
        # and its defaults: torch's momentum-cycling schedulers look for "betas" / "momentum" there
        self.defaults = inner_optimizer.defaults
        self.initial_scale = initial_scale
        self.dynamic_growth_steps = dynamic_growth_steps
        # the inner optimizer must not unscale a second time
        self.inner_optimizer.loss_scale_factor = None
        self._step_counter = torch.zeros((), dtype=torch.int32)  # Keras's dtype "int"
        self._dynamic_scale = torch.tensor(float(initial_scale), dtype=torch.float32)

    # ----------------------------------------------------------- delegation

    @property
    def learning_rate(self) -> torch.Tensor:
        return self.inner_optimizer.learning_rate

    @learning_rate.setter
    def learning_rate(self, value) -> None:
        if hasattr(self, "inner_optimizer"):
            self.inner_optimizer.learning_rate = value

    def _current_lr(self, group=None) -> float:
        return self.inner_optimizer._current_lr(group) if hasattr(self, "inner_optimizer") else 0.0

    @property
    def iterations(self) -> torch.Tensor:
        return self.inner_optimizer.iterations

    @iterations.setter
    def iterations(self, value) -> None:
        self.inner_optimizer.iterations = value

    @property
    def _trainable_variables(self) -> list:
        return self.inner_optimizer._trainable_variables

    @property
    def variables(self) -> list:
        """Keras's order: its own iteration and learning rate (unused, kept
        for the file layout), `step_counter`, `dynamic_scale`, then the inner
        optimizer's variables."""
        own = [self._iterations, torch.zeros((), dtype=torch.float32), self._step_counter, self._dynamic_scale]
        own = [self._state_view(t, n) for t, n in zip(own, ("iteration", "learning_rate", "step_counter",
                                                          "dynamic_scale"))]
        return own + self.inner_optimizer.variables

    def build(self, var_list):
        """Builds the inner optimizer on `var_list`; both share its param groups and state. Returns `self`."""
        if self.built:
            return self
        self.inner_optimizer.build(var_list)
        self.param_groups = self.inner_optimizer.param_groups
        self.state = self.inner_optimizer.state
        self._param_index = self.inner_optimizer._param_index
        self.built = True
        return self

    def finalize_variable_values(self, var_list=None) -> None:
        self.inner_optimizer.finalize_variable_values(var_list)

    # -------------------------------------------------------------- updates

    def scale_loss(self, loss):
        """`loss * scale` (in float32 at least, so a float16 loss cannot overflow).

        Inside a `keras.StatelessScope` that maps this optimizer's
        `dynamic_scale` variable (from `optimizer.variables`), the mapped value
        is the scale, as in Keras 3's stateless training steps."""
        if torch.compiler.is_compiling():
            _note_loss_scaled(self)
        else:
            self._loss_scaled = True
        scale = self._dynamic_scale if self.built else torch.tensor(float(self.initial_scale))
        scope = get_stateless_scope() if self.built else None
        if scope is not None:
            mapped = scope.get_current_value(self._state_view(self._dynamic_scale, "dynamic_scale"))
            if mapped is not None:
                scale = mapped
        if isinstance(loss, torch.Tensor):
            if loss.dtype in (torch.float16, torch.bfloat16):
                loss = loss.float()
            return loss * scale.to(loss.device)
        return loss * float(scale)

    # ------------------------------------------------ tf.keras 2 spellings

    @property
    def dynamic_scale(self):
        """The current loss scale: Keras's `dynamic_scale` variable (`assign`, `numpy()`, `value`; the same
        object as in `variables`), sharing storage with the optimizer's scale, so writing it sets the scale."""
        return self._state_view(self._dynamic_scale, "dynamic_scale")

    @dynamic_scale.setter
    def dynamic_scale(self, value) -> None:
        with torch.no_grad():
            self._dynamic_scale.copy_(torch.as_tensor(value, dtype=torch.float32))

    @property
    def step_counter(self):
        """Finite steps since the scale last changed: Keras's `step_counter` variable (int32, as in
        `variables`), sharing storage with the optimizer's counter."""
        return self._state_view(self._step_counter, "step_counter")

    @step_counter.setter
    def step_counter(self, value) -> None:
        with torch.no_grad():
            self._step_counter.copy_(torch.as_tensor(value, dtype=torch.int32))

    def __setstate__(self, state: dict) -> None:
        # (pickled before the two became Keras variables: plain tensors under their public names)
        for name in ("dynamic_scale", "step_counter"):
            if name in state:
                state[f"_{name}"] = state.pop(name)
        super().__setstate__(state)

    @property
    def dynamic(self) -> bool:
        """tf.keras 2: whether the scale is dynamic (always True; Keras 3 removed `dynamic=False`)."""
        return True

    @property
    def loss_scale(self) -> torch.Tensor:
        """tf.keras 2 name of `dynamic_scale` (the current loss scale)."""
        return self._dynamic_scale

    @property
    def dynamic_counter(self) -> torch.Tensor:
        """tf.keras 2 name of `step_counter` (finite steps since the scale last changed)."""
        return self._step_counter

    def get_scaled_loss(self, loss):
        """tf.keras 2 name of `scale_loss`."""
        return self.scale_loss(loss)

    def get_unscaled_gradients(self, grads):
        """Refused: tf.keras 2's custom loop unscaled the gradients here and passed the *unscaled* ones
        to `apply_gradients`; Keras 3's (and kerasish's) `apply_gradients` takes the *scaled* gradients
        and unscales them itself, so honouring both would divide twice."""
        raise NotImplementedError(
            "LossScaleOptimizer.get_unscaled_gradients is tf.keras 2 API. In Keras 3 (and kerasish), "
            "`apply_gradients` / `apply` / `step` take the *scaled* gradients (of `scale_loss(loss)`) and "
            "unscale them, skipping non-finite steps: pass the scaled gradients to `apply_gradients` directly."
        )

    def apply_gradients(self, grads_and_vars):
        grads, variables = zip(*grads_and_vars)
        self.apply(grads, variables)
        return self.iterations

    def check_finite(self, grads) -> torch.Tensor:
        """Whether every (not None) gradient in `grads` is finite, as a boolean
        0-d tensor (Keras 3); True for no gradients."""
        flags = [torch.isfinite(torch.as_tensor(g)).all() for g in grads if g is not None]
        if not flags:
            return torch.tensor(True)
        device = flags[0].device
        return torch.stack([f.to(device) for f in flags]).all()

    # the skip-or-apply decision reads the finiteness on the host: under `torch.compile` (fit's
    # jit_compile=True) the update runs eagerly instead of breaking the graph with warnings
    @torch.compiler.disable
    @torch.no_grad()
    def apply(self, grads, trainable_variables=None) -> None:
        """Unscales and applies `grads` when all are finite; otherwise skips the step. Updates the scale.

        Not traceable by `torch.compile` (it runs eagerly inside a compiled function).
        """
        grads = list(grads)
        if not grads:
            return
        self.__dict__.setdefault("_opt_called", True)  # (as torch's step wrapper records it for an LR scheduler)
        if not self.built:
            if trainable_variables is None:
                raise ValueError(
                    "When passing `grads` without `variables`, the optimizer must already be built on a list of "
                    "variables. Call `optimizer.build(trainable_variables)` first."
                )
            trainable_variables = list(trainable_variables)
            self.build(trainable_variables)
        if not self.__dict__.get("_loss_scaled", False) and self.__dict__.get("_made_by_compile"):
            self._warn_unscaled_loss()
        self._loss_scaled = False
        present = [torch.as_tensor(g) for g in grads if g is not None]
        if present and not _all_finite(present):
            self._step_counter.zero_()
            self._dynamic_scale.mul_(0.5)
            return
        self.inner_optimizer.apply([None if g is None else self._unscale(g) for g in grads], trainable_variables)
        if int(self._step_counter) == self.dynamic_growth_steps - 1:
            self._step_counter.zero_()
            self._dynamic_scale.mul_(2.0)
        else:
            self._step_counter += 1

    def _warn_unscaled_loss(self) -> None:
        """Once per optimizer that `compile` wrapped around the user's (who may not know it is there):
        gradients arrived without `scale_loss` having been called since the last step. Keras divides them by the scale all the same (a custom `train_step` under "mixed_float16"
        that calls `loss.backward()` on the plain loss trains with gradients 2**15 times too small);
        kerasish does what Keras does, and says so."""
        if self.__dict__.get("_warned_unscaled"):
            return
        self._warned_unscaled = True
        import warnings

        warnings.warn(
            f"LossScaleOptimizer '{self.name}' received gradients but `scale_loss` was not called since the "
            f"last step: they are divided by the loss scale ({float(self._dynamic_scale):g}) as in Keras, so "
            "gradients of an unscaled loss come out that many times too small. In a custom `train_step` "
            "(a \"mixed_float16\" model's optimizer is a LossScaleOptimizer), backpropagate "
            "`self.optimizer.scale_loss(loss)`.", stacklevel=3)

    def _unscale(self, grad) -> torch.Tensor:
        """`grad / scale`, in float32 at least (as Keras's promotion: a float16 gradient divided by
        2**15 in float16 would underflow, which is what scaling prevents)."""
        grad = torch.as_tensor(grad)
        if grad.dtype in (torch.float16, torch.bfloat16):
            grad = grad.float()
        return grad / self._dynamic_scale.to(grad.device)

    @torch.no_grad()
    def step(self, closure=None):
        """torch-style step from the bound parameters' `.grad` (scaled by `scale_loss`)."""
        self._check_built_for_step()
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        pairs = [(p.grad, p) for g in self.param_groups for p in g["params"] if p.grad is not None and p.requires_grad]
        if pairs:
            self.apply([g for g, _ in pairs], [p for _, p in pairs])
        return loss

    # --------------------------------------------------- state and configs

    def state_dict(self) -> dict:
        """The inner optimizer's state dict plus `"loss_scale"` (`step_counter`, `dynamic_scale`)."""
        sd = self.inner_optimizer.state_dict()
        sd["loss_scale"] = {"step_counter": int(self._step_counter), "dynamic_scale": float(self._dynamic_scale)}
        if sd["param_groups"]:  # (kept by torch's distributed-checkpoint helpers, as the inner "keras" state)
            sd["param_groups"][0]["loss_scale"] = sd["loss_scale"]
        return sd

    def load_state_dict(self, state_dict: dict) -> None:
        state_dict = dict(state_dict)
        groups = state_dict.get("param_groups")
        in_group = None
        if groups and any("loss_scale" in g for g in groups):
            state_dict["param_groups"] = [dict(g) for g in groups]
            for g in state_dict["param_groups"]:
                in_group = g.pop("loss_scale", None) or in_group
        extra = state_dict.pop("loss_scale", None) or in_group or {}
        self.inner_optimizer.load_state_dict(state_dict)
        # torch's load_state_dict replaces the inner `param_groups` and `state` objects: share the new ones
        self.param_groups = self.inner_optimizer.param_groups
        self.state = self.inner_optimizer.state
        self._param_index = self.inner_optimizer._param_index
        self.built = True
        if "step_counter" in extra:
            self._step_counter.fill_(int(extra["step_counter"]))
        if "dynamic_scale" in extra:
            self._dynamic_scale.fill_(float(extra["dynamic_scale"]))

    @torch.no_grad()
    def load_own_variables(self, store) -> None:
        """Reads Keras's layout: 4 own variables, then the inner optimizer's."""
        n_inner = len(self.inner_optimizer.variables)
        if len(store.keys()) != 4 + n_inner:
            import warnings

            warnings.warn(
                f"Skipping variable loading for optimizer '{self.name}', because it has {4 + n_inner} variables "
                f"whereas the saved optimizer has {len(store.keys())} variables.",
                stacklevel=2,
            )
            return
        self._step_counter.fill_(int(np.asarray(store["2"])))
        self._dynamic_scale.fill_(float(np.asarray(store["3"])))
        self.inner_optimizer.load_own_variables({str(i): store[str(i + 4)] for i in range(n_inner)})

    def get_config(self) -> dict:
        from kerasish.saving.serialization_lib import serialize_keras_object

        return {
            "name": self.name,
            "inner_optimizer": serialize_keras_object(self.inner_optimizer),
            "initial_scale": self.initial_scale,
            "dynamic_growth_steps": self.dynamic_growth_steps,
        }

    @classmethod
    def from_config(cls, config: dict, custom_objects: dict | None = None):
        from kerasish import optimizers

        config = dict(config)
        inner = config.pop("inner_optimizer")
        if isinstance(inner, dict):
            inner = optimizers.deserialize(inner, custom_objects=custom_objects)
        return cls(inner, **config)

    def __repr__(self) -> str:
        scale = float(self._dynamic_scale)
        return f"<LossScaleOptimizer name={self.name!r} inner={self.inner_optimizer!r} scale={scale:g}>"


@torch.compiler.disable
def _note_loss_scaled(optimizer) -> None:
    """Records that `scale_loss` ran, from a compiled step: dynamo drops attribute writes on a
    `torch.optim.Optimizer` made in traced code (pytorch/pytorch#171590), so the write runs eagerly.
    Under fit's `jit_compile=True` with "mixed_float16" the flag was lost and `apply` warned that
    `scale_loss` was never called."""
    optimizer._loss_scaled = True
