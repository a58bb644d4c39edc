"""A tf.keras 2 model trained under "mixed_float16" and saved as `.h5`
(recorded by tools/fixtures/make_keras2_mixed_precision_h5.py): its
`training_config` names tf.keras 2's `LossScaleOptimizerV3` around Adam, its
`optimizer_weights` hold the inner Adam's state. kerasish loads it compiled
with a `LossScaleOptimizer` around the restored Adam, predicts as tf.keras did
and resumes training to the saved model's recorded losses and weights; a
kerasish mixed_float16 model written as `.h5` reads back the same way."""

import json
import os
import warnings

import numpy as np
import pytest

import kerasish as keras

pytest.importorskip("h5py")
FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "keras2_mixed_h5")
META = json.load(open(os.path.join(FIXTURES, "metadata.json")))["mixed_mlp"]


def _load():
    arrays = dict(np.load(os.path.join(FIXTURES, "mixed_mlp.npz"), allow_pickle=False))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "loads uncompiled" / "Skipping optimizer weights" warning
        model = keras.models.load_model(os.path.join(FIXTURES, "mixed_mlp.h5"))
    return model, arrays


def test_loads_compiled_with_a_loss_scale_optimizer_and_the_saved_adam_state():
    model, f = _load()
    assert [layer.dtype_policy.name for layer in model.layers] == META["layer_policies"]
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert type(model.optimizer.inner_optimizer) is keras.optimizers.Adam
    assert int(model.optimizer.iterations) == META["iterations_at_save"] == 8
    assert float(model.optimizer.dynamic_scale) == 2.0**15  # tf.keras 2 does not save the scale
    np.testing.assert_allclose(model.predict(f["x"], verbose=0), f["pred"], rtol=5e-3, atol=2e-3)  # float16


def test_resumes_training_like_the_saved_tf_keras_model():
    """The saved model's scale was 2**15, where a loaded one starts: resuming is exact up to float16."""
    assert META["loss_scale_at_save"] == 2.0**15
    model, f = _load()
    history = model.fit(f["x"], f["y"], epochs=2, batch_size=8, shuffle=False, verbose=0).history
    np.testing.assert_allclose(history["loss"], META["continued_fit"]["loss"], rtol=2e-3)
    assert int(model.optimizer.iterations) == int(f["final_iterations"])
    assert float(model.optimizer.dynamic_scale) == float(f["final_loss_scale"])
    assert model.__dict__["_grad_scaler"] is None  # scaled once, by the LossScaleOptimizer
    for i, w in enumerate(model.get_weights()):
        np.testing.assert_allclose(w, f[f"final_w{i}"], rtol=2e-3, atol=2e-4, err_msg=f"weight {i}")


def test_kerasish_mixed_float16_h5_round_trip(tmp_path):
    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        model = keras.Sequential([keras.Input((6,)), keras.layers.Dense(4), keras.layers.Dense(1, dtype="float32")])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    _, f = _load()
    model.fit(f["x"], f["y"], epochs=1, batch_size=8, verbose=0)
    model.optimizer.dynamic_growth_steps = 7
    path = str(tmp_path / "m.h5")
    model.save(path)
    import h5py

    with h5py.File(path) as h5:
        config = json.loads(h5.attrs["training_config"])["optimizer_config"]
        names = [n.decode() if isinstance(n, bytes) else n for n in h5["optimizer_weights"].attrs["weight_names"]]
    assert config["class_name"] == "LossScaleOptimizerV3"  # as tf.keras 2 writes it
    assert config["config"]["inner_optimizer"]["class_name"] == "Adam"
    assert config["config"]["dynamic_growth_steps"] == 7
    assert names[0] == "iteration:0" and len(names) == 1 + 2 * 4  # the inner Adam's state
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.optimizer, keras.optimizers.LossScaleOptimizer)
    assert loaded.optimizer.dynamic_growth_steps == 7
    assert int(loaded.optimizer.iterations) == int(model.optimizer.iterations) > 0
    for a, b in zip(loaded.optimizer.inner_optimizer.variables, model.optimizer.inner_optimizer.variables):
        np.testing.assert_array_equal(np.asarray(a.detach()), np.asarray(b.detach()))
