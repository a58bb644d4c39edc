"""`keras.datasets.imdb` and `keras.datasets.reuters` against Keras 3.15's
loaders on synthetic `.npz` files of ragged word-id sequences (object arrays,
as in Keras's files), over every argument that changes the output."""

import numpy as np
import pytest
from dataset_parity import assert_same

import kerasish
import keras_dataset_files as files

SEQUENCE_ARGS = [
    {},
    {"seed": 7},
    {"seed": 0, "index_from": 0},
    {"num_words": 20},
    {"num_words": 20, "skip_top": 5},
    {"num_words": 20, "skip_top": 5, "oov_char": None},
    {"skip_top": 6, "oov_char": 3},
    {"maxlen": 9},
    {"maxlen": 9, "num_words": 15, "seed": 3},
    {"start_char": None},
    {"start_char": None, "index_from": 0},
    {"start_char": None, "index_from": 0, "num_words": 10, "oov_char": None},
    {"start_char": 5, "oov_char": 4, "index_from": 10, "num_words": 30},
    {"index_from": 5, "maxlen": 12, "skip_top": 2},
    {"num_words": 0},
]


@pytest.mark.parametrize("kwargs", SEQUENCE_ARGS, ids=str)
def test_imdb_matches_keras(both, home, kwargs):
    files.write_imdb(home / "datasets")
    ref, got = both("imdb", **kwargs)
    assert_same(ref, got)
    (x_train, y_train), (x_test, _) = got
    assert x_train.dtype == object and x_train.ndim == 1 and isinstance(x_train[0], list)


@pytest.mark.parametrize("kwargs", SEQUENCE_ARGS + [{"test_split": 0.5}, {"test_split": 0.0, "seed": 2}, {"test_split": 1.0},
                                                    {"test_split": 0.35, "maxlen": 11}], ids=str)
def test_reuters_matches_keras(both, home, kwargs):
    files.write_reuters(home / "datasets")
    ref, got = both("reuters", **kwargs)
    assert_same(ref, got)


def test_custom_paths_and_word_indexes_match_keras(both, home):
    files.write_imdb(home / "datasets", fname="my_imdb.npz", n_train=5, n_test=4)
    assert_same(*both("imdb", path="my_imdb.npz", num_words=25))
    files.write_reuters(home / "datasets", fname="my_reuters.npz", n=6)
    assert_same(*both("reuters", path="my_reuters.npz"))
    for module, fname in (("imdb", "imdb_word_index.json"), ("reuters", "reuters_word_index.json")):
        files.write_word_index(home / "datasets", fname)
        ref, got = both(module, "get_word_index")
        assert got == ref and got["é"] == 6
        files.write_word_index(home / "datasets", "mine.json", words=("x", "y"))
        ref, got = both(module, "get_word_index", path="mine.json")
        assert got == ref == {"x": 1, "y": 2}
    import keras

    assert kerasish.datasets.reuters.get_label_names() == keras.datasets.reuters.get_label_names()


def test_maxlen_that_keeps_nothing(both, home):
    files.write_imdb(home / "datasets")
    ref, got = both.errors("imdb", maxlen=2)  # every sequence has the start char and one word or more
    assert type(got) is type(ref) is ValueError and str(got) == str(ref)
    files.write_reuters(home / "datasets")
    ref, got = both.errors("reuters", maxlen=2)
    assert type(got) is type(ref) is ValueError  # Keras's is max()'s "empty sequence"; ours names maxlen
    assert "no sequence was kept" in str(got)


def _load_unverified(mp, fn, *args, **kwargs):
    from kerasish.utils import file_utils

    real = file_utils.get_file
    mp.setattr(file_utils, "get_file", lambda *a, **k: real(*a, **{**k, "file_hash": None}))
    return fn(*args, **kwargs)


def test_reuters_maxlen_keeping_nothing_with_num_words_raises(home):
    files.write_reuters(home / "datasets")
    with pytest.MonkeyPatch.context() as mp, pytest.raises(ValueError, match=r"maxlen=2, no sequence was kept"):
        _load_unverified(mp, kerasish.datasets.reuters.load_data, maxlen=2, num_words=10)  # Keras: empty arrays


@pytest.mark.parametrize("test_split", [1.5, -0.2])
def test_reuters_test_split_out_of_range_raises(home, test_split):
    files.write_reuters(home / "datasets")
    with pytest.MonkeyPatch.context() as mp, pytest.raises(ValueError, match=f"test_split` argument: {test_split}"):
        _load_unverified(mp, kerasish.datasets.reuters.load_data, test_split=test_split)


def test_equal_length_sequences_stay_a_1d_array_of_lists(home):
    rng = np.random.RandomState(0)
    np.savez(home / "datasets" / "imdb.npz", x_train=files.object_array([[1, 2, 3]] * 4),
             y_train=rng.randint(0, 2, 4), x_test=files.object_array([[4, 5, 6]] * 3), y_test=rng.randint(0, 2, 3))
    with pytest.MonkeyPatch.context() as mp:
        (x_train, _), (x_test, _) = _load_unverified(mp, kerasish.datasets.imdb.load_data)
    # Keras 3.15's np.array(..., dtype=object) makes these (4, 4) / (3, 4) 2-D arrays
    assert x_train.shape == (4,) and x_test.shape == (3,)
    # (num_words=None is the largest id, which Keras's `w < num_words` makes oov_char too)
    assert x_train[0] == [1, 4, 5, 6] and x_test[2] == [1, 7, 8, 2]


def test_imdb_keyword_arguments(home):
    files.write_imdb(home / "datasets")
    with pytest.MonkeyPatch.context() as mp:
        expected = _load_unverified(mp, kerasish.datasets.imdb.load_data, num_words=12)
        with pytest.warns(UserWarning, match="renamed `num_words`"):
            legacy = _load_unverified(mp, kerasish.datasets.imdb.load_data, nb_words=12)
        assert_same(expected, legacy)
        with pytest.raises(TypeError, match=r"unexpected keyword arguments: \['num_word'\]"):
            _load_unverified(mp, kerasish.datasets.imdb.load_data, num_word=12)


def test_shuffle_is_keras_randomstate_order(home):
    """Independent of Keras: the training set is permuted by the first
    `RandomState(seed).shuffle` of its indices, the test set by the second."""
    files.write_imdb(home / "datasets")
    raw = np.load(home / "datasets" / "imdb.npz", allow_pickle=True)
    with pytest.MonkeyPatch.context() as mp:
        (x_train, y_train), (x_test, y_test) = _load_unverified(
            mp, kerasish.datasets.imdb.load_data, seed=42, num_words=1000, start_char=None, index_from=0)
    rng = np.random.RandomState(42)
    train, test = np.arange(len(raw["x_train"])), np.arange(len(raw["x_test"]))
    rng.shuffle(train)
    rng.shuffle(test)
    assert list(x_train) == [raw["x_train"][i] for i in train] and list(y_train) == list(raw["y_train"][train])
    assert list(x_test) == [raw["x_test"][i] for i in test] and list(y_test) == list(raw["y_test"][test])
