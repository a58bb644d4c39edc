"""`keras.datasets.mnist`, `fashion_mnist`, `cifar10`, `cifar100` against
Keras 3.15's loaders on synthetic files in Keras's formats (see conftest.py
for how Keras's `get_file` is redirected to them)."""

import gzip
import os
import pickle
import shutil

import numpy as np
import pytest
from dataset_parity import assert_same

import kerasish
import keras_dataset_files as files


def test_mnist_matches_keras(both, home):
    files.write_mnist(home / "datasets")
    ref, got = both("mnist")
    assert_same(ref, got)
    assert got[0][0].shape == (6, 28, 28) and got[0][0].dtype == np.uint8
    files.write_mnist(home / "datasets", fname="my_mnist.npz", n_train=4, n_test=2)
    ref, got = both("mnist", path="my_mnist.npz")
    assert_same(ref, got)
    assert got[1][0].shape == (2, 28, 28)


def test_mnist_refuses_pickles_and_names_missing_keys(home):
    arrays = {k: np.zeros(2, np.uint8) for k in ("y_train", "x_test", "y_test")}
    np.savez(home / "datasets" / "mnist.npz", x_train=files.object_array([[1], [2, 3]]), **arrays)
    with pytest.MonkeyPatch.context() as mp, pytest.raises(ValueError, match="allow_pickle"):
        _load_unverified(mp, kerasish.datasets.mnist.load_data)
    np.savez(home / "datasets" / "mnist.npz", x_train=np.zeros((1, 28, 28), np.uint8))
    with pytest.MonkeyPatch.context() as mp, pytest.raises(ValueError, match=r"has no \['y_train', 'x_test'"):
        _load_unverified(mp, kerasish.datasets.mnist.load_data)


def _no_fetch(*args, **kwargs):
    raise AssertionError("the file is in the cache: nothing should be downloaded")


def _load_unverified(mp, fn, *args, **kwargs):
    """Calls a loader with kerasish's real get_file minus the hash check (the
    synthetic files are not the real datasets)."""
    from kerasish.utils import file_utils

    real = file_utils.get_file
    mp.setattr(file_utils, "get_file", lambda *a, **k: real(*a, **{**k, "file_hash": None}))
    mp.setattr(file_utils, "_fetch", _no_fetch)
    return fn(*args, **kwargs)


def test_fashion_mnist_matches_keras(both, home):
    files.write_fashion_mnist(home)
    ref, got = both("fashion_mnist")
    assert_same(ref, got)
    assert got[0][0].shape == (5, 28, 28) and got[1][1].shape == (3,)


def test_fashion_mnist_checks_idx_headers(home):
    d = files.write_fashion_mnist(home)
    with gzip.open(os.path.join(d, "train-images-idx3-ubyte.gz"), "wb") as f:  # labels where images belong
        f.write(files.idx_bytes(np.zeros(20)))
    with pytest.MonkeyPatch.context() as mp, pytest.raises(ValueError, match="magic number 0x00000803"):
        _load_unverified(mp, kerasish.datasets.fashion_mnist.load_data)
    with gzip.open(os.path.join(d, "train-images-idx3-ubyte.gz"), "wb") as f:  # 4 images for 5 labels
        f.write(files.idx_bytes(np.zeros((4, 28, 28))))
    with pytest.MonkeyPatch.context() as mp, pytest.raises(ValueError, match="labels file has 5 entries"):
        _load_unverified(mp, kerasish.datasets.fashion_mnist.load_data)


@pytest.fixture(scope="module")
def full_cifar10(tmp_path_factory):
    """Keras's cifar10 loader fills 10,000 rows per batch, so its archive is
    full size (180 MB of pixels, 2 MB gzipped; generated once per module)."""
    return files.write_cifar10(str(tmp_path_factory.mktemp("cifar10")))


def test_cifar10_matches_keras(both, home, full_cifar10):
    shutil.copy(full_cifar10, home / "datasets")
    ref, got = both("cifar10")
    assert_same(ref, got)
    (x_train, y_train), (x_test, y_test) = got
    assert (x_train.shape, y_train.shape, x_test.shape, y_test.shape) == (
        (50000, 32, 32, 3), (50000, 1), (10000, 32, 32, 3), (10000, 1))
    assert x_train.dtype == y_train.dtype == x_test.dtype == y_test.dtype == np.uint8
    assert sorted(os.listdir(home / "datasets")) == ["cifar-10-batches-py-target",
                                                     "cifar-10-batches-py-target_archive"]


def _set_format(fmt):
    import keras

    keras.config.set_image_data_format(fmt)
    kerasish.config.set_image_data_format(fmt)


