"""`keras.datasets.cifar100`: CIFAR-100 small images."""

from __future__ import annotations

from kerasish.datasets import _cifar
from kerasish.utils import file_utils


def load_data(label_mode="fine"):
    """Loads CIFAR-100 (50,000 training and 10,000 test 32x32 colour images,
    100 fine classes grouped into 20 coarse ones).

    The archive is cached as `~/.keras/datasets/cifar-100-python-target_archive`
    and extracted to `cifar-100-python-target/`, where Keras 3.15 puts them.

    Args:
        label_mode: `"fine"` (100 classes) or `"coarse"` (20 superclasses).
            Defaults to `"fine"`.

    Returns:
        `(x_train, y_train), (x_test, y_test)`: uint8 images of shapes
        `(50000, 32, 32, 3)` and `(10000, 32, 32, 3)` (channels first under
        `image_data_format() == "channels_first"`), int64 labels of shapes
        `(50000, 1)` and `(10000, 1)`.

    Example:

    ```python
    (x_train, y_train), (x_test, y_test) = keras.datasets.cifar100.load_data(label_mode="coarse")
    ```
    """
    if label_mode not in ["fine", "coarse"]:
        raise ValueError(f'`label_mode` must be one of `"fine"`, `"coarse"`. Received: label_mode={label_mode}.')
    path = file_utils.get_file(
        fname="cifar-100-python-target",
        origin="https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",
        extract=True,
        file_hash="85cd44d02ba6437773c5bbd22e183051d648de2e7d6b014e1ef29b855ba677a7",
    )
    key = f"{label_mode}_labels"
    x_train, y_train = _cifar.load_batch(_cifar.batch_path(path, "cifar-100-python", "train"), label_key=key)
    x_test, y_test = _cifar.load_batch(_cifar.batch_path(path, "cifar-100-python", "test"), label_key=key)
    return _cifar.finish(x_train, y_train, x_test, y_test)
