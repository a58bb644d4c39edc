"""`keras.utils.PyDataset` (Keras 3) and `keras.utils.Sequence` (its Keras 2 name).

A PyDataset is a Python object that returns whole batches by index:
subclass it, implement `__getitem__(index)` and `__len__()` (or the
`num_batches` property; None means infinite), and optionally
`on_epoch_begin()` / `on_epoch_end()`. `fit` / `evaluate` / `predict` take it
directly. `workers > 1` prepares batches in that many threads;
`use_multiprocessing=True` in processes (forked where the platform forks,
inheriting the dataset as Keras's workers do; elsewhere the dataset is sent
to them, so it must pickle); batches always arrive in index order. With
`fit(shuffle=True)` the *order of batch indices* is shuffled each epoch, as
Keras does.
"""

from __future__ import annotations


class PyDataset:
    """Base class for datasets that return batches by index (see the module docstring).

    Args:
        workers: Number of workers preparing batches in parallel. Defaults to 1.
        use_multiprocessing: Whether the workers are processes rather than
            threads. Defaults to False.
        max_queue_size: Maximum number of batches prepared ahead. Defaults to 10.

    Example:
        >>> class Squares(keras.utils.PyDataset):
        ...     def __init__(self, n, batch_size, **kwargs):
        ...         super().__init__(**kwargs)
        ...         self.n, self.batch_size = n, batch_size
        ...     def __len__(self):
        ...         return -(-self.n // self.batch_size)
        ...     def __getitem__(self, i):
        ...         x = np.arange(i * self.batch_size, min(self.n, (i + 1) * self.batch_size), dtype="float32")
        ...         return x[:, None], (x ** 2)[:, None]
    """

    def __init__(self, workers: int = 1, use_multiprocessing: bool = False, max_queue_size: int = 10):
        if not isinstance(workers, int) or isinstance(workers, bool) or workers < 0:
            raise ValueError(f"`workers` must be a non-negative integer. Received: workers={workers!r}")
        if not isinstance(max_queue_size, int) or max_queue_size < 1:
            raise ValueError(f"`max_queue_size` must be a positive integer. Received: max_queue_size={max_queue_size!r}")
        self._workers = workers
        self._use_multiprocessing = bool(use_multiprocessing)
        self._max_queue_size = max_queue_size

    def _defaults(self):
        # a subclass that forgot super().__init__() still works (Keras warns)
        if "_workers" not in self.__dict__:
            self._workers, self._use_multiprocessing, self._max_queue_size = 1, False, 10

    @property
    def workers(self) -> int:
        self._defaults()
        return self._workers

    @workers.setter
    def workers(self, value):
        self._workers = value

    @property
    def use_multiprocessing(self) -> bool:
        self._defaults()
        return self._use_multiprocessing

    @use_multiprocessing.setter
    def use_multiprocessing(self, value):
        self._use_multiprocessing = bool(value)

    @property
    def max_queue_size(self) -> int:
        self._defaults()
        return self._max_queue_size

    @max_queue_size.setter
    def max_queue_size(self, value):
        self._max_queue_size = value

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement `__getitem__(index)`.")

    @property
    def num_batches(self):
        """Batches per epoch: `len(self)` if defined, None (infinite) otherwise."""
        if type(self).__len__ is not PyDataset.__len__:
            return len(self)
        return None

    def __len__(self):
        raise TypeError(
            f"{type(self).__name__} defines neither `__len__` nor `num_batches`: it is an infinite dataset. "
            "Pass `steps_per_epoch` to `fit`."
        )

    def __iter__(self):
        """One pass over the batches in index order (then `on_epoch_end`)."""
        n = self.num_batches
        i = 0
        while n is None or i < n:
            yield self[i]
            i += 1
        self.on_epoch_end()

    def on_epoch_begin(self):
        """Called at the start of every epoch."""

    def on_epoch_end(self):
        """Called at the end of every epoch."""


# Keras 2's name (Keras 3 keeps `keras.utils.Sequence` as an alias).
Sequence = PyDataset
