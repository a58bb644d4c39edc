"""`keras.utils.get_file`: a file from a URL, cached under the Keras cache dir.

The cache layout, file names and hash checks are Keras 3.15's, so a file that
Keras has already downloaded (`~/.keras/datasets/mnist.npz`, ...) is found and
used here without a download. Differences from Keras 3.15, all on paths where
Keras leaves a broken or surprising state behind:

- A download goes to a temporary file next to its target and is renamed into
  place only once it is complete and matches `file_hash`; a failed, corrupted
  or interrupted download leaves nothing in the cache (and with
  `force_download=True` the cached copy stays as it was). Keras writes the
  target directly and leaves a file that fails its hash in the cache.
- Archives are extracted into a temporary directory and moved into place when
  complete. A member that would land outside the extraction directory (an
  absolute path, `..`, a path through a symlink, a symlink or hard link
  pointing outside, a device or FIFO) makes the extraction raise `ValueError`
  and extracts nothing; Keras skips such members with a warning and extracts
  the rest.
- `cache_dir` is created when it does not exist yet (Keras silently uses
  `/tmp/.keras` instead); `/tmp/.keras` is used only when it cannot be
  written.
- An unknown `hash_algorithm` raises `ValueError` (Keras falls back to md5);
  hex digests compare case-insensitively; `fname` of `.` or `..` raises.
- `KERAS_HOME` is read at each call (Keras reads it once, at import).
"""

from __future__ import annotations

import hashlib
import os
import posixpath
import secrets
import shutil
import tarfile
import tempfile
import urllib.error
import urllib.parse
import urllib.request
import warnings
import zipfile

from kerasish.utils import io_utils

_CHUNK = 1 << 16  # bytes read at a time, for hashing and downloading
_HASH_ALGORITHMS = ("auto", "sha256", "md5")
_ARCHIVE_FORMATS = ("tar", "zip")


def _keras_home() -> str:
    """Keras's cache root: `$KERAS_HOME`, else `~/.keras`, or `/tmp/.keras`
    when the home directory cannot be written (Keras's `config.keras_home()`)."""
    if "KERAS_HOME" in os.environ:
        return os.environ["KERAS_HOME"]
    base = os.path.expanduser("~")
    if not os.access(base, os.W_OK):
        base = "/tmp"
    return os.path.join(base, ".keras")


def _tmp_keras_dir() -> str:
    return os.path.join("/tmp" if os.path.isdir("/tmp") else tempfile.gettempdir(), ".keras")


def _writable_dir(path: str) -> bool:
    try:
        os.makedirs(path, exist_ok=True)
    except OSError:
        return False
    return os.access(path, os.W_OK)


# ---------------------------------------------------------------- hashing


def _hasher(algorithm: str, file_hash: str | None = None):
    """Keras's choice: sha256 when asked, or for `"auto"` with a 64-character
    digest; md5 otherwise (md5 is legacy)."""
    if isinstance(algorithm, str) and algorithm.lower() in _HASH_ALGORITHMS:
        algorithm = algorithm.lower()
    else:
        raise ValueError(
            f"Unknown `hash_algorithm`: expected one of {', '.join(map(repr, _HASH_ALGORITHMS))}. "
            f"Received: hash_algorithm={algorithm!r}"
        )
    if algorithm == "sha256" or (algorithm == "auto" and file_hash is not None and len(file_hash) == 64):
        return hashlib.sha256()
    return hashlib.md5()


