"""Random image augmentation layers: RandomFlip, RandomRotation, RandomZoom,
RandomTranslation, RandomCrop, RandomContrast, RandomBrightness.

Keras parity: inference-mode identity, and the deterministic
parameterisations (`factor=(x, x)`) compared exactly with real Keras in
training mode, for every fill mode, both interpolations and both data
formats. The random parts: seeded reproducibility, per-image independence
and the documented ranges."""

import numpy as np
import pytest
import torch

import kerasish as keras
from layer_harness import run_layer_test
from parity import assert_close

L = keras.layers


def _img(*shape, seed=0, scale=255.0):
    return torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * scale


def _keras(keras_ref, name, kwargs, x, training):
    return keras_ref.layers.__dict__[name](**kwargs)(x.numpy(), training=training)


def _same_config(keras_ref, name, kwargs, drop=("name",)):
    ours = getattr(L, name)(**kwargs).get_config()
    theirs = getattr(keras_ref.layers, name)(**kwargs).get_config()
    for key in drop:
        ours.pop(key, None), theirs.pop(key, None)
    assert ours == theirs, (ours, theirs)


LAYERS = [
    ("RandomFlip", {"mode": "horizontal"}),
    ("RandomRotation", {"factor": 0.2}),
    ("RandomZoom", {"height_factor": 0.2, "width_factor": (-0.1, 0.3)}),
    ("RandomTranslation", {"height_factor": 0.2, "width_factor": (-0.1, 0.3), "fill_mode": "constant"}),
    ("RandomContrast", {"factor": 0.3, "value_range": (0, 1)}),
    ("RandomBrightness", {"factor": 0.3, "value_range": (0, 1)}),
]


@pytest.mark.parametrize("name,kwargs", LAYERS + [("RandomCrop", {"height": 4, "width": 5})])
def test_harness_and_inference_identity(keras_ref, name, kwargs):
    shape = (2, 8, 8, 3)
    out_shape = (2, 4, 5, 3) if name == "RandomCrop" else shape
    run_layer_test(getattr(L, name), dict(kwargs, seed=3), input_shape=shape, expected_output_shape=out_shape,
                   expected_num_trainable_weights=0, expected_num_non_trainable_weights=0,
                   keras_parity=name != "RandomCrop")  # (its inference differs on purpose: see below)
    _same_config(keras_ref, name, dict(kwargs, seed=3))
    if name == "RandomCrop":
        return  # inference differs from Keras 3.15 on purpose: see test_random_crop_inference
    x = _img(*shape, scale=1.0)
    for data_format in ("channels_last", "channels_first"):
        kw = dict(kwargs, data_format=data_format)
        layer = getattr(L, name)(**kw)
        assert torch.equal(layer(x, training=False), x)  # inference: identity (Keras too)
        assert_close(layer(x, training=False), _keras(keras_ref, name, kw, x, training=False))
        assert layer(x[0]).shape == x[0].shape


@pytest.mark.parametrize("name,kwargs", LAYERS)
def test_training_mode_harness(name, kwargs):
    """Training mode compiles without graph breaks, backward and copies work."""
    run_layer_test(getattr(L, name), dict(kwargs, seed=5), input_shape=(2, 8, 8, 3),
                   expected_output_shape=(2, 8, 8, 3), training=True)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
@pytest.mark.parametrize("fill_mode", ["reflect", "wrap", "constant", "nearest"])
@pytest.mark.parametrize("interpolation", ["bilinear", "nearest"])
def test_affine_layers_match_keras_deterministic(keras_ref, data_format, fill_mode, interpolation):
    x = _img(2, 9, 7, 3, seed=1)
    if data_format == "channels_first":
        x = x.permute(0, 3, 1, 2).contiguous()
    common = {"fill_mode": fill_mode, "interpolation": interpolation, "data_format": data_format, "fill_value": 7.0}
    cases = [
        ("RandomRotation", {"factor": (0.1, 0.1)}),
        ("RandomRotation", {"factor": (-0.3, -0.3)}),
        ("RandomZoom", {"height_factor": (0.3, 0.3), "width_factor": (-0.2, -0.2)}),
        ("RandomZoom", {"height_factor": (0.4, 0.4)}),
        ("RandomTranslation", {"height_factor": (0.27, 0.27), "width_factor": (-0.35, -0.35)}),
    ]
    for name, kwargs in cases:
        kw = dict(kwargs, **common)
        ours = getattr(L, name)(**kw)(x, training=True)
        theirs = _keras(keras_ref, name, kw, x, training=True)
        assert (ours - x).abs().max() > 10  # the transform really moved pixels
        # same coordinates, same taps, same summation order as Keras's torch backend
        assert_close(ours, theirs, rtol=1e-4, atol=1e-3)  # 255-scale pixels: atol 1e-3 ~ 4e-6 relative


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_color_layers_match_keras_deterministic(keras_ref, data_format):
    x = _img(2, 6, 5, 3, seed=2)
    if data_format == "channels_first":
        x = x.permute(0, 3, 1, 2).contiguous()
    for name, kw in [("RandomContrast", {"factor": (-0.2, 0.2)}), ("RandomBrightness", {"factor": (0.1, 0.1)}),
                     ("RandomBrightness", {"factor": (-0.3, -0.3), "value_range": (0, 255)})]:
        kw = dict(kw, data_format=data_format) if name == "RandomContrast" else kw
        assert_close(getattr(L, name)(**kw)(x, training=True), _keras(keras_ref, name, kw, x, True), atol=1e-3)
    # the contrast factor is exactly 1.2 here: check against the maths as well
    y = L.RandomContrast((-0.2, 0.2), data_format=data_format)(x, training=True)
    axes = (2, 3) if data_format == "channels_first" else (1, 2)
    mean = x.double().mean(dim=axes, keepdim=True)
    np.testing.assert_allclose(y.double(), ((x.double() - mean) * 1.2 + mean).clamp(0, 255), rtol=1e-5, atol=1e-3)


