"""keras.applications.EfficientNet B0-B7 against Keras 3 (torch backend).

The helpers at the top (`_pair`, `_assert_same_model`, `_randomize`,
`_assert_same_outputs`, `_captured_args`) are shared by the other
tests/applications/test_apps2_*.py files.

Only B0 is built and run (at 32x32, batch 2): a bigger variant costs several
seconds to build on each side. B1-B7 are checked by the arguments each one
passes to the shared `EfficientNet` builder, recorded on both sides.
"""

import hashlib
import json

import numpy as np
import pytest
import torch

import kerasish
import kerasish.applications as apps
from kerasish.applications import efficientnet as ours_effnet

RTOL, ATOL = 1e-5, 1e-6  # float32; relative to the output's scale (see _assert_same_outputs)


def _pair(keras_ref, fn_name, module=None, **kwargs):
    """Keras's and kerasish's model for the same call, both built after clearing
    the name counters (so automatic names like `rescaling` agree)."""
    kwargs.setdefault("weights", None)
    keras_ref.backend.clear_session()
    theirs = getattr(keras_ref.applications if module is None else module[0], fn_name)(**kwargs)
    kerasish.backend.clear_session()
    ours = getattr(apps if module is None else module[1], fn_name)(**kwargs)
    return theirs, ours


def _config_without_rescaling_build(config):
    """The model config minus the `build_config` of Rescaling layers: kerasish's
    Rescaling is built in its constructor and keeps no build shape (Keras
    records the first call's shape); tracked by `test_rescaling_build_config`."""
    config = json.loads(json.dumps(config, default=str))
    for layer in config["layers"]:
        if layer["class_name"] == "Rescaling":
            layer.pop("build_config", None)
    return config


def _assert_same_model(theirs, ours):
    """Layer names in order, weight paths and shapes, parameter counts, config."""
    assert [layer.name for layer in ours.layers] == [layer.name for layer in theirs.layers]
    assert [(w.path, tuple(w.shape)) for w in ours.weights] == [(w.path, tuple(w.shape)) for w in theirs.weights]
    assert [(w.path, tuple(w.shape)) for w in ours.trainable_weights] == [
        (w.path, tuple(w.shape)) for w in theirs.trainable_weights]
    count = lambda ws: sum(int(np.prod(w.shape)) for w in ws)  # noqa: E731
    assert count(ours.trainable_weights) == count(theirs.trainable_weights)
    assert count(ours.non_trainable_weights) == count(theirs.non_trainable_weights)
    assert ours.count_params() == theirs.count_params()
    assert ours.name == theirs.name
    assert _config_without_rescaling_build(ours.get_config()) == _config_without_rescaling_build(theirs.get_config())


def _randomize(theirs, seed=0):
    """Moves Keras's freshly initialised weights away from their special values
    (BN identity statistics, zero biases, unit scales) so that every weight
    shows in the output; returns the list of arrays (also set into `theirs`)."""
    rng = np.random.RandomState(seed)
    values = []
    for w in theirs.weights:
        v = np.asarray(w.numpy())
        name = w.path.rsplit("/", 1)[-1]
        if name in ("moving_variance", "variance"):
            v = rng.uniform(0.5, 1.5, v.shape)
        elif name in ("gamma",) or (name == "scale" and v.ndim == 1):
            v = rng.uniform(0.5, 1.5, v.shape)
        elif name in ("moving_mean", "mean", "beta", "bias") or (name == "offset" and v.ndim == 1):
            v = rng.normal(0.0, 0.1, v.shape)
        elif name == "count":
            pass
        else:
            v = v + rng.normal(0.0, 0.02, v.shape)
        values.append(np.asarray(v, dtype=np.asarray(w.numpy()).dtype))
    theirs.set_weights(values)
    return values


def _to_numpy(y):
    return y.detach().cpu().numpy() if isinstance(y, torch.Tensor) else np.asarray(y)


def _assert_same_outputs(theirs, ours, x, training=False, rtol=RTOL, atol=ATOL):
    """Calls both on `x` and compares, the tolerance scaled by the output's size."""
    expected = _to_numpy(theirs(x, training=training))
    got = _to_numpy(ours(torch.as_tensor(x), training=training))
    assert got.shape == expected.shape
    scale = max(float(np.abs(expected).max()), 1e-12)
    np.testing.assert_allclose(got, expected, rtol=rtol, atol=atol * scale)
    return got


