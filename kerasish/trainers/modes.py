"""Training modes around `fit`, `evaluate`, `predict` and the `*_on_batch`
methods: they switch the model to `train()`/`eval()` for their steps and
then give every submodule back the mode it had, including a kerasish
layer's "never set" state (in which an outermost call follows the `training`
default of its `call`, as Keras does)."""

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
