"""`keras.callbacks.Callback`: the base class of training callbacks."""

from __future__ import annotations


def _default(method):
    """Marks a base-class hook, so `CallbackList` can skip callbacks that do
    not override it (and never turn batch logs into Python floats for them)."""
    method._is_default = True
    return method


def is_default(method) -> bool:
    return getattr(method, "_is_default", False)


class Callback:
    """Base class for callbacks: override any of the `on_*` hooks.

    Attributes:
        params: Dict of training parameters (`verbose`, `epochs`, `steps`).
        model: The model being trained (set by `fit`/`evaluate`/`predict`).

    `logs` passed to the hooks are dicts of Python floats: batch hooks get
    the running metric values of the epoch so far, `on_epoch_end` the epoch
    results (plus `val_*` entries after validation).

    Example:
        >>> class PrintLoss(keras.callbacks.Callback):
        ...     def on_epoch_end(self, epoch, logs=None):
        ...         print(epoch, logs["loss"])
    """

    def __init__(self):
        self.params = None
        self._model = None

    def set_params(self, params):
        self.params = params

    def set_model(self, model):
        self._model = model

    @property
    def model(self):
        model = self._model
        inner = getattr(model, "module", None)
        if inner is not None and type(model).__name__ == "DistributedDataParallel":
            return inner
        return model

    @model.setter
    def model(self, value):
        self._model = value

    @_default
    def on_batch_begin(self, batch, logs=None):
        """A backwards-compatibility alias of `on_train_batch_begin`."""

    @_default
    def on_batch_end(self, batch, logs=None):
        """A backwards-compatibility alias of `on_train_batch_end`."""

    @_default
    def on_epoch_begin(self, epoch, logs=None):
        """Called at the start of an epoch (training only)."""

    @_default
    def on_epoch_end(self, epoch, logs=None):
        """Called at the end of an epoch with the epoch's logs."""

    @_default
    def on_train_batch_begin(self, batch, logs=None):
        """Called at the beginning of a training batch in `fit`."""
        self.on_batch_begin(batch, logs=logs)

    @_default
    def on_train_batch_end(self, batch, logs=None):
        """Called at the end of a training batch in `fit`."""
        self.on_batch_end(batch, logs=logs)

    @_default
    def on_test_batch_begin(self, batch, logs=None):
        """Called at the beginning of a batch in `evaluate` (and validation)."""

    @_default
    def on_test_batch_end(self, batch, logs=None):
        """Called at the end of a batch in `evaluate` (and validation)."""

    @_default
    def on_predict_batch_begin(self, batch, logs=None):
        """Called at the beginning of a batch in `predict`."""

    @_default
    def on_predict_batch_end(self, batch, logs=None):
        """Called at the end of a batch in `predict`; `logs["outputs"]` holds the batch outputs."""

    @_default
    def on_train_begin(self, logs=None):
        """Called at the beginning of training."""

    @_default
    def on_train_end(self, logs=None):
        """Called at the end of training with the last epoch's logs."""

    @_default
    def on_test_begin(self, logs=None):
        """Called at the beginning of evaluation or validation."""

    @_default
    def on_test_end(self, logs=None):
        """Called at the end of evaluation or validation."""

    @_default
    def on_predict_begin(self, logs=None):
        """Called at the beginning of prediction."""

    @_default
    def on_predict_end(self, logs=None):
        """Called at the end of prediction."""
