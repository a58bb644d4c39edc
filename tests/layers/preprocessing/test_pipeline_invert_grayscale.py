"""Pipeline, RandomInvert, RandomGrayscale: harness, Keras parity
(inference identity and the deterministic parameterisations, in training
mode), seeded draws, config, errors."""

import numpy as np
import pytest
import torch

import kerasish as keras
from layer_harness import run_layer_test
from parity import assert_close

L = keras.layers


def _img(*shape, seed=0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 255


@pytest.mark.parametrize("name,kwargs", [("RandomInvert", {"factor": 0.5}), ("RandomGrayscale", {"factor": 0.5})])
def test_harness_and_config(keras_ref, name, kwargs):
    for training in (False, True):
        run_layer_test(getattr(L, name), dict(kwargs, seed=1), input_shape=(2, 5, 5, 3),
                       expected_output_shape=(2, 5, 5, 3), training=training)
    ours = getattr(L, name)(**kwargs, seed=1).get_config()
    theirs = getattr(keras_ref.layers, name)(**kwargs, seed=1).get_config()
    ours.pop("name"), theirs.pop("name")
    if name == "RandomGrayscale":  # Keras 3.15 leaves `seed` out of this config; kerasish keeps it
        assert ours.pop("seed") == 1 and "seed" not in theirs
    assert ours == theirs


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_deterministic_parity(keras_ref, data_format):
    x = _img(3, 4, 5, 3, seed=2)
    if data_format == "channels_first":
        x = x.permute(0, 3, 1, 2).contiguous()
    for name, kw in [("RandomInvert", {"factor": (1, 1)}), ("RandomInvert", {"factor": (1, 1), "value_range": (0, 300)}),
                     ("RandomGrayscale", {"factor": 1.0})]:
        kw = dict(kw, data_format=data_format)
        ours = getattr(L, name)(**kw)
        theirs = getattr(keras_ref.layers, name)(**kw)
        assert_close(ours(x, training=True), theirs(x.numpy(), training=True), atol=1e-3)
        assert torch.equal(ours(x, training=False), x)
        assert_close(ours(x, training=False), theirs(x.numpy(), training=False))
    gray = L.RandomGrayscale(factor=1.0, data_format=data_format)(x, training=True)
    axis = 1 if data_format == "channels_first" else -1
    w = torch.tensor([0.2989, 0.587, 0.114]).view([-1 if i == (axis % 4) else 1 for i in range(4)])
    assert_close(gray, (x * w).sum(axis, keepdim=True).expand_as(x), atol=1e-3)  # luma, on every channel


def test_random_draws():
    x = _img(64, 2, 2, 3, seed=3)
    inverted = L.RandomInvert(factor=1.0, seed=0)(x, training=True)
    flipped = (inverted == 255 - x).flatten(1).all(1)
    kept = (inverted == x).flatten(1).all(1)
    assert bool((flipped | kept).all())
    # Keras's rule: p ~ U(0, 1), invert when U(0, 1) < p, i.e. half of the images
    assert 16 <= int(flipped.sum()) <= 48
    assert torch.equal(L.RandomInvert(factor=1.0, seed=0)(x, training=True), inverted)
    gray = L.RandomGrayscale(factor=0.5, seed=0)(x, training=True)
    is_gray = (gray[..., 0] == gray[..., 1]).flatten(1).all(1) & (gray[..., 1] == gray[..., 2]).flatten(1).all(1)
    assert 12 <= int(is_gray.sum()) <= 52
    assert torch.equal(L.RandomGrayscale(factor=0.0)(x, training=True), x)


def test_pipeline(keras_ref):
    x = _img(2, 6, 6, 3, seed=4) / 255
    layers = [L.RandomFlip("horizontal", seed=1), L.Rescaling(2.0), L.Conv2D(4, 3)]
    pipe = L.Pipeline(layers)
    y = pipe(x, training=False)
    assert y.shape == (2, 4, 4, 4) and pipe.compute_output_shape((None, 6, 6, 3)) == (None, 4, 4, 4)
    assert_close(y, layers[2](layers[1](x)))  # inference: the flip is inactive
    assert [w.path for w in pipe.weights] == ["pipeline/conv2d/kernel", "pipeline/conv2d/bias"]
    assert list(pipe.state_dict()) == ["pipeline_layers.2.kernel", "pipeline_layers.2.bias"]
    flipped = pipe(x, training=True)  # training reaches the flip
    both = [layers[2](layers[1](v)) for v in (x, torch.flip(x, (2,)))]
    for i in range(2):
        assert any(torch.allclose(flipped[i], b[i], atol=1e-5) for b in both)
    config = pipe.get_config()
    theirs = keras_ref.layers.Pipeline([keras_ref.layers.Rescaling(2.0)]).get_config()
    assert set(config) == set(theirs)
    clone = L.Pipeline.from_config(config)
    assert [type(v) for v in clone.layers] == [type(v) for v in layers]
    clone(x)
    clone.set_weights(pipe.get_weights())
    assert_close(clone(x, training=False), y)
    with pytest.raises(ValueError, match="list of layers"):
        L.Pipeline([lambda t: t])
    with pytest.raises(ValueError, match="factor"):
        L.RandomGrayscale(factor=1.5)
    with pytest.raises(ValueError, match="channel"):
        L.RandomGrayscale(factor=1.0)(torch.rand(1, 3, 3, 2), training=True)
