"""`keras.datasets`: the Keras datasets, read from Keras's own cache.

Each `load_data` asks `keras.utils.get_file` for the same file name, cache
subdirectory and hash as Keras 3.15, so files a Keras installation has already
downloaded (`~/.keras/datasets/`, or `$KERAS_HOME/datasets/`) are used as they
are; a missing file is downloaded from Keras's URLs. Pickled contents (CIFAR
batches, the object arrays of imdb / reuters) are read without running code
from the files (`kerasish/datasets/_safe_pickle.py`).
"""

from kerasish.datasets import boston_housing
from kerasish.datasets import california_housing
from kerasish.datasets import cifar10
from kerasish.datasets import cifar100
from kerasish.datasets import fashion_mnist
from kerasish.datasets import imdb
from kerasish.datasets import mnist
from kerasish.datasets import reuters

__all__ = [
    "boston_housing",
    "california_housing",
    "cifar10",
    "cifar100",
    "fashion_mnist",
    "imdb",
    "mnist",
    "reuters",
]
