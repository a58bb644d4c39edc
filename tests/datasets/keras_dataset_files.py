"""Tiny synthetic files in exactly the formats of Keras's dataset files, for
tests: the same names, members, keys, dtypes and pickle layouts as the files
Keras downloads, with few rows of deterministic data.

The CIFAR batches of the real archives were pickled by Python 2; `py2_pickle`
writes the same opcodes (str and bytes as Python 2 `str`, numpy globals under
`numpy.core`), so loading them exercises what real files contain.
"""

import gzip
import io
import json
import os
import pickle
import struct
import tarfile

import numpy as np


class _Py2Pickler(pickle._Pickler):
    """Protocol 2 as Python 2's cPickle wrote it: every str/bytes as a
    (SHORT_)BINSTRING, NumPy's globals under `numpy.core`."""

    dispatch = pickle._Pickler.dispatch.copy()

    def _save_py2_str(self, obj):
        data = obj if isinstance(obj, bytes) else obj.encode("latin1")
        if len(data) < 256:
            self.write(pickle.SHORT_BINSTRING + bytes([len(data)]) + data)
        else:
            self.write(pickle.BINSTRING + struct.pack("<i", len(data)) + data)
        self.memoize(obj)

    dispatch[bytes] = _save_py2_str
    dispatch[str] = _save_py2_str

    def save_global(self, obj, name=None):
        module = getattr(obj, "__module__", None) or ""
        if module.startswith("numpy._core"):
            name = name or obj.__qualname__
            self.write(pickle.GLOBAL + f"numpy.core{module[len('numpy._core'):]}\n{name}\n".encode())
            self.memoize(obj)
            return
        super().save_global(obj, name)

    dispatch[type] = save_global


def py2_pickle(obj) -> bytes:
    buf = io.BytesIO()
    _Py2Pickler(buf, protocol=2).dump(obj)
    return buf.getvalue()


def images(n, seed, shape):
    """Deterministic uint8 images that compress well (a shifted ramp per row)."""
    offsets = ((np.arange(n) * 37 + seed) % 256).astype(np.uint8)
    ramp = ((np.arange(int(np.prod(shape))) * 3) % 256).astype(np.uint8)
    return (ramp[None, :] + offsets[:, None]).reshape((n, *shape))  # uint8 arithmetic wraps mod 256


def cifar_batch(n, seed, label_keys, num_labels=(10,), dump=py2_pickle):
    rng = np.random.RandomState(seed)
    d = {b"batch_label": b"synthetic batch", b"data": images(n, seed, (3072,)),
         b"filenames": [f"img_{seed}_{i}.png".encode() for i in range(n)]}
    for key, count in zip(label_keys, num_labels):
        d[key.encode()] = [int(v) for v in rng.randint(0, count, n)]
    return dump(d)


