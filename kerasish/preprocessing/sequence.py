"""Keras 2's sequence preprocessing (`keras.preprocessing.sequence`):
`pad_sequences`, `TimeseriesGenerator`, `make_sampling_table`, `skipgrams`,
with tf.keras 2.x's outputs (the random parts draw from Python's `random` /
NumPy's global generator in the same order Keras 2 does, so seeded programs
give the same samples)."""

from __future__ import annotations

import random

import numpy as np

from kerasish.utils.data_utils import pad_sequences
from kerasish.utils.py_dataset import PyDataset


class TimeseriesGenerator(PyDataset):
    """Batches of (window, target) pairs from a time series (a `Sequence`).

    Sample `k` of a batch is `data[row - length : row : sampling_rate]` with
    target `targets[row]`, for rows `start_index + length, + stride, ...`
    up to `end_index` (inclusive).

    Args:
        data: Indexable with `len` (array or list), time steps first.
        targets: Targets per time step; `len(targets) == len(data)`.
        length: Window length in time steps (before sampling).
        sampling_rate: Step between time steps inside a window. Defaults to 1.
        stride: Step between consecutive windows. Defaults to 1.
        start_index, end_index: The part of `data` used. Defaults to all of it.
        shuffle: Draw the rows of each batch at random (with replacement, from
            NumPy's global generator, as Keras 2). Defaults to False.
        reverse: Windows in reverse time order. Defaults to False.
        batch_size: Windows per batch. Defaults to 128.
    """

    def __init__(self, data, targets, length, sampling_rate=1, stride=1, start_index=0, end_index=None,
                 shuffle=False, reverse=False, batch_size=128, **kwargs):
        super().__init__(**kwargs)
        if len(data) != len(targets):
            raise ValueError(
                f"Data and targets have to be of same length. Data length is {len(data)} while target length "
                f"is {len(targets)}"
            )
        for name, value in (("length", length), ("sampling_rate", sampling_rate), ("stride", stride),
                            ("batch_size", batch_size)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
        self.data, self.targets = data, targets
        self.length, self.sampling_rate, self.stride = int(length), int(sampling_rate), int(stride)
        self.start_index = int(start_index) + self.length
        self.end_index = len(data) - 1 if end_index is None else int(end_index)
        self.shuffle, self.reverse, self.batch_size = bool(shuffle), bool(reverse), int(batch_size)
        if self.start_index > self.end_index:
            raise ValueError(
                f"`start_index+length={self.start_index} > end_index={self.end_index}` is disallowed, as no part "
                "of the sequence would be left to be used as current step."
            )

    def __len__(self):
        span = self.batch_size * self.stride
        return (self.end_index - self.start_index + span) // span

    def __getitem__(self, index):
        if self.shuffle:
            rows = np.random.randint(self.start_index, self.end_index + 1, size=self.batch_size)
        else:
            first = self.start_index + self.batch_size * self.stride * index
            rows = np.arange(first, min(first + self.batch_size * self.stride, self.end_index + 1), self.stride)
        samples = np.array([self.data[row - self.length:row:self.sampling_rate] for row in rows])
        targets = np.array([self.targets[row] for row in rows])
        if self.reverse:
            return samples[:, ::-1, ...], targets
        return samples, targets


def make_sampling_table(size, sampling_factor=1e-5):
    """Probability of keeping the word of frequency rank `i` (word2vec's
    subsampling with a Zipf approximation of word frequencies)."""
    gamma = 0.577  # Euler-Mascheroni constant, as Keras 2
    rank = np.arange(size)
    rank[0] = 1
    inv_fq = rank * (np.log(rank) + gamma) + 0.5 - 1.0 / (12.0 * rank)
    f = sampling_factor * inv_fq
    return np.minimum(1.0, f / np.sqrt(f))


def skipgrams(sequence, vocabulary_size, window_size=4, negative_samples=1.0, shuffle=True, categorical=False,
              sampling_table=None, seed=None):
    """Skip-gram (word, context) couples with labels 1 and random negative
    couples with labels 0; index 0 is never a word. Returns `(couples, labels)`."""
    couples, labels = [], []
    positive = [0, 1] if categorical else 1
    negative = [1, 0] if categorical else 0
    for i, wi in enumerate(sequence):
        if not wi:
            continue
        if sampling_table is not None and sampling_table[wi] < random.random():
            continue
        for j in range(max(0, i - window_size), min(len(sequence), i + window_size + 1)):
            if j == i or not sequence[j]:
                continue
            couples.append([wi, sequence[j]])
            labels.append(positive)
    if negative_samples > 0:
        count = int(len(labels) * negative_samples)
        words = [c[0] for c in couples]
        random.shuffle(words)
        couples += [[words[k % len(words)], random.randint(1, vocabulary_size - 1)] for k in range(count)]
        labels += [negative] * count
    if shuffle:
        if seed is None:
            seed = random.randint(0, int(10e6))
        random.seed(seed)
        random.shuffle(couples)
        random.seed(seed)
        random.shuffle(labels)
    return couples, labels


__all__ = ["TimeseriesGenerator", "make_sampling_table", "pad_sequences", "skipgrams"]