def hash_file(fpath, algorithm: str = "sha256", chunk_size: int = _CHUNK) -> str:
    """The hex sha256 (or md5) digest of the file at `fpath`."""
    hasher = _hasher(algorithm) if isinstance(algorithm, str) else algorithm
    with open(fpath, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def validate_file(fpath, file_hash: str, algorithm: str = "auto", chunk_size: int = _CHUNK) -> bool:
    """Whether the file at `fpath` has the digest `file_hash` (sha256 or md5,
    `"auto"` tells them apart by length)."""
    file_hash = str(file_hash)
    return hash_file(fpath, _hasher(algorithm, file_hash), chunk_size) == file_hash.lower()


# ---------------------------------------------------------------- archives


def _member_error(archive_path, member, why):
    return ValueError(
        f"Refusing to extract the archive '{archive_path}': its member '{member}' {why}. "
        "The file may be corrupted or malicious; nothing was extracted."
    )


def _inside(name: str) -> str | None:
    """`name` as a normalised relative path, or None when it is absolute or
    climbs out of the directory it is relative to."""
    if os.sep == "\\":  # on Windows a backslash separates too
        name = name.replace("\\", "/")
    if not name or name.startswith("/") or os.path.isabs(name) or os.path.splitdrive(name)[0]:
        return None
    norm = posixpath.normpath(name)
    if norm == ".." or norm.startswith("../"):
        return None
    return norm


def _resolves_inside(base: list, path: str, symlinks: set) -> bool:
    """Whether `path`, followed component by component from the directory
    `base` (a list of components), stays inside the root without stepping
    through any symlink of the archive (whose own target could lead anywhere)."""
    if path.startswith("/"):
        return False
    stack = list(base)
    for part in path.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not stack:
                return False
            stack.pop()
            continue
        stack.append(part)
        if "/".join(stack) in symlinks:
            return False
    return True


def _check_tar_members(archive_path, members):
    """Every member's path must stay inside the target without passing through
    a symlink of the archive; symlink and hard link targets likewise; no
    devices or FIFOs."""
    symlinks = {posixpath.normpath(m.name) for m in members if m.issym()}
    for m in members:
        norm = _inside(m.name)
        if norm is None:
            raise _member_error(archive_path, m.name, "has a path outside the extraction directory")
        parents = norm.split("/")[:-1]
        if not _resolves_inside([], "/".join(parents), symlinks):
            raise _member_error(archive_path, m.name, "has a path through a symbolic link of the archive")
        if m.issym():
            if not _resolves_inside(parents, m.linkname, symlinks):
                raise _member_error(archive_path, m.name, f"is a symbolic link to '{m.linkname}', outside the "
                                    "extraction directory or through another link")
        elif m.islnk():
            if _inside(m.linkname) is None or not _resolves_inside([], m.linkname, symlinks):
                raise _member_error(archive_path, m.name, f"is a hard link to '{m.linkname}', outside the "
                                    "extraction directory or through a symbolic link")
        elif not (m.isfile() or m.isdir()):
            raise _member_error(archive_path, m.name, "is a device, FIFO or other special file")


def _check_zip_members(archive_path, infos):
    for info in infos:
        if _inside(info.filename) is None:
            raise _member_error(archive_path, info.filename, "has a path outside the extraction directory")


def _extract_into(file_path, directory, kind):
    if kind == "tar":
        with tarfile.open(file_path) as archive:
            members = archive.getmembers()
            _check_tar_members(file_path, members)
            kwargs = {}
            if hasattr(tarfile, "data_filter"):  # a second line of defence (Python 3.12, 3.11.4+)
                kwargs["filter"] = "data"
            archive.extractall(directory, members=members, **kwargs)
    else:
        with zipfile.ZipFile(file_path) as archive:
            infos = archive.infolist()
            _check_zip_members(file_path, infos)
            archive.extractall(directory, members=infos)


def _move_into(src_dir, dst_dir):
    """Moves the entries of `src_dir` into `dst_dir`, replacing entries of the
    same name (a previous extraction of the same archive)."""
    os.makedirs(dst_dir, exist_ok=True)
    for name in os.listdir(src_dir):
        dst = os.path.join(dst_dir, name)
        if os.path.isdir(dst) and not os.path.islink(dst):
            shutil.rmtree(dst)
        elif os.path.lexists(dst):
            os.remove(dst)
        os.replace(os.path.join(src_dir, name), dst)


def extract_archive(file_path, path=".", archive_format="auto") -> bool:
    """Extracts a tar (`.tar`, `.tar.gz`, `.tar.bz2`, ...) or zip archive into
    `path`.

    Args:
        file_path: the archive.
        path: the directory to extract into (created if needed).
        archive_format: `"auto"` (tar, then zip), `"tar"`, `"zip"`, a list of
            those, or None (extract nothing).

    Returns:
        True when the file was one of the formats and has been extracted,
        False when it matched none.

    Raises:
        ValueError: a member would land outside `path` (nothing is extracted).
        NotImplementedError: an unknown format name (as Keras).
    """
    if archive_format is None:
        return False
    if archive_format == "auto":
        archive_format = list(_ARCHIVE_FORMATS)
    if isinstance(archive_format, str):
        archive_format = [archive_format]
    file_path, path = os.fspath(file_path), os.fspath(path)
    for kind in archive_format:
        if kind not in _ARCHIVE_FORMATS:
            raise NotImplementedError(kind)
        if not (tarfile.is_tarfile if kind == "tar" else zipfile.is_zipfile)(file_path):
            continue
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        staging = tempfile.mkdtemp(prefix=f".{os.path.basename(path)}.", suffix=".extracting", dir=parent)
        try:
            _extract_into(file_path, staging, kind)
            _move_into(staging, path)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return True
    return False


# ---------------------------------------------------------------- download


class _DownloadProgress:
    """Keras's download bar: bytes so far against the Content-Length."""

    def __init__(self, total):
        from kerasish.callbacks.progbar_logger import Progbar

        self.progbar = Progbar(total)
        self.total = total

    def update(self, current):
        if self.total is None or current < self.total:
            self.progbar.update(current)

    def finish(self, current):
        self.progbar.update(current if self.total is None else self.total, finalize=True)


def _create_part_file(target):
    """A new, empty temporary file beside `target` (`.name.<random>.part`),
    created with the umask's permissions as the final file would be (not
    mkstemp's owner-only 0600, which would hide a shared cache's files from
    other users)."""
    directory, name = os.path.split(target)
    for _ in range(100):
        part = os.path.join(directory, f".{name}.{secrets.token_hex(6)}.part")
        try:
            return os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666), part
        except FileExistsError:
            continue
    raise FileExistsError(f"Could not create a temporary file beside '{target}'.")


