"""keras.applications.InceptionResNetV2 against Keras 3 (torch backend), at its
minimum input (75x75), batch 2."""


import numpy as np
import pytest
import torch

import kerasish
import kerasish.applications as apps
from kerasish.applications import inception_resnet_v2 as ours_irv2
from tests.applications import test_apps2_efficientnet as helpers
from tests.applications.test_apps2_efficientnet import _assert_same_outputs, _images, _pair, _randomize, _to_numpy


@pytest.fixture(scope="module")
def irv2_top(keras_ref):
    theirs, ours = _pair(keras_ref, "InceptionResNetV2", include_top=True, input_shape=(75, 75, 3), classes=5)
    ours.set_weights(_randomize(theirs))
    return theirs, ours


def test_top_matches_keras(irv2_top):
    theirs, ours = irv2_top
    helpers._assert_same_model(theirs, ours)
    assert ours.get_layer("custom_scale_layer_39").get_config()["scale"] == 1.0  # block8_10, no activation
    x = apps.inception_resnet_v2.preprocess_input(_images((75, 75, 3)))
    _assert_same_outputs(theirs, ours, x)


def test_training_mode_matches_keras(irv2_top):
    """BatchNorm batch statistics (no random layer). At 75x75 the last stages are
    1x1, so batch 4 (statistics over 4 numbers; batch 2 amplifies float32
    rounding to ~1e-2); 1e-4 tolerance, as the other families' training tests."""
    theirs, ours = irv2_top
    x = apps.inception_resnet_v2.preprocess_input(_images((75, 75, 3), batch=4, seed=3))
    _assert_same_outputs(theirs, ours, x, training=True, rtol=1e-4, atol=1e-4)


def test_notop_weights_file_and_pooling(keras_ref, tmp_path):
    keras_ref.backend.clear_session()
    theirs = keras_ref.applications.InceptionResNetV2(include_top=False, weights=None, pooling="avg")
    _randomize(theirs, seed=1)
    path = str(tmp_path / "irv2.weights.h5")
    theirs.save_weights(path)
    kerasish.backend.clear_session()
    ours = apps.InceptionResNetV2(include_top=False, weights=path, pooling="avg")
    assert ours.output.shape == theirs.output.shape == (None, 1536)
    assert ours.layers[-1].name == theirs.layers[-1].name  # Keras's unnamed pooling here
    x = apps.inception_resnet_v2.preprocess_input(_images((80, 90, 3), seed=1))
    _assert_same_outputs(theirs, ours, x)


def test_custom_scale_layer_and_block_errors(keras_ref):
    from keras.src.applications import inception_resnet_v2 as theirs_irv2

    layer = ours_irv2.CustomScaleLayer(0.3, name="s")
    a, b = torch.rand(2, 3), torch.rand(2, 3)
    np.testing.assert_allclose(_to_numpy(layer([a, b])), _to_numpy(a + 0.3 * b), rtol=1e-6)
    assert layer.get_config() == theirs_irv2.CustomScaleLayer(0.3, name="s").get_config()
    x = kerasish.Input((8, 8, 16))
    with pytest.raises(ValueError, match='Expects "block35", "block17" or "block8", but got: block9'):
        ours_irv2.inception_resnet_block(x, 0.1, "block9", 1)


_BAD_CALLS = [
    dict(weights="no_such_file.h5"),
    dict(weights="imagenet", classes=10),
    dict(weights=None, include_top=False, input_shape=(74, 100, 3)),
    dict(weights="imagenet", include_top=True, input_shape=(224, 224, 3)),
]


@pytest.mark.parametrize("kwargs", _BAD_CALLS, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_argument_errors_match_keras(keras_ref, kwargs):
    with pytest.raises(ValueError) as theirs:
        keras_ref.applications.InceptionResNetV2(**kwargs)
    with pytest.raises(ValueError) as ours:
        apps.InceptionResNetV2(**kwargs)
    assert str(ours.value) == str(theirs.value) or str(ours.value).startswith(
        str(theirs.value) + " Received: weights=")


def test_preprocess_input_matches_keras(keras_ref):
    x = _images((6, 5, 3), seed=4)
    expected = keras_ref.applications.inception_resnet_v2.preprocess_input(x.copy())
    np.testing.assert_allclose(apps.inception_resnet_v2.preprocess_input(x.copy()), expected, rtol=1e-6)
    np.testing.assert_allclose(_to_numpy(apps.inception_resnet_v2.preprocess_input(torch.as_tensor(x))), expected,
                               rtol=1e-6)
