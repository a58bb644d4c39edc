"""`keras.callbacks.CallbackList`: dispatches every hook to a list of callbacks.

Batch logs stay device tensors (or a function computing them) until some
callback needs them: callbacks that do not override a batch hook are not
called for it, the progress bar reads them only when it redraws, and the
others receive Python floats (one device sync per batch, only then).
"""

from __future__ import annotations

from kerasish.callbacks.callback import Callback
from kerasish.callbacks.callback import is_default
from kerasish.callbacks.history import History
from kerasish.callbacks.history import Keras2LrDict
from kerasish.callbacks.progbar_logger import ProgbarLogger
from kerasish.callbacks.progbar_logger import materialize_logs

_BATCH_HOOKS = {
    "on_train_batch_begin": ("on_train_batch_begin", "on_batch_begin"),
    "on_train_batch_end": ("on_train_batch_end", "on_batch_end"),
    "on_test_batch_begin": ("on_test_batch_begin",),
    "on_test_batch_end": ("on_test_batch_end",),
    "on_predict_batch_begin": ("on_predict_batch_begin",),
    "on_predict_batch_end": ("on_predict_batch_end",),
}


# What fit / evaluate / predict call on a callback. Keras's CallbackList takes any object and calls
# these (duck typing): a callback written for real Keras or tf.keras (KerasTuner's, tensorflow_docs'
# EpochDots, `keras.callbacks.EarlyStopping` of the keras package) is called as it is.
_INTERFACE = ("set_model", "set_params", "on_train_begin", "on_train_end", "on_epoch_begin", "on_epoch_end",
              "on_test_begin", "on_test_end", "on_predict_begin", "on_predict_end",
              *sorted({name for names in _BATCH_HOOKS.values() for name in names}))


def _flatten_callbacks(callbacks):
    if callbacks is None:
        return []
    if not isinstance(callbacks, (list, tuple, CallbackList)):
        return [callbacks]  # one callback, kerasish's or another Keras's (Keras flattens a single one too)
    out = []
    for cb in callbacks:
        if isinstance(cb, (list, tuple)):
            out.extend(_flatten_callbacks(cb))
        else:
            out.append(cb)
    return out


class CallbackList(Callback):
    """Container calling a list of callbacks.

    Args:
        callbacks: List of `Callback` instances.
        add_history: Add a `History` callback if none is present.
        add_progbar: Add a `ProgbarLogger` if none is present.
        model: The model the callbacks are used with.
        **params: Passed to each callback's `set_params`
            (`verbose`, `epochs`, `steps`).
    """

    def __init__(self, callbacks=None, add_history=False, add_progbar=False, model=None, **params):
        super().__init__()
        self.callbacks = _flatten_callbacks(callbacks)
        for cb in self.callbacks:
            if not isinstance(cb, Callback):
                missing = [name for name in _INTERFACE if not callable(getattr(cb, name, None))]
                if missing:
                    raise TypeError(
                        "Callbacks must be instances of `keras.callbacks.Callback` (or objects with its methods, "
                        f"as the keras package's callbacks are). Received: {cb} of type {type(cb)}, which has "
                        f"no {', '.join(missing)}"
                    )
        self._history = next((cb for cb in self.callbacks if isinstance(cb, History)), None)
        self._progbar = next((cb for cb in self.callbacks if isinstance(cb, ProgbarLogger)), None)
        if self._history is None and add_history:
            self._history = History()
            self.callbacks.append(self._history)
        if self._progbar is None and add_progbar:
            self._progbar = ProgbarLogger()
            self.callbacks.append(self._progbar)
        self._batch_targets = {}
        self.set_model(model)
        self.set_params(params)

    def append(self, callback):
        self.callbacks.append(callback)
        self._batch_targets = {}

    def set_params(self, params):
        self.params = params
        if params:
            for cb in self.callbacks:
                cb.set_params(params)

    def set_model(self, model):
        if not model:
            return
        super().set_model(model)
        if self._history is not None:
            model.history = self._history
        for cb in self.callbacks:
            cb.set_model(model)

    # ------------------------------------------------------------ dispatch
    def _targets(self, hook):
        """(callbacks that override `hook` and need Python logs, the progbar
        if it listens to this hook)."""
        found = self._batch_targets.get(hook)
        if found is None:
            plain, lazy = [], []
            for cb in self.callbacks:
                if not any(not is_default(getattr(cb, name)) for name in _BATCH_HOOKS[hook]):
                    continue
                # the built-in progress bar reads tensor logs itself, lazily
                reads_lazily = isinstance(cb, ProgbarLogger) and getattr(type(cb), hook) is getattr(ProgbarLogger, hook)
                (lazy if reads_lazily else plain).append(cb)
            found = self._batch_targets[hook] = (plain, lazy)
        return found

    def _batch(self, hook, batch, logs):
        plain, lazy = self._targets(hook)
        for cb in lazy:
            getattr(cb, hook)(batch, logs)
        if plain:
            # Keras hands every hook a dict (`{}` at a predict batch's begin), never None, through
            # `pythonify_logs`: a predict batch's `outputs` arrive as NumPy arrays, not tensors
            values = materialize_logs(logs)
            for cb in plain:
                getattr(cb, hook)(batch, logs=values)

    def needs_batch_logs(self, hook="on_train_batch_end") -> bool:
        """Whether any callback listens to `hook` (else the trainer can skip
        building batch logs)."""
        plain, lazy = self._targets(hook)
        return bool(plain or lazy)

    def on_batch_begin(self, batch, logs=None):
        self._batch("on_train_batch_begin", batch, logs)

    def on_batch_end(self, batch, logs=None):
        self._batch("on_train_batch_end", batch, logs)

    def on_train_batch_begin(self, batch, logs=None):
        self._batch("on_train_batch_begin", batch, logs)

    def on_train_batch_end(self, batch, logs=None):
        self._batch("on_train_batch_end", batch, logs)

    def on_test_batch_begin(self, batch, logs=None):
        self._batch("on_test_batch_begin", batch, logs)

    def on_test_batch_end(self, batch, logs=None):
        self._batch("on_test_batch_end", batch, logs)

    def on_predict_batch_begin(self, batch, logs=None):
        self._batch("on_predict_batch_begin", batch, logs)

    def on_predict_batch_end(self, batch, logs=None):
        self._batch("on_predict_batch_end", batch, logs)

    def _all(self, hook, *args, logs=None):
        logs = materialize_logs(logs)
        for cb in self.callbacks:
            getattr(cb, hook)(*args, logs)
        return logs

    def on_epoch_begin(self, epoch, logs=None):
        self._all("on_epoch_begin", epoch, logs=logs)

    def on_epoch_end(self, epoch, logs=None):
        # callbacks may add entries (e.g. "learning_rate"): they share one dict, which also answers
        # Keras 2's "lr" for it (a Keras 2 callback reads `logs["lr"]`)
        logs = Keras2LrDict(materialize_logs(logs))
        for cb in self.callbacks:
            cb.on_epoch_end(epoch, logs)

    def on_train_begin(self, logs=None):
        self._all("on_train_begin", logs=logs)

    def on_train_end(self, logs=None):
        self._all("on_train_end", logs=logs)

    def on_test_begin(self, logs=None):
        self._all("on_test_begin", logs=logs)

    def on_test_end(self, logs=None):
        self._all("on_test_end", logs=logs)

    def on_predict_begin(self, logs=None):
        self._all("on_predict_begin", logs=logs)

    def on_predict_end(self, logs=None):
        self._all("on_predict_end", logs=logs)

    def __iter__(self):
        return iter(self.callbacks)