def _images(shape=(32, 32, 3), batch=2, seed=0):
    """Pixels in [0, 255]: a colour per image plus noise and a gradient, so that
    images differ in their pooled features (uniform noise averages out)."""
    rng = np.random.RandomState(seed)
    colour = rng.uniform(0.0, 255.0, (batch, 1, 1, shape[-1]))
    ramp = np.linspace(-60.0, 60.0, shape[0])[None, :, None, None] * rng.uniform(-1, 1, (batch, 1, 1, 1))
    noise = rng.normal(0.0, 30.0, (batch,) + tuple(shape))
    return np.clip(colour + ramp + noise, 0.0, 255.0).astype("float32")


def _captured_args(monkeypatch, module, builder_name, fn, *args, **kwargs):
    """The arguments `fn(*args, **kwargs)` passes to `module.<builder_name>`, recorded
    by replacing the builder (nothing is built)."""
    seen = {}

    def record(*a, **k):
        seen["args"], seen["kwargs"] = a, k
        return None

    monkeypatch.setattr(module, builder_name, record)
    fn(*args, **kwargs)
    return seen


# --- structure, config, outputs -------------------------------------------------


@pytest.fixture(scope="module")
def b0_top(keras_ref):
    theirs, ours = _pair(keras_ref, "EfficientNetB0", include_top=True, input_shape=(32, 32, 3), classes=10)
    ours.set_weights(_randomize(theirs))
    return theirs, ours


@pytest.fixture(scope="module")
def b0_notop(keras_ref):
    """pooling=None, unknown spatial size."""
    theirs, ours = _pair(keras_ref, "EfficientNetB0", include_top=False)
    ours.set_weights(_randomize(theirs, seed=1))
    return theirs, ours


def test_b0_top_matches_keras(b0_top):
    theirs, ours = b0_top
    _assert_same_model(theirs, ours)
    _assert_same_outputs(theirs, ours, _images())
    for a, b in zip(ours.get_weights(), theirs.get_weights()):  # and the weights read back unchanged
        np.testing.assert_array_equal(a, b)


def test_b0_notop_pooling_matches_keras(b0_notop):
    theirs, ours = b0_notop
    _assert_same_model(theirs, ours)
    assert ours.output.shape == theirs.output.shape == (None, None, None, 1280)
    x = _images((48, 40, 3), seed=2)
    features = _assert_same_outputs(theirs, ours, x)
    # pooling="avg" / "max": Keras adds GlobalAverage/MaxPooling2D "avg_pool" / "max_pool" to the same base
    for pooling, reduce in (("avg", np.mean), ("max", np.max)):
        kerasish.backend.clear_session()
        pooled = apps.EfficientNetB0(include_top=False, weights=None, pooling=pooling)
        pooled.set_weights(ours.get_weights())
        assert pooled.layers[-1].name == f"{pooling}_pool" and pooled.output.shape == (None, 1280)
        assert [layer.name for layer in pooled.layers[:-1]] == [layer.name for layer in ours.layers]
        np.testing.assert_allclose(_to_numpy(pooled(torch.as_tensor(x))), reduce(features, axis=(1, 2)),
                                   rtol=RTOL, atol=ATOL * np.abs(features).max())


def test_b0_training_mode_matches_keras(keras_ref):
    """training=True with the random layers off (dropout_rate=0, drop_connect_rate=0
    through the shared builder): batch statistics and moving-average updates
    equal Keras's. With them on, Keras's and kerasish's random draws differ, so
    the stochastic-depth layers are compared by config only (above).

    At 64x64 and batch 4: at 32x32 the last stages are 1x1 and batch-2 BatchNorm
    statistics over two numbers amplify float32 rounding (both libraries agree
    to 1e-6 in the first stages and drift to 1e-2 there). Even so 49 BatchNorms
    in training mode over 4 samples drift to ~5e-5 relative at the logits,
    hence the 1e-4 tolerance of this test (inference: 1e-5)."""
    kwargs = dict(width_coefficient=1.0, depth_coefficient=1.0, default_size=224, dropout_rate=0.0,
                  drop_connect_rate=0.0, include_top=True, input_shape=(64, 64, 3), classes=7, name="effnet",
                  classifier_activation=None)
    from keras.src.applications import efficientnet as theirs_effnet

    theirs, ours = _pair(keras_ref, "EfficientNet", module=(theirs_effnet, ours_effnet), **kwargs)
    _assert_same_model(theirs, ours)
    assert not any("drop" in layer.name for layer in ours.layers)
    ours.set_weights(_randomize(theirs, seed=3))
    _assert_same_outputs(theirs, ours, _images((64, 64, 3), batch=4, seed=3), training=True,
                         rtol=1e-4, atol=1e-4)
    for w_ours, w_theirs in zip(ours.weights, theirs.weights):  # the moving statistics moved alike
        np.testing.assert_allclose(_to_numpy(w_ours.value), np.asarray(w_theirs.numpy()), rtol=1e-4, atol=1e-4)


