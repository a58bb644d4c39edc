"""`keras.datasets.boston_housing`: Boston house prices (regression)."""

from __future__ import annotations

from kerasish.datasets import _common
from kerasish.utils import file_utils


def load_data(path="boston_housing.npz", test_split=0.2, seed=113):
    """Loads the Boston housing dataset (506 houses, 13 features, median
    value in k$).

    Args:
        path: the file's name in the cache. Defaults to `"boston_housing.npz"`.
        test_split: the fraction kept for testing, in [0, 1). Defaults to 0.2.
        seed: the seed of the shuffle before splitting (Keras's
            `np.random.RandomState(seed)` order). Defaults to 113.

    Returns:
        `(x_train, y_train), (x_test, y_test)`: NumPy arrays (the file's dtype), `x` of shape
        `(n, 13)`, `y` of shape `(n,)`.

    Example:

    ```python
    (x_train, y_train), (x_test, y_test) = keras.datasets.boston_housing.load_data()
    ```
    """
    _common.check_test_split(test_split)
    path = file_utils.get_file(
        path,
        origin=f"{_common.ORIGIN_FOLDER}boston_housing.npz",
        file_hash="f553886a1f8d56431e820c5b82552d9d95cfcb96d1e678153f8839538947dff5",
    )
    x, y = _common.load_plain_npz(path, ["x", "y"])
    return _common.shuffle_split(x, y, test_split, seed)
