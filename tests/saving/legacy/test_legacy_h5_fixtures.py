"""Real tf.keras 2 (tf-keras 2.21) HDF5 files load without TensorFlow and
predict / train exactly as tf.keras did (tools/fixtures/make_legacy_h5_fixtures.py
regenerates them and records what tf.keras computed)."""

import numpy as np
import pytest

import kerasish as keras
from legacy_fixtures import CUSTOM, arrays, as_list, inputs, metadata, path, targets

META = metadata()
NAMES = sorted(META["fixtures"])
COMPILED = [n for n in NAMES if META["fixtures"][n]["compiled"]]


def _load(name, **kwargs):
    kwargs.setdefault("safe_mode", name != "lambda")
    return keras.models.load_model(path(f"{name}.h5"), custom_objects=CUSTOM, **kwargs)


def test_fixture_set_covers_the_brief():
    assert {"mlp", "cnn_bn", "lstm_mask", "gru", "bidirectional", "multi_io", "mha", "sepconv", "causal_conv1d",
            "nested", "custom", "tf_ops", "lambda", "frozen"} <= set(NAMES)
    assert META["tf_keras"].startswith("2.")


@pytest.mark.parametrize("name", NAMES)
def test_predictions_equal_tf_keras(name):
    entry = META["fixtures"][name]
    model = _load(name, compile=False)
    preds = as_list(model.predict(inputs(name, entry), verbose=0))
    expected = arrays(name)
    assert len(preds) == entry["n_outputs"]
    for i, p in enumerate(preds):
        np.testing.assert_allclose(np.asarray(p), expected[f"pred{i}"], rtol=1e-5, atol=1e-5)


# tf.keras 2 runs BatchNormalization on 4-D NHWC inputs with TF's fused kernel,
# which updates the moving variance with the Bessel-corrected (n/(n-1)) batch
# variance; kerasish (as Keras 3) uses the biased one. With momentum 0.99 and
# n = 4*8*8 = 256 values per channel the gap is 0.01 * var / 255 (~1e-4 here).
_FUSED_BN_VARIANCE = {"cnn_bn": "batch_normalization/moving_variance"}


@pytest.mark.parametrize("name", COMPILED)
def test_next_training_step_equals_tf_keras(name):
    entry = META["fixtures"][name]
    model = _load(name)
    assert model.compiled
    logs = model.train_on_batch(inputs(name, entry), targets(name, entry), return_dict=True)
    np.testing.assert_allclose(float(logs["loss"]), entry["next_step_logs"]["loss"], rtol=1e-5, atol=1e-6)
    expected = arrays(name)
    for i, (w, var) in enumerate(zip(model.get_weights(), model.weights)):
        atol = 3e-4 if _FUSED_BN_VARIANCE.get(name) == var.path else 1e-5
        np.testing.assert_allclose(w, expected[f"next_w{i}"], rtol=1e-5, atol=atol, err_msg=var.path)


def test_optimizer_state_is_what_made_the_step_match():
    """Without the restored Adam moments the same step lands elsewhere."""
    name = "mlp"
    entry = META["fixtures"][name]
    model = _load(name)
    assert int(model.optimizer.iterations) == 1
    fresh = keras.optimizers.Adam(learning_rate=model.optimizer.learning_rate.item())
    model.compile(optimizer=fresh, loss="categorical_crossentropy")
    model.train_on_batch(inputs(name, entry), targets(name, entry))
    expected = arrays(name)
    gaps = [np.abs(w - expected[f"next_w{i}"]).max() for i, w in enumerate(model.get_weights())]
    assert max(gaps) > 1e-3


def test_keras2_optimizer_decay_is_kept_as_time_based_decay():
    model = _load("lstm_mask")
    opt = model.optimizer
    assert opt._schedule is None
    assert opt.decay == pytest.approx(0.1)
    # Keras 2: lr / (1 + decay * iterations), decay=0.1, lr=0.01
    opt.iterations = 3
    assert opt._decayed_lr(float(opt.learning_rate)) == pytest.approx(0.01 / (1 + 0.1 * 3), rel=1e-6)


