"""The dataset `image_dataset_from_directory` / `text_dataset_from_directory`
return: batches of files loaded on demand, as torch tensors.

A `FileDataset` is a `keras.utils.PyDataset` (so `fit` / `evaluate` /
`predict` take it, `class_weight` included, and `ds.workers = 4` loads
batches in 4 threads there) that is also re-iterable in a plain loop.
With `shuffle=True` every pass (each `for` loop, each epoch of `fit`)
visits the files in a new order, drawn from `np.random.RandomState(seed)`,
as a `tf.data` dataset reshuffles on each iteration. `fit`'s own
`shuffle` argument leaves the order alone (Keras's fit does not reorder a
`tf.data` dataset): `shuffle=False` here means the file order, every epoch.

The `tf.data.Dataset` methods Keras tutorials chain on these datasets are
provided with the same meaning: `map(fn)` (lazy; `fn(*element)` for a
tuple element, as tf.data unpacks it), `take(n)`, `skip(n)`, `shard(n, i)`, `cardinality()`, `shuffle(n)`, `unbatch()`,
`batch(k)` (of an unbatched dataset), `cache()` (in memory: after the first
pass, elements come from memory in the order and with the content of that
pass, as tf.data's cache does; a `filename` is accepted and ignored) and
`prefetch(n)` (accepted, nothing to do: batches are loaded when asked for).

What differs from `tf.data`: a shuffled pass is a full permutation of the
files (tf.data shuffles through a buffer of `8 * batch_size` elements, so
the orders are not Keras's), every element is made on the calling thread
unless `workers` is set, and strings are NumPy object arrays of `str`
(torch has no string tensors), as everywhere in kerasish.
"""

from __future__ import annotations

import numpy as np
import torch

from kerasish.utils.dataset_utils import encode_labels
from kerasish.utils.py_dataset import PyDataset


def _collate(elements):
    """Stacks a list of elements of one structure into a batch."""
    first = elements[0]
    if isinstance(first, tuple):
        return tuple(_collate([e[i] for e in elements]) for i in range(len(first)))
    if isinstance(first, dict):
        return {k: _collate([e[k] for e in elements]) for k in first}
    if isinstance(first, torch.Tensor):
        return torch.stack(elements)
    if isinstance(first, (str, bytes)):
        out = np.empty(len(elements), dtype=object)
        out[:] = elements
        return out
    return np.stack([np.asarray(e) for e in elements])


def _row(batch, index):
    """Element `index` of a batch."""
    if isinstance(batch, (tuple, list)):
        return tuple(_row(b, index) for b in batch)
    if isinstance(batch, dict):
        return {k: _row(v, index) for k, v in batch.items()}
    return batch[index]


def _batch_length(batch):
    while isinstance(batch, (tuple, list, dict)):
        batch = next(iter(batch.values())) if isinstance(batch, dict) else batch[0]
    return len(batch)