def test_rescaling_build_config(keras_ref):
    theirs = keras_ref.layers.Rescaling(0.5)
    theirs(np.zeros((1, 4, 4, 3), "float32"))
    ours = kerasish.layers.Rescaling(0.5)
    ours(torch.zeros(1, 4, 4, 3))
    assert ours.get_build_config() == theirs.get_build_config()


@pytest.mark.parametrize("variant", ["B1", "B2", "B3", "B4", "B5", "B6", "B7"])
def test_bigger_variants_pass_keras_coefficients(keras_ref, monkeypatch, variant):
    """B1-B7 differ from B0 only in what they pass to `EfficientNet` (width, depth,
    default size, dropout, name, weights file); building them costs 5-70 s a side."""
    from keras.src.applications import efficientnet as theirs_effnet

    kwargs = dict(include_top=False, weights=None, input_shape=(40, 40, 3), pooling="avg", classes=3,
                  classifier_activation=None)
    theirs = _captured_args(monkeypatch, theirs_effnet, "EfficientNet",
                            getattr(theirs_effnet, f"EfficientNet{variant}"), **kwargs)
    ours = _captured_args(monkeypatch, ours_effnet, "EfficientNet",
                          getattr(ours_effnet, f"EfficientNet{variant}"), **kwargs)
    assert ours == theirs
    assert ours["kwargs"]["name"] == f"efficientnet{variant.lower()}"


# --- weights ------------------------------------------------------------------------


def test_weights_from_a_keras_file(b0_notop, tmp_path):
    theirs, _ = b0_notop
    path = str(tmp_path / "b0.weights.h5")
    theirs.save_weights(path)
    kerasish.backend.clear_session()
    ours = apps.EfficientNetB0(include_top=False, weights=path)
    _assert_same_outputs(theirs, ours, _images(seed=4))


def test_imagenet_weights_from_the_keras_cache(keras_ref, b0_notop, tmp_path, monkeypatch):
    """`weights="imagenet"` reads Keras's cached file (here a Keras-2-style `.h5`
    written from random weights, under the file name and hash Keras asks for)
    and adds Keras's Rescaling(1/sqrt(std)) after the Normalization, as Keras."""
    from keras.src.applications import efficientnet as theirs_effnet
    from keras.src.backend import config as keras_config
    from kerasish.saving import legacy_h5_format

    (tmp_path / "models").mkdir()
    path = tmp_path / "models" / "efficientnetb0_notop.h5"
    legacy_h5_format.save_weights(b0_notop[1], str(path))
    md5 = hashlib.md5(path.read_bytes()).hexdigest()
    for module in (theirs_effnet, ours_effnet):
        monkeypatch.setitem(module.WEIGHTS_HASHES, "b0", ("unused", md5))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.setattr(keras_config, "_KERAS_DIR", str(tmp_path))

    theirs, ours = _pair(keras_ref, "EfficientNetB0", include_top=False, weights="imagenet",
                         input_shape=(32, 32, 3))
    _assert_same_model(theirs, ours)
    assert [layer.__class__.__name__ for layer in ours.layers[1:4]] == ["Rescaling", "Normalization", "Rescaling"]
    _assert_same_outputs(theirs, ours, _images(seed=5))


def test_imagenet_weights_missing_or_corrupt(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delattr(kerasish.utils, "get_file", raising=False)  # the cache-only path: no download
    with pytest.raises(FileNotFoundError, match=r"efficientnetb0_notop\.h5.*does not download.*"
                                                r"storage\.googleapis\.com/keras-applications/efficientnetb0_notop\.h5"):
        apps.EfficientNetB0(include_top=False, input_shape=(32, 32, 3))
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "efficientnetb0_notop.h5").write_bytes(b"not the file")
    with pytest.raises(ValueError, match="Incomplete or corrupted file detected.*expected 50bc09e76180e00e4465e1a485ddc09d"):
        apps.EfficientNetB0(include_top=False, input_shape=(32, 32, 3))


# --- argument errors (the same type and message as Keras) ----------------------------

_BAD_CALLS = [
    dict(weights="/no/such/file.weights.h5"),
    dict(weights="imagenet", classes=10),
    dict(weights=None, include_top=False, input_shape=(16, 16, 3)),
    dict(weights=None, include_top=False, input_shape=(32, 32)),
    dict(weights="imagenet", include_top=True, input_shape=(64, 64, 3)),
    dict(weights="imagenet", include_top=False, input_shape=(64, 64, 1)),
    dict(weights=None, include_top=True, input_shape=(None, None, 3)),
]


