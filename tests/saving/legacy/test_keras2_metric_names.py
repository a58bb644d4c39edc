"""The loss and metric entries of the `training_config` kerasish writes into
Keras 2 `.h5` files, against what tf-keras 2.21 itself wrote
(tests/fixtures/keras2_programs_3/, tools/fixtures/make_keras2_programs_3.py,
whose `tf_keras_loads_kerasish` check loads kerasish's files back in tf.keras).

tf.keras 2 resolves a bare "accuracy" / "crossentropy" in a loaded file against
the model's outputs (as if the labels were one-hot), so it writes them, once
built, as `MeanMetricWrapper`s naming the function they resolved to; a custom
function is written by its name (Keras 3's `{"class_name": "function"}` is
unknown to Keras 2)."""

import json
import os
import shutil

import h5py
import numpy as np

import kerasish as keras

L = keras.layers
HERE = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "keras2_programs_3")


def _training_config(path):
    with h5py.File(path, "r") as f:
        return json.loads(f.attrs["training_config"])


def _flat(metrics):
    return [m for entry in metrics for m in (entry if isinstance(entry, list) else [entry])]


def _classifier():
    model = keras.Sequential([keras.Input((4,)), L.Dense(3, activation="softmax")])
    return model


def test_built_accuracy_is_written_as_the_function_it_resolved_to(tmp_path):
    tf_keras_entry = _flat(_training_config(os.path.join(HERE, "model_surgery.h5"))["metrics"])[0]
    assert tf_keras_entry["config"]["fn"] == "sparse_categorical_accuracy"
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 4)).astype("float32")
    labels = rng.integers(0, 3, 8)
    for y, fn in ((labels, "sparse_categorical_accuracy"), (np.eye(3, dtype="float32")[labels], "categorical_accuracy")):
        model = _classifier()
        model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy" if y.ndim == 1 else
                      "categorical_crossentropy", metrics=["accuracy"], weighted_metrics=["ce"])
        unbuilt = str(tmp_path / "unbuilt.h5")
        model.save(unbuilt)  # before training: as given, as tf.keras writes unbuilt metrics
        assert _flat(_training_config(unbuilt)["metrics"]) == ["accuracy"]
        model.fit(x, y, batch_size=8, epochs=1, verbose=0)
        path = str(tmp_path / "built.h5")
        model.save(path)
        config = _training_config(path)
        (accuracy,) = _flat(config["metrics"])
        (ce,) = _flat(config["weighted_metrics"])
        assert accuracy == {"class_name": "MeanMetricWrapper",
                            "config": {"name": "accuracy", "dtype": "float32", "fn": fn}}
        assert ce["config"] == {"name": "ce", "dtype": "float32", "fn": fn.replace("accuracy", "crossentropy")}
        if y.ndim == 1:
            assert accuracy == tf_keras_entry
        # and kerasish reads its own file back to the same logs
        reloaded = keras.models.load_model(path)
        np.testing.assert_allclose(list(reloaded.evaluate(x, y, verbose=0, return_dict=True).values()),
                                   list(model.evaluate(x, y, verbose=0, return_dict=True).values()), rtol=1e-6)


def test_a_tf_keras_file_is_written_back_with_its_metric_entries(tmp_path):
    for name in ("model_surgery", "sequence_tagging"):
        shutil.copy(os.path.join(HERE, name + ".h5"), tmp_path / "in.h5")
        keras.models.load_model(str(tmp_path / "in.h5")).save(str(tmp_path / "out.h5"))
        want, got = _training_config(tmp_path / "in.h5"), _training_config(tmp_path / "out.h5")
        for key in ("loss", "metrics", "weighted_metrics"):
            assert (_flat(got[key]) if got[key] else got[key]) == (_flat(want[key]) if want[key] else want[key]), key


def test_custom_functions_are_written_by_name(tmp_path):
    def huber_like(y_true, y_pred):
        return keras.ops.mean(keras.ops.sqrt(1.0 + (y_pred - y_true) ** 2) - 1.0, axis=-1)

    def rmse(y_true, y_pred):
        return keras.ops.sqrt(keras.ops.mean((y_pred - y_true) ** 2, axis=-1))

    model = keras.Sequential([keras.Input((4,)), L.Dense(2)])
    model.compile(optimizer="adam", loss=huber_like,
                  metrics=[rmse, keras.metrics.MeanMetricWrapper(rmse, name="my_rmse"), "mae"])
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(8, 4)).astype("float32"), rng.normal(size=(8, 2)).astype("float32")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0)
    path = str(tmp_path / "custom.h5")
    model.save(path)
    config = _training_config(path)
    assert config["loss"] == "huber_like"
    assert _flat(config["metrics"]) == [
        "rmse", {"class_name": "MeanMetricWrapper", "config": {"name": "my_rmse", "dtype": "float32", "fn": "rmse"}},
        "mae"]
    loaded = keras.models.load_model(path, custom_objects={"huber_like": huber_like, "rmse": rmse})
    got = loaded.evaluate(x, y, verbose=0, return_dict=True)
    want = model.evaluate(x, y, verbose=0, return_dict=True)
    assert sorted(got) == sorted(want) == ["loss", "mae", "my_rmse", "rmse"]
    np.testing.assert_allclose([got[k] for k in sorted(got)], [want[k] for k in sorted(want)], rtol=1e-6)
