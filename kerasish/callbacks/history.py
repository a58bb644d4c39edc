"""`keras.callbacks.History`: records the epoch logs; `fit` returns it."""

from __future__ import annotations

from kerasish.callbacks.callback import Callback


class Keras2LrDict(dict):
    """A plain dict (`History.history`, `fit`'s epoch logs) that also answers Keras 2's `"lr"` for the
    learning rate that Keras 3 (and kerasish) log as `"learning_rate"` (LearningRateScheduler,
    ReduceLROnPlateau), so a ported `history.history["lr"]` or a Keras 2 callback's `logs["lr"]` reads
    it; `keys()` stay Keras 3's."""

    def __missing__(self, key):
        if key == "lr" and dict.__contains__(self, "learning_rate"):
            return self["learning_rate"]
        raise KeyError(key)

    def __contains__(self, key):
        return dict.__contains__(self, key) or (key == "lr" and dict.__contains__(self, "learning_rate"))

    def get(self, key, default=None):
        return self[key] if key in self else default


class History(Callback):
    """Records the logs of every epoch in `history` (`{name: [values...]}`).

    `fit()` adds one automatically and returns it.

    The learning rate that LearningRateScheduler / ReduceLROnPlateau log is
    `history["learning_rate"]` (Keras 3); Keras 2's `history["lr"]` reads it
    too.

    Example:
        >>> history = model.fit(x, y, epochs=3)
        >>> history.history["loss"]
        [0.52, 0.31, 0.25]
    """

    def __init__(self):
        super().__init__()
        self.history = Keras2LrDict()
        self.epoch = []

    def on_train_begin(self, logs=None):
        self.epoch = []

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.epoch.append(epoch)
        for k, v in logs.items():
            self.history.setdefault(k, []).append(v)
        self.model.history = self
