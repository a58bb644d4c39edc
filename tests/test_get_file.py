"""`keras.utils.get_file`: cache layout, hashes, downloads and extraction.

Checked against Keras 3.15's own `get_file` (the `keras_ref` fixture) on the
same inputs: returned paths, cached files, extracted trees and messages.
Nothing here reaches the internet: origins are `file://` URLs or a
`http.server` on 127.0.0.1 in a thread, and `urlopen` refuses anything else.
"""

import hashlib
import http.server
import io
import os
import tarfile
import threading
import urllib.request
import warnings
import zipfile

import pytest

import kerasish
from kerasish.utils import file_utils

PAYLOAD = b"kerasish get_file test payload\n" * 200


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    """Only file:// and the local test server may be opened."""
    real = urllib.request.urlopen

    def guarded(url, *args, **kwargs):
        full = url if isinstance(url, str) else url.full_url
        if not full.startswith(("file://", "http://127.0.0.1:")):
            raise RuntimeError(f"a test tried to reach the internet: {full}")
        return real(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", guarded)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh KERAS_HOME for this test."""
    root = tmp_path / "keras_home"
    root.mkdir()
    monkeypatch.setenv("KERAS_HOME", str(root))
    return root


def _file_url(path):
    return "file://" + str(path)


def _write(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _tree(root):
    """{relative path: bytes (files) / "->target" (symlinks) / None (dirs)}."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            full = os.path.join(dirpath, name)
            rel = os.path.relpath(full, root)
            if os.path.islink(full):
                out[rel] = "->" + os.readlink(full)
            elif os.path.isdir(full):
                out[rel] = None
            else:
                with open(full, "rb") as f:
                    out[rel] = f.read()
    return out


def _cache(tmp_path, name):
    """A cache dir that exists (Keras 3.15 silently uses /tmp/.keras for one
    that does not)."""
    path = tmp_path / name
    path.mkdir(exist_ok=True)
    return path


def _leftovers(directory):
    """Temporary download or extraction files left in a cache directory."""
    return [n for n in os.listdir(directory) if n.endswith((".part", ".extracting"))]


def _tar_bytes(entries, mode="w:gz"):
    """entries: (name, bytes) regular files, or a TarInfo (links, dirs, ...)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode=mode) as tf:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tf.addfile(entry)
            else:
                name, data = entry
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _zip_bytes(entries):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries:
            zf.writestr(zipfile.ZipInfo(name), data)
    return buf.getvalue()


def _link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info


# ---------------------------------------------------------------- the cache


def test_cache_dir_follows_keras_home_then_home(tmp_path, monkeypatch, keras_ref):
    from keras.src.backend import config as keras_config

    # KERAS_HOME unchanged since Keras was imported: the same root as Keras's
    assert file_utils._keras_home() == keras_config.keras_home() == os.environ["KERAS_HOME"]
    monkeypatch.delenv("KERAS_HOME")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert file_utils._keras_home() == str(tmp_path / ".keras")
    src = _write(tmp_path / "src" / "a.txt", PAYLOAD)
    path = kerasish.utils.get_file("a.txt", origin=_file_url(src))
    assert path == str(tmp_path / ".keras" / "datasets" / "a.txt")
    assert open(path, "rb").read() == PAYLOAD


def test_unwritable_cache_dir_falls_back_to_tmp_keras(tmp_path, monkeypatch):
    assert file_utils._tmp_keras_dir() == "/tmp/.keras"  # Keras's fallback
    fallback = tmp_path / "tmp_keras"
    monkeypatch.setattr(file_utils, "_tmp_keras_dir", lambda: str(fallback))
    blocker = _write(tmp_path / "a_file", b"x")  # a directory cannot be made under a file
    src = _write(tmp_path / "src" / "b.bin", PAYLOAD)
    path = kerasish.utils.get_file("b.bin", origin=_file_url(src), cache_dir=str(blocker / "cache"))
    assert path == str(fallback / "datasets" / "b.bin")


def test_missing_cache_dir_is_created(tmp_path):
    src = _write(tmp_path / "src" / "c.bin", PAYLOAD)
    target = tmp_path / "new" / "cache"
    path = kerasish.utils.get_file("c.bin", origin=_file_url(src), cache_dir=str(target))
    assert path == str(target / "datasets" / "c.bin")  # Keras 3.15 would use /tmp/.keras here


@pytest.mark.parametrize(("fname", "subdir", "with_hash"), [
    ("a.bin", "datasets", False),
    (None, "datasets", True),
    ("a.bin", "models/sub", True),
    ("a.bin", "ABSOLUTE", False),
])
def test_paths_and_cached_files_match_keras(tmp_path, keras_ref, fname, subdir, with_hash):
    src = _write(tmp_path / "srv" / "remote.bin", PAYLOAD)
    digest = hashlib.sha256(PAYLOAD).hexdigest() if with_hash else None
    results = []
    for lib, name in ((keras_ref, "k"), (kerasish, "ki")):
        cache = _cache(tmp_path, name)
        sub = str(tmp_path / name / "abs") if subdir == "ABSOLUTE" else subdir
        path = lib.utils.get_file(fname, origin=_file_url(src), file_hash=digest, cache_subdir=sub,
                                  cache_dir=str(cache))
        results.append((os.path.relpath(path, cache), open(path, "rb").read()))
        # a second call finds it in the cache: no download (the origin is gone)
        os.rename(src, src.with_suffix(".away"))
        try:
            assert lib.utils.get_file(fname, origin=_file_url(src), file_hash=digest, cache_subdir=sub,
                                      cache_dir=str(cache)) == path
        finally:
            os.rename(src.with_suffix(".away"), src)
    assert results[1] == results[0]


@pytest.mark.parametrize("algorithm", ["sha256", "md5", "md5_hash"])
def test_cached_file_with_wrong_hash_is_downloaded_again(tmp_path, capsys, keras_ref, algorithm):
    src = _write(tmp_path / "srv" / "d.bin", PAYLOAD)
    hasher = hashlib.sha256 if algorithm == "sha256" else hashlib.md5
    digest = hasher(PAYLOAD).hexdigest()
    kwargs = {"md5_hash": digest} if algorithm == "md5_hash" else {"file_hash": digest}
    outs = []
    for lib, name in ((keras_ref, "k"), (kerasish, "ki")):
        cache = _cache(tmp_path, name)
        stale = _write(cache / "datasets" / "d.bin", b"an old, truncated copy")
        capsys.readouterr()
        path = lib.utils.get_file("d.bin", origin=_file_url(src), cache_dir=str(cache), **kwargs)
        assert path == str(stale) and stale.read_bytes() == PAYLOAD
        outs.append(capsys.readouterr().out.split("\n")[:2])
    assert outs[1] == outs[0]
    assert "file hash does not match the original value" in outs[1][0]
    assert outs[1][1] == f"Downloading data from {_file_url(src)}"


def test_pathlike_fname_and_messages_to_logging(tmp_path, capsys, caplog):
    import logging
    import pathlib

    src = _write(tmp_path / "srv" / "p.bin", PAYLOAD)
    kerasish.config.disable_interactive_logging()
    try:
        with caplog.at_level(logging.INFO, logger="kerasish"):
            path = kerasish.utils.get_file(pathlib.Path("p.bin"), origin=_file_url(src), cache_dir=tmp_path)
    finally:
        kerasish.config.enable_interactive_logging()
    assert path == str(tmp_path / "datasets" / "p.bin")
    assert any(r.getMessage() == f"Downloading data from {_file_url(src)}" for r in caplog.records)
    assert "Downloading" not in capsys.readouterr().out


def test_uppercase_digest_and_explicit_algorithms(tmp_path):
    src = _write(tmp_path / "srv" / "e.bin", PAYLOAD)
    sha, md5 = hashlib.sha256(PAYLOAD).hexdigest(), hashlib.md5(PAYLOAD).hexdigest()
    for digest, algorithm in ((sha.upper(), "auto"), (sha, "sha256"), (md5, "md5"), (md5.upper(), "auto"),
                              (sha, "SHA256")):
        path = kerasish.utils.get_file("e.bin", origin=_file_url(src), file_hash=digest, hash_algorithm=algorithm,
                                       cache_dir=str(tmp_path / "c"), force_download=True)
        assert open(path, "rb").read() == PAYLOAD
    assert file_utils.validate_file(path, md5) and not file_utils.validate_file(path, md5, algorithm="sha256")
    with pytest.raises(ValueError, match=r"hash_algorithm.*Received: hash_algorithm='sha1'"):
        kerasish.utils.get_file("e.bin", origin=_file_url(src), file_hash=sha, hash_algorithm="sha1",
                                cache_dir=str(tmp_path / "c"))


def test_bad_download_hash_raises_and_caches_nothing(tmp_path, keras_ref):
    src = _write(tmp_path / "srv" / "f.bin", PAYLOAD)
    wrong = hashlib.sha256(b"something else").hexdigest()
    messages = []
    for lib, name in ((keras_ref, "k"), (kerasish, "ki")):
        with pytest.raises(ValueError) as info:
            lib.utils.get_file("f.bin", origin=_file_url(src), file_hash=wrong, cache_dir=str(_cache(tmp_path, name)))
        messages.append(str(info.value))
    assert messages[1] == messages[0]
    datadir = tmp_path / "ki" / "datasets"
    assert os.listdir(datadir) == []  # Keras 3.15 leaves the bad file in its cache
    assert (tmp_path / "k" / "datasets" / "f.bin").exists()


def test_argument_errors_match_keras(tmp_path, keras_ref):
    cases = [
        dict(fname="x.bin"),
        dict(fname="sub/x.bin", origin="file:///nowhere/x.bin"),
        dict(origin="file:///nowhere/"),
    ]
    for kwargs in cases:
        errors = []
        for lib in (keras_ref, kerasish):
            with pytest.raises(ValueError) as info:
                lib.utils.get_file(cache_dir=str(tmp_path), **kwargs)
            errors.append(str(info.value))
        assert errors[1] == errors[0], kwargs
    with pytest.raises(ValueError, match="must name a file"):
        kerasish.utils.get_file("..", origin="file:///nowhere/x", cache_dir=str(tmp_path))


# ---------------------------------------------------------------- http


class _Handler(http.server.BaseHTTPRequestHandler):
    files = {}

    def do_GET(self):  # noqa: N802
        if self.path == "/short":  # announces more bytes than it sends
            self.send_response(200)
            self.send_header("Content-Length", str(len(PAYLOAD) * 2))
            self.end_headers()
            self.wfile.write(PAYLOAD)
            return
        data = self.files.get(self.path)
        if data is None:
            self.send_error(404, "File not found")
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    _Handler.files = {"/data/g.bin": PAYLOAD}
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def test_http_download_with_progress(tmp_path, server, capsys):
    digest = hashlib.sha256(PAYLOAD).hexdigest()
    path = kerasish.utils.get_file(origin=f"{server}/data/g.bin", file_hash=digest, cache_dir=str(tmp_path))
    assert path == str(tmp_path / "datasets" / "g.bin") and open(path, "rb").read() == PAYLOAD
    out = capsys.readouterr().out
    assert out.startswith(f"Downloading data from {server}/data/g.bin\n")
    assert f"{len(PAYLOAD)}/{len(PAYLOAD)}" in out  # the bar reaches the Content-Length
    umask = os.umask(0)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask  # as a plainly written file (not 0600)


def test_http_errors_match_keras_and_leave_nothing(tmp_path, server, keras_ref):
    for url in (f"{server}/missing.bin", f"{server}/short"):
        errors = []
        for lib, name in ((keras_ref, "k"), (kerasish, "ki")):
            with pytest.raises(Exception) as info:  # Keras raises a plain Exception
                lib.utils.get_file("h.bin", origin=url, cache_dir=str(_cache(tmp_path, name)))
            errors.append((type(info.value), str(info.value)))
        assert errors[1] == errors[0]
        assert os.listdir(tmp_path / "ki" / "datasets") == []
    assert errors[1][1].startswith(f"URL fetch failure on {server}/short: None -- retrieval incomplete")
    with pytest.raises(Exception, match="404 -- File not found"):
        kerasish.utils.get_file("h.bin", origin=f"{server}/nope", cache_dir=str(tmp_path / "ki"))


def test_interrupted_download_leaves_cache_as_it_was(tmp_path, server, monkeypatch):
    cached = _write(tmp_path / "datasets" / "g.bin", b"the copy already in the cache")

    def interrupt(self, current):
        raise KeyboardInterrupt

    monkeypatch.setattr(file_utils._DownloadProgress, "update", interrupt)
    with pytest.raises(KeyboardInterrupt):
        kerasish.utils.get_file("g.bin", origin=f"{server}/data/g.bin", cache_dir=str(tmp_path),
                                force_download=True)
    assert os.listdir(tmp_path / "datasets") == ["g.bin"]
    assert cached.read_bytes() == b"the copy already in the cache"
    with pytest.raises(KeyboardInterrupt):
        kerasish.utils.get_file("new.bin", origin=f"{server}/data/g.bin", cache_dir=str(tmp_path))
    assert os.listdir(tmp_path / "datasets") == ["g.bin"]
    monkeypatch.undo()
    path = kerasish.utils.get_file("g.bin", origin=f"{server}/data/g.bin", cache_dir=str(tmp_path),
                                   force_download=True)
    assert open(path, "rb").read() == PAYLOAD


# ---------------------------------------------------------------- extraction

ARCHIVE = [("top/a.txt", b"alpha"), ("top/sub/b.txt", b"beta"), ("c.txt", b"gamma")]


@pytest.mark.parametrize(("fname", "fmt", "kwargs"), [
    ("data.tar.gz", "tgz", {"extract": True}),
    ("data", "tgz", {"extract": True}),
    (None, "tgz", {"extract": True}),
    ("data.zip", "zip", {"extract": True}),
    ("data", "zip", {"extract": True, "archive_format": "zip"}),
    ("data", "tgz", {"untar": True}),
    ("data.tar", "tar", {"extract": True, "archive_format": ["zip", "tar"]}),
])
def test_extract_paths_and_trees_match_keras(tmp_path, keras_ref, fname, fmt, kwargs):
    data = _zip_bytes(ARCHIVE) if fmt == "zip" else _tar_bytes(ARCHIVE, "w:gz" if fmt == "tgz" else "w")
    src = _write(tmp_path / "srv" / f"remote.{fmt}", data)
    got = []
    for lib, name in ((keras_ref, "k"), (kerasish, "ki")):
        cache = _cache(tmp_path, name)
        path = lib.utils.get_file(fname, origin=_file_url(src), cache_dir=str(cache), **kwargs)
        got.append((os.path.relpath(path, cache), _tree(path), sorted(os.listdir(cache / "datasets"))))
    assert got[1] == got[0]
    assert got[1][1]["top/sub/b.txt"] == b"beta"


def test_extraction_runs_again_on_each_call_and_keeps_other_files(tmp_path):
    src = _write(tmp_path / "srv" / "arc.tar.gz", _tar_bytes(ARCHIVE))
    path = kerasish.utils.get_file("arc.tar.gz", origin=_file_url(src), extract=True, cache_dir=str(tmp_path))
    os.remove(os.path.join(path, "top", "a.txt"))
    _write(tmp_path / "datasets" / "arc_extracted" / "mine.txt", b"user file")
    again = kerasish.utils.get_file("arc.tar.gz", origin=_file_url(src), extract=True, cache_dir=str(tmp_path))
    assert again == path
    tree = _tree(path)
    assert tree["top/a.txt"] == b"alpha" and tree["mine.txt"] == b"user file"
    assert _leftovers(tmp_path / "datasets") == []


def test_not_an_archive_and_unknown_format(tmp_path, keras_ref):
    src = _write(tmp_path / "srv" / "plain.bin", PAYLOAD)
    for lib, name in ((keras_ref, "k"), (kerasish, "ki")):
        with pytest.warns(UserWarning, match="Could not extract archive"):
            path = lib.utils.get_file("plain", origin=_file_url(src), extract=True,
                                      cache_dir=str(_cache(tmp_path, name)))
        assert os.path.relpath(path, tmp_path / name) == os.path.join("datasets", "plain")
        with pytest.raises(NotImplementedError, match="rar"):
            lib.utils.get_file("plain", origin=_file_url(src), extract=True, archive_format="rar",
                               cache_dir=str(_cache(tmp_path, name)))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.warns(UserWarning, match="Could not extract"):
            kerasish.utils.get_file("plain", origin=_file_url(src), extract=True, archive_format=None,
                                    cache_dir=str(tmp_path / "ki"))


def test_truncated_archive_raises_and_leaves_no_extraction(tmp_path):
    whole = _tar_bytes([("big.bin", os.urandom(200_000))])
    src = _write(tmp_path / "srv" / "cut.tar.gz", whole[: len(whole) // 2])
    with pytest.raises((tarfile.TarError, EOFError, OSError)):
        kerasish.utils.get_file("cut.tar.gz", origin=_file_url(src), extract=True, cache_dir=str(tmp_path))
    assert sorted(os.listdir(tmp_path / "datasets")) == ["cut.tar.gz"]


@pytest.mark.skipif(os.name == "nt", reason="on Windows these names are a drive and a separator")
def test_member_names_that_only_look_like_drives_extract(tmp_path):
    src = _write(tmp_path / "srv" / "odd.tar", _tar_bytes([("C:notes.txt", b"x"), ("a\\b.txt", b"y")], "w"))
    path = kerasish.utils.get_file("odd.tar", origin=_file_url(src), extract=True, cache_dir=str(tmp_path))
    assert _tree(path) == {"C:notes.txt": b"x", "a\\b.txt": b"y"}  # plain file names on POSIX


def test_archive_with_internal_symlink_extracts(tmp_path):
    entries = [("pkg/real/file.txt", b"data"), _link("pkg/alias", "real"), _link("pkg/real/up", "../real/file.txt"),
               _link("pkg/hard.txt", "pkg/real/file.txt", tarfile.LNKTYPE)]
    src = _write(tmp_path / "srv" / "ok.tar.gz", _tar_bytes(entries))
    path = kerasish.utils.get_file("ok.tar.gz", origin=_file_url(src), extract=True, cache_dir=str(tmp_path))
    tree = _tree(path)
    assert tree["pkg/alias"] == "->real" and tree["pkg/hard.txt"] == b"data"
    assert open(os.path.join(path, "pkg", "alias", "file.txt"), "rb").read() == b"data"


def _fifo(name):
    info = tarfile.TarInfo(name)
    info.type = tarfile.FIFOTYPE
    return info


HOSTILE_TARS = {
    "dotdot": [("ok.txt", b"1"), ("../escaped.txt", b"evil")],
    "nested_dotdot": [("a/../../escaped.txt", b"evil")],
    "absolute": [("ok.txt", b"1"), ("ABS", b"evil")],
    "symlink_out": [_link("link", "../escaped.txt")],
    "symlink_absolute": [_link("link", "/etc/passwd")],
    "through_symlink": [_link("dir", ".."), ("dir/escaped.txt", b"evil")],
    "link_via_link": [_link("x", "."), _link("y", "x/..")],
    "hardlink_out": [_link("hard", "../escaped.txt", tarfile.LNKTYPE)],
    "hardlink_absolute": [_link("hard", "/etc/passwd", tarfile.LNKTYPE)],
    "fifo": [("ok.txt", b"1"), _fifo("pipe")],
}


@pytest.mark.parametrize("case", sorted(HOSTILE_TARS))
def test_hostile_tar_is_refused_and_extracts_nothing(tmp_path, case):
    entries = [(str(tmp_path / "escaped_abs.txt"), e[1]) if isinstance(e, tuple) and e[0] == "ABS" else e
               for e in HOSTILE_TARS[case]]
    src = _write(tmp_path / "srv" / "evil.tar.gz", _tar_bytes(entries))
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="Refusing to extract the archive .* its member"):
        kerasish.utils.get_file("evil.tar.gz", origin=_file_url(src), extract=True, cache_dir=str(cache))
    datadir = cache / "datasets"
    assert sorted(os.listdir(datadir)) == ["evil.tar.gz"]  # the archive, no extraction dir, no staging dir
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "escaped_abs.txt").exists()
    assert not (cache / "escaped.txt").exists() and not (datadir / "escaped.txt").exists()


@pytest.mark.parametrize("name", ["../escaped.txt", "ABS", "a/../../escaped.txt"])
def test_hostile_zip_is_refused_and_extracts_nothing(tmp_path, name):
    name = str(tmp_path / "escaped_abs.txt") if name == "ABS" else name
    src = _write(tmp_path / "srv" / "evil.zip", _zip_bytes([("ok.txt", b"1"), (name, b"evil")]))
    cache = tmp_path / "cache"
    with pytest.raises(ValueError, match="Refusing to extract"):
        kerasish.utils.get_file("evil.zip", origin=_file_url(src), extract=True, cache_dir=str(cache))
    assert sorted(os.listdir(cache / "datasets")) == ["evil.zip"]
    assert not (tmp_path / "escaped.txt").exists() and not (tmp_path / "escaped_abs.txt").exists()
