"""`keras.utils.PyDataset` (Keras 3) and its Keras 2 name `Sequence`."""

from __future__ import annotations

import concurrent.futures


class PyDataset:
    """Base class of Python datasets of batches, indexed by batch number.

    Subclasses implement `__getitem__(index)` (a batch: `x`, `(x, y)` or
    `(x, y, sample_weight)`) and `__len__` (the number of batches), and may
    implement `on_epoch_end()`. `fit`/`evaluate`/`predict` accept them.

    Args:
        workers: Threads fetching batches ahead of the training loop (with
            `use_multiprocessing=False`, the default, as Keras). Defaults to 1
            (batches fetched in the loop's thread).
        use_multiprocessing: Accepted for Keras compatibility; batches are
            still fetched by threads (a process pool would need picklable
            datasets and adds start-up cost), so the effect is the same as
            `workers` threads.
        max_queue_size: Batches fetched ahead when `workers > 1`.
            Defaults to 10.
    """

    def __init__(self, workers=1, use_multiprocessing=False, max_queue_size=10):
        self._workers = workers
        self._use_multiprocessing = use_multiprocessing
        self._max_queue_size = max_queue_size

    @property
    def workers(self):
        return getattr(self, "_workers", 1)

    @property
    def use_multiprocessing(self):
        return getattr(self, "_use_multiprocessing", False)

    @property
    def max_queue_size(self):
        return getattr(self, "_max_queue_size", 10)

    def __getitem__(self, index):
        raise NotImplementedError(f"{type(self).__name__} must implement `__getitem__(index)`.")

    def __len__(self):
        raise NotImplementedError(f"{type(self).__name__} must implement `__len__()`.")

    @property
    def num_batches(self):
        try:
            return len(self)
        except (NotImplementedError, TypeError):
            return None

    def on_epoch_begin(self):
        """Called at the start of every epoch."""

    def on_epoch_end(self):
        """Called at the end of every epoch (e.g. to reshuffle)."""


Sequence = PyDataset


def iterate_py_dataset(dataset, shuffle=False, generator=None):
    """The batches of one epoch of `dataset` in order (or in a shuffled
    batch order), fetched by `dataset.workers` threads when more than one;
    calls `on_epoch_begin` / `on_epoch_end` around it."""
    import torch

    n = len(dataset)
    order = torch.randperm(n, generator=generator).tolist() if shuffle else range(n)
    dataset.on_epoch_begin()
    workers = max(int(dataset.workers or 1), 1)
    if workers == 1:
        for i in order:
            yield dataset[i]
    else:
        ahead = max(int(dataset.max_queue_size or 1), workers)
        with concurrent.futures.ThreadPoolExecutor(workers) as pool:
            pending = []
            it = iter(order)
            for i in it:
                pending.append(pool.submit(dataset.__getitem__, i))
                if len(pending) >= ahead:
                    break
            for i in it:
                yield pending.pop(0).result()
                pending.append(pool.submit(dataset.__getitem__, i))
            for f in pending:
                yield f.result()
    dataset.on_epoch_end()