def test_compiled_metrics_come_back():
    model = _load("mlp")
    entry = META["fixtures"]["mlp"]
    logs = model.evaluate(inputs("mlp", entry), targets("mlp", entry), verbose=0, return_dict=True)
    assert "categorical_accuracy" in logs or "accuracy" in logs


@pytest.mark.parametrize("name", ["mlp", "nested", "multi_io", "tf_ops", "mha", "bidirectional"])
def test_kerasish_written_h5_reloads_identically(name, tmp_path):
    entry = META["fixtures"][name]
    model = _load(name)
    out = tmp_path / "again.h5"
    model.save(out)
    again = keras.models.load_model(out, custom_objects=CUSTOM)
    x = inputs(name, entry)
    for a, b in zip(as_list(model.predict(x, verbose=0)), as_list(again.predict(x, verbose=0))):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    if entry["compiled"]:
        y = targets(name, entry)
        model.train_on_batch(x, y)
        again.train_on_batch(x, y)
        for w1, w2 in zip(model.get_weights(), again.get_weights()):
            np.testing.assert_allclose(w1, w2, rtol=1e-6, atol=1e-7)


def test_tf_keras_loaded_the_files_kerasish_wrote():
    """Recorded by the generator, which loads kerasish-written files in tf-keras."""
    for name, entry in META["fixtures"].items():
        result = entry["tf_keras_loads_kerasish"]
        assert result["loads"] and result["matches"], (name, result)
        if entry["compiled"]:
            assert result["next_step_max_abs_diff"] < 1e-5, (name, result)


def test_lambda_bytecode_needs_safe_mode_false():
    with pytest.raises(ValueError, match="safe_mode=False"):
        keras.models.load_model(path("lambda.h5"))


def test_custom_layer_needs_custom_objects():
    with pytest.raises(ValueError, match="ScaleShift"):
        keras.models.load_model(path("custom.h5"))


def test_kerasish_writes_a_decayed_optimizer_in_tf_keras_legacy_layout(tmp_path):
    """An optimizer with Keras 2 `decay` is saved for tf.keras 2's legacy
    optimizer (no `is_legacy_optimizer` flag, which Keras 2.12 refuses as an
    argument; `Adam/iter:0`, then all m, then all v), in the order and shapes
    of the file tf-keras itself wrote."""
    import json

    import h5py

    model = _load("lstm_mask")
    model.save(tmp_path / "again.h5")
    with h5py.File(path("lstm_mask.h5"), "r") as ref, h5py.File(tmp_path / "again.h5", "r") as got:
        ref_cfg = json.loads(ref.attrs["training_config"])["optimizer_config"]["config"]
        got_cfg = json.loads(got.attrs["training_config"])["optimizer_config"]["config"]
        assert "is_legacy_optimizer" not in ref_cfg and "is_legacy_optimizer" not in got_cfg
        assert got_cfg["decay"] == pytest.approx(ref_cfg["decay"])

        def layout(f):
            g = f["optimizer_weights"]
            names = [n.decode() if isinstance(n, bytes) else str(n) for n in g.attrs["weight_names"]]
            return [(n.rsplit("/", 1)[-1], g[n].shape) for n in names]

        assert layout(got) == layout(ref)
    again = keras.models.load_model(tmp_path / "again.h5")
    assert int(again.optimizer.iterations) == int(model.optimizer.iterations) == 1
    entry = META["fixtures"]["lstm_mask"]
    again.train_on_batch(inputs("lstm_mask", entry), targets("lstm_mask", entry))
    for i, w in enumerate(again.get_weights()):
        np.testing.assert_allclose(w, arrays("lstm_mask")[f"next_w{i}"], rtol=1e-5, atol=1e-5)
