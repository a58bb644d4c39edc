"""Batches from a `keras.utils.PyDataset` / `Sequence` for fit, evaluate and predict.

Keras 3 semantics: `on_epoch_begin` / `on_epoch_end` around every epoch, the
order of batch indices shuffled each epoch when `shuffle=True`, batches
prepared by `workers` threads (or processes with `use_multiprocessing`)
while keeping index order, `class_weight` turned into sample weights, and an
infinite dataset (`num_batches` None) read until `steps_per_epoch`.
"""

from __future__ import annotations

import collections
import concurrent.futures
import multiprocessing
import random

import numpy as np
import torch

from kerasish.random.seed_generator import keras_seeding
from kerasish.trainers import data_adapters


def _get_item(dataset, index):
    return dataset[index]


# a forked worker's dataset: inherited from the parent when the pool starts (`_executor`)
_WORKER_DATASET = None


def _set_worker_dataset(dataset) -> None:
    global _WORKER_DATASET
    _WORKER_DATASET = dataset


def _get_forked_item(index):
    return _WORKER_DATASET[index]


class PyDatasetAdapter(data_adapters.DataAdapter):
    def __init__(self, dataset, shuffle=False, class_weight=None, device=None, shard=None):
        self._dataset = dataset
        # `shard` (a DataParallelRun): every rank reads the same batch order
        # (drawn from a seed shared by the ranks and the epoch) and keeps its
        # rows of each global batch
        self._shard = shard
        if shard is not None:
            self._seed, self._epoch = shard.shared_seed(), 0
            if dataset.num_batches is not None:
                shard.check_same_length(dataset.num_batches, type(dataset).__name__)
        self._compare_first = shard is not None  # the ranks' first batches are compared once
        self._shuffle = bool(shuffle)  # True or "batch": the order of batch indices
        self._class_weight = class_weight
        self._device = torch.device(device) if device is not None else None
        self.num_batches = dataset.num_batches

    def _standardize(self, batch):
        if isinstance(batch, (np.ndarray, torch.Tensor)):
            # a bare `x` is `(x,)`, as Keras standardizes it: a custom `train_step` gets a
            # 1-element sequence (`data[0]` is the batch, as in Keras), not the array itself
            batch = (batch,)
        if isinstance(batch, list):
            batch = tuple(batch)
        if not isinstance(batch, (tuple, dict, np.ndarray, torch.Tensor)):
            raise ValueError(
                f"{type(self._dataset).__name__}.__getitem__ must return a batch: `x`, `(x,)`, `(x, y)` or "
                f"`(x, y, sample_weight)` of arrays or tensors. Received: {type(batch).__name__}"
            )
        if self._class_weight is not None:
            x, y, sw = data_adapters.unpack_x_y_sample_weight(batch)
            if y is None:
                raise ValueError("`class_weight` needs targets: the PyDataset's batches have no `y`.")
            if sw is None:
                sw = data_adapters.class_weight_to_sample_weights(data_adapters.to_tensor(y), self._class_weight)
            batch = (x, y, sw)
        if self._shard is not None:
            if self._compare_first:
                self._compare_first = False
                self._shard.check_same_batch(batch, type(self._dataset).__name__)
            batch = data_adapters._slice_batch(batch, self._shard)
        batch = data_adapters.map_structure(
            lambda v: data_adapters.to_tensor(v) if isinstance(v, np.ndarray) else v, batch
        )
        device = self._device if self._device is not None else torch.device("cpu")
        return data_adapters.move_to_device(batch, device)

    # After set_random_seed, the RNG draws of Keras's torch backend around a
    # PyDataset, which it reads through a torch DataLoader: each new DataLoader
    # iterator draws its base seed from torch's global RNG, and each pass of a
    # shuffled dataset `random.shuffle`s the batch indices when it starts.
    keras_loader_draws = True

    def keras_peek_draws(self) -> None:
        """Keras's first fit/evaluate after `compile` opens a loader iterator
        and takes its first batch (a shuffled pass starts: one shuffle), calling the dataset's
        `on_epoch_begin()` (its `on_epoch_end()` follows: `keras_reset`). The batch is read for
        real, as Keras reads it: a `__getitem__` that augments with Keras layers or draws random
        numbers makes its draws, and the epochs after it see the same random streams as Keras's."""
        self._dataset.on_epoch_begin()
        if self._shard is not None:
            return
        index = 0
        if keras_seeding():
            data_adapters.keras_loader_iterator_draw()
            if self._shuffle and self.num_batches:
                order = list(range(self.num_batches))
                random.shuffle(order)
                index = order[0]
        ds = self._dataset
        if self.num_batches == 0 or (ds.workers > 0 and ds.use_multiprocessing):
            return  # (Keras's worker processes read it: no draw in this process)
        if ds.workers > 1:  # read by a worker thread, as Keras's enqueuer's
            with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
                pool.submit(_get_item, ds, index).result()
        else:
            ds[index]

    def keras_reset(self) -> None:
        """Keras's fit and evaluate call the dataset's `on_epoch_end()` once before their first
        pass (`epoch_iterator.reset()` after `_symbolic_build`; before every validation pass too):
        a dataset that reshuffles there starts its first epoch on the reshuffled order.
        Not under Keras 2's `fit_generator` / `evaluate_generator` (`keras2_generators`): tf.keras 2
        called `on_epoch_end()` only after each pass."""
        if not data_adapters._REPLAY_GENERATOR_START.get():
            return
        self._dataset.on_epoch_end()

    def keras_epoch_end_draw(self) -> None:
        """When a pass ends, Keras opens the next loader iterator at once (its base seed)."""
        if keras_seeding():
            data_adapters.keras_loader_iterator_draw()

    def _indices(self):
        n = self.num_batches
        if n is None:
            i = 0
            while True:
                yield i
                i += 1
        order = list(range(n))
        if self._shuffle:
            if self._shard is not None:
                gen = torch.Generator().manual_seed(self._seed + self._epoch)
                self._epoch += 1
                order = torch.randperm(n, generator=gen).tolist()
            else:
                random.shuffle(order)
        yield from order

    def _executor(self):
        """The pool and the function `(index) -> batch` to submit to it.
        Processes started by fork inherit the dataset, as Keras's worker
        pool's initializer does: only indices and batches are pickled (a
        dataset class defined in a function works, and its arrays are not
        sent with every batch); elsewhere the dataset is sent per batch."""
        ds = self._dataset
        workers = max(1, ds.workers)
        if ds.use_multiprocessing:
            if "fork" in multiprocessing.get_all_start_methods():
                pool = concurrent.futures.ProcessPoolExecutor(
                    max_workers=workers, mp_context=multiprocessing.get_context("fork"),
                    initializer=_set_worker_dataset, initargs=(ds,))
                return pool, lambda i: (_get_forked_item, i)
            return concurrent.futures.ProcessPoolExecutor(max_workers=workers), lambda i: (_get_item, ds, i)
        return concurrent.futures.ThreadPoolExecutor(max_workers=workers), lambda i: (_get_item, ds, i)

    def __iter__(self):
        ds = self._dataset
        ds.on_epoch_begin()
        if ds.workers > 1 or (ds.workers > 0 and ds.use_multiprocessing):
            yield from self._parallel()
        else:
            for i in self._indices():
                yield self._standardize(ds[i])
        ds.on_epoch_end()

    def _parallel(self):
        ds = self._dataset
        ahead = max(1, ds.max_queue_size)
        pending = collections.deque()
        pool, task = self._executor()
        with pool:
            indices = self._indices()
            for i in indices:
                pending.append(pool.submit(*task(i)))
                if len(pending) >= ahead:
                    break
            while pending:
                batch = pending.popleft().result()
                nxt = next(indices, None)
                if nxt is not None:
                    pending.append(pool.submit(*task(nxt)))
                yield self._standardize(batch)
