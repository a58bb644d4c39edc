"""Regularization layers: Dropout, SpatialDropout1D/2D/3D, GaussianNoise,
GaussianDropout, AlphaDropout, ActivityRegularization.

Inference mode is compared with Keras exactly; training mode is checked by
its statistics (random draws never match across frameworks)."""

import math

import numpy as np
import pytest
import torch

import kerasish as keras
from layer_harness import run_layer_test
from parity import assert_close
from parity import assert_keras_parity

L = keras.layers


def _x(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _same_config(keras_ref, name, kwargs):
    ours = getattr(L, name)(**kwargs).get_config()
    theirs = getattr(keras_ref.layers, name)(**kwargs).get_config()
    ours.pop("name"), theirs.pop("name")
    assert ours == theirs, (ours, theirs)


CASES = [
    ("Dropout", {"rate": 0.5}, (4, 6)),
    ("Dropout", {"rate": 0.3, "noise_shape": (None, 1, 5), "seed": 3}, (2, 3, 5)),
    ("SpatialDropout1D", {"rate": 0.4}, (2, 5, 3)),
    ("SpatialDropout2D", {"rate": 0.4, "data_format": "channels_first"}, (2, 3, 4, 4)),
    ("SpatialDropout3D", {"rate": 0.4, "seed": 1}, (1, 2, 2, 2, 3)),
    ("GaussianNoise", {"stddev": 0.2}, (3, 4)),
    ("GaussianDropout", {"rate": 0.2, "seed": 2}, (3, 4)),
    ("AlphaDropout", {"rate": 0.2}, (3, 4)),
    ("AlphaDropout", {"rate": 0.2, "noise_shape": (None, 1), "seed": 5}, (3, 4)),
    ("ActivityRegularization", {"l1": 0.1, "l2": 0.01}, (3, 4)),
]


@pytest.mark.parametrize("name,kwargs,shape", CASES)
def test_harness_inference_and_training(name, kwargs, shape):
    cls = getattr(L, name)
    # inference mode returns the input itself: dynamo records no graph at all
    # (explain() reports -1 breaks), so fullgraph compilation is checked below
    layer = run_layer_test(cls, kwargs, input_shape=shape, expected_output_shape=shape, check_compile=False,
                           expected_num_trainable_weights=0, expected_num_non_trainable_weights=0)
    x = _x(*shape)
    torch._dynamo.reset()
    compiled = torch.compile(layer, fullgraph=True, backend="eager")
    assert torch.equal(compiled(x), x)
    # training mode: shapes, config, copies and zero graph breaks under torch.compile
    run_layer_test(cls, kwargs, input_shape=shape, expected_output_shape=shape, training=True,
                   check_mixed_precision=False, check_output_shape_inference=False)


@pytest.mark.parametrize("name,kwargs,shape", CASES)
def test_keras_parity_inference_and_config(keras_ref, name, kwargs, shape):
    x = _x(*shape)
    ours, _ = assert_keras_parity(keras_ref, name, kwargs, x)
    assert torch.equal(ours(x), x)
    _same_config(keras_ref, name, kwargs)


def test_dropout_statistics_and_scaling():
    x = torch.ones(200, 500)
    y = L.Dropout(0.3)(x, training=True)
    dropped = (y == 0).float().mean().item()
    assert abs(dropped - 0.3) < 0.01
    kept = y[y != 0]
    torch.testing.assert_close(kept, torch.full_like(kept, 1 / 0.7))
    assert torch.equal(L.Dropout(1.0)(x, training=True), torch.zeros_like(x))
    assert torch.equal(L.Dropout(0.0)(x, training=True), x)


def test_dropout_noise_shape_broadcast_and_seed():
    x = torch.ones(8, 10, 6)
    layer = L.Dropout(0.5, noise_shape=(None, 1, 6), seed=7)
    y = layer(x, training=True)
    # the same mask at every timestep
    assert torch.equal(y, y[:, :1, :].expand_as(y))
    dropped = (y[:, 0] == 0).float().mean().item()
    assert 0.2 < dropped < 0.8
    # a seed makes results reproducible; successive calls differ
    twin = L.Dropout(0.5, noise_shape=(None, 1, 6), seed=7)
    assert torch.equal(twin(x, training=True), y)
    assert not torch.equal(layer(x, training=True), y)
    # seeded without noise_shape
    a = L.Dropout(0.5, seed=1)(torch.ones(50, 50), training=True)
    b = L.Dropout(0.5, seed=1)(torch.ones(50, 50), training=True)
    assert torch.equal(a, b)


def test_dropout_follows_module_training_and_masks():
    layer = L.Dropout(0.5)
    x = torch.ones(20, 20)
    assert torch.equal(layer(x), x)  # Keras layers start in inference mode
    layer.train()
    assert (layer(x) == 0).any()
    layer.eval()
    x._keras_mask = torch.ones(20, dtype=torch.bool)
    out = layer(x)
    assert out._keras_mask is x._keras_mask


@pytest.mark.parametrize("name,shape,kept_axes", [
    ("SpatialDropout1D", (16, 7, 12), (0, 2)),
    ("SpatialDropout2D", (16, 5, 5, 12), (0, 3)),
    ("SpatialDropout3D", (16, 3, 3, 3, 12), (0, 4)),
])
def test_spatial_dropout_drops_whole_channels(name, shape, kept_axes):
    for data_format, axes in (("channels_last", kept_axes), ("channels_first", (0, 1))):
        kwargs = {"rate": 0.5, "seed": 0}
        if name != "SpatialDropout1D":
            kwargs["data_format"] = data_format
        elif data_format == "channels_first":
            continue
        y = getattr(L, name)(**kwargs)(torch.ones(shape), training=True)
        # within each (sample, channel) map all values are equal
        other = tuple(i for i in range(len(shape)) if i not in axes)
        assert torch.equal(y.amax(dim=other), y.amin(dim=other))
        values = set(torch.unique(y).tolist())
        assert values <= {0.0, 2.0} and len(values) == 2


def test_gaussian_noise_and_dropout_statistics():
    x = torch.zeros(400, 500)
    y = L.GaussianNoise(0.5, seed=0)(x, training=True)
    assert abs(y.mean().item()) < 0.01 and abs(y.std().item() - 0.5) < 0.01
    ones = torch.ones(400, 500)
    y = L.GaussianDropout(0.2, seed=0)(ones, training=True)
    assert abs(y.mean().item() - 1) < 0.01
    assert abs(y.std().item() - math.sqrt(0.2 / 0.8)) < 0.01
    # seeded noise is reproducible
    assert torch.equal(L.GaussianNoise(0.5, seed=3)(x, training=True), L.GaussianNoise(0.5, seed=3)(x, training=True))


def test_alpha_dropout_matches_keras_formula(keras_ref):
    rate = 0.25
    x = _x(300, 400)
    y = L.AlphaDropout(rate, seed=0)(x, training=True)
    theirs = keras_ref.layers.AlphaDropout(rate, seed=0)(x.numpy(), training=True)
    theirs = theirs.detach().cpu().numpy()
    ours = y.numpy()
    # the value of dropped units and the affine map of kept ones are Keras's
    alpha_p = -1.6732632423543772 * 1.0507009873554805
    a = ((1 - rate) * (1 + rate * alpha_p**2)) ** -0.5
    b = -a * alpha_p * rate
    dropped_value = a * alpha_p + b
    for out in (ours, theirs):
        kept = ~np.isclose(out, dropped_value, atol=1e-6)
        np.testing.assert_allclose(out[kept], a * x.numpy()[kept] + b, rtol=1e-5, atol=1e-5)
        assert abs((~kept).mean() - rate) < 0.01
    # same output statistics as Keras (Keras's formula, whatever its moments)
    assert abs(ours.mean() - theirs.mean()) < 0.02 and abs(ours.std() - theirs.std()) < 0.02


def test_alpha_dropout_noise_shape():
    y = L.AlphaDropout(0.5, noise_shape=(None, 1), seed=0)(torch.ones(50, 8), training=True)
    assert torch.equal(y.amax(dim=1), y.amin(dim=1))


def test_activity_regularization_loss_matches_keras(keras_ref):
    x = _x(4, 5)
    ours = L.ActivityRegularization(l1=0.1, l2=0.2)
    theirs = keras_ref.layers.ActivityRegularization(l1=0.1, l2=0.2)
    assert torch.equal(ours(x), x)
    theirs(x.numpy())
    assert len(ours.losses) == 1 and len(theirs.losses) == 1
    assert_close(ours.losses[0], theirs.losses[0])
    expected = (0.1 * x.abs().sum() + 0.2 * x.square().sum()) / 4
    torch.testing.assert_close(ours.losses[0], expected)


def test_training_flag_compiles_without_breaks_and_uses_global_rng():
    layer = L.Dropout(0.5, seed=4)
    compiled = torch.compile(layer, fullgraph=True, backend="eager")
    y = compiled(torch.ones(30, 30), training=True)
    assert set(torch.unique(y).tolist()) == {0.0, 2.0}


@pytest.mark.parametrize("cls,kwargs,err,match", [
    (L.Dropout, {"rate": 1.5}, ValueError, "Expected a float value between 0 and 1. Received: rate=1.5"),
    (L.Dropout, {"rate": -0.1}, ValueError, "Received: rate=-0.1"),
    (L.Dropout, {"rate": 0.5, "noise_shape": "abc"}, ValueError, "Expected a tuple or list of integers"),
    (L.Dropout, {"rate": 0.5, "noise_shape": (None, 0)}, ValueError, "negative or zero value at index 1"),
    (L.Dropout, {"rate": 0.5, "noise_shape": (None, 1.5)}, ValueError, "integers or None"),
    (L.Dropout, {"rate": 0.5, "seed": "x"}, ValueError, "Received: seed=x"),
    (L.SpatialDropout2D, {"rate": 2}, ValueError, "Received: rate=2"),
    (L.SpatialDropout2D, {"rate": 0.1, "data_format": "nhwc"}, ValueError, "Received: data_format=nhwc"),
    (L.GaussianNoise, {"stddev": 1.5}, ValueError, "Received: stddev=1.5"),
    (L.GaussianDropout, {"rate": -1}, ValueError, "Received: rate=-1"),
    (L.AlphaDropout, {"rate": 1.01}, ValueError, "Received: rate=1.01"),
    (L.ActivityRegularization, {"l1": -1.0}, ValueError, "l1"),
    (L.Dropout, {"rate": 0.5, "foo": 1}, ValueError, "Unrecognized keyword arguments"),
])
def test_bad_arguments(cls, kwargs, err, match):
    with pytest.raises(err, match=match):
        cls(**kwargs)


def test_spatial_dropout_input_rank():
    with pytest.raises(ValueError, match="ndim"):
        L.SpatialDropout2D(0.5)(torch.ones(2, 3, 4))
