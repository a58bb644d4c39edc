"""Shared pieces of the dataset loaders."""

from __future__ import annotations

import numpy as np

# where Keras downloads its small datasets from
ORIGIN_FOLDER = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"


def check_test_split(test_split):
    if not 0 <= test_split < 1:
        raise ValueError(
            f"Invalid `test_split` argument: {test_split}. It must be between 0 and 1 (exclusive of 1)."
        )


def shuffle_split(x, y, test_split, seed):
    """Keras's split: a `np.random.RandomState(seed)` permutation, then the
    first `int(len * (1 - test_split))` rows for training."""
    indices = np.arange(len(x))
    np.random.RandomState(seed).shuffle(indices)
    x, y = x[indices], y[indices]
    n = int(len(x) * (1 - test_split))
    return (np.array(x[:n]), np.array(y[:n])), (np.array(x[n:]), np.array(y[n:]))


def load_plain_npz(path, keys):
    """Arrays of a numeric `.npz` (pickles refused), by key, with a clear
    error for a file that lacks one."""
    with np.load(path, allow_pickle=False) as f:
        missing = [k for k in keys if k not in f.files]
        if missing:
            raise ValueError(f"The file '{path}' is not the expected dataset: it has no {missing} "
                             f"(it holds {f.files}).")
        return [f[k] for k in keys]
