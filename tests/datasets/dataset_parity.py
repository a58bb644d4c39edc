"""The parity harness of the `keras.datasets` tests: Keras 3.15's loaders
and kerasish's on the same synthetic files (see conftest.py)."""

import importlib
import inspect

import numpy as np
import pytest


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
