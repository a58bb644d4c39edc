"""Shared fixtures of the `keras.datasets` tests.

Every test gets an empty KERAS_HOME in its tmp dir (never the real home) and
no internet: `urlopen` accepts only file:// URLs.

`both` runs Keras 3.15's and kerasish's loaders on the same synthetic files.
Keras's `get_file` would check the real datasets' hashes and try to download
the real files, so it is monkeypatched in Keras's dataset module: the call's
arguments are recorded, then Keras's own `get_file` runs with the same
arguments minus `file_hash`, and the temporary home as `cache_dir` (Keras
reads KERAS_HOME once, at import). kerasish's `get_file` is wrapped the same
way (without the hash; its cache dir comes from KERAS_HOME). The test then
checks that both loaders asked `get_file` for the same file (fname, origin,
hash, cache_subdir, extract, ...), so a cache Keras filled is the one
kerasish reads.
"""

import os
import sys
import urllib.request

import pytest

sys.path.insert(0, os.path.dirname(__file__))


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    real = urllib.request.urlopen

    def guarded(url, *args, **kwargs):
        full = url if isinstance(url, str) else url.full_url
        if not full.startswith("file://"):
            raise RuntimeError(f"a test tried to reach the internet: {full}")
        return real(url, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", guarded)


@pytest.fixture
def home(tmp_path, monkeypatch):
    """An empty KERAS_HOME with its `datasets/` directory."""
    root = tmp_path / "keras_home"
    (root / "datasets").mkdir(parents=True)
    monkeypatch.setenv("KERAS_HOME", str(root))
    return root


@pytest.fixture
def both(keras_ref, home):
    from dataset_parity import Both

    return Both(home)
