"""`keras.datasets.fashion_mnist`: Zalando's Fashion-MNIST."""

from __future__ import annotations

import gzip
import os

import numpy as np

from kerasish.datasets._common import ORIGIN_FOLDER
from kerasish.utils import file_utils

_FILES = ["train-labels-idx1-ubyte.gz", "train-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz",
          "t10k-images-idx3-ubyte.gz"]
# IDX magic numbers: unsigned bytes, with 1 (labels) or 3 (images) dimensions
_IDX_LABELS, _IDX_IMAGES = 0x00000801, 0x00000803


def _read_idx(path, images, count=None):
    with gzip.open(path, "rb") as f:
        raw = f.read()
    header = 16 if images else 8
    if len(raw) < header:
        raise ValueError(f"The file '{path}' is not an IDX file: it has only {len(raw)} bytes.")
    fields = np.frombuffer(raw, ">u4", count=header // 4)
    expected = _IDX_IMAGES if images else _IDX_LABELS
    if fields[0] != expected:
        raise ValueError(f"The file '{path}' is not an IDX {'image' if images else 'label'} file: expected the "
                         f"magic number {expected:#010x}, received {int(fields[0]):#010x}.")
    data = np.frombuffer(raw, np.uint8, offset=header)
    dims = tuple(int(d) for d in fields[1:])
    if int(np.prod(dims)) != data.size or (count is not None and dims[0] != count):
        raise ValueError(f"The file '{path}' holds {data.size} bytes of data, but its header says {dims}"
                         + (f" and the labels file has {count} entries." if count is not None else "."))
    return data.reshape(dims)


def load_data():
    """Loads the Fashion-MNIST dataset (60,000 training and 10,000 test 28x28
    grayscale images of 10 kinds of clothing).

    The four gzipped IDX files are cached in `~/.keras/datasets/fashion-mnist/`,
    as Keras caches them. Unlike Keras, the IDX headers are checked (a damaged
    file raises `ValueError` instead of loading misshapen data).

    Returns:
        `(x_train, y_train), (x_test, y_test)`: uint8 NumPy arrays of shapes
        `(60000, 28, 28)`, `(60000,)`, `(10000, 28, 28)`, `(10000,)`.

    Example:

    ```python
    (x_train, y_train), (x_test, y_test) = keras.datasets.fashion_mnist.load_data()
    ```
    """
    dirname = os.path.join("datasets", "fashion-mnist")
    paths = [file_utils.get_file(fname, origin=ORIGIN_FOLDER + fname, cache_subdir=dirname) for fname in _FILES]
    y_train = _read_idx(paths[0], images=False)
    x_train = _read_idx(paths[1], images=True, count=len(y_train))
    y_test = _read_idx(paths[2], images=False)
    x_test = _read_idx(paths[3], images=True, count=len(y_test))
    return (x_train, y_train), (x_test, y_test)
