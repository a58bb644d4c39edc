"""Keras 2 `.h5` files of TimeDistributed, ConvLSTM2D and Bidirectional inside a
nested Sequential, written by Keras 2.12 (TensorFlow 2.12) and tf-keras 2.21
(tools/fixtures/make_keras2_wrapper_h5.py): kerasish predicts and trains one
step as that release did, and their weights-only files load."""

import json
import os

import numpy as np
import pytest

import kerasish as keras

pytest.importorskip("h5py")
HERE = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "keras2_wrappers_h5")
VERSIONS = sorted(v for v in os.listdir(HERE) if os.path.isdir(os.path.join(HERE, v)))
NAMES = ["td_conv", "conv_lstm", "nested_wrappers"]


def _case(version, name):
    with open(os.path.join(HERE, version, "record.json")) as f:
        record = json.load(f)
    with np.load(os.path.join(HERE, version, f"{name}.npz"), allow_pickle=False) as data:
        return record, dict(data)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", NAMES)
def test_prediction_and_next_step_equal_that_keras(version, name):
    record, data = _case(version, name)
    assert record["keras"] == version
    model = keras.models.load_model(os.path.join(HERE, version, f"{name}.h5"))
    np.testing.assert_allclose(model.predict(data["x"], verbose=0), data["pred"], rtol=1e-5, atol=1e-5)
    assert int(model.optimizer.iterations) == 1
    loss = model.train_on_batch(data["x"], data["y"])
    np.testing.assert_allclose(float(np.asarray(loss).ravel()[0]), record["models"][name]["next_loss"], rtol=1e-5)
    for i, (w, v) in enumerate(zip(model.get_weights(), model.weights, strict=True)):
        np.testing.assert_allclose(w, data[f"next_w{i}"], rtol=1e-5, atol=1e-5, err_msg=v.path)


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("name", NAMES)
def test_weights_only_file_loads(version, name):
    _, data = _case(version, name)
    model = keras.models.load_model(os.path.join(HERE, version, f"{name}.h5"), compile=False)
    fresh = keras.models.clone_model(model)
    fresh.load_weights(os.path.join(HERE, version, f"{name}_weights.h5"))
    np.testing.assert_allclose(fresh.predict(data["x"], verbose=0), data["pred"], rtol=1e-5, atol=1e-5)
