"""Where an application's weights come from: `weights=None`, `"imagenet"` or a file.

kerasish never downloads. `"imagenet"` resolves to the file Keras's
`keras.utils.get_file` would have cached (`$KERAS_HOME/<cache_subdir>/<fname>`,
`~/.keras/...` when `KERAS_HOME` is unset, as Keras), so a file Keras already
downloaded is used as is; a missing one raises an error that says where to
put which file.
"""

from __future__ import annotations

import hashlib
import os


def _cache_dir() -> str:
    # Keras's `get_file` default: $KERAS_HOME, else ~/.keras (its /tmp/.keras
    # fallback only applies when ~/.keras is not writable, for downloads).
    return os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")


def _hash_matches(path: str, file_hash: str) -> bool:
    # Keras's `validate_file`: a 64-hex-digit hash is sha256, anything else md5.
    algorithm = hashlib.sha256() if len(file_hash) == 64 else hashlib.md5()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            algorithm.update(chunk)
    return algorithm.hexdigest() == str(file_hash)


def resolve_weights(weights, fname, origin, file_hash=None, cache_subdir="models"):
    """The local weights file for an application's `weights` argument.

    Args:
        weights: None, `"imagenet"` or the path of a weights file.
        fname: The file name Keras caches the pretrained weights under.
        origin: The URL Keras downloads them from (named in the error).
        file_hash: Optional md5 or sha256 of the file; a cached file that does
            not match raises.
        cache_subdir: The folder under the Keras cache. Defaults to "models".

    Returns:
        None for `weights=None`, else the path of an existing file.

    Raises:
        FileNotFoundError: `"imagenet"` weights that are not in the cache
            (kerasish does not download them).
        ValueError: a path that does not exist, or a cached file whose hash
            differs from `file_hash`.
    """
    if weights is None:
        return None
    if weights == "imagenet":
        path = os.path.join(_cache_dir(), cache_subdir, fname)
        if not os.path.exists(path):
            raise FileNotFoundError(
                f"The pretrained weights file {fname!r} is not in the Keras cache and kerasish does not "
                f"download files. Download it from {origin} and save it as {path} (or pass its path as "
                "`weights=`)."
            )
        if file_hash is not None and not _hash_matches(path, file_hash):
            raise ValueError(
                f"The cached weights file {path} does not match its expected hash {file_hash}: it is "
                f"incomplete or corrupted. Download it again from {origin}."
            )
        return path
    path = os.fspath(weights)
    if not os.path.exists(path):
        raise ValueError(
            "The `weights` argument should be either `None` (random initialization), `imagenet` "
            "(pre-training on ImageNet), or the path to the weights file to be loaded. "
            f"Received: weights={weights}"
        )
    return path
