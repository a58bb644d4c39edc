"""`keras.utils.timeseries_dataset_from_array` without TensorFlow."""

from __future__ import annotations

import numpy as np
import torch


class TimeseriesDataset:
    """Re-iterable batches of sliding windows (what `timeseries_dataset_from_array` returns).

    Iterating gives `x` batches (or `(x, y)` with targets) as torch tensors;
    `len()` is the number of batches. `fit` / `evaluate` / `predict` take it
    like a DataLoader.
    """

    def __init__(self, data, targets, starts, sequence_length, sampling_rate, batch_size):
        self._data = data
        self._targets = targets
        self._starts = starts
        self._offsets = np.arange(sequence_length) * sampling_rate
        self._batch_size = batch_size

    def __len__(self):
        if self._batch_size is None:
            return len(self._starts)
        return -(-len(self._starts) // self._batch_size)

    def _sample(self, starts):
        x = torch.as_tensor(np.asarray(self._data)[starts[:, None] + self._offsets])
        if self._targets is None:
            return x
        return x, torch.as_tensor(np.asarray(self._targets)[starts])

    def take(self, count):
        """The first `count` elements (batches, or windows when `batch_size`
        is None) as a dataset of the same kind; `count=-1` keeps them all.

        The subset of `tf.data.Dataset.take` that Keras programs use on what
        `timeseries_dataset_from_array` returns (`for x, y in ds.take(1)`).
        """
        if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < -1:
            raise ValueError(
                f"`count` must be a non-negative integer or -1 (all elements). Received: count={count}"
            )
        starts = self._starts
        if count != -1:
            starts = starts[: count * (self._batch_size or 1)]
        taken = TimeseriesDataset.__new__(TimeseriesDataset)
        taken.__dict__.update(self.__dict__)
        taken._starts = starts
        return taken

    def __iter__(self):
        if self._batch_size is None:
            for s in self._starts:
                out = self._sample(np.array([s]))
                yield tuple(t[0] for t in out) if isinstance(out, tuple) else out[0]
            return
        for i in range(0, len(self._starts), self._batch_size):
            yield self._sample(self._starts[i:i + self._batch_size])


def timeseries_dataset_from_array(data, targets, sequence_length, sequence_stride=1, sampling_rate=1,
                                  batch_size=128, shuffle=False, seed=None, start_index=None, end_index=None):
    """Sliding windows over `data` (time steps first), batched.

    Window `i` holds `data[start_index + p_i + k * sampling_rate]` for
    `k < sequence_length`, with target `targets[start_index + p_i]`, where
    `p_i = i * sequence_stride` (Keras 3's definition and argument checks).

    With `shuffle=True` the window start positions are permuted with
    `np.random.RandomState(seed)`, as Keras does; Keras then also reshuffles
    windows locally inside a TensorFlow shuffle buffer, which has no
    TensorFlow-free equivalent, so shuffled batch contents can differ from
    Keras's (the set of windows is the same).
    """
    n = len(data)
    if start_index:
        if start_index < 0:
            raise ValueError(f"`start_index` must be 0 or greater. Received: start_index={start_index}")
        if start_index >= n:
            raise ValueError(
                f"`start_index` must be lower than the length of the data. Received: start_index={start_index}, "
                f"for data of length {n}"
            )
    if end_index:
        if start_index and end_index <= start_index:
            raise ValueError(
                f"`end_index` must be higher than `start_index`. Received: start_index={start_index}, and "
                f"end_index={end_index} "
            )
        if end_index >= n:
            raise ValueError(
                f"`end_index` must be lower than the length of the data. Received: end_index={end_index}, for "
                f"data of length {n}"
            )
        if end_index <= 0:
            raise ValueError(f"`end_index` must be higher than 0. Received: end_index={end_index}")
    if sampling_rate <= 0:
        raise ValueError(f"`sampling_rate` must be higher than 0. Received: sampling_rate={sampling_rate}")
    if sampling_rate >= n:
        raise ValueError(
            f"`sampling_rate` must be lower than the length of the data. Received: sampling_rate={sampling_rate}, "
            f"for data of length {n}"
        )
    if sequence_stride <= 0:
        raise ValueError(f"`sequence_stride` must be higher than 0. Received: sequence_stride={sequence_stride}")
    if sequence_stride >= n:
        raise ValueError(
            f"`sequence_stride` must be lower than the length of the data. Received: "
            f"sequence_stride={sequence_stride}, for data of length {n}"
        )
    start_index = start_index or 0
    end_index = end_index or n
    num_seqs = end_index - start_index - (sequence_length - 1) * sampling_rate
    if targets is not None:
        num_seqs = min(num_seqs, len(targets))
    starts = np.arange(0, max(num_seqs, 0), sequence_stride, dtype="int64")
    if shuffle:
        if seed is None:
            seed = np.random.randint(1e6)
        np.random.RandomState(seed).shuffle(starts)
    data = np.asarray(data)[start_index:end_index]
    if targets is not None:
        targets = np.asarray(targets)[start_index:end_index]
    return TimeseriesDataset(data, targets, starts, sequence_length, sampling_rate, batch_size)
