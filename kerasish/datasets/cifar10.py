"""`keras.datasets.cifar10`: CIFAR-10 small images."""

from __future__ import annotations

import numpy as np

from kerasish.datasets import _cifar
from kerasish.utils import file_utils


def load_data():
    """Loads CIFAR-10 (50,000 training and 10,000 test 32x32 colour images,
    10 classes: airplane, automobile, bird, cat, deer, dog, frog, horse,
    ship, truck).

    The archive is cached as `~/.keras/datasets/cifar-10-batches-py-target_archive`
    and extracted to `cifar-10-batches-py-target/`, where Keras 3.15 puts
    them. The batches are Python pickles, read without running code from them
    (as Python 2 wrote them, or re-pickled by Python 3 with protocols 2 to 5;
    Keras 3.15 refuses protocols 2 and 5 from Python 3). Unlike Keras, which
    needs exactly 10,000 images per batch, batches of any size load.

    Returns:
        `(x_train, y_train), (x_test, y_test)`: uint8 NumPy arrays of shapes
        `(50000, 32, 32, 3)`, `(50000, 1)`, `(10000, 32, 32, 3)`,
        `(10000, 1)` (images `(n, 3, 32, 32)` under
        `image_data_format() == "channels_first"`).

    Example:

    ```python
    (x_train, y_train), (x_test, y_test) = keras.datasets.cifar10.load_data()
    ```
    """
    path = file_utils.get_file(
        fname="cifar-10-batches-py-target",
        origin="https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
        extract=True,
        file_hash="6d958be074577803d12ecdefd02955f39262c83c16fe9348329d7fe0b5c001ce",
    )
    x_train, y_train = _fill(_cifar.load_batch(_cifar.batch_path(path, "cifar-10-batches-py", f"data_batch_{i}"))
                             for i in range(1, 6))
    x_test, y_test = _cifar.load_batch(_cifar.batch_path(path, "cifar-10-batches-py", "test_batch"))
    (x_train, y_train), (x_test, y_test) = _cifar.finish(x_train, y_train, np.asarray(x_test), y_test)
    return (x_train, y_train), (x_test.astype(x_train.dtype), y_test.astype(y_train.dtype))


def _fill(batches, count=5):
    """The batches' rows in one uint8 array, filled in place as Keras does
    (its arrays hold 10,000 rows a batch; here the first batch's size sets
    the room, which grows if later batches are larger, and is cut to what
    was filled)."""
    x_out = y_out = None
    filled = 0
    for x, y in batches:
        y = np.asarray(y)
        if x_out is None:
            x_out = np.empty((len(x) * count, *x.shape[1:]), dtype="uint8")
            y_out = np.empty((len(x) * count,), dtype="uint8")
        if filled + len(x) > len(x_out):
            extra = filled + len(x) - len(x_out)
            x_out = np.concatenate([x_out, np.empty((extra, *x_out.shape[1:]), dtype="uint8")])
            y_out = np.concatenate([y_out, np.empty((extra,), dtype="uint8")])
        x_out[filled : filled + len(x)] = x
        y_out[filled : filled + len(x)] = y
        filled += len(x)
        del x, y  # free this batch before the next one is read (its memory is reused)
    if filled < len(x_out):
        x_out, y_out = x_out[:filled].copy(), y_out[:filled].copy()
    return x_out, y_out
