"""`keras.callbacks.SwapEMAWeights`: evaluate and checkpoint with the
optimizer's exponential moving average of the weights."""

from __future__ import annotations

import torch

from kerasish.callbacks.callback import Callback


class SwapEMAWeights(Callback):
    """Swaps the model's weights with the optimizer's EMA (`use_ema=True`)
    for evaluation and prediction, and, with `swap_on_epoch=True`, from each
    epoch's end to the next epoch's start (so `ModelCheckpoint` placed after
    it saves EMA weights). After the last epoch the EMA stays in the model.

    Follows Keras 3.15 hook for hook, including that the weights are not
    swapped back at the end of `predict()`.

    Args:
        swap_on_epoch: Also swap at epoch boundaries. Defaults to False.

    Example:
        >>> model.compile(optimizer=keras.optimizers.SGD(use_ema=True), loss="mse")
        >>> model.fit(x, y, validation_data=(vx, vy), callbacks=[keras.callbacks.SwapEMAWeights()])
    """

    def __init__(self, swap_on_epoch=False):
        super().__init__()
        self.swap_on_epoch = swap_on_epoch
        self._ema_weights_in_model = False

    def _optimizer(self):
        optimizer = getattr(self.model, "optimizer", None)
        optimizer = getattr(optimizer, "inner_optimizer", optimizer)
        if optimizer is None or not getattr(optimizer, "use_ema", False):
            raise ValueError(
                "SwapEMAWeights must be used when `use_ema=True` is set on the optimizer. "
                f"Received: use_ema={getattr(optimizer, 'use_ema', None)}"
            )
        return optimizer

    def _pairs(self):
        optimizer = self._optimizer()
        return [(p, optimizer.state[p]["average"]) for p in optimizer._trainable_variables
                if "average" in optimizer.state[p]]

    @torch.no_grad()
    def _swap_variables(self):
        for var, average in self._pairs():
            tmp = var.detach().clone()
            var.copy_(average)
            average.copy_(tmp)

    @torch.no_grad()
    def _finalize_ema_values(self):
        for var, average in self._pairs():
            average.copy_(var)

    def on_epoch_begin(self, epoch, logs=None):
        if self.swap_on_epoch and self._ema_weights_in_model:
            self._swap_variables()
            self._ema_weights_in_model = False

    def on_epoch_end(self, epoch, logs=None):
        if self.swap_on_epoch and not self._ema_weights_in_model:
            self._swap_variables()
            self._ema_weights_in_model = True
            if epoch == self.params["epochs"] - 1:
                self._finalize_ema_values()

    def on_test_begin(self, logs=None):
        if not self._ema_weights_in_model:
            self._swap_variables()
            self._ema_weights_in_model = True

    def on_test_end(self, logs=None):
        if self._ema_weights_in_model:
            self._swap_variables()
            self._ema_weights_in_model = False

    def on_predict_begin(self, logs=None):
        if not self._ema_weights_in_model:
            self._swap_variables()
            self._ema_weights_in_model = True

    def on_predict_end(self, logs=None):
        # Keras 3.15 tests `not self._ema_weights_in_model` here, so the EMA
        # weights stay in the model after predict(); kept for parity.
        if not self._ema_weights_in_model:
            self._swap_variables()
            self._ema_weights_in_model = False
