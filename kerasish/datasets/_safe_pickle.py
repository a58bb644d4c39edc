"""Reading the pickles inside Keras's dataset files without running their code.

The CIFAR batches are Python pickles of dicts, and imdb.npz / reuters.npz hold
NumPy object arrays (pickled lists of word ids). `pickle.load` would call any
function a file names; `RestrictedUnpickler` resolves only the few names these
files legitimately contain (NumPy's array and dtype constructors) and refuses
every other one with `pickle.UnpicklingError`, before anything is called.
Dicts, lists, tuples, str, bytes, ints and floats need no names at all.

Allowed beyond Keras 3.15's list (ndarray, dtype, `_reconstruct`), each a pure
data constructor, so that files re-saved by current Python/NumPy load too:
NumPy scalars (`multiarray.scalar`), protocol-5 array buffers
(`numeric._frombuffer`), and the protocol-2 spelling of bytes
(`_codecs.encode(text, "latin1")`, `bytes()`).
"""

from __future__ import annotations

import codecs
import io
import pickle
import zipfile

import numpy as np

try:  # NumPy 2
    from numpy._core import multiarray as _multiarray
    from numpy._core import numeric as _numeric
except ImportError:  # pragma: no cover - NumPy 1.x
    from numpy.core import multiarray as _multiarray
    from numpy.core import numeric as _numeric


def _latin1_encode(text, encoding="utf-8", errors="strict"):
    """`_codecs.encode` as pickle protocol 2 uses it for bytes: latin-1 only."""
    if encoding not in ("latin1", "latin-1") or errors != "strict" or not isinstance(text, str):
        raise pickle.UnpicklingError(
            f"Refusing `_codecs.encode` with encoding={encoding!r} while loading a Keras dataset: only the "
            "latin1 spelling of bytes is allowed. The file may be corrupted or malicious."
        )
    return codecs.encode(text, "latin1")


def _empty_bytes(*args):
    if args:
        raise pickle.UnpicklingError(
            "Refusing `bytes(...)` with arguments while loading a Keras dataset. The file may be corrupted or "
            "malicious."
        )
    return b""


_ALLOWED = {
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): _latin1_encode,
    ("builtins", "bytes"): _empty_bytes,
    ("__builtin__", "bytes"): _empty_bytes,
}
for _pkg in ("numpy.core", "numpy._core"):
    _ALLOWED[(f"{_pkg}.multiarray", "_reconstruct")] = _multiarray._reconstruct
    _ALLOWED[(f"{_pkg}.multiarray", "scalar")] = _multiarray.scalar
    _ALLOWED[(f"{_pkg}.numeric", "_frombuffer")] = _numeric._frombuffer


class RestrictedUnpickler(pickle.Unpickler):
    """An Unpickler that resolves only NumPy's array/dtype constructors."""

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"Refusing to deserialize `{module}.{name}` while loading a Keras dataset. The file may be "
                "corrupted or malicious."
            ) from None


def restricted_load(file, **kwargs):
    """`pickle.load(file, **kwargs)` through `RestrictedUnpickler`."""
    return RestrictedUnpickler(file, **kwargs).load()


def _read_npy(fp, where):
    """One `.npy` member: plain arrays by NumPy without pickle; object arrays
    (a header, then a pickle of the array) through the restricted unpickler."""
    version = np.lib.format.read_magic(fp)
    if version[0] == 1:
        shape, _, dtype = np.lib.format.read_array_header_1_0(fp)
    elif version[0] in (2, 3):
        shape, _, dtype = np.lib.format.read_array_header_2_0(fp)
    else:
        raise ValueError(f"Unsupported `.npy` file version {version} in '{where}'.")
    if not dtype.hasobject:
        fp.seek(0)
        return np.lib.format.read_array(fp, allow_pickle=False)
    array = restricted_load(fp)
    if not isinstance(array, np.ndarray) or array.shape != tuple(shape):
        raise ValueError(
            f"The object array '{where}' does not hold what its header says: expected an array of shape "
            f"{tuple(shape)}, received {type(array).__name__} {getattr(array, 'shape', '')}."
        )
    return array


def load_npz(path) -> dict:
    """The arrays of an `.npz` file by name, object arrays included, without
    running code from the file."""
    arrays = {}
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            if not member.endswith(".npy"):
                continue
            with archive.open(member) as raw:
                buffer = io.BytesIO(raw.read())
            arrays[member[: -len(".npy")]] = _read_npy(buffer, f"{path}:{member}")
    return arrays
