"""keras.applications.EfficientNetV2 (B0-B3, S, M, L) against Keras 3 (torch backend).

V2-B0 is built and run (32x32, batch 2); the other variants are checked by
the arguments they pass to the shared `EfficientNetV2` builder (recorded on
both sides; building S/M/L costs 10-60 s a side) and by their stage tables.
"""

import numpy as np
import pytest

import kerasish
import kerasish.applications as apps
from kerasish.applications import efficientnet_v2 as ours_v2
from tests.applications.test_apps2_efficientnet import (
    _assert_same_model, _assert_same_outputs, _captured_args, _images, _pair, _randomize, _to_numpy,
)


def test_v2b0_top_matches_keras(keras_ref):
    theirs, ours = _pair(keras_ref, "EfficientNetV2B0", include_top=True, input_shape=(32, 32, 3), classes=5)
    _assert_same_model(theirs, ours)
    # B variants: Rescaling(1/255) + Normalization(ImageNet mean, variance); the first block has no Dropout
    assert [layer.__class__.__name__ for layer in ours.layers[1:3]] == ["Rescaling", "Normalization"]
    assert [layer.name for layer in ours.layers if layer.name.endswith("drop")][0] == "block2b_drop"
    ours.set_weights(_randomize(theirs))
    _assert_same_outputs(theirs, ours, _images())


def test_v2b0_one_channel_preprocessing_matches_keras(keras_ref):
    """A 1-channel input takes Keras's other preprocessing branch (Rescaling(1/128, offset=-1),
    the S/M/L one), with max pooling."""
    theirs, ours = _pair(keras_ref, "EfficientNetV2B0", include_top=False, input_shape=(32, 32, 1), pooling="max")
    _assert_same_model(theirs, ours)
    assert ours.layers[1].get_config()["offset"] == -1
    ours.set_weights(_randomize(theirs, seed=1))
    _assert_same_outputs(theirs, ours, _images((32, 32, 1), seed=1))


def test_v2b0_without_preprocessing_and_weights_file(keras_ref, tmp_path):
    theirs, ours = _pair(keras_ref, "EfficientNetV2B0", include_top=False, include_preprocessing=False)
    _assert_same_model(theirs, ours)
    assert ours.layers[1].name == "stem_conv"
    _randomize(theirs, seed=2)
    path = str(tmp_path / "v2b0.weights.h5")
    theirs.save_weights(path)
    kerasish.backend.clear_session()
    ours = apps.EfficientNetV2B0(include_top=False, include_preprocessing=False, weights=path, pooling="avg")
    x = _images((40, 36, 3), seed=2) / 255.0
    expected = _to_numpy(theirs(x))
    np.testing.assert_allclose(_to_numpy(ours(x)), expected.mean(axis=(1, 2)), rtol=1e-5,
                               atol=1e-6 * np.abs(expected).max())


def test_v2_training_mode_matches_keras(keras_ref):
    """training=True with the random layers off (dropout_rate=0, drop_connect_rate=0):
    batch statistics (momentum 0.9) equal Keras's; 64x64, batch 4 and a 1e-4
    tolerance for the reasons given in test_apps2_efficientnet's training test.
    The Dropout-based stochastic depth is compared by config only."""
    from keras.src.applications import efficientnet_v2 as theirs_v2

    kwargs = dict(width_coefficient=1.0, depth_coefficient=1.0, default_size=224, dropout_rate=0.0,
                  drop_connect_rate=0.0, include_top=True, input_shape=(64, 64, 3), classes=7,
                  name="efficientnetv2-b0", classifier_activation=None)
    theirs, ours = _pair(keras_ref, "EfficientNetV2", module=(theirs_v2, ours_v2), **kwargs)
    _assert_same_model(theirs, ours)
    assert not any("drop" in layer.name for layer in ours.layers)
    ours.set_weights(_randomize(theirs, seed=3))
    _assert_same_outputs(theirs, ours, _images((64, 64, 3), batch=4, seed=3), training=True, rtol=1e-4, atol=1e-4)
    for w_ours, w_theirs in zip(ours.weights, theirs.weights):
        np.testing.assert_allclose(_to_numpy(w_ours.value), np.asarray(w_theirs.numpy()), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("variant", ["B0", "B1", "B2", "B3", "S", "M", "L"])
def test_variants_pass_keras_arguments(keras_ref, monkeypatch, variant):
    from keras.src.applications import efficientnet_v2 as theirs_v2

    kwargs = dict(include_top=False, weights=None, input_shape=(40, 40, 3), pooling="avg", classes=3,
                  classifier_activation=None, include_preprocessing=False)
    fn = f"EfficientNetV2{variant}"
    theirs = _captured_args(monkeypatch, theirs_v2, "EfficientNetV2", getattr(theirs_v2, fn), **kwargs)
    ours = _captured_args(monkeypatch, ours_v2, "EfficientNetV2", getattr(ours_v2, fn), **kwargs)
    assert ours == theirs
    name = ours["kwargs"]["name"]
    assert ours_v2.DEFAULT_BLOCKS_ARGS[name] == theirs_v2.DEFAULT_BLOCKS_ARGS[name]


_BAD_CALLS = [
    dict(weights="no_such_file.h5"),
    dict(weights="imagenet", classes=10),
    dict(weights=None, include_top=False, input_shape=(16, 40, 3)),
    dict(weights="imagenet", include_top=True, input_shape=(64, 64, 3)),
    dict(weights=None, include_top=True, input_shape=(None, 64, 3)),
]


@pytest.mark.parametrize("kwargs", _BAD_CALLS, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_argument_errors_match_keras(keras_ref, kwargs):
    with pytest.raises(ValueError) as theirs:
        keras_ref.applications.EfficientNetV2B0(**kwargs)
    with pytest.raises(ValueError) as ours:
        apps.EfficientNetV2B0(**kwargs)
    assert str(ours.value) == str(theirs.value)


def test_custom_name_needs_blocks_args_as_in_keras(keras_ref):
    with pytest.raises(KeyError):
        keras_ref.applications.EfficientNetV2B0(weights=None, name="mine")
    with pytest.raises(KeyError):
        apps.EfficientNetV2B0(weights=None, name="mine")


def test_preprocess_input_is_a_pass_through():
    x = _images()
    assert apps.efficientnet_v2.preprocess_input(x) is x