def write_tar_gz(path, members):
    """members: {name: bytes}; directories are implied."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tarfile.open(path, "w:gz", compresslevel=1) as tf:
        dirs = sorted({os.path.dirname(n) for n in members if os.path.dirname(n)})
        for d in dirs:
            info = tarfile.TarInfo(d)
            info.type = tarfile.DIRTYPE
            info.mode = 0o755
            tf.addfile(info)
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o644
            tf.addfile(info, io.BytesIO(data))
    return path


def write_cifar10(datadir, train_per_batch=10000, test=10000, dump=py2_pickle):
    """Keras 3.15's cache entry `cifar-10-batches-py-target_archive` (a
    .tar.gz of `cifar-10-batches-py/data_batch_1..5`, `test_batch`)."""
    members = {f"cifar-10-batches-py/data_batch_{i}": cifar_batch(train_per_batch, i, ["labels"], dump=dump)
               for i in range(1, 6)}
    members["cifar-10-batches-py/test_batch"] = cifar_batch(test, 99, ["labels"], dump=dump)
    members["cifar-10-batches-py/batches.meta"] = dump({b"label_names": [b"airplane"] * 10})
    return write_tar_gz(os.path.join(datadir, "cifar-10-batches-py-target_archive"), members)


def write_cifar100(datadir, n_train=7, n_test=4, dump=py2_pickle):
    keys, counts = ["fine_labels", "coarse_labels"], (100, 20)
    members = {"cifar-100-python/train": cifar_batch(n_train, 1, keys, counts, dump=dump),
               "cifar-100-python/test": cifar_batch(n_test, 2, keys, counts, dump=dump),
               "cifar-100-python/meta": dump({b"fine_label_names": [b"apple"] * 100})}
    return write_tar_gz(os.path.join(datadir, "cifar-100-python-target_archive"), members)


def write_mnist(datadir, fname="mnist.npz", n_train=6, n_test=3):
    rng = np.random.RandomState(0)
    path = os.path.join(datadir, fname)
    np.savez(path, x_train=images(n_train, 1, (28, 28)), y_train=rng.randint(0, 10, n_train).astype(np.uint8),
             x_test=images(n_test, 2, (28, 28)), y_test=rng.randint(0, 10, n_test).astype(np.uint8))
    return path


def idx_bytes(array):
    """An IDX file of unsigned bytes (magic 0x0801 / 0x0803)."""
    header = struct.pack(">I", 0x0800 | array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_fashion_mnist(home, n_train=5, n_test=3):
    """The four gzipped IDX files under `datasets/fashion-mnist/`."""
    d = os.path.join(home, "datasets", "fashion-mnist")
    os.makedirs(d, exist_ok=True)
    rng = np.random.RandomState(1)
    arrays = {"train-labels-idx1-ubyte.gz": rng.randint(0, 10, n_train),
              "train-images-idx3-ubyte.gz": images(n_train, 3, (28, 28)),
              "t10k-labels-idx1-ubyte.gz": rng.randint(0, 10, n_test),
              "t10k-images-idx3-ubyte.gz": images(n_test, 4, (28, 28))}
    for name, array in arrays.items():
        with gzip.open(os.path.join(d, name), "wb") as f:
            f.write(idx_bytes(array))
    return d


def sequences(rng, n, vocab, min_len=1, max_len=12):
    """`n` ragged lists of word ids (as Keras's files: 1-based, no offset)."""
    return [[int(w) for w in rng.randint(1, vocab, rng.randint(min_len, max_len + 1))] for _ in range(n)]


def object_array(seqs):
    out = np.empty(len(seqs), dtype=object)
    for i, s in enumerate(seqs):
        out[i] = s
    return out


def write_imdb(datadir, fname="imdb.npz", n_train=9, n_test=7, vocab=40):
    rng = np.random.RandomState(5)
    path = os.path.join(datadir, fname)
    np.savez(path, x_train=object_array(sequences(rng, n_train, vocab)), y_train=rng.randint(0, 2, n_train),
             x_test=object_array(sequences(rng, n_test, vocab)), y_test=rng.randint(0, 2, n_test))
    return path


def write_reuters(datadir, fname="reuters.npz", n=13, vocab=50):
    rng = np.random.RandomState(6)
    path = os.path.join(datadir, fname)
    np.savez(path, x=object_array(sequences(rng, n, vocab)), y=rng.randint(0, 46, n))
    return path


def write_word_index(datadir, fname, words=("the", "and", "a", "of", "to", "é")):
    path = os.path.join(datadir, fname)
    with open(path, "w", encoding="utf-8") as f:
        json.dump({w: i + 1 for i, w in enumerate(words)}, f)
    return path


def write_housing(datadir, fname, n, features, dtype):
    rng = np.random.RandomState(7)
    path = os.path.join(datadir, fname)
    np.savez(path, x=rng.rand(n, features).astype(dtype), y=(rng.rand(n) * 50).astype(dtype))
    return path
