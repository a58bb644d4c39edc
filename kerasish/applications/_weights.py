"""Where the applications' files come from: Keras's cache directory, through
`keras.utils.get_file`, as in Keras.

Keras's applications download their ImageNet weights (and
`imagenet_class_index.json`) with `keras.utils.get_file` into
`$KERAS_HOME/models` (`~/.keras/models` when `KERAS_HOME` is unset). kerasish
calls its own `get_file` (kerasish/utils/file_utils.py) with exactly Keras's
file name, URL, hash and cache folder, so a machine that has run Keras once
already has the files, and a missing one is downloaded the way Keras does.
`get_cached_file`'s cache-only branch (a clear FileNotFoundError, nothing
downloaded) runs only where `get_file` is unavailable; the tests use it and
fake files in a temporary KERAS_HOME, and never download.
"""

from __future__ import annotations

import hashlib
import os
import tempfile


def keras_home() -> str:
    """Keras's cache root: `$KERAS_HOME`, else `~/.keras` (`/tmp/.keras` when
    the home directory is not writable), as `keras.config` decides it. Read
    at each call (Keras reads it once, at import)."""
    home = os.environ.get("KERAS_HOME")
    if home:
        return os.path.expanduser(home)
    base = os.path.expanduser("~")
    if not os.access(base, os.W_OK):
        base = "/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir()
    return os.path.join(base, ".keras")


def _file_hash(path: str, file_hash: str) -> str:
    # Keras's get_file: a 64-character hash is sha256, anything else md5
    hasher = hashlib.sha256() if len(file_hash) == 64 else hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(65535), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def get_cached_file(fname: str, origin: str, file_hash: str | None = None, cache_subdir: str = "models") -> str:
    """The local path of `fname`, as Keras's `get_file(fname, origin,
    cache_subdir=..., file_hash=...)` would return it.

    Raises:
        FileNotFoundError: the file is not in the cache (nothing is
            downloaded); the message names the file, its URL and the folder.
        ValueError: the cached file's hash is not `file_hash` (Keras would
            download it again).
    """
    from kerasish import utils

    get_file = getattr(utils, "get_file", None)
    if get_file is not None:
        return get_file(fname, origin, cache_subdir=cache_subdir, file_hash=file_hash)
    folder = os.path.join(keras_home(), cache_subdir)
    path = os.path.join(folder, fname)
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"`{fname}` is not in Keras's cache and kerasish does not download files. Download it from "
            f"{origin} and put it in {folder} (set the KERAS_HOME environment variable to use another cache "
            f"directory than ~/.keras), or pass the path of a weights file as `weights=`. Looked for: {path}"
        )
    if file_hash is not None:
        found = _file_hash(path, file_hash)
        if found != file_hash:
            raise ValueError(
                f"Incomplete or corrupted file detected: the hash of {path} is {found}, expected {file_hash} "
                f"(Keras would download it again from {origin}). Replace the file with the one at that URL."
            )
    return path


def weights_argument_is_valid(weights) -> bool:
    """Keras's check of an application's `weights`: None, "imagenet" or an
    existing file."""
    if weights is None or (isinstance(weights, str) and weights == "imagenet"):
        return True
    return isinstance(weights, (str, os.PathLike)) and os.path.exists(weights)


def resolve_weights(weights, fname: str, origin: str, file_hash: str | None = None,
                    cache_subdir: str = "models") -> str | None:
    """The weights file an application loads: None for `weights=None`, the
    cached ImageNet file `fname` for `"imagenet"` (see `get_cached_file`),
    else `weights` itself (a path)."""
    if weights is None:
        return None
    if isinstance(weights, str) and weights == "imagenet":
        return get_cached_file(fname, origin, file_hash=file_hash, cache_subdir=cache_subdir)
    return os.fspath(weights)


def load_application_weights(model, weights, fname: str, origin: str, file_hash: str | None = None) -> None:
    """`model.load_weights` on the resolved file (nothing for None). Keras's
    ImageNet files are tf.keras HDF5 weight files, loaded layer by layer in
    topological order, as Keras's `load_weights` reads them."""
    path = resolve_weights(weights, fname, origin, file_hash=file_hash)
    if path is not None:
        model.load_weights(path)
