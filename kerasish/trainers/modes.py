"""Training modes around `fit`, `evaluate`, `predict` and the `*_on_batch`
methods: they switch the model to `train()`/`eval()` for their steps and
then give every submodule back the mode it had, including a kerasish
layer's "never set" state (in which an outermost call follows the `training`
default of its `call`, as Keras does).

Their own switch is not a user's choice: a layer never set stays never set
while they run, so a layer a custom `train_step` (or a callback) calls
directly, without `training=`, gets its `call` default as in Keras 3 (a
GAN's generator called in `train_step` runs BatchNormalization on its
moving statistics), while torch modules still see `module.training`."""

from __future__ import annotations


class ModeSnapshot:
    """Every submodule's `training` flag (and whether it was set), restored by `restore()`."""

    __slots__ = ("_modes",)

    def __init__(self, model):
        self._modes = [(m.__dict__, m.__dict__.get("training", True), m.__dict__.get("_training_set"))
                       for m in model.modules()]

    def restore(self) -> None:
        for d, training, was_set in self._modes:
            d["training"] = training
            if was_set is not None:
                d["_training_set"] = was_set


def switch_mode(model, training: bool) -> None:
    """`model.train(training)` for fit/evaluate/predict's steps, leaving every
    kerasish layer's "set by the user" flag as it was."""
    flags = [(m.__dict__, m.__dict__["_training_set"]) for m in model.modules() if "_training_set" in m.__dict__]
    model.train(training)
    for d, was_set in flags:
        d["_training_set"] = was_set
