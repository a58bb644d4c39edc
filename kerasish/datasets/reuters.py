"""`keras.datasets.reuters`: Reuters newswire topics, as word-id sequences."""

from __future__ import annotations

import numpy as np

from kerasish.datasets import _sequences
from kerasish.datasets._common import ORIGIN_FOLDER
from kerasish.datasets._safe_pickle import load_npz
from kerasish.utils import file_utils

_LABEL_NAMES = (
    "cocoa", "grain", "veg-oil", "earn", "acq", "wheat", "copper", "housing", "money-supply", "coffee", "sugar",
    "trade", "reserves", "ship", "cotton", "carcass", "crude", "nat-gas", "cpi", "money-fx", "interest", "gnp",
    "meal-feed", "alum", "oilseed", "gold", "tin", "strategic-metal", "livestock", "retail", "ipi", "iron-steel",
    "rubber", "heat", "jobs", "lei", "bop", "zinc", "orange", "pet-chem", "dlr", "gas", "silver", "wpi", "hog",
    "lead",
)


def load_data(path="reuters.npz", num_words=None, skip_top=0, maxlen=None, test_split=0.2, seed=113,
              start_char=1, oov_char=2, index_from=3):
    """Loads the Reuters newswire dataset (11,228 newswires, 46 topics), each
    a list of word ids.

    The same arguments, steps and random order as Keras 3.15: one
    `np.random.RandomState(seed)` shuffle, ids offset by `index_from`,
    `start_char` prepended, sequences of `maxlen` or more dropped, ids outside
    `[skip_top, num_words)` replaced by `oov_char` (or removed if None), then
    the first `int(n * (1 - test_split))` for training. The `.npz` holds
    pickled object arrays, read without running code from the file.

    Args:
        path: the file's name in the cache. Defaults to `"reuters.npz"`.
        num_words: keep ids below this. None (or 0) means the largest id
            in the data, so, as in Keras, that largest id alone becomes
            `oov_char`. Defaults to None.
        skip_top: ids below this become `oov_char`. Defaults to 0.
        maxlen: drop sequences this long or longer (None keeps all).
        test_split: the fraction kept for testing. Defaults to 0.2.
        seed: the shuffling seed. Defaults to 113.
        start_char: the id marking a sequence's start (None: none). Defaults to 1.
        oov_char: the id of dropped words (None: remove them). Defaults to 2.
        index_from: the offset added to every word id. Defaults to 3.

    Returns:
        `(x_train, y_train), (x_test, y_test)`: `x_*` 1-D object arrays of
        lists of ints, `y_*` int arrays of topic indices
        (`get_label_names()[y]`).

    Raises:
        ValueError: `test_split` outside [0, 1] (Keras 3.15 does not check),
            or `maxlen` leaves no sequence (Keras raises an unrelated
            `max()` error there, or returns empty arrays when `num_words` is
            set).

    Example:

    ```python
    (x_train, y_train), (x_test, y_test) = keras.datasets.reuters.load_data(num_words=10000)
    ```
    """
    if not 0 <= test_split <= 1:  # Keras 3.15 does not check: 1.5 slices from the end
        raise ValueError(f"Invalid `test_split` argument: {test_split}. It must be between 0 and 1.")
    path = file_utils.get_file(
        fname=path,
        origin=f"{ORIGIN_FOLDER}reuters.npz",
        file_hash="d6586e694ee56d7a4e65172e12b3e987c03096cb01eab99753921ef915959916",
    )
    f = load_npz(path)
    missing = [k for k in ("x", "y") if k not in f]
    if missing:
        raise ValueError(f"The file '{path}' is not the Reuters dataset: it has no {missing} "
                         f"(it holds {sorted(f)}).")
    xs, labels = _sequences.shuffle(np.random.RandomState(seed), f["x"], f["y"])
    xs = _sequences.offset(xs, start_char, index_from)
    if maxlen:
        xs, labels = _sequences.drop_long(maxlen, xs, labels)
        if not xs:
            raise ValueError(
                f"After filtering for sequences shorter than maxlen={maxlen}, no sequence was kept. Increase maxlen."
            )
    xs = _sequences.limit_vocabulary(xs, num_words, skip_top, oov_char)
    idx = int(len(xs) * (1 - test_split))
    return ((_sequences.object_array(xs[:idx]), np.array(labels[:idx])),
            (_sequences.object_array(xs[idx:]), np.array(labels[idx:])))


def get_word_index(path="reuters_word_index.json"):
    """The word -> id dict of the Reuters dataset (ids before `index_from`).

    Args:
        path: the file's name in the cache. Defaults to `"reuters_word_index.json"`.
    """
    path = file_utils.get_file(
        path,
        origin=f"{ORIGIN_FOLDER}reuters_word_index.json",
        file_hash="4d44cc38712099c9e383dc6e5f11a921",
    )
    return _sequences.read_json(path)


def get_label_names():
    """The 46 topic names, indexed by label (`y`), as Keras's tuple."""
    return _LABEL_NAMES
