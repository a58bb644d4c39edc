"""keras.applications.ConvNeXt (Tiny ... XLarge) against Keras 3 (torch backend).

ConvNeXtTiny is built and run (32x32, batch 2). Small/Base/Large/XLarge
differ only in the depths/widths they pass to the shared `ConvNeXt` builder,
recorded on both sides (a build costs seconds).

One config difference is normalized (a kerasish-wide behaviour outside these
files, reported): Keras records `{"mask": None}` in the call kwargs of a nested
Sequential (kerasish: `{}`).
"""


import numpy as np
import pytest
import torch

import kerasish
import kerasish.applications as apps
from kerasish.applications import convnext as ours_convnext
from tests.applications import test_apps2_efficientnet as helpers
from tests.applications.test_apps2_efficientnet import (
    _assert_same_outputs, _captured_args, _images, _pair, _randomize, _to_numpy,
)


_without_rescaling_build = helpers._config_without_rescaling_build


def _normalized(config):
    config = _without_rescaling_build(config)
    for layer in config["layers"]:
        for node in layer.get("inbound_nodes", []):
            if layer["class_name"] == "Sequential" and node.get("kwargs") == {"mask": None}:
                node["kwargs"] = {}
    return config


def _assert_same_convnext(theirs, ours, monkeypatch):
    monkeypatch.setattr(helpers, "_config_without_rescaling_build", _normalized)
    helpers._assert_same_model(theirs, ours)


@pytest.fixture(scope="module")
def tiny_top(keras_ref):
    theirs, ours = _pair(keras_ref, "ConvNeXtTiny", include_top=True, input_shape=(32, 32, 3), classes=5)
    ours.set_weights(_randomize(theirs))
    return theirs, ours


def test_tiny_top_matches_keras(tiny_top, monkeypatch):
    theirs, ours = tiny_top
    _assert_same_convnext(theirs, ours, monkeypatch)
    assert ours.layers[1].name == "convnext_tiny_prestem_normalization"
    assert isinstance(ours.get_layer("convnext_tiny_stem"), kerasish.Sequential)
    assert ours.get_layer("convnext_tiny_stage_0_block_0_layer_scale").weights[0].path == (
        "convnext_tiny_stage_0_block_0_layer_scale/variable")
    x = _images()
    _assert_same_outputs(theirs, ours, x)
    # no random layer (drop_path_rate=0 -> linear Activation) and LayerNorm only: training is the same
    _assert_same_outputs(theirs, ours, x, training=True)


def test_tiny_config_round_trip(tiny_top):
    _, ours = tiny_top
    config = ours.get_config()
    clone = kerasish.Model.from_config(config)  # no custom_objects: LayerScale is found by its Keras module
    assert isinstance(clone.get_layer("convnext_tiny_stage_0_block_0_layer_scale"), ours_convnext.LayerScale)
    clone.set_weights(ours.get_weights())
    x = torch.as_tensor(_images(seed=1))
    np.testing.assert_allclose(_to_numpy(clone(x)), _to_numpy(ours(x)), rtol=1e-6, atol=1e-7)


def test_tiny_notop_no_preprocessing_and_weights_file(keras_ref, tmp_path, monkeypatch):
    theirs, ours = _pair(keras_ref, "ConvNeXtTiny", include_top=False, include_preprocessing=False, pooling="max")
    _assert_same_convnext(theirs, ours, monkeypatch)
    assert ours.layers[1].name == "convnext_tiny_stem"
    assert ours.layers[-2].__class__.__name__ == "GlobalMaxPooling2D"
    assert ours.layers[-1].__class__.__name__ == "LayerNormalization"  # Keras normalizes pooled features too
    _randomize(theirs, seed=2)
    path = str(tmp_path / "tiny.weights.h5")
    theirs.save_weights(path)
    kerasish.backend.clear_session()
    ours = apps.ConvNeXtTiny(include_top=False, include_preprocessing=False, pooling="max", weights=path)
    _assert_same_outputs(theirs, ours, _images((40, 36, 3), seed=2) / 255.0)


