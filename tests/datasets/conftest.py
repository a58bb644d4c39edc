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

import importlib
import inspect
import os
import sys
import urllib.request

import numpy as np
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


def _recording(real, calls, **override):
    signature = inspect.signature(real)

    def get_file(*args, **kwargs):
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        calls.append(arguments)
        return real(**{**arguments, "file_hash": None, **override})

    return get_file


class Both:
    """Runs `keras.datasets.<module>.<fn>` and `kerasish.datasets.<module>.<fn>`."""

    def __init__(self, home):
        self.home = home

    def _modules(self, mp, module):
        from kerasish.utils import file_utils

        kmod = importlib.import_module(f"keras.src.datasets.{module}")
        ours = importlib.import_module(f"kerasish.datasets.{module}")
        kcalls, ocalls = [], []
        mp.setattr(kmod, "get_file", _recording(kmod.get_file, kcalls, cache_dir=str(self.home)))
        mp.setattr(file_utils, "get_file", _recording(file_utils.get_file, ocalls))
        return kmod, ours, kcalls, ocalls

    def __call__(self, module, fn="load_data", *args, **kwargs):
        """(Keras's result, kerasish's result), after checking they asked
        `get_file` for the same files."""
        with pytest.MonkeyPatch.context() as mp:
            kmod, ours, kcalls, ocalls = self._modules(mp, module)
            ref = getattr(kmod, fn)(*args, **kwargs)
            got = getattr(ours, fn)(*args, **kwargs)
        assert ocalls == kcalls and kcalls, (ocalls, kcalls)
        return ref, got

    def errors(self, module, fn="load_data", *args, **kwargs):
        """(Keras's exception, kerasish's exception) of one call."""
        raised = []
        with pytest.MonkeyPatch.context() as mp:
            kmod, ours, _, _ = self._modules(mp, module)
            for mod in (kmod, ours):
                with pytest.raises(Exception) as info:
                    getattr(mod, fn)(*args, **kwargs)
                raised.append(info.value)
        return raised


@pytest.fixture
def both(keras_ref, home):
    return Both(home)


def assert_same(ref, got, path="result"):
    """Same nesting, array dtypes, shapes and values (object arrays element by
    element, as lists)."""
    if isinstance(ref, (tuple, list)) and not isinstance(ref, np.ndarray):
        assert type(got) is type(ref), f"{path}: {type(got)} vs {type(ref)}"
        assert len(got) == len(ref), f"{path}: length {len(got)} vs {len(ref)}"
        for i, (r, g) in enumerate(zip(ref, got)):
            assert_same(r, g, f"{path}[{i}]")
        return
    if isinstance(ref, np.ndarray):
        assert isinstance(got, np.ndarray), f"{path}: {type(got)}"
        if ref.dtype == object and ref.ndim == 2:
            # Keras's np.array(seqs, dtype=object) is 2-D when every sequence has
            # the same length (one sequence, say); kerasish keeps a 1-D array of lists
            assert got.dtype == object and got.shape == ref.shape[:1], f"{path}: {got.shape} vs {ref.shape}"
            assert [list(x) for x in got] == [list(x) for x in ref], path
            return
        assert (got.dtype, got.shape) == (ref.dtype, ref.shape), f"{path}: {got.dtype}{got.shape} vs " \
                                                                 f"{ref.dtype}{ref.shape}"
        if ref.dtype == object:
            assert [list(x) for x in got] == [list(x) for x in ref], path
            assert all(type(a) is type(b) for a, b in zip(got, ref)), path
        elif not np.array_equal(got, ref):  # (assert_array_equal is slow on large transposed views)
            np.testing.assert_array_equal(got, ref, err_msg=path)
        return
    assert got == ref and type(got) is type(ref), f"{path}: {got!r} vs {ref!r}"