@pytest.mark.parametrize("label_mode", ["fine", "coarse"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_cifar100_matches_keras(both, home, label_mode, data_format):
    files.write_cifar100(home / "datasets")
    _set_format(data_format)
    try:
        ref, got = both("cifar100", label_mode=label_mode)
    finally:
        _set_format("channels_last")
    assert_same(ref, got)
    expected = (7, 32, 32, 3) if data_format == "channels_last" else (7, 3, 32, 32)
    assert got[0][0].shape == expected and got[1][1].shape == (4, 1)


def test_cifar100_label_mode_error_matches_keras(both):
    ref, got = both.errors("cifar100", label_mode="medium")
    assert type(got) is type(ref) is ValueError and str(got) == str(ref)


def _reference_cifar(batches, label_key, channels_first=False):
    """What the batches hold, assembled with NumPy from the definition: rows
    concatenated, pixels (n, 3, 32, 32) moved to channels last, labels as a
    column."""
    xs = [b[b"data"].reshape(-1, 3, 32, 32) for b in batches]
    ys = [np.asarray(b[label_key.encode()]) for b in batches]
    x, y = np.concatenate(xs), np.concatenate(ys).reshape(-1, 1)
    return (x if channels_first else x.transpose(0, 2, 3, 1)), y


@pytest.mark.parametrize("protocol", ["py2", 3, 5])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_cifar10_small_batches_any_pickle_protocol(home, protocol, data_format):
    """kerasish reads batches of any size (Keras needs 10,000 per batch), as
    Python 2 wrote them, or re-pickled by Python 3 (protocol 5 stores arrays
    as `_frombuffer` buffers, which Keras 3.15 refuses)."""
    dump = files.py2_pickle if protocol == "py2" else (lambda obj: pickle.dumps(obj, protocol=protocol))
    files.write_cifar10(str(home / "datasets"), train_per_batch=3, test=2, dump=dump)
    kerasish.config.set_image_data_format(data_format)
    try:
        with pytest.MonkeyPatch.context() as mp:
            (x_train, y_train), (x_test, y_test) = _load_unverified(mp, kerasish.datasets.cifar10.load_data)
    finally:
        kerasish.config.set_image_data_format("channels_last")
    first = data_format == "channels_first"
    train = [pickle.loads(files.cifar_batch(3, i, ["labels"], dump=dump), encoding="bytes") for i in range(1, 6)]
    test = [pickle.loads(files.cifar_batch(2, 99, ["labels"], dump=dump), encoding="bytes")]
    x_ref, y_ref = _reference_cifar(train, "labels", first)
    np.testing.assert_array_equal(x_train, x_ref)
    np.testing.assert_array_equal(y_train, y_ref)
    x_ref, y_ref = _reference_cifar(test, "labels", first)
    np.testing.assert_array_equal(x_test, x_ref)
    np.testing.assert_array_equal(y_test, y_ref)
    assert x_train.shape == ((15, 3, 32, 32) if first else (15, 32, 32, 3))
    assert x_train.dtype == y_train.dtype == y_test.dtype == np.uint8


def test_cifar_batch_without_labels_is_a_clear_error(home):
    members = {"cifar-100-python/train": pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}, protocol=3),
               "cifar-100-python/test": pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}, protocol=3)}
    files.write_tar_gz(str(home / "datasets" / "cifar-100-python-target_archive"), members)
    with pytest.MonkeyPatch.context() as mp, pytest.raises(ValueError, match=r"has no \['fine_labels'\]"):
        _load_unverified(mp, kerasish.datasets.cifar100.load_data)


@pytest.mark.parametrize("sizes", [(3, 5, 2, 4, 1), (4, 1, 1, 1, 1)])
def test_cifar10_batches_of_uneven_sizes(home, sizes):
    train = [files.cifar_batch(n, i, ["labels"]) for i, n in enumerate(sizes, start=1)]
    members = {f"cifar-10-batches-py/data_batch_{i}": b for i, b in enumerate(train, start=1)}
    members["cifar-10-batches-py/test_batch"] = files.cifar_batch(2, 99, ["labels"])
    files.write_tar_gz(str(home / "datasets" / "cifar-10-batches-py-target_archive"), members)
    with pytest.MonkeyPatch.context() as mp:
        (x_train, y_train), _ = _load_unverified(mp, kerasish.datasets.cifar10.load_data)
    x_ref, y_ref = _reference_cifar([pickle.loads(b, encoding="bytes") for b in train], "labels")
    assert x_train.shape == (sum(sizes), 32, 32, 3) and y_train.shape == (sum(sizes), 1)
    np.testing.assert_array_equal(x_train, x_ref)
    np.testing.assert_array_equal(y_train, y_ref)


def test_cached_file_failing_the_real_hash_is_fetched_again_from_keras_origin(home):
    """No monkeypatching of get_file: a cached mnist.npz that is not the real
    one fails Keras's sha256, so kerasish goes to Keras's URL (stopped here by
    the offline guard) and leaves the cached file as it was."""
    path = files.write_mnist(home / "datasets")
    before = open(path, "rb").read()
    with pytest.raises(RuntimeError, match="internet: https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
                                           "mnist.npz"):
        kerasish.datasets.mnist.load_data()
    assert open(path, "rb").read() == before and os.listdir(home / "datasets") == ["mnist.npz"]
