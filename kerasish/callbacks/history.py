"""`keras.callbacks.History`: records the epoch logs; `fit` returns it."""

from __future__ import annotations

from kerasish.callbacks.callback import Callback


class History(Callback):
    """Records the logs of every epoch in `history` (`{name: [values...]}`).

    `fit()` adds one automatically and returns it.

    Example:
        >>> history = model.fit(x, y, epochs=3)
        >>> history.history["loss"]
        [0.52, 0.31, 0.25]
    """

    def __init__(self):
        super().__init__()
        self.history = {}
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)
        self.model.history = self
