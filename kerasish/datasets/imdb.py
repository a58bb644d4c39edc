"""`keras.datasets.imdb`: IMDB movie-review sentiment, as word-id sequences."""

from __future__ import annotations

import numpy as np

from kerasish.datasets import _sequences
from kerasish.datasets._common import ORIGIN_FOLDER
from kerasish.datasets._safe_pickle import load_npz
from kerasish.utils import file_utils


def load_data(path="imdb.npz", num_words=None, skip_top=0, maxlen=None, seed=113, start_char=1, oov_char=2,
              index_from=3, **kwargs):
    """Loads the IMDB dataset (25,000 training and 25,000 test reviews,
    labelled 1 positive / 0 negative), each review a list of word ids
    (id `i + index_from` is the `i`-th most frequent word).

    The same arguments, steps and random order as Keras 3.15: training and
    test sets are each shuffled with one `np.random.RandomState(seed)`, ids
    are offset by `index_from`, `start_char` is prepended, reviews of
    `maxlen` words or more are dropped, then ids outside
    `[skip_top, num_words)` become `oov_char` (or are removed if it is None).
    The `.npz` holds pickled object arrays; they are read without running
    code from the file.

    Args:
        path: the file's name in the cache. Defaults to `"imdb.npz"`.
        num_words: keep ids below this. None (or 0) means the largest id
            in the data, so, as in Keras, that largest id alone becomes
            `oov_char`. Defaults to None.
        skip_top: ids below this become `oov_char`. Defaults to 0.
        maxlen: drop sequences this long or longer (None keeps all).
        seed: the shuffling seed. Defaults to 113.
        start_char: the id marking a sequence's start (None: none). Defaults to 1.
        oov_char: the id of dropped words (None: remove them). Defaults to 2.
        index_from: the offset added to every word id. Defaults to 3.
        **kwargs: Keras 2's `nb_words` (alias of `num_words`, with a
            warning); any other keyword raises `TypeError` (Keras 3.15
            ignores it).

    Returns:
        `(x_train, y_train), (x_test, y_test)`: `x_*` 1-D object arrays of
        lists of ints (always 1-D; Keras makes a 2-D array in the corner case
        where every sequence has the same length), `y_*` int arrays of 0/1.

    Raises:
        ValueError: `maxlen` leaves no training or no test sequence.

    Example:

    ```python
    (x_train, y_train), (x_test, y_test) = keras.datasets.imdb.load_data(num_words=10000)
    ```
    """
    num_words = _sequences.check_kwargs("load_data", kwargs, num_words)
    path = file_utils.get_file(
        fname=path,
        origin=f"{ORIGIN_FOLDER}imdb.npz",
        file_hash="69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f",
    )
    f = load_npz(path)
    missing = [k for k in ("x_train", "y_train", "x_test", "y_test") if k not in f]
    if missing:
        raise ValueError(f"The file '{path}' is not the IMDB dataset: it has no {missing} (it holds {sorted(f)}).")
    rng = np.random.RandomState(seed)
    x_train, labels_train = _sequences.shuffle(rng, f["x_train"], f["y_train"])
    x_test, labels_test = _sequences.shuffle(rng, f["x_test"], f["y_test"])
    x_train = _sequences.offset(x_train, start_char, index_from)
    x_test = _sequences.offset(x_test, start_char, index_from)
    if maxlen:
        x_train, labels_train = _sequences.drop_long(maxlen, x_train, labels_train)
        x_test, labels_test = _sequences.drop_long(maxlen, x_test, labels_test)
        if not x_train or not x_test:
            raise ValueError(
                f"After filtering for sequences shorter than maxlen={maxlen}, no sequence was kept. Increase maxlen."
            )
    xs = _sequences.limit_vocabulary(x_train + x_test, num_words, skip_top, oov_char)
    labels = np.concatenate([labels_train, labels_test])
    idx = len(x_train)
    return (_sequences.object_array(xs[:idx]), labels[:idx]), (_sequences.object_array(xs[idx:]), labels[idx:])


def get_word_index(path="imdb_word_index.json"):
    """The word -> id dict of the IMDB dataset (ids before `index_from`).

    Args:
        path: the file's name in the cache. Defaults to `"imdb_word_index.json"`.

    Example:

    ```python
    index = keras.datasets.imdb.get_word_index()
    words = {i + 3: w for w, i in index.items()}
    ```
    """
    path = file_utils.get_file(
        fname=path,
        origin=f"{ORIGIN_FOLDER}imdb_word_index.json",
        file_hash="bfafd718b763782e994055a2d397834f",
    )
    return _sequences.read_json(path)