@pytest.mark.parametrize("kwargs", _BAD_CALLS, ids=lambda k: ",".join(f"{a}={b}" for a, b in k.items()))
def test_argument_errors_match_keras(keras_ref, kwargs):
    with pytest.raises(ValueError) as theirs:
        keras_ref.applications.EfficientNetB0(**kwargs)
    with pytest.raises(ValueError) as ours:
        apps.EfficientNetB0(**kwargs)
    # kerasish appends the received value to Keras's weights message
    assert str(ours.value) == str(theirs.value) or str(ours.value).startswith(
        str(theirs.value) + " Received: weights=")


def test_classifier_activation_with_pretrained_weights(b0_top, tmp_path):
    """Keras raises this after building the base (its message, checked here
    on kerasish only: a second build costs seconds)."""
    path = str(tmp_path / "top.weights.h5")
    b0_top[0].save_weights(path)
    with pytest.raises(ValueError) as ours:
        apps.EfficientNetB0(weights=path, input_shape=(32, 32, 3), classes=10, classifier_activation="relu")
    assert str(ours.value).startswith(
        "Only `None` and `softmax` activations are allowed for the `classifier_activation` argument when using "
        "pretrained weights, with `include_top=True`; Received: classifier_activation=")


def test_preprocess_and_decode(keras_ref, tmp_path, monkeypatch):
    from keras.src.applications import imagenet_utils as theirs_utils

    from kerasish.applications import imagenet_utils as ours_utils

    x = _images()
    assert apps.efficientnet.preprocess_input(x) is x
    with pytest.raises(ValueError, match=r"expects a batch of predictions.*Received array with shape: \(2, 10\)"):
        apps.efficientnet.decode_predictions(np.zeros((2, 10)))
    # the class index is read from the Keras cache; none there: a clear error
    monkeypatch.setenv("KERAS_HOME", str(tmp_path))
    monkeypatch.delattr(kerasish.utils, "get_file", raising=False)  # the cache-only path: no download
    monkeypatch.setattr(ours_utils, "CLASS_INDEX", None)
    with pytest.raises(FileNotFoundError, match="imagenet_class_index.json"):
        apps.efficientnet.decode_predictions(np.zeros((2, 1000)))
    # with the same (made-up) index on both sides, the same decoded lists
    index = {str(i): [f"n{i:08d}", f"class_{i}"] for i in range(1000)}
    monkeypatch.setattr(ours_utils, "CLASS_INDEX", index)
    monkeypatch.setattr(theirs_utils, "CLASS_INDEX", index)
    preds = np.random.RandomState(0).dirichlet(np.ones(1000), size=3).astype("float32")
    expected = keras_ref.applications.efficientnet.decode_predictions(preds, top=4)
    assert apps.efficientnet.decode_predictions(preds, top=4) == expected
    assert apps.efficientnet.decode_predictions(torch.as_tensor(preds), top=4) == expected


@pytest.mark.parametrize("mode", ["caffe", "tf", "torch"])
@pytest.mark.parametrize("data_format", ["channels_last", "channels_first"])
def test_imagenet_utils_preprocess_input_matches_keras(keras_ref, mode, data_format):
    from kerasish.applications import imagenet_utils as ours_utils

    x = _images((5, 4, 3), batch=2, seed=9)
    if data_format == "channels_first":
        x = np.ascontiguousarray(x.transpose(0, 3, 1, 2))
    for sample in (x, x[0]):  # 4D and 3D
        expected = keras_ref.applications.imagenet_utils.preprocess_input(sample.copy(), data_format, mode)
        got = ours_utils.preprocess_input(sample.copy(), data_format=data_format, mode=mode)
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-4)
        got = ours_utils.preprocess_input(torch.as_tensor(sample), data_format=data_format, mode=mode)
        np.testing.assert_allclose(_to_numpy(got), expected, rtol=1e-6, atol=1e-4)
    uint8 = x.astype("uint8")
    np.testing.assert_allclose(ours_utils.preprocess_input(uint8, data_format, mode),
                               keras_ref.applications.imagenet_utils.preprocess_input(uint8, data_format, mode),
                               rtol=1e-6, atol=1e-4)
    with pytest.raises(ValueError, match="Expected mode to be one of `caffe`, `tf` or `torch`. Received: mode=x"):
        ours_utils.preprocess_input(x, mode="x")
