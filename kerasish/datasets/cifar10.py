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
    them. The batches are Python pickles, read without running code from them.

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
    batches = [_cifar.load_batch(_cifar.batch_path(path, "cifar-10-batches-py", f"data_batch_{i}"))
               for i in range(1, 6)]
    # Keras fills preallocated uint8 arrays (10,000 rows a batch): the same
    # values and dtypes, for batches of any size
    x_train = np.concatenate([x for x, _ in batches]).astype("uint8", copy=False)
    y_train = np.concatenate([np.asarray(y) for _, y in batches]).astype("uint8")
    x_test, y_test = _cifar.load_batch(_cifar.batch_path(path, "cifar-10-batches-py", "test_batch"))
    (x_train, y_train), (x_test, y_test) = _cifar.finish(x_train, y_train, np.asarray(x_test), y_test)
    return (x_train, y_train), (x_test.astype(x_train.dtype), y_test.astype(y_train.dtype))
