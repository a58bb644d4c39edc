"""Loading a dataset runs no code from its files: hostile pickles inside
CIFAR batches and imdb/reuters `.npz` object arrays are refused (as Keras 3.15
refuses them) before anything they name is called."""

import io
import os
import pickle
import zipfile

import numpy as np
import pytest

import kerasish
import keras_dataset_files as files
from kerasish.datasets._safe_pickle import RestrictedUnpickler
from kerasish.datasets._safe_pickle import load_npz


class _Payload:
    """Unpickling this calls os.system (it would create `marker`)."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


class _Eval:
    def __reduce__(self):
        return eval, ("__import__('os').getcwd()",)


def _npy_object_member(payload: bytes) -> bytes:
    """A `.npy` member whose header announces an object array and whose body
    is `payload` (what np.save writes for object arrays: a header, then a pickle)."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": "|O", "fortran_order": False, "shape": (2,)})
    return buf.getvalue() + payload


def _write_npz(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)


def _load_unverified(mp, fn, *args, **kwargs):
    from kerasish.utils import file_utils

    real = file_utils.get_file
    mp.setattr(file_utils, "get_file", lambda *a, **k: real(*a, **{**k, "file_hash": None}))
    return fn(*args, **kwargs)


def _plain(array):
    buf = io.BytesIO()
    np.save(buf, array)
    return buf.getvalue()


@pytest.mark.parametrize("module", ["imdb", "reuters"])
@pytest.mark.parametrize("payload", ["system", "eval", "nested"])
def test_hostile_npz_object_array_is_refused(keras_ref, home, tmp_path, module, payload):
    marker = tmp_path / "pwned"
    evil = {"system": _Payload(marker), "eval": _Eval(), "nested": [[1, 2], {"x": _Payload(marker)}]}[payload]
    body = _npy_object_member(pickle.dumps(evil, protocol=3))
    if module == "imdb":
        members = {"x_train.npy": body, "y_train.npy": _plain(np.zeros(2)), "x_test.npy": body,
                   "y_test.npy": _plain(np.zeros(2))}
    else:
        members = {"x.npy": body, "y.npy": _plain(np.zeros(2))}
    _write_npz(home / "datasets" / f"{module}.npz", members)
    with pytest.MonkeyPatch.context() as mp, pytest.raises(pickle.UnpicklingError, match="Refusing to deserialize"):
        _load_unverified(mp, getattr(kerasish.datasets, module).load_data)
    assert not marker.exists()
    # Keras 3.15 refuses it too (the same error type)
    from keras.src.datasets import npz_utils

    with pytest.raises(pickle.UnpicklingError):
        npz_utils.load_npz(str(home / "datasets" / f"{module}.npz"))
    assert not marker.exists()


@pytest.mark.parametrize("member", ["data_batch_3", "test_batch"])
def test_hostile_cifar_batch_is_refused(home, tmp_path, member):
    marker = tmp_path / "pwned"
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    batches = {f"cifar-10-batches-py/{n}": files.cifar_batch(2, 1, ["labels"]) for n in names}
    batches[f"cifar-10-batches-py/{member}"] = pickle.dumps({b"data": _Payload(marker), b"labels": [0, 1]}, 2)
    files.write_tar_gz(str(home / "datasets" / "cifar-10-batches-py-target_archive"), batches)
    with pytest.MonkeyPatch.context() as mp, pytest.raises(pickle.UnpicklingError, match=r"`posix\.system`"):
        _load_unverified(mp, kerasish.datasets.cifar10.load_data)
    assert not marker.exists()


@pytest.mark.parametrize("evil", [
    ("builtins", "eval"), ("os", "system"), ("subprocess", "Popen"), ("numpy", "load"),
    ("numpy.lib.npyio", "load"), ("builtins", "getattr"), ("copyreg", "_reconstructor"),
    ("numpy.core.multiarray", "fromfile"),
])
def test_only_numpy_constructors_resolve(evil):
    module, name = evil
    data = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"."
    with pytest.raises(pickle.UnpicklingError, match=f"Refusing to deserialize `{module}.{name}`"):
        RestrictedUnpickler(io.BytesIO(data)).load()


def test_protocol_2_bytes_are_latin1_only():
    ok = pickle.dumps([b"\x00\xffab", b""], protocol=2)  # `_codecs.encode(..., "latin1")` and `bytes()`
    assert RestrictedUnpickler(io.BytesIO(ok)).load() == [b"\x00\xffab", b""]
    # the same global with another codec (rot13 would be harmless, but only latin1 is what pickle writes)
    bad = ok.replace(b"latin1", b"rot_13")
    with pytest.raises(pickle.UnpicklingError, match="only the latin1 spelling"):
        RestrictedUnpickler(io.BytesIO(bad)).load()


def test_object_array_round_trip_and_header_mismatch(tmp_path):
    seqs = files.object_array([[1, 2, 3], [4], []])
    np.savez(tmp_path / "ok.npz", x=seqs, y=np.arange(3))
    got = load_npz(tmp_path / "ok.npz")
    assert [list(s) for s in got["x"]] == [[1, 2, 3], [4], []] and got["y"].tolist() == [0, 1, 2]
    _write_npz(tmp_path / "bad.npz", {"x.npy": _npy_object_member(pickle.dumps([[1], [2]], protocol=3))})
    with pytest.raises(ValueError, match="does not hold what its header says"):
        load_npz(tmp_path / "bad.npz")
