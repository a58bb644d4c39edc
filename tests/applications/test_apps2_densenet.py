"""keras.applications.DenseNet121/169/201 against Keras 3 (torch backend), and a
fine-tuning program (frozen DenseNet121 + a Dense head) equal to Keras's.

DenseNet121 is built and run; 169/201 differ only in the blocks they pass to
the shared `DenseNet` builder (recorded on both sides: a build costs seconds).
"""

import numpy as np
import pytest
import torch

import kerasish
import kerasish.applications as apps
from kerasish.applications import densenet as ours_densenet
from tests.applications.test_apps2_efficientnet import (
    _assert_same_model, _assert_same_outputs, _captured_args, _images, _pair, _randomize, _to_numpy,
)


@pytest.fixture(scope="module")
def d121_top(keras_ref):
    theirs, ours = _pair(keras_ref, "DenseNet121", include_top=True, input_shape=(32, 32, 3), classes=5)
    ours.set_weights(_randomize(theirs))
    return theirs, ours


def test_densenet121_top_matches_keras(d121_top):
    theirs, ours = d121_top
    _assert_same_model(theirs, ours)
    _assert_same_outputs(theirs, ours, _images())


def test_densenet121_notop_weights_file_pooling_and_training(keras_ref, tmp_path):
    """pooling=None / "max" from a Keras weights file; then training=True
    (BatchNorm batch statistics; DenseNet has no random layer) at 64x64, batch 4:
    at 32x32 the last stage is 1x1 and batch statistics over so few numbers
    amplify float32 rounding. 120 BatchNorms in training mode drift to ~1e-5
    relative; the training tolerance is 1e-4."""
    keras_ref.backend.clear_session()
    theirs = keras_ref.applications.DenseNet121(include_top=False, weights=None)
    path = str(tmp_path / "d121.weights.h5")
    _randomize(theirs, seed=1)
    theirs.save_weights(path)
    x = _images((40, 48, 3), seed=1)
    for pooling, reduce in ((None, None), ("max", np.max)):  # "avg": the top model's pooling
        kerasish.backend.clear_session()
        ours = apps.DenseNet121(include_top=False, weights=path, pooling=pooling)
        if pooling is None:
            _assert_same_model(theirs, ours)  # names, weights, counts, config (built after clear_session too)
            assert ours.output.shape == theirs.output.shape == (None, None, None, 1024)
            features = _assert_same_outputs(theirs, ours, x)
            from_file = ours
        else:
            assert ours.layers[-1].name == f"{pooling}_pool" and ours.output.shape == (None, 1024)
            np.testing.assert_allclose(_to_numpy(ours(torch.as_tensor(x))), reduce(features, axis=(1, 2)),
                                       rtol=1e-5, atol=1e-6 * np.abs(features).max())
    _assert_same_outputs(theirs, from_file, _images((64, 64, 3), batch=4, seed=3), training=True,
                         rtol=1e-4, atol=1e-4)
    for w_ours, w_theirs in zip(from_file.weights, theirs.weights):  # the moving statistics moved alike
        np.testing.assert_allclose(_to_numpy(w_ours.value), np.asarray(w_theirs.numpy()), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("variant", ["DenseNet169", "DenseNet201"])
def test_bigger_variants_pass_keras_blocks(keras_ref, monkeypatch, variant):
    from keras.src.applications import densenet as theirs_densenet

    kwargs = dict(include_top=False, weights=None, input_shape=(40, 40, 3), pooling="max", classes=3,
                  classifier_activation=None)
    theirs = _captured_args(monkeypatch, theirs_densenet, "DenseNet", getattr(theirs_densenet, variant), **kwargs)
    ours = _captured_args(monkeypatch, ours_densenet, "DenseNet", getattr(ours_densenet, variant), **kwargs)
    assert ours == theirs


_BAD_CALLS = [
    dict(weights="no_such_file.h5"),
    dict(weights="imagenet", classes=10),
    dict(weights=None, include_top=False, input_shape=(31, 40, 3)),
    dict(weights="imagenet", include_top=True, input_shape=(32, 32, 3)),
]


@pytest.mark.parametrize("kwargs", _BAD_CALLS, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_argument_errors_match_keras(keras_ref, kwargs):
    with pytest.raises(ValueError) as theirs:
        keras_ref.applications.DenseNet121(**kwargs)
    with pytest.raises(ValueError) as ours:
        apps.DenseNet121(**kwargs)
    assert str(ours.value) == str(theirs.value) or str(ours.value).startswith(
        str(theirs.value) + " Received: weights=")


def test_channels_first_is_refused_as_keras(keras_ref, monkeypatch):
    from kerasish.backend import config

    monkeypatch.setattr(config, "_image_data_format", "channels_first")
    with pytest.raises(ValueError, match="DenseNet does not support the `channels_first` image data format"):
        apps.DenseNet121(weights=None)


@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_preprocess_input_matches_keras(keras_ref, data_format):
    x = _images((5, 4, 3), batch=2, seed=9)
    if data_format == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    expected = keras_ref.applications.densenet.preprocess_input(x.copy(), data_format=data_format)
    np.testing.assert_allclose(apps.densenet.preprocess_input(x.copy(), data_format=data_format), expected,
                               rtol=1e-6, atol=1e-6)
    got = apps.densenet.preprocess_input(torch.as_tensor(x), data_format=data_format)
    np.testing.assert_allclose(_to_numpy(got), expected, rtol=1e-6, atol=1e-6)
    with pytest.raises(ValueError, match="Expected data_format to be one of"):
        apps.densenet.preprocess_input(x, data_format="nhwc")


# --- a fine-tuning program ------------------------------------------------------------


def _finetune_program(lib, base_fn, base_weights, head_weights, x, y):
    """A user's transfer-learning program: frozen DenseNet121 (called with
    training=False), a new Dense head, compile, fit 2 epochs."""
    base = base_fn(include_top=False, weights=None, input_shape=(32, 32, 3), pooling="avg")
    base.set_weights(base_weights)
    base.trainable = False
    inputs = lib.Input((32, 32, 3))
    features = base(inputs, training=False)
    outputs = lib.layers.Dense(3, activation="softmax", name="head")(features)
    model = lib.Model(inputs, outputs, name="finetune")
    model.get_layer("head").set_weights(head_weights)
    model.compile(optimizer=lib.optimizers.Adam(1e-2), loss="sparse_categorical_crossentropy",
                  metrics=["accuracy"])
    history = model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    return model, history


def test_finetune_frozen_densenet121_matches_keras(keras_ref, d121_top):
    """Equal History and weights. (EfficientNet is not used here: Keras 3.15 lets
    the outer `fit` training flag override `base(x, training=False)`, so its
    stochastic-depth Dropouts stay random in Keras; kerasish honours the
    explicit training=False. DenseNet has no random layer.)"""
    x = _images(batch=8, seed=6)
    y = np.random.RandomState(7).randint(0, 3, (8,))
    rng = np.random.RandomState(8)
    head = [rng.normal(0, 0.05, (1024, 3)).astype("float32"), np.zeros(3, "float32")]
    base_weights = [w for w in d121_top[0].get_weights()[:-2]]  # the randomized base, without the 5-class top
    keras_ref.backend.clear_session()
    theirs, h_theirs = _finetune_program(keras_ref, keras_ref.applications.DenseNet121, base_weights, head, x, y)
    kerasish.backend.clear_session()
    ours, h_ours = _finetune_program(kerasish, apps.DenseNet121, base_weights, head, x, y)
    assert h_ours.history.keys() == h_theirs.history.keys()
    for key in h_theirs.history:
        np.testing.assert_allclose(h_ours.history[key], h_theirs.history[key], rtol=1e-5, atol=1e-6)
    assert [w.path for w in ours.trainable_weights] == [w.path for w in theirs.trainable_weights] == [
        "head/kernel", "head/bias"]
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(_to_numpy(ours(torch.as_tensor(x))), _to_numpy(theirs(x)), rtol=1e-5, atol=1e-6)
