"""The legacy-HDF5 fixture set written by an older Keras 2: TensorFlow 2.12's
built-in tf.keras (Keras 2.12), tests/fixtures/legacy_h5_tf212/, written by
the same generator as tests/fixtures/legacy_h5/ (tf-keras 2.21):

    LEGACY_H5_OUT=tests/fixtures/legacy_h5_tf212 /tmp/tf212/bin/python tools/fixtures/make_legacy_h5_fixtures.py

kerasish predicts and trains as Keras 2.12 did, and Keras 2.12 loaded and
trained the files kerasish wrote back (recorded by the generator)."""

import json
import os

import numpy as np
import pytest

import kerasish as keras
from legacy_fixtures import CUSTOM, as_list

h5py = pytest.importorskip("h5py")
HERE = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "legacy_h5_tf212")
with open(os.path.join(HERE, "metadata.json")) as _f:
    META = json.load(_f)
NAMES = sorted(META["fixtures"])
COMPILED = [n for n in NAMES if META["fixtures"][n]["compiled"]]
# tf.keras 2 runs BatchNormalization on 4-D inputs with TF's fused kernel, which updates the moving
# variance with the Bessel-corrected batch variance (see test_legacy_h5_fixtures.py)
_FUSED_BN_VARIANCE = {"cnn_bn": "batch_normalization/moving_variance"}


def _arrays(name):
    with np.load(os.path.join(HERE, f"{name}.npz"), allow_pickle=False) as data:
        return dict(data)


def _xy(name):
    entry, data = META["fixtures"][name], _arrays(name)
    xs = [data[f"x{i}"] for i in range(entry["n_inputs"])]
    ys = [data[f"y{i}"] for i in range(entry.get("n_targets", 0))]
    return (xs if len(xs) > 1 else xs[0]), (ys if len(ys) > 1 else (ys[0] if ys else None))


def _load(name, **kwargs):
    kwargs.setdefault("safe_mode", name != "lambda")
    return keras.models.load_model(os.path.join(HERE, f"{name}.h5"), custom_objects=CUSTOM, **kwargs)


def test_files_are_from_keras_2_12():
    assert META["tf_keras"].startswith("2.12") and META["tensorflow"].startswith("2.12")
    with h5py.File(os.path.join(HERE, "mlp.h5"), "r") as f:
        assert f.attrs["keras_version"] in ("2.12.0", b"2.12.0")


