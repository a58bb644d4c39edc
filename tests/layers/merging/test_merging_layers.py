"""Merging layers: Add, Subtract, Multiply, Average, Maximum, Minimum,
Concatenate, Dot, and their functional forms."""

import numpy as np
import pytest
import torch

import kerasish as keras
from layer_harness import run_layer_test
from parity import assert_close
from parity import assert_keras_parity
from parity import to_numpy

L = keras.layers
ELEMENTWISE = ["Add", "Subtract", "Multiply", "Average", "Maximum", "Minimum"]


def _x(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _config_matches(ours, theirs):
    a, b = ours.get_config(), theirs.get_config()
    a.pop("name"), b.pop("name")
    assert a == b


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_harness_and_parity(keras_ref, name):
    cls = getattr(L, name)
    run_layer_test(cls, {}, input_shape=[(2, 3, 4), (2, 3, 4)], expected_output_shape=(2, 3, 4))
    inputs = [_x(2, 3, 4), _x(2, 3, 4, seed=1)]
    ours, theirs = assert_keras_parity(keras_ref, name, {}, inputs)
    _config_matches(ours, theirs)
    assert ours.compute_output_shape([(None, 3, 4), (None, 3, 4)]) == (None, 3, 4)
    # broadcasting after the batch axis, and inputs of different ranks
    assert_keras_parity(keras_ref, name, {}, [_x(2, 3, 4), _x(2, 1, 4, seed=1)])
    assert_keras_parity(keras_ref, name, {}, [_x(2, 3, 4), _x(2, 4, seed=1)])
    # functional form builds the layer and calls it
    fn = getattr(L, name.lower())
    assert_close(fn(inputs), ours(inputs))


@pytest.mark.parametrize("name", ["Add", "Multiply", "Average", "Maximum", "Minimum"])
def test_elementwise_three_inputs(keras_ref, name):
    assert_keras_parity(keras_ref, name, {}, [_x(2, 5), _x(2, 5, seed=1), _x(2, 5, seed=2)])


def _masked(x, mask):
    x._keras_mask = mask
    return x


@pytest.mark.parametrize("name", ELEMENTWISE)
def test_elementwise_masks_match_keras(keras_ref, name):
    """Masked values and the output mask (OR of the masks), as Keras 3 computes them."""
    from keras.src import backend as kbackend

    m1 = torch.tensor([[True, False, True], [False, False, True]])
    m2 = torch.tensor([[True, True, False], [False, True, True]])
    a, b = _x(2, 3, 4), _x(2, 3, 4, seed=1)
    ours = getattr(L, name)()([_masked(a.clone(), m1), _masked(b.clone(), m2)])
    ka, kb = a.clone(), b.clone()
    kbackend.set_keras_mask(ka, m1)
    kbackend.set_keras_mask(kb, m2)
    theirs = getattr(keras_ref.layers, name)()([ka, kb])
    np.testing.assert_allclose(to_numpy(ours), to_numpy(theirs), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ours._keras_mask.numpy(), to_numpy(kbackend.get_keras_mask(theirs)))
    assert ours._keras_mask.tolist() == (m1 | m2).tolist()
    # one unmasked input: no output mask
    assert getattr(getattr(L, name)()([_masked(a.clone(), m1), b.clone()]), "_keras_mask", None) is None


def test_elementwise_errors():
    with pytest.raises(ValueError, match=r"Inputs have incompatible shapes. Received shapes \(3, 4\) and \(3, 5\)"):
        L.Add()([torch.ones(2, 3, 4), torch.ones(2, 3, 5)])
    with pytest.raises(ValueError, match="Cannot merge tensors with different batch sizes"):
        L.Add()([torch.ones(2, 3), torch.ones(3, 3)])
    with pytest.raises(ValueError, match="should be called on a list of inputs"):
        L.Add()(torch.ones(2, 3))
    with pytest.raises(ValueError, match="exactly 2 inputs"):
        L.Subtract()([torch.ones(2, 3)] * 3)


@pytest.mark.parametrize("axis, shapes", [(-1, [(2, 3, 4), (2, 3, 2)]), (1, [(2, 3, 4), (2, 1, 4), (2, 2, 4)])])
def test_concatenate(keras_ref, axis, shapes):
    run_layer_test(L.Concatenate, {"axis": axis}, input_shape=shapes)
    inputs = [_x(*s, seed=i) for i, s in enumerate(shapes)]
    ours, theirs = assert_keras_parity(keras_ref, "Concatenate", {"axis": axis}, inputs)
    _config_matches(ours, theirs)
    none_batch = [(None, *s[1:]) for s in shapes]
    assert ours.compute_output_shape(none_batch) == tuple(theirs.compute_output_shape(none_batch))
    assert_close(L.concatenate(inputs, axis=axis), ours(inputs))


@pytest.mark.parametrize("axis", [-1, 1])
def test_concatenate_masks_match_keras(keras_ref, axis):
    from keras.src import backend as kbackend

    m1 = torch.tensor([[True, False, True], [False, False, True]])
    a, b = _x(2, 3, 4), _x(2, 3, 2, seed=1) if axis == -1 else _x(2, 3, 4, seed=1)
    ours = L.Concatenate(axis=axis)([_masked(a.clone(), m1), b.clone()])
    ka = a.clone()
    kbackend.set_keras_mask(ka, m1)
    theirs = keras_ref.layers.Concatenate(axis=axis)([ka, b.clone()])
    np.testing.assert_array_equal(ours._keras_mask.numpy(), to_numpy(kbackend.get_keras_mask(theirs)))


def test_concatenate_errors():
    with pytest.raises(ValueError, match="requires inputs with matching shapes except for the concatenation axis"):
        L.Concatenate()([torch.ones(2, 3, 4), torch.ones(2, 5, 4)])
    with pytest.raises(ValueError, match="should be called on a list of at least 1 input"):
        L.Concatenate()(torch.ones(2, 3))


DOT_CASES = [
    ({"axes": 1}, [(2, 5), (2, 5)]),
    ({"axes": -1, "normalize": True}, [(2, 3, 4), (2, 5, 4)]),
    ({"axes": (1, 2)}, [(2, 4, 3), (2, 5, 4)]),
    ({"axes": [2, 1]}, [(2, 3, 4), (2, 4)]),
    ({"axes": (1, 1)}, [(2, 3, 4, 2), (2, 3, 5)]),
]


@pytest.mark.parametrize("kwargs, shapes", DOT_CASES)
def test_dot(keras_ref, kwargs, shapes):
    run_layer_test(L.Dot, kwargs, input_shape=shapes)
    inputs = [_x(*s, seed=i) for i, s in enumerate(shapes)]
    ours, theirs = assert_keras_parity(keras_ref, "Dot", kwargs, inputs)
    _config_matches(ours, theirs)
    none_batch = [(None, *s[1:]) for s in shapes]
    assert ours.compute_output_shape(none_batch) == tuple(theirs.compute_output_shape(none_batch))
    assert tuple(ours(inputs).shape) == ours.compute_output_shape(shapes)
    assert_close(L.dot(inputs, **kwargs), ours(inputs))


def test_dot_errors():
    with pytest.raises(TypeError, match="Invalid type for argument `axes`"):
        L.Dot(axes="1")
    with pytest.raises(ValueError, match="it should contain two elements"):
        L.Dot(axes=(1, 2, 3))
    with pytest.raises(ValueError, match="list elements should be integers"):
        L.Dot(axes=(1, 2.0))
    with pytest.raises(ValueError, match=r"Incompatible input shapes: axis values 3 \(at axis 1\) != 4"):
        L.Dot(axes=1)([torch.ones(2, 3), torch.ones(2, 4)])
    with pytest.raises(ValueError, match="should be called on a list of 2 inputs"):
        L.Dot(axes=1)([torch.ones(2, 3)] * 3)


@pytest.mark.parametrize("axes", [1, 2, (1, 2)])
def test_dot_normalize_is_bitwise_keras(keras_ref, axes):
    """`Dot(normalize=True)` uses Keras's `ops.normalize` formula (`x * rsqrt(max(sum(x^2), eps^2))`), not torch's
    `x / max(norm, eps)`, which differs in the last bit and shifts cosine-similarity losses."""
    rng = np.random.default_rng(0)
    a, b = (rng.standard_normal((64, 6, 6)).astype("float32") for _ in range(2))
    ours = keras.layers.Dot(axes=axes, normalize=True)([torch.tensor(a), torch.tensor(b)])
    theirs = keras_ref.layers.Dot(axes=axes, normalize=True)([a, b])
    np.testing.assert_array_equal(to_numpy(ours), to_numpy(theirs))