def test_stochastic_depth_and_layer_scale(keras_ref):
    """The two custom layers alone: StochasticDepth drops whole samples in training
    (kept ones scaled by 1/keep) and is the identity otherwise; LayerScale's weight,
    config and output equal Keras's."""
    from keras.src.applications import convnext as theirs_convnext

    layer = ours_convnext.StochasticDepth(0.5, name="sd")
    x = torch.rand(64, 3, 3, 2) + 1.0
    np.testing.assert_array_equal(_to_numpy(layer(x)), _to_numpy(x))
    y = _to_numpy(layer(x, training=True))
    ratio = y / _to_numpy(x)
    per_sample = ratio.reshape(64, -1)
    assert set(np.unique(np.round(per_sample, 5))) <= {0.0, 2.0}
    assert np.all(per_sample.min(axis=1) == per_sample.max(axis=1))  # one decision per sample
    assert 10 < (per_sample[:, 0] == 0).sum() < 54
    assert layer.get_config() == {**theirs_convnext.StochasticDepth(0.5, name="sd").get_config()}

    theirs = theirs_convnext.LayerScale(0.25, 4, name="ls")
    ours = ours_convnext.LayerScale(0.25, 4, name="ls")
    inputs = np.random.RandomState(0).normal(size=(2, 3, 4)).astype("float32")
    np.testing.assert_allclose(_to_numpy(ours(torch.as_tensor(inputs))), _to_numpy(theirs(inputs)), rtol=1e-6)
    assert ours.get_config() == theirs.get_config()
    assert [tuple(w.shape) for w in ours.trainable_weights] == [(4,)]


@pytest.mark.parametrize("variant", ["ConvNeXtSmall", "ConvNeXtBase", "ConvNeXtLarge", "ConvNeXtXLarge"])
def test_bigger_variants_pass_keras_configs(keras_ref, monkeypatch, variant):
    from keras.src.applications import convnext as theirs_convnext

    kwargs = dict(include_top=False, include_preprocessing=False, weights=None, input_shape=(40, 40, 3),
                  pooling="avg", classes=3, classifier_activation=None)
    theirs = _captured_args(monkeypatch, theirs_convnext, "ConvNeXt", getattr(theirs_convnext, variant), **kwargs)
    ours = _captured_args(monkeypatch, ours_convnext, "ConvNeXt", getattr(ours_convnext, variant), **kwargs)
    assert ours == theirs


_BAD_CALLS = [
    dict(weights="no_such_file.h5"),
    dict(weights="imagenet", classes=10),
    dict(weights=None, include_top=False, input_shape=(16, 40, 3)),
    dict(weights="imagenet", include_top=True, input_shape=(64, 64, 3)),
]


@pytest.mark.parametrize("kwargs", _BAD_CALLS, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_argument_errors_match_keras(keras_ref, kwargs):
    with pytest.raises(ValueError) as theirs:
        keras_ref.applications.ConvNeXtTiny(**kwargs)
    with pytest.raises(ValueError) as ours:
        apps.ConvNeXtTiny(**kwargs)
    assert str(ours.value) == str(theirs.value) or str(ours.value).startswith(
        str(theirs.value) + " Received: weights=")


def test_imagenet_name_check_matches_keras(keras_ref, tmp_path, monkeypatch):
    """With weights="imagenet" Keras checks the model name before looking for the file."""
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delattr(kerasish.utils, "get_file", raising=False)  # the cache-only path: no download
    kwargs = dict(include_top=False, weights="imagenet", input_shape=(32, 32, 3), name="mine")
    with pytest.raises(ValueError) as theirs:
        keras_ref.applications.ConvNeXtTiny(**kwargs)
    with pytest.raises(ValueError) as ours:
        apps.ConvNeXtTiny(**kwargs)
    assert str(ours.value) == str(theirs.value)
    with pytest.raises(FileNotFoundError, match="convnext_tiny_notop.h5"):
        apps.ConvNeXtTiny(include_top=False, input_shape=(32, 32, 3))


def test_channels_first_is_refused_as_keras(monkeypatch):
    from kerasish.backend import config

    monkeypatch.setattr(config, "_image_data_format", "channels_first")
    with pytest.raises(ValueError, match="ConvNeXt does not support the `channels_first` image data format"):
        apps.ConvNeXtTiny(weights=None)


def test_input_tensor_matches_keras(keras_ref, monkeypatch):
    """`input_tensor=` a tensor computed from the user's Input: the model takes that
    Input and includes the user's layers, as in Keras (the shared helper's path
    for the other families is the same `get_source_inputs`)."""
    models = []
    for lib, fn in ((keras_ref, keras_ref.applications.ConvNeXtTiny), (kerasish, apps.ConvNeXtTiny)):
        lib.backend.clear_session()
        inp = lib.Input((32, 32, 3), name="img")
        x = lib.layers.Rescaling(2.0, name="pre")(inp)
        models.append(fn(include_top=False, weights=None, input_tensor=x, pooling="avg"))
    theirs, ours = models
    _assert_same_convnext(theirs, ours, monkeypatch)
    assert [t.name for t in ours.inputs] == ["img"]
    assert [layer.name for layer in ours.layers[:3]] == ["img", "pre", "convnext_tiny_prestem_normalization"]
    ours.set_weights(_randomize(theirs, seed=5))
    _assert_same_outputs(theirs, ours, _images(seed=5) / 2.0)
