"""`keras.callbacks.LearningRateScheduler`."""

from __future__ import annotations

import numpy as np

from kerasish.callbacks.callback import Callback
from kerasish.callbacks.monitor_callback import get_learning_rate
from kerasish.callbacks.monitor_callback import set_learning_rate
from kerasish.utils.io_utils import print_msg


class LearningRateScheduler(Callback):
    """Sets the learning rate at the beginning of every epoch.

    Args:
        schedule: `fn(epoch, lr) -> new_lr` (or `fn(epoch)`), epoch 0-based.
        verbose: 1 prints the new rate. Defaults to 0.

    Works with kerasish optimizers and plain `torch.optim` optimizers (every
    param group gets the rate). The rate is logged as "learning_rate".

    Example:
        >>> cb = keras.callbacks.LearningRateScheduler(lambda epoch, lr: lr * 0.9)
    """

    def __init__(self, schedule, verbose=0):
        super().__init__()
        self.schedule = schedule
        self.verbose = verbose

    def on_epoch_begin(self, epoch, logs=None):
        optimizer = self.model.optimizer
        try:
            lr = self.schedule(epoch, get_learning_rate(optimizer))
        except TypeError:  # the Keras 1 one-argument schedule
            lr = self.schedule(epoch)
        if not isinstance(lr, (float, np.float32, np.float64)):
            raise ValueError(f"The output of the `schedule` function should be a float. Got: {lr}")
        set_learning_rate(optimizer, float(lr))
        if self.verbose > 0:
            print_msg(f"\nEpoch {epoch + 1}: LearningRateScheduler setting learning rate to {lr}.")

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["learning_rate"] = get_learning_rate(self.model.optimizer)
