"""`keras.datasets.mnist`: the MNIST handwritten digits."""

from __future__ import annotations

from kerasish.datasets._common import ORIGIN_FOLDER
from kerasish.datasets._common import load_plain_npz
from kerasish.utils import file_utils


def load_data(path="mnist.npz"):
    """Loads the MNIST dataset (60,000 training and 10,000 test 28x28 images).

    Args:
        path: the file's name in the cache (`~/.keras/datasets/`). Defaults to
            `"mnist.npz"`, the file Keras caches.

    Returns:
        `(x_train, y_train), (x_test, y_test)`: uint8 NumPy arrays of shapes
        `(60000, 28, 28)`, `(60000,)`, `(10000, 28, 28)`, `(10000,)`; pixels
        in 0..255, labels in 0..9.

    Example:

    ```python
    (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
    ```
    """
    path = file_utils.get_file(
        fname=path,
        origin=f"{ORIGIN_FOLDER}mnist.npz",
        file_hash="731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",
    )
    x_train, y_train, x_test, y_test = load_plain_npz(path, ["x_train", "y_train", "x_test", "y_test"])
    return (x_train, y_train), (x_test, y_test)
