"""Keras 2's training API, kept for ported programs (the `Keras2TrainerAPI`
half of `Trainer`): `compiled_loss` and `compiled_metrics` for custom
`train_step`s, and `Model.reset_states`."""

from __future__ import annotations

import warnings

import torch


def check_keras2_compile_kwargs(kwargs):
    """Keras 2's extra `compile` arguments: `sample_weight_mode` is accepted
    and ignored, as tf.keras 2 does (its v2 loop, like Keras 3's, weighs each
    timestep by a 2-D `sample_weight` without it); tf.keras 2 ignores any
    value, kerasish refuses values Keras 2 never meant (`None`, `"temporal"`,
    or a list/dict of those per output). Anything else is a `TypeError`, as
    in Keras."""
    kwargs = dict(kwargs)
    if "sample_weight_mode" in kwargs:
        mode = kwargs.pop("sample_weight_mode")
        modes = list(mode.values()) if isinstance(mode, dict) else list(mode) if isinstance(mode, (list, tuple)) \
            else [mode]
        if not all(m is None or m == "temporal" for m in modes):
            raise ValueError(
                "Invalid `sample_weight_mode` passed to `compile()`: expected None, \"temporal\", or a list or "
                f"dict of those (one per output). Received: sample_weight_mode={mode!r}"
            )
    if kwargs:
        raise TypeError(f"Invalid keyword argument(s) in `compile()`: {tuple(sorted(kwargs))}. Valid keyword "
                        "arguments include \"sample_weight_mode\" (Keras 2, ignored).")


class _CompiledLoss:
    """What Keras 2's `model.compiled_loss` was, over the Keras 3 pieces."""

    def __init__(self, model):
        self._model = model

    def __call__(self, y_true, y_pred, sample_weight=None, regularization_losses=None):
        model = self._model
        total = None
        if model._compile_loss is not None:
            total = model._compile_loss(y_true, y_pred, sample_weight)
        for extra in regularization_losses or ():
            extra = torch.as_tensor(extra).float().sum()
            total = extra if total is None else total + extra
        if total is None:
            raise ValueError("No loss to compute. Provide a `loss` argument in `compile()`.")
        if model._loss_tracker is not None:
            model._track_loss(y_pred, total.detach())
        return total

    @property
    def metrics(self):
        model = self._model
        return [model._loss_tracker] if model._loss_tracker is not None else []


class _NoMetrics:
    metrics = []

    def update_state(self, y_true, y_pred, sample_weight=None):
        return None

    def reset_state(self):
        return None


def _user_stacklevel() -> int:
    """The `warnings.warn` stacklevel of the first caller outside kerasish (seen from the function
    that calls this one)."""
    import os
    import sys

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(root):
        frame, level = frame.f_back, level + 1
    return level


class Keras2TrainerAPI:
    """Mixed into `Trainer` (no `__init__`)."""

    # [structure version when last checked, [(layer, trainable at compile)], warned]
    _compiled_trainable = None

    def _snapshot_compiled_trainable(self) -> None:
        """At `compile`: each layer's `trainable`, which tf.keras 2 restores around every `fit` /
        `train_on_batch` (its `RespectCompiledTrainableState`). Keras 3 and kerasish train what is
        trainable at each step instead; the snapshot only serves `_check_compiled_trainable`'s warning."""
        from kerasish.layers import tracking

        state = [(layer, layer.trainable) for layer in self._flatten_layers(include_self=True)]
        self._set_untracked("_compiled_trainable", [tracking.structure_version(), state, False])

    def _check_compiled_trainable(self) -> None:
        """When training starts (`fit`, each `train_on_batch`): if a layer's `trainable` differs from
        its value at `compile`, warn once per compile: a ported Keras 2 program (the classic GAN:
        `discriminator.trainable = False` after compiling it) would silently train other weights than
        tf.keras 2 did. Costs one integer comparison unless layers changed since the last check."""
        from kerasish.layers import tracking

        snapshot = self._compiled_trainable
        if snapshot is None:
            return
        version = tracking.structure_version()
        if snapshot[0] == version:
            return
        snapshot[0] = version
        if snapshot[2]:
            return
        changed = [layer for layer, was in snapshot[1] if layer.trainable != was]
        if not changed:
            return
        snapshot[2] = True
        names = ", ".join(f"'{layer.name}' ({'frozen' if not layer.trainable else 'unfrozen'})"
                          for layer in changed[:5]) + (" ..." if len(changed) > 5 else "")
        warnings.warn(
            f"`trainable` changed since `compile()` on {names} of model '{self.name}': kerasish, as Keras 3, "
            "trains the weights that are trainable now; tf.keras 2 (and Keras 2) kept training what was "
            "trainable when the model was compiled. If this program relied on that (the Keras 2 GAN pattern: "
            "`discriminator.trainable = False` after compiling the discriminator), set `trainable` back "
            "before training this model, or compile it again after the change.",
            UserWarning, stacklevel=_user_stacklevel())

    @property
    def compiled_loss(self):
        """Keras 2's `self.compiled_loss(y, y_pred, sample_weight=None,
        regularization_losses=None)` for custom `train_step`s: the compiled
        loss plus the given regularization losses; it also updates the
        "loss" metric, as Keras 2 did."""
        return _CompiledLoss(self)

    @property
    def compiled_metrics(self):
        """Keras 2's `self.compiled_metrics`: `update_state(y, y_pred,
        sample_weight=None)` updates the compiled metrics."""
        return self._compile_metrics if self._compile_metrics is not None else _NoMetrics()

    def reset_states(self):
        """Resets the state of every stateful layer (Keras 2's
        `Model.reset_states`: RNNs with `stateful=True`)."""
        for layer in self._flatten_layers(include_self=False):
            if callable(getattr(type(layer), "reset_states", None)) and getattr(layer, "stateful", False):
                layer.reset_states()