class _DatasetOps(PyDataset):
    """What every dataset of this module has: iteration, `len()`, the
    `tf.data` idioms, and `class_names` / `file_paths` of its source."""

    # batch size of the elements (None: single samples)
    _element_batch: int | None = None
    # like the tf.data dataset Keras returns, the dataset alone decides its order: `fit(shuffle=True)` (the
    # default) must not permute the batches of an unshuffled dataset (see data_adapters.get_data_adapter)
    _keeps_own_order = True
    # how samples are stacked into a batch (the source's, kept through map/take/...)
    _collate_fn = staticmethod(_collate)

    def _num_samples(self) -> int:
        raise NotImplementedError

    def __len__(self):
        n, b = self._num_samples(), self._element_batch
        return n if b is None else -(-n // b)

    def __iter__(self):
        self.on_epoch_begin()
        for i in range(len(self)):
            yield self[i]
        self.on_epoch_end()

    def _check_index(self, index):
        n = len(self)
        if index < 0:
            index += n
        if not 0 <= index < n:
            raise IndexError(f"{type(self).__name__} index out of range: {index} (it has {n} elements)")
        return index

    def __getattr__(self, name):
        # `class_names` / `file_paths` of the source, through map/take/...
        if name in ("class_names", "file_paths") and "_parent" in self.__dict__:
            return getattr(self.__dict__["_parent"], name)
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    # ------------------------------------------------- tf.data idioms
    def map(self, map_func, num_parallel_calls=None, deterministic=None, name=None):
        """`map_func` applied to each element when it is read (a tuple
        element is unpacked into arguments, as tf.data does).
        `num_parallel_calls` and `deterministic` are accepted (use
        `workers` for parallel loading in `fit`)."""
        if not callable(map_func):
            raise TypeError(f"`map_func` must be callable. Received: map_func={map_func!r}")
        return _Mapped(self, map_func)

    def take(self, count, name=None):
        """The first `count` elements (`count=-1`: all of them)."""
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < -1:
            raise ValueError(f"`count` must be a non-negative integer or -1 (all elements). Received: count={count}")
        return _Taken(self, int(count))

    def shard(self, num_shards, index, name=None):
        """Every `num_shards`-th element (batch, for a batched dataset)
        starting at `index`, as `tf.data.Dataset.shard` (the tutorials split
        a validation set into two with `shard(2, 0)` / `shard(2, 1)`)."""
        for arg, value in (("num_shards", num_shards), ("index", index)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                raise ValueError(f"`{arg}` must be an integer. Received: {arg}={value!r}")
        if num_shards < 1:
            raise ValueError(f"`num_shards` must be a positive integer. Received: num_shards={num_shards}")
        if not 0 <= index < num_shards:
            raise ValueError(f"`index` must be in [0, num_shards={num_shards}). Received: index={index}")
        return _Selected(self, int(index), int(num_shards))

    def skip(self, count, name=None):
        """The elements after the first `count` (`count=-1`: none), as
        `tf.data.Dataset.skip` (transfer_learning's `validation_dataset.skip(val_batches // 5)`)."""
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < -1:
            raise ValueError(f"`count` must be a non-negative integer or -1 (all elements). Received: count={count}")
        return _Selected(self, len(self) if count == -1 else int(count), 1)

    def cardinality(self):
        """The number of elements (batches, for a batched dataset), as
        `tf.data.Dataset.cardinality()` / `tf.data.experimental.cardinality(ds)` give it (an int here)."""
        return len(self)

    def unbatch(self, name=None):
        """A dataset of single samples (the batches split along their first axis)."""
        if self._element_batch is None:
            raise ValueError("`unbatch()` needs a batched dataset; this one yields single samples already.")
        return _Unbatched(self)

    def batch(self, batch_size, drop_remainder=False, num_parallel_calls=None, deterministic=None, name=None):
        """Batches of `batch_size` consecutive samples of an unbatched
        dataset (the last one smaller unless `drop_remainder`)."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"`batch_size` must be a positive integer. Received: batch_size={batch_size}")
        if self._element_batch is not None:
            raise ValueError(
                f"This dataset is already batched (batch_size={self._element_batch}); tf.data would stack whole "
                "batches into a new axis, which kerasish does not do. Call `.unbatch()` first, or pass "
                "`batch_size` to the `*_dataset_from_directory` function."
            )
        return _Batched(self, int(batch_size), bool(drop_remainder))

    def cache(self, filename="", name=None):
        """Elements kept in memory from the first time each is read (see the
        module docstring: the order and content of the first pass are kept).
        `filename` is accepted; the cache is always in memory."""
        return _Cached(self)

    def shuffle(self, buffer_size, seed=None, reshuffle_each_iteration=True, name=None):
        """The elements (batches, for a batched dataset, as in tf.data) in
        a random order, a new one on each pass unless
        `reshuffle_each_iteration=False`. The order is a full permutation
        drawn from `np.random.RandomState(seed)`, not tf.data's buffer of
        `buffer_size` elements."""
        if isinstance(buffer_size, bool) or not isinstance(buffer_size, (int, np.integer)) or buffer_size < 1:
            raise ValueError(f"`buffer_size` must be a positive integer. Received: buffer_size={buffer_size}")
        return _Shuffled(self, seed, bool(reshuffle_each_iteration))

    def prefetch(self, buffer_size, name=None):
        """Accepted for `tf.data` compatibility; returns this dataset."""
        return self

    def _derive(self, parent):
        """Set up a dataset made from `parent` (map, take, ...): it batches
        and stacks samples as `parent` does."""
        PyDataset.__init__(self)
        self._parent = parent
        self._element_batch = parent._element_batch
        self._collate_fn = parent._collate_fn

    def on_epoch_begin(self):
        parent = self.__dict__.get("_parent")
        if parent is not None:
            parent.on_epoch_begin()

    def on_epoch_end(self):
        parent = self.__dict__.get("_parent")
        if parent is not None:
            parent.on_epoch_end()


class FileDataset(_DatasetOps):
    """Samples loaded from files by `loader(path)`, with their labels,
    batched (see the module docstring).

    Attributes:
        class_names: The class names (None when there are no labels).
        file_paths: The files, in the order of `index_directory` (Keras's
            attribute; a shuffled pass visits them in its own order).
        batch_size: Samples per batch (None: single samples).
    """

    def __init__(self, file_paths, loader, labels, label_mode, num_classes, batch_size, shuffle, seed, class_names,
                 collate=None):
        super().__init__()
        if collate is not None:
            self._collate_fn = collate
        self.file_paths = list(file_paths)
        self.class_names = class_names
        self.batch_size = batch_size
        self._element_batch = batch_size
        self._loader = loader
        self._labels = None if labels is None or label_mode is None else np.asarray(labels, dtype="int64")
        self._label_mode = label_mode if self._labels is not None else None
        self._num_classes = num_classes
        self._shuffle = bool(shuffle)
        self._rng = np.random.RandomState(seed) if shuffle else None
        self._order = np.arange(len(self.file_paths))

    def _num_samples(self):
        return len(self.file_paths)

    def on_epoch_begin(self):
        if self._shuffle:
            self._order = self._rng.permutation(len(self.file_paths))

    def _element(self, indices):
        xs = [self._loader(self.file_paths[k]) for k in indices]
        x = self._collate_fn(xs)
        if self._label_mode is None:
            return x
        return x, encode_labels(self._labels[indices], self._label_mode, self._num_classes)

    def __getitem__(self, index):
        index = self._check_index(int(index))
        if self.batch_size is None:
            x = self._element([self._order[index]])
            return _row(x, 0)
        return self._element(self._order[index * self.batch_size:(index + 1) * self.batch_size])

    def __repr__(self):
        return (f"<FileDataset: {len(self.file_paths)} files, batch_size={self.batch_size}, "
                f"shuffle={self._shuffle}, label_mode={self._label_mode!r}>")


class _Mapped(_DatasetOps):
    def __init__(self, parent, fn):
        self._derive(parent)
        self._fn = fn

    def _num_samples(self):
        return self._parent._num_samples()

    def __getitem__(self, index):
        element = self._parent[index]
        return self._fn(*element) if isinstance(element, tuple) else self._fn(element)


class _Taken(_DatasetOps):
    def __init__(self, parent, count):
        self._derive(parent)
        self._count = count

    def _num_samples(self):
        n = self._parent._num_samples()
        if self._count == -1:
            return n
        return min(n, self._count * (self._element_batch or 1))

    def __getitem__(self, index):
        return self._parent[self._check_index(int(index))]


class _Selected(_DatasetOps):
    """The parent's elements `start, start + step, ...` (`shard`, `skip`)."""

    def __init__(self, parent, start, step):
        self._derive(parent)
        self._start = start
        self._step = step

    def _elements(self):
        return range(self._start, len(self._parent), self._step)

    def __len__(self):
        return len(self._elements())

    def _num_samples(self):
        # the parent's elements are full batches but its last (a reshuffled parent's sizes are
        # per pass: this counts them in the parent's unshuffled layout)
        b = self._element_batch
        if b is None:
            return len(self._elements())
        n = self._parent._num_samples()
        return sum(min(b, n - i * b) for i in self._elements())

    def __getitem__(self, index):
        return self._parent[self._elements()[self._check_index(int(index))]]


class _Unbatched(_DatasetOps):
    def __init__(self, parent):
        self._derive(parent)
        self._element_batch = None
        self._last = (None, None)  # the parent batch read last (sequential reads load each batch once)

    def _num_samples(self):
        return self._parent._num_samples()

    def on_epoch_begin(self):
        self._last = (None, None)
        super().on_epoch_begin()

    def __getitem__(self, index):
        index = self._check_index(int(index))
        size = self._parent._element_batch
        b, r = divmod(index, size)
        last = self._last  # read once: with `workers` threads another read may replace it
        if last[0] != b:
            last = (b, self._parent[b])
            self._last = last
        batch = last[1]
        if r >= _batch_length(batch):
            raise ValueError(
                f"A batch of the dataset before `unbatch()` has {_batch_length(batch)} elements, fewer than its "
                f"batch size {size}: `map` functions must keep the batch size."
            )
        return _row(batch, r)


class _Batched(_DatasetOps):
    def __init__(self, parent, batch_size, drop_remainder):
        self._derive(parent)
        self._drop = drop_remainder
        self._element_batch = batch_size

    def _num_samples(self):
        n = self._parent._num_samples()
        return n - n % self._element_batch if self._drop else n

    def __getitem__(self, index):
        index = self._check_index(int(index))
        b = self._element_batch
        stop = min((index + 1) * b, self._num_samples())
        return self._collate_fn([self._parent[j] for j in range(index * b, stop)])


class _Shuffled(_DatasetOps):
    def __init__(self, parent, seed, reshuffle):
        self._derive(parent)
        self._rng = np.random.RandomState(seed)
        self._reshuffle = reshuffle
        self._perm = None

    def _num_samples(self):
        return self._parent._num_samples()

    def on_epoch_begin(self):
        super().on_epoch_begin()
        if self._perm is None or self._reshuffle:
            self._perm = self._rng.permutation(len(self))

    def __getitem__(self, index):
        index = self._check_index(int(index))
        if self._perm is None:
            self._perm = self._rng.permutation(len(self))
        # a shuffled batched dataset is a permutation of whole batches: the
        # last (smaller) batch may come anywhere, as in tf.data
        return self._parent[int(self._perm[index])]


class _Cached(_DatasetOps):
    def __init__(self, parent):
        self._derive(parent)
        self._memory = {}

    def _num_samples(self):
        return self._parent._num_samples()

    def on_epoch_begin(self):
        # the source's order is kept from the first element cached on, so
        # every cached element comes from the same pass (no sample twice)
        if not self._memory:
            super().on_epoch_begin()

    def __getitem__(self, index):
        index = self._check_index(int(index))
        if index not in self._memory:
            self._memory[index] = self._parent[index]
        return self._memory[index]


class InMemoryDataset(_DatasetOps):
    """Samples held in a list, batched like the dataset they came from
    (what `split_dataset` returns for a dataset of this module, as Keras
    returns new in-memory `tf.data` datasets for a `tf.data` one)."""

    def __init__(self, samples, batch_size, collate_fn, class_names=None):
        PyDataset.__init__(self)
        self._samples = list(samples)
        self._element_batch = batch_size
        self._collate_fn = collate_fn
        self.class_names = class_names

    def _num_samples(self):
        return len(self._samples)

    def __getitem__(self, index):
        index = self._check_index(int(index))
        b = self._element_batch
        if b is None:
            return self._samples[index]
        return self._collate_fn(self._samples[index * b:(index + 1) * b])