@pytest.mark.parametrize("name", NAMES)
def test_predictions_equal_keras_2_12(name):
    model = _load(name, compile=False)
    x, _ = _xy(name)
    expected = _arrays(name)
    preds = as_list(model.predict(x, verbose=0))
    assert len(preds) == META["fixtures"][name]["n_outputs"]
    for i, p in enumerate(preds):
        np.testing.assert_allclose(np.asarray(p), expected[f"pred{i}"], rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", COMPILED)
def test_next_training_step_equals_keras_2_12(name):
    entry = META["fixtures"][name]
    model = _load(name)
    assert model.compiled
    x, y = _xy(name)
    logs = model.train_on_batch(x, y, return_dict=True)
    np.testing.assert_allclose(float(logs["loss"]), entry["next_step_logs"]["loss"], rtol=1e-5, atol=1e-6)
    expected = _arrays(name)
    for i, (w, var) in enumerate(zip(model.get_weights(), model.weights, strict=True)):
        atol = 3e-4 if _FUSED_BN_VARIANCE.get(name) == var.path else 1e-5
        np.testing.assert_allclose(w, expected[f"next_w{i}"], rtol=1e-5, atol=atol, err_msg=var.path)


@pytest.mark.parametrize("name", [n for n in NAMES if "weights_file" in META["fixtures"][n]])
def test_weights_only_files_load(name):
    model = _load(name, compile=False)
    fresh = keras.models.clone_model(model)
    fresh.load_weights(os.path.join(HERE, META["fixtures"][name]["weights_file"]))
    x, _ = _xy(name)
    for a, b in zip(as_list(fresh.predict(x, verbose=0)), as_list(model.predict(x, verbose=0)), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_lambda_bytecode_needs_safe_mode_false():
    with pytest.raises(ValueError, match="safe_mode"):
        _load("lambda", safe_mode=True)


def test_keras_2_12_loaded_and_trained_what_kerasish_wrote():
    """Recorded by the generator: Keras 2.12 loads each kerasish-written file
    (before: `optional` in InputLayer configs and `is_legacy_optimizer` in a
    legacy optimizer's config made it refuse them), predicts the same and
    takes the same next training step."""
    for name, entry in META["fixtures"].items():
        result = entry["tf_keras_loads_kerasish"]
        assert result["loads"] and result["matches"], (name, result)
        if entry["compiled"]:
            assert result["next_step_max_abs_diff"] < 1e-5, (name, result)


def test_kerasish_keras2_input_layer_config_has_no_keras3_only_keys(tmp_path):
    """Keras 2's InputLayer takes no `optional` (Keras 3.x does); Keras 2.12 refuses unknown keywords."""
    model = _load("mlp")
    model.save(tmp_path / "again.h5")
    with h5py.File(tmp_path / "again.h5", "r") as f:
        config = json.loads(f.attrs["model_config"])
    inputs = [x for x in config["config"]["layers"] if x["class_name"] == "InputLayer"]
    assert inputs and all("optional" not in x["config"] for x in inputs)
    assert all("batch_input_shape" in x["config"] for x in inputs)


with open(os.path.join(HERE, "keras2_config_keys.json")) as _f:
    _KEYS = json.load(_f)
_INT_INPUT = {"Embedding", "IntegerLookup", "CategoryEncoding"}


@pytest.mark.parametrize("entry", _KEYS["layers"], ids=lambda e: e["class_name"])
def test_keras2_layer_configs_use_only_keys_keras_2_12_knows(entry, tmp_path):
    """Keras 2.12 refuses unknown keyword arguments, so a kerasish-written
    Keras 2 `.h5` may only use the keys Keras 2.12's own `get_config` writes
    for that class (recorded by tools/fixtures/make_keras2_config_keys.py)."""
    dtype = "int64" if entry["class_name"] in _INT_INPUT else "float32"
    layer = getattr(keras.layers, entry["class_name"])(**entry["kwargs"])
    model = keras.Sequential([keras.Input(tuple(entry["input_shape"]), dtype=dtype), layer])
    model.save(tmp_path / "m.h5")
    with h5py.File(tmp_path / "m.h5", "r") as f:
        config = json.loads(f.attrs["model_config"])
    (written,) = [x for x in config["config"]["layers"] if x["class_name"] == entry["class_name"]]
    unknown = set(written["config"]) - set(entry["keras2_keys"]) - {"batch_input_shape"}
    assert not unknown, f"{entry['class_name']}: Keras 2.12 does not know {sorted(unknown)}"
    if entry["class_name"] == "LeakyReLU":
        assert written["config"]["alpha"] == pytest.approx(0.3)
    if entry["class_name"] == "IntegerLookup":
        assert written["config"]["dtype"] == "int64"  # Keras 2 refuses a float dtype for integer indices


@pytest.mark.parametrize(
    ("layer", "shape", "argument"),
    [
        (lambda: keras.layers.ZeroPadding1D(1, data_format="channels_first"), (6, 2), "data_format"),
        (lambda: keras.layers.RandomFlip(data_format="channels_first"), (3, 6, 6), "data_format"),
        (lambda: keras.layers.RandomContrast(0.1, value_range=(0, 1)), (6, 6, 3), "value_range"),
        (lambda: keras.layers.Resizing(4, 4, pad_to_aspect_ratio=True), (6, 6, 3), "pad_to_aspect_ratio"),
    ],
)
def test_keras3_only_settings_are_refused_for_keras2_h5(layer, shape, argument, tmp_path):
    """Settings Keras 2 has no equivalent for: a clear error, not a file Keras 2 would read differently."""
    model = keras.Sequential([keras.Input(shape), layer()])
    with pytest.raises(ValueError, match=f"`{argument}="):
        model.save(tmp_path / "m.h5")