def _fetch(origin: str, target: str, file_hash, hash_algorithm) -> None:
    """Downloads `origin` to a temporary file beside `target`, checks its hash
    and renames it to `target`; on any failure (or Ctrl-C) the temporary file
    is removed and `target` is left as it was."""
    error_msg = "URL fetch failure on {}: {} -- {}"
    fd, part = _create_part_file(target)
    try:
        with os.fdopen(fd, "wb") as out:
            try:
                with urllib.request.urlopen(origin) as response:
                    length = response.headers.get("Content-Length") if response.headers else None
                    total = int(length) if length is not None and length.isdigit() else None
                    progress = _DownloadProgress(total)
                    read = 0
                    for chunk in iter(lambda: response.read(_CHUNK), b""):
                        out.write(chunk)
                        read += len(chunk)
                        progress.update(read)
                    if total is not None and read < total:
                        raise urllib.error.ContentTooShortError(
                            f"retrieval incomplete: got only {read} out of {total} bytes", None)
                    progress.finish(read)
            except urllib.error.HTTPError as e:
                raise Exception(error_msg.format(origin, e.code, e.msg)) from e
            except urllib.error.URLError as e:
                raise Exception(error_msg.format(origin, getattr(e, "errno", None), e.reason)) from e
            out.flush()
            os.fsync(out.fileno())  # on disk before the rename makes it the cached file
        if file_hash is not None and not validate_file(part, file_hash, algorithm=hash_algorithm):
            raise ValueError(
                f"Incomplete or corrupted file detected. The {hash_algorithm} file hash does not match the "
                f"provided value of {file_hash}."
            )
        os.replace(part, target)
    except BaseException:
        if os.path.exists(part):
            os.remove(part)
        raise