def test_random_flip_outcomes_and_seed(keras_ref):
    x = _img(16, 5, 6, 2, seed=3)
    for mode, axes in [("horizontal", (2,)), ("vertical", (1,)), ("horizontal_and_vertical", (1, 2))]:
        layer = L.RandomFlip(mode, seed=7)
        y = layer(x, training=True)
        flipped = torch.flip(x, axes)
        is_id = (y == x).flatten(1).all(1)
        is_flip = (y == flipped).flatten(1).all(1)
        assert bool((is_id | is_flip).all())
        assert 0 < int(is_flip.sum()) < 16  # a draw per image
        assert torch.equal(L.RandomFlip(mode, seed=7)(x, training=True), y)  # same seed, same draws
        assert not torch.equal(layer(x, training=True), y)  # the generator advances
    cf = L.RandomFlip("horizontal", seed=1, data_format="channels_first")(x, training=True)
    assert bool(((cf == x) | (cf == torch.flip(x, (3,)))).flatten(1).all(1).all())


def test_random_ranges():
    x = _img(64, 4, 4, 3, seed=4, scale=0.5) + 0.25  # in [0.25, 0.75]: no clipping below
    y = L.RandomBrightness((-0.2, 0.1), value_range=(0, 1), seed=0)(x, training=True)
    delta = (y - x).flatten(1)
    assert torch.allclose(delta, delta[:, :1].expand_as(delta), atol=1e-6)  # one delta per image
    assert delta.min() >= -0.2 - 1e-6 and delta.max() <= 0.1 + 1e-6 and delta.std() > 0.01
    # RandomContrast(f): Keras 3 draws c in [1, 1 + f] (contrast only increases)
    y = L.RandomContrast(0.5, value_range=(-10, 10), seed=0)(x, training=True)
    mean = x.mean(dim=(1, 2), keepdim=True)
    c = ((y - mean) / (x - mean)).flatten(1)
    assert c.min() >= 1.0 - 1e-4 and c.max() <= 1.5 + 1e-4 and c[:, 0].std() > 0.05
    # RandomRotation with constant fill: corners of a rotated image get the fill value
    ones = torch.ones(8, 16, 16, 1)
    y = L.RandomRotation((0.1, 0.15), fill_mode="constant", seed=0)(ones, training=True)
    assert float(y[:, 0, 0, 0].max()) < 1.0


def test_random_crop(keras_ref):
    x = _img(3, 8, 10, 2, seed=5)
    layer = L.RandomCrop(4, 5, seed=2)
    y = layer(x, training=True)
    windows = [x[:, i:i + 4, j:j + 5] for i in range(5) for j in range(6)]
    assert any(torch.equal(y, w) for w in windows)  # one window for the whole batch, as Keras
    assert torch.equal(L.RandomCrop(4, 5, seed=2)(x, training=True), y)
    # training on an input not larger than the target: Keras's deterministic path
    small = _img(2, 4, 6, 3, seed=6)
    for kw in ({"height": 5, "width": 5}, {"height": 4, "width": 3}, {"height": 6, "width": 8}):
        assert_close(L.RandomCrop(**kw)(small, training=True), _keras(keras_ref, "RandomCrop", kw, small, True),
                     atol=1e-3)
    # inference: the documented behaviour, the largest centred window with the
    # target aspect ratio resized to the target (Keras's resize(crop_to_aspect_ratio=True))
    theirs = keras_ref.ops.image.resize(x.numpy(), (4, 5), crop_to_aspect_ratio=True)
    assert_close(layer(x, training=False), theirs, atol=1e-3)
    cf = L.RandomCrop(4, 5, data_format="channels_first")(x.permute(0, 3, 1, 2), training=False)
    assert_close(cf.permute(0, 2, 3, 1), theirs, atol=1e-3)


def test_bad_arguments():
    with pytest.raises(ValueError, match="factor"):
        L.RandomRotation(1.5)
    with pytest.raises(ValueError, match="factor"):
        L.RandomRotation((0.1, 0.2, 0.3))
    with pytest.raises(NotImplementedError, match="fill_mode"):
        L.RandomZoom(0.1, fill_mode="mirror-ish")
    with pytest.raises(NotImplementedError, match="interpolation"):
        L.RandomTranslation(0.1, 0.1, interpolation="bicubic")
    with pytest.raises(ValueError, match="height_factor"):
        L.RandomZoom(-1.0)
    with pytest.raises(ValueError, match="mode"):
        L.RandomFlip("diagonal")
    with pytest.raises(ValueError, match="value_range"):
        L.RandomBrightness(0.1, value_range=5)
    with pytest.raises(ValueError, match="height"):
        L.RandomCrop(0, 3)
    with pytest.raises(ValueError, match="rank 3"):
        L.RandomFlip()(torch.rand(2, 3))
    with pytest.raises(ValueError, match="seed"):
        L.RandomFlip(seed="abc")
