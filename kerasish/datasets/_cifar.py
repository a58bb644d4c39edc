"""Reading the CIFAR-10 / CIFAR-100 python batches (pickled dicts)."""

from __future__ import annotations

import os

import numpy as np

from kerasish.backend import config
from kerasish.datasets._safe_pickle import restricted_load


def load_batch(fpath, label_key="labels"):
    """`(data, labels)` of one batch file: data as `(n, 3, 32, 32)` uint8,
    labels as the file's list. Read with the restricted unpickler (no code
    from the file runs)."""
    with open(fpath, "rb") as f:
        d = restricted_load(f, encoding="bytes")
    if not isinstance(d, dict):
        raise ValueError(f"The CIFAR batch '{fpath}' does not hold a dict (it holds {type(d).__name__}).")
    d = {k.decode("utf8") if isinstance(k, bytes) else k: v for k, v in d.items()}
    missing = [k for k in ("data", label_key) if k not in d]
    if missing:
        raise ValueError(f"The CIFAR batch '{fpath}' has no {missing} (its keys: {sorted(d)}).")
    data, labels = d["data"], d[label_key]
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"The CIFAR batch '{fpath}' has `data` of shape {getattr(data, 'shape', None)}; "
                         "expected (n, 3072).")
    if len(labels) != len(data):
        raise ValueError(f"The CIFAR batch '{fpath}' has {len(data)} images but {len(labels)} labels.")
    return data.reshape(data.shape[0], 3, 32, 32), labels


def finish(x_train, y_train, x_test, y_test):
    """Keras's last steps: labels as `(n, 1)` columns, images channels-last
    unless `image_data_format()` is channels_first."""
    y_train = np.reshape(y_train, (len(y_train), 1))
    y_test = np.reshape(y_test, (len(y_test), 1))
    if config.image_data_format() == "channels_last":
        x_train = x_train.transpose(0, 2, 3, 1)
        x_test = x_test.transpose(0, 2, 3, 1)
    return (x_train, y_train), (x_test, y_test)


def batch_path(root, *parts):
    path = os.path.join(root, *parts)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"The CIFAR archive extracted to '{root}' has no '{os.path.join(*parts)}'.")
    return path