def get_file(
    fname=None,
    origin=None,
    untar=False,
    md5_hash=None,
    file_hash=None,
    cache_subdir="datasets",
    hash_algorithm="auto",
    extract=False,
    archive_format="auto",
    cache_dir=None,
    force_download=False,
):
    """Downloads a file from a URL unless it is already in the cache.

    The file lands in `cache_dir/cache_subdir/fname`, by default
    `~/.keras/datasets/fname` (`$KERAS_HOME/datasets/fname` when `KERAS_HOME`
    is set; `/tmp/.keras/...` when the cache dir cannot be written), exactly
    where Keras puts it, so files Keras has downloaded are reused.

    Args:
        fname: the file's name in the cache. Defaults to the last part of
            `origin`'s path. With `extract=True`, a name without an extension
            names the extraction directory (the archive is cached as
            `fname + "_archive"`); a name with one is the archive's, and the
            directory is its stem + `"_extracted"`.
        origin: the URL (`https://`, `http://`, `file://`, ...). Required.
        untar: legacy; same as `extract=True, archive_format="tar"`.
        md5_hash: legacy; an md5 `file_hash`.
        file_hash: the expected sha256 or md5 hex digest. A cached file that
            does not match is downloaded again; a download that does not match
            raises `ValueError` and is not kept.
        cache_subdir: the subdirectory of the cache dir (an absolute path is
            used as it is). Defaults to `"datasets"`.
        hash_algorithm: `"sha256"`, `"md5"` or `"auto"` (by the length of
            `file_hash`). Defaults to `"auto"`.
        extract: whether to extract the archive (tar or zip); the archive is
            extracted on every call, as Keras does.
        archive_format: `"auto"` (tar, then zip), `"tar"`, `"zip"`, a list of
            those, or None.
        cache_dir: the cache root. Defaults to `$KERAS_HOME` or `~/.keras`.
        force_download: download even when the file is cached.

    Returns:
        The path of the file, or with `extract=True` (or `untar=True`) the
        path of the extraction directory, as Keras 3.15.

    Example:

    ```python
    path = keras.utils.get_file(origin="https://example.com/data.csv", file_hash="...")
    ```
    """
    if origin is None:
        raise ValueError('Please specify the "origin" argument (URL of the file to download).')
    if cache_dir is None:
        cache_dir = _keras_home()
    if md5_hash is not None and file_hash is None:
        file_hash, hash_algorithm = md5_hash, "md5"
    _hasher(hash_algorithm)  # an unknown name raises here, before any download
    datadir_base = os.path.expanduser(os.fspath(cache_dir))
    if not _writable_dir(datadir_base):
        datadir_base = _tmp_keras_dir()
    datadir = os.path.join(datadir_base, os.fspath(cache_subdir))
    os.makedirs(datadir, exist_ok=True)

    provided_fname = fname
    fname = os.fspath(fname) if fname is not None else None
    if not fname:
        fname = os.path.basename(urllib.parse.urlsplit(origin).path)
        if not fname:
            raise ValueError(
                f"Can't parse the file name from the origin provided: '{origin}'.Please specify the `fname` "
                "argument."
            )
    elif os.sep in fname or (os.altsep and os.altsep in fname):
        raise ValueError(
            "Paths are no longer accepted as the `fname` argument. To specify the file's parent directory, use "
            f"the `cache_dir` argument. Received: fname={fname}"
        )
    if fname in (".", ".."):
        raise ValueError(f"`fname` must name a file in the cache directory. Received: fname={fname}")

    if extract or untar:
        if provided_fname and "." in fname:
            download_target = os.path.join(datadir, fname)
            extraction_dir = os.path.join(datadir, f"{fname[: fname.find('.')]}_extracted")
        else:
            extraction_dir = os.path.join(datadir, fname)
            download_target = os.path.join(datadir, f"{fname}_archive")
    else:
        download_target = os.path.join(datadir, fname)

    if force_download or not os.path.exists(download_target):
        download = True
    else:
        download = False
        if file_hash is not None and not validate_file(download_target, file_hash, algorithm=hash_algorithm):
            io_utils.print_msg(
                "A local file was found, but it seems to be incomplete or outdated because the "
                f"{hash_algorithm} file hash does not match the original value of {file_hash} so we will "
                "re-download the data."
            )
            download = True

    if download:
        io_utils.print_msg(f"Downloading data from {origin}")
        _fetch(origin, download_target, file_hash, hash_algorithm)

    if extract or untar:
        if untar:
            archive_format = "tar"
        if not extract_archive(download_target, extraction_dir, archive_format):
            warnings.warn("Could not extract archive.", stacklevel=2)
        return extraction_dir
    return download_target


__all__ = ["get_file"]
