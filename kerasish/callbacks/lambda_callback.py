"""`keras.callbacks.LambdaCallback`: callbacks from plain functions."""

from __future__ import annotations

from kerasish.callbacks.callback import Callback


class LambdaCallback(Callback):
    """A callback built from functions.

    Args:
        on_epoch_begin, on_epoch_end: `fn(epoch, logs)`.
        on_train_batch_begin, on_train_batch_end: `fn(batch, logs)`.
        on_train_begin, on_train_end: `fn(logs)`.
        **kwargs: Any other hook, e.g. `on_test_end=fn(logs)`.

    Example:
        >>> cb = keras.callbacks.LambdaCallback(on_epoch_end=lambda e, logs: print(e, logs["loss"]))
    """

    def __init__(self, on_epoch_begin=None, on_epoch_end=None, on_train_begin=None, on_train_end=None,
                 on_train_batch_begin=None, on_train_batch_end=None, **kwargs):
        super().__init__()
        self.__dict__.update(kwargs)
        for name, fn in (
            ("on_epoch_begin", on_epoch_begin), ("on_epoch_end", on_epoch_end),
            ("on_train_begin", on_train_begin), ("on_train_end", on_train_end),
            ("on_train_batch_begin", on_train_batch_begin), ("on_train_batch_end", on_train_batch_end),
        ):
            if fn is not None:
                setattr(self, name, fn)
