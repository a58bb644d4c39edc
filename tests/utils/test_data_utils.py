"""keras.utils data helpers against real Keras."""

import numpy as np
import pytest
import torch

import kerasish as keras


@pytest.mark.parametrize("labels,num_classes", [([0, 1, 2, 3], 4), ([[1], [0], [2]], None), ([[0, 2], [1, 1]], 3)])
def test_to_categorical_matches_keras(keras_ref, labels, num_classes):
    ours = keras.utils.to_categorical(labels, num_classes)
    theirs = keras_ref.utils.to_categorical(labels, num_classes)
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)
    t = keras.utils.to_categorical(torch.tensor(labels), num_classes)
    assert isinstance(t, torch.Tensor) and t.dtype == torch.float32
    np.testing.assert_array_equal(t.numpy(), theirs)
    with pytest.raises(ValueError, match="class values"):
        keras.utils.to_categorical([0, 5], num_classes=3)


def test_normalize_matches_keras(keras_ref, rng):
    x = rng.normal(size=(4, 5))
    x[1] = 0
    np.testing.assert_allclose(keras.utils.normalize(x), keras_ref.utils.normalize(x), rtol=1e-6)
    np.testing.assert_allclose(keras.utils.normalize(torch.tensor(x)).numpy(), keras_ref.utils.normalize(x), rtol=1e-6)


@pytest.mark.parametrize("kwargs", [{}, {"maxlen": 3}, {"padding": "post"}, {"truncating": "post", "maxlen": 2},
                                    {"value": -1, "padding": "post", "maxlen": 5}, {"dtype": "float32"}])
def test_pad_sequences_matches_keras(keras_ref, kwargs):
    seqs = [[1, 2, 3], [4], [], [5, 6, 7, 8]]
    ours = keras.utils.pad_sequences(seqs, **kwargs)
    theirs = keras_ref.utils.pad_sequences(seqs, **kwargs)
    assert ours.dtype == theirs.dtype
    np.testing.assert_array_equal(ours, theirs)
    vectors = [np.ones((2, 3)), np.zeros((1, 3))]
    np.testing.assert_array_equal(keras.utils.pad_sequences(vectors, dtype="float32"),
                                  keras_ref.utils.pad_sequences(vectors, dtype="float32"))
    with pytest.raises(ValueError, match="Padding type"):
        keras.utils.pad_sequences(seqs, padding="middle")


def test_set_random_seed_makes_torch_and_numpy_reproducible():
    keras.utils.set_random_seed(7)
    a = (torch.rand(3), np.random.rand(3))
    keras.utils.set_random_seed(7)
    b = (torch.rand(3), np.random.rand(3))
    torch.testing.assert_close(a[0], b[0])
    np.testing.assert_array_equal(a[1], b[1])
    with pytest.raises(ValueError, match="integer"):
        keras.utils.set_random_seed(1.5)
