"""`keras.datasets.boston_housing` and `california_housing` against Keras
3.15's loaders on synthetic `.npz` files (shuffle, split, `version`)."""

import numpy as np
import pytest
from dataset_parity import assert_same

import keras_dataset_files as files

SPLITS = [{}, {"test_split": 0.0}, {"test_split": 0.33, "seed": 1}, {"test_split": 0.999}, {"seed": 2024}]


@pytest.mark.parametrize("kwargs", SPLITS, ids=str)
def test_boston_housing_matches_keras(both, home, kwargs):
    files.write_housing(home / "datasets", "boston_housing.npz", 31, 13, np.float64)
    ref, got = both("boston_housing", **kwargs)
    assert_same(ref, got)
    assert got[0][0].shape[1] == 13 and len(got[0][0]) + len(got[1][0]) == 31


@pytest.mark.parametrize("kwargs", SPLITS + [{"version": "small"}, {"version": "small", "test_split": 0.5, "seed": 9},
                                             {"version": "large", "path": "mine.npz"}], ids=str)
def test_california_housing_matches_keras(both, home, kwargs):
    files.write_housing(home / "datasets", kwargs.get("path", "california_housing.npz"), 650, 8, np.float32)
    ref, got = both("california_housing", **kwargs)
    assert_same(ref, got)
    total = 600 if kwargs.get("version") == "small" else 650
    assert len(got[0][0]) + len(got[1][0]) == total


@pytest.mark.parametrize(("module", "kwargs"), [
    ("boston_housing", {"test_split": 1.0}),
    ("boston_housing", {"test_split": -0.1}),
    ("california_housing", {"test_split": 1}),
    ("california_housing", {"version": "medium"}),
])
def test_argument_errors_match_keras(both, home, module, kwargs):
    files.write_housing(home / "datasets", f"{module}.npz", 10, 8, np.float32)
    ref, got = both.errors(module, **kwargs)
    assert type(got) is type(ref) is ValueError and str(got) == str(ref)
