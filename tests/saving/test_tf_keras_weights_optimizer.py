"""A tf-keras 2 `.weights.h5` file with optimizer state (tf-keras 2.13+'s
`save_weights` writes the compiled optimizer's `iteration` and slots, in its
own order and without a learning rate): kerasish maps it onto its optimizer,
so training resumed from the file continues exactly as tf-keras's did.
Before, the count did not match Keras 3's layout and the state was skipped
with Keras 3's warning: Adam restarted its moments and bias correction.

The files and tf-keras's continued run: tests/fixtures/tf_keras_weights_optimizer,
written by tools/fixtures/make_tf_keras_weights_optimizer.py (tf-keras 2.21).
Tolerance: float32 optimizers of two frameworks over 4 steps, rtol 1e-5 / atol 1e-6.
"""

import json
import os
import warnings

import numpy as np
import pytest

import kerasish as keras

HERE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "tf_keras_weights_optimizer")
with np.load(os.path.join(HERE, "records.npz"), allow_pickle=False) as _f:
    RECORD = dict(_f)
with open(os.path.join(HERE, "records.json")) as _meta:
    META = json.load(_meta)["cases"]

OPTIMIZERS = {
    "adam": lambda: keras.optimizers.Adam(0.01),
    "adam_schedule": lambda: keras.optimizers.Adam(keras.optimizers.schedules.ExponentialDecay(0.02, 3, 0.5)),
    "sgd_momentum": lambda: keras.optimizers.SGD(0.05, momentum=0.9),
    "rmsprop_momentum": lambda: keras.optimizers.RMSprop(0.01, momentum=0.5),
}


def _model(name):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, activation="tanh"), keras.layers.Dense(1)])
    model.compile(optimizer=OPTIMIZERS[name](), loss="mse")
    return model


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_resume_from_tf_keras_weights_file_equals_tf_keras(name):
    model = _model(name)
    # a resuming program builds the optimizer before loading (as with tf-keras, whose `load_weights` into an
    # unbuilt optimizer skips the optimizer state with a warning; see test_load_weights_skips_unbuilt_optimizer)
    model.optimizer.build(model.trainable_weights)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "Skipping variable loading for optimizer"
        model.load_weights(os.path.join(HERE, f"{name}.weights.h5"))
    assert int(model.optimizer.iterations) == 6
    history = model.fit(RECORD["x"], RECORD["y"], batch_size=4, epochs=2, shuffle=False, verbose=0).history
    assert int(model.optimizer.iterations) == META[name]["iterations"]
    np.testing.assert_allclose(history["loss"], META[name]["losses"], rtol=1e-5)
    for j, got in enumerate(model.get_weights()):
        np.testing.assert_allclose(got, RECORD[f"{name}.final.{j}"], rtol=1e-5, atol=1e-6, err_msg=f"{name} weight {j}")


def test_keras3_weights_file_is_not_taken_for_tf_keras(tmp_path):
    """kerasish's own (Keras 3 layout) file round-trips with its learning rate and slots in place."""
    model = _model("rmsprop_momentum")
    model.fit(RECORD["x"], RECORD["y"], batch_size=4, epochs=1, shuffle=False, verbose=0)
    model.save_weights(tmp_path / "k3.weights.h5")
    other = _model("rmsprop_momentum")
    other.optimizer.build(other.trainable_weights)
    other.load_weights(tmp_path / "k3.weights.h5")
    assert len(other.optimizer.variables) == len(model.optimizer.variables) > 2
    for a, b in zip(model.optimizer.variables, other.optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_load_weights_skips_unbuilt_optimizer_state():
    """Into a fresh compiled model (optimizer not built) the file's optimizer state is skipped with Keras's
    warning, as tf-keras 2.21 and Keras 3.15 do: training starts the optimizer afresh."""
    model = _model("adam")
    with pytest.warns(UserWarning, match="Skipping variable loading for optimizer"):
        model.load_weights(os.path.join(HERE, "adam.weights.h5"))
    assert not model.optimizer.built or int(model.optimizer.iterations) == 0
