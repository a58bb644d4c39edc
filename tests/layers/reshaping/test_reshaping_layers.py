"""Reshaping layers: Flatten, Reshape, Permute, RepeatVector, ZeroPadding1D/2D/3D,
Cropping1D/2D/3D, UpSampling1D/2D/3D, checked with the harness and against Keras."""

import numpy as np
import pytest
import torch

import kerasish as keras
from layer_harness import run_layer_test
from parity import assert_keras_parity

L = keras.layers


def _x(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _same_config(keras_ref, name, kwargs):
    ours = getattr(L, name)(**kwargs).get_config()
    theirs = getattr(keras_ref.layers, name)(**kwargs).get_config()
    ours.pop("name"), theirs.pop("name")
    assert ours == theirs, (ours, theirs)


CF = {"data_format": "channels_first"}

CASES = [
    ("Flatten", {}, (2, 3, 4), (2, 12)),
    ("Flatten", CF, (2, 3, 4, 5), (2, 60)),
    ("Flatten", {}, (3,), (3, 1)),
    ("Reshape", {"target_shape": (3, -1)}, (2, 12), (2, 3, 4)),
    ("Reshape", {"target_shape": (2, 3, 2)}, (2, 3, 4), (2, 2, 3, 2)),
    ("Permute", {"dims": (2, 1)}, (2, 3, 4), (2, 4, 3)),
    ("Permute", {"dims": (3, 1, 2)}, (2, 3, 4, 5), (2, 5, 3, 4)),
    ("RepeatVector", {"n": 3}, (2, 4), (2, 3, 4)),
    ("ZeroPadding1D", {"padding": (1, 2)}, (2, 3, 4), (2, 6, 4)),
    ("ZeroPadding1D", {"padding": 2, **CF}, (2, 3, 4), (2, 3, 8)),
    ("ZeroPadding2D", {"padding": ((1, 0), (2, 3))}, (2, 3, 4, 2), (2, 4, 9, 2)),
    ("ZeroPadding2D", {"padding": (1, 2), **CF}, (2, 2, 3, 4), (2, 2, 5, 8)),
    ("ZeroPadding3D", {"padding": 1}, (1, 2, 2, 2, 3), (1, 4, 4, 4, 3)),
    ("ZeroPadding3D", {"padding": ((0, 1), (1, 0), (2, 2)), **CF}, (1, 3, 2, 2, 2), (1, 3, 3, 3, 6)),
    ("Cropping1D", {"cropping": (1, 2)}, (2, 6, 3), (2, 3, 3)),
    ("Cropping1D", {"cropping": 0}, (2, 6, 3), (2, 6, 3)),
    ("Cropping2D", {"cropping": ((1, 0), (2, 1))}, (2, 5, 6, 3), (2, 4, 3, 3)),
    ("Cropping2D", {"cropping": 1, **CF}, (2, 3, 5, 6), (2, 3, 3, 4)),
    ("Cropping3D", {"cropping": 1}, (1, 4, 4, 4, 2), (1, 2, 2, 2, 2)),
    ("Cropping3D", {"cropping": ((0, 1), (1, 1), (2, 0)), **CF}, (1, 2, 4, 5, 6), (1, 2, 3, 3, 4)),
    ("UpSampling1D", {"size": 3}, (2, 4, 3), (2, 12, 3)),
    ("UpSampling2D", {"size": (2, 3)}, (2, 3, 4, 2), (2, 6, 12, 2)),
    ("UpSampling2D", {"size": 2, **CF}, (2, 2, 3, 4), (2, 2, 6, 8)),
    ("UpSampling2D", {"size": (2, 3), "interpolation": "bilinear"}, (2, 3, 4, 2), (2, 6, 12, 2)),
    ("UpSampling2D", {"size": 3, "interpolation": "bilinear", **CF}, (2, 2, 3, 4), (2, 2, 9, 12)),
    ("UpSampling2D", {"size": (2, 2), "interpolation": "bicubic"}, (1, 3, 4, 2), (1, 6, 8, 2)),
    ("UpSampling3D", {"size": (1, 2, 3)}, (1, 2, 3, 2, 2), (1, 2, 6, 6, 2)),
    ("UpSampling3D", {"size": 2, **CF}, (1, 2, 2, 3, 2), (1, 2, 4, 6, 4)),
]


@pytest.mark.parametrize("name,kwargs,shape,out_shape", CASES)
def test_harness(name, kwargs, shape, out_shape):
    run_layer_test(getattr(L, name), kwargs, input_shape=shape, expected_output_shape=out_shape,
                   expected_num_trainable_weights=0, expected_num_non_trainable_weights=0)


@pytest.mark.parametrize("name,kwargs,shape,out_shape", CASES)
def test_keras_parity_and_config(keras_ref, name, kwargs, shape, out_shape):
    x = _x(*shape)
    ours, theirs = assert_keras_parity(keras_ref, name, kwargs, x)
    assert tuple(ours.compute_output_shape(shape)) == tuple(theirs.compute_output_shape(shape))
    _same_config(keras_ref, name, kwargs)


def test_output_shape_with_unknown_dims(keras_ref):
    for name, kwargs, shape in [
        ("Flatten", {}, (None, None, 4)),
        ("Reshape", {"target_shape": (-1, 2)}, (None, None, 4)),
        ("Reshape", {"target_shape": (-1, 2)}, (None, 3, 4)),
        ("ZeroPadding2D", {"padding": 1}, (None, None, 4, 3)),
        ("Cropping2D", {"cropping": 1}, (None, None, 4, 3)),
        ("UpSampling2D", {}, (None, None, 4, 3)),
    ]:
        ours = getattr(L, name)(**kwargs).compute_output_shape(shape)
        theirs = getattr(keras_ref.layers, name)(**kwargs).compute_output_shape(shape)
        assert tuple(ours) == tuple(theirs), (name, ours, theirs)


def test_flatten_channels_first_order_and_zero_batch(keras_ref):
    x = _x(2, 3, 4, 5)
    y = L.Flatten(data_format="channels_first")(x)
    torch.testing.assert_close(y, x.permute(0, 2, 3, 1).reshape(2, -1))
    theirs = keras_ref.layers.Flatten(data_format="channels_first")(x.numpy())
    np.testing.assert_array_equal(y.numpy(), keras_ref.ops.convert_to_numpy(theirs))  # real Keras 3's order
    empty = torch.zeros(0, 3, 4)
    for ours, ref in ((L.Flatten(), keras_ref.layers.Flatten()), (L.Reshape((-1, 2)), keras_ref.layers.Reshape((-1, 2)))):
        assert tuple(ours(empty).shape) == tuple(ref(empty).shape)
    assert L.Flatten()(empty).shape == (0, 12)
    assert L.Reshape((-1, 2))(empty).shape == (0, 6, 2)


def test_repeat_vector_output_is_writable_copy():
    x = _x(2, 3)
    y = L.RepeatVector(2)(x)
    y += 1  # would fail on an expanded view
    torch.testing.assert_close(y[:, 0], x + 1)


def test_masks_not_propagated_like_keras(keras_ref):
    for K in (keras_ref, keras):
        x = _x(2, 3, 4)
        x._keras_mask = torch.ones(2, 3, dtype=torch.bool)
        assert getattr(K.layers.Flatten()(x), "_keras_mask", None) is None, K.__name__


@pytest.mark.parametrize("cls,kwargs,err,match", [
    (L.Reshape, {"target_shape": (-1, -1)}, ValueError, r"at most one unknown dimension \(-1\)"),
    (L.Reshape, {"target_shape": (2, -3)}, ValueError, "must be a non-negative integer"),
    (L.Permute, {"dims": (1, 3)}, ValueError, "must be consecutive and start from 1"),
    (L.Permute, {"dims": (0, 1)}, ValueError, "Received dims="),
    (L.RepeatVector, {"n": 0}, ValueError, "Received: n=0"),
    (L.RepeatVector, {"n": 2.0}, TypeError, "Expected an integer value for `n`"),
    (L.Flatten, {"data_format": "bad"}, ValueError, "Received: data_format=bad"),
    (L.ZeroPadding1D, {"padding": (1, 2, 3)}, ValueError, "must be a tuple of 2 integers"),
    (L.ZeroPadding1D, {"padding": -1}, ValueError, "that do not satisfy `value >= 0`"),
    (L.ZeroPadding2D, {"padding": (1, 2, 3)}, ValueError, "should have two elements"),
    (L.ZeroPadding2D, {"padding": "same"}, ValueError, "should have two elements"),
    (L.ZeroPadding2D, {"padding": 1.5}, ValueError, "Received: padding=1.5"),
    (L.ZeroPadding3D, {"padding": (1, 2)}, ValueError, "should have 3 elements"),
    (L.Cropping1D, {"cropping": -1}, ValueError, "that do not satisfy `value >= 0`"),
    (L.Cropping2D, {"cropping": -1}, ValueError, "`cropping` cannot be negative"),
    (L.Cropping2D, {"cropping": ((1, -1), (0, 0))}, ValueError, "1st entry of cropping"),
    (L.Cropping3D, {"cropping": -2}, ValueError, "`cropping` cannot be negative"),
    (L.Cropping3D, {"cropping": (1, 1)}, ValueError, "should have 3 elements"),
    (L.UpSampling1D, {"size": 0}, ValueError, "Received: size=0"),
    (L.UpSampling1D, {"size": 1.5}, TypeError, "Expected an integer value for `size`"),
    (L.UpSampling2D, {"size": 0}, ValueError, "that do not satisfy `value > 0`"),
    (L.UpSampling2D, {"interpolation": "lanczos3"}, ValueError, "Received: interpolation=lanczos3"),
    (L.UpSampling3D, {"size": (1, 2)}, ValueError, "must be a tuple of 3 integers"),
])
def test_bad_arguments(cls, kwargs, err, match):
    with pytest.raises(err, match=match):
        cls(**kwargs)


def test_bad_inputs():
    with pytest.raises(ValueError, match="The total size of the tensor must be unchanged"):
        L.Reshape((5,))(torch.ones(2, 6))
    with pytest.raises(ValueError, match="cannot by divided"):
        L.Reshape((4, -1))(torch.ones(2, 6))
    with pytest.raises(ValueError, match="smaller than the corresponding spatial dimension"):
        L.Cropping2D(((2, 2), (0, 0)))(torch.ones(1, 4, 4, 1))
    with pytest.raises(ValueError, match="smaller than the input length"):
        L.Cropping1D((3, 3))(torch.ones(1, 6, 1))
    with pytest.raises(ValueError, match="ndim"):
        L.ZeroPadding2D()(torch.ones(1, 4, 4))
    with pytest.raises(ValueError, match="ndim"):
        L.Permute((2, 1))(torch.ones(1, 4, 4, 1))


def test_bilinear_upsampling_matches_keras_float64_and_int(keras_ref):
    x = np.arange(24, dtype="float64").reshape(1, 3, 4, 2)
    ours = L.UpSampling2D((2, 3), interpolation="bilinear", dtype="float64")(torch.as_tensor(x))
    theirs = keras_ref.layers.UpSampling2D((2, 3), interpolation="bilinear", dtype="float64")(x)
    np.testing.assert_allclose(ours.numpy(), theirs.detach().cpu().numpy(), rtol=1e-12)
