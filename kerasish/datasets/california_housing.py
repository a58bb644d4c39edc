"""`keras.datasets.california_housing`: California house prices (regression)."""

from __future__ import annotations

from kerasish.datasets import _common
from kerasish.utils import file_utils


def load_data(version="large", path="california_housing.npz", test_split=0.2, seed=113):
    """Loads the California housing dataset (20,640 blocks, 8 features, median
    house value in $).

    Args:
        version: `"large"` (all 20,640 rows) or `"small"` (the first 600).
            Defaults to `"large"`.
        path: the file's name in the cache. Defaults to
            `"california_housing.npz"`.
        test_split: the fraction kept for testing, in [0, 1). Defaults to 0.2.
        seed: the seed of the shuffle before splitting. Defaults to 113.

    Returns:
        `(x_train, y_train), (x_test, y_test)`: NumPy arrays (the file's dtype), `x` of shape
        `(n, 8)`, `y` of shape `(n,)`.

    Example:

    ```python
    (x_train, y_train), (x_test, y_test) = keras.datasets.california_housing.load_data(version="small")
    ```
    """
    _common.check_test_split(test_split)
    if version not in ("small", "large"):  # checked before any download (Keras checks after)
        raise ValueError(f"Argument `version` must be one of 'small', 'large'. Received: version={version}")
    path = file_utils.get_file(
        path,
        origin=f"{_common.ORIGIN_FOLDER}california_housing.npz",
        file_hash="1a2e3a52e0398de6463aebe6f4a8da34fb21fbb6b934cf88c3425e766f2a1a6f",
    )
    x, y = _common.load_plain_npz(path, ["x", "y"])
    if version == "small":
        x, y = x[:600], y[:600]
    return _common.shuffle_split(x, y, test_split, seed)
