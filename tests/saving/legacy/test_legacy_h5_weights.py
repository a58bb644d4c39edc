"""Keras 2 weights-only HDF5 (`save_weights("w.h5")`): topological order,
`by_name`, `skip_mismatch`, nested models, and kerasish writing them."""

import h5py
import numpy as np
import pytest

import kerasish as keras
from legacy_fixtures import arrays, inputs, metadata, path

META = metadata()
L = keras.layers


def _text(n):
    return n.decode() if isinstance(n, bytes) else str(n)


def _mlp():
    return keras.Sequential([keras.Input((8,)), L.Dense(16, activation="relu"), L.Dense(6, activation="sigmoid"),
                             L.Dense(3, activation="softmax")])


def test_weights_file_loads_in_topological_order():
    model = keras.models.load_model(path("mlp.h5"), compile=False)
    fresh = keras.models.clone_model(model)
    fresh.load_weights(path("mlp_weights.h5"))
    x = inputs("mlp", META["fixtures"]["mlp"])
    np.testing.assert_allclose(fresh.predict(x, verbose=0), arrays("mlp")["pred0"], rtol=1e-5, atol=1e-5)


def test_nested_model_weights_file_keras2_order():
    """A nested Sequential's entry lists all trainable weights, then the BN moving statistics."""
    model = keras.models.load_model(path("nested.h5"), compile=False)
    fresh = keras.models.clone_model(model)
    fresh.load_weights(path("nested_weights.h5"))
    with h5py.File(path("nested_weights.h5"), "r") as f:
        names = [_text(n) for n in f["inner"].attrs["weight_names"]]
        inner = fresh.get_layer("inner")
        keras2_order = list(inner.trainable_weights) + list(inner.non_trainable_weights)
        for var, n in zip(keras2_order, names):
            np.testing.assert_array_equal(var.numpy(), f["inner"][n][()])
    np.testing.assert_allclose(fresh.predict(arrays("nested")["x0"], verbose=0),
                               model.predict(arrays("nested")["x0"], verbose=0), rtol=1e-6, atol=1e-6)


def test_by_name_loads_matching_layers_only():
    with h5py.File(path("multi_io_weights.h5"), "r") as f:
        expected = f["out_cls"]["out_cls"]["kernel:0"][()]
    a = keras.Input((5,))
    model = keras.Model(a, L.Dense(3, name="out_cls")(L.Dense(5, name="unrelated")(a)))
    before = model.get_layer("unrelated").get_weights()
    model.load_weights(path("multi_io_weights.h5"), by_name=True)
    np.testing.assert_array_equal(model.get_layer("out_cls").kernel.numpy(), expected)
    for w0, w1 in zip(before, model.get_layer("unrelated").get_weights()):
        np.testing.assert_array_equal(w0, w1)


def test_shape_mismatch_names_layer_and_shapes():
    model = keras.Sequential([keras.Input((8,)), L.Dense(16), L.Dense(7), L.Dense(3)])
    with pytest.raises(ValueError, match=r"dense_1.*\(16, 6\).*\(16, 7\)"):
        model.load_weights(path("mlp_weights.h5"))


def test_skip_mismatch_warns_and_loads_the_rest():
    model = keras.Sequential([keras.Input((8,)), L.Dense(16, name="dense"), L.Dense(7, name="dense_1"),
                              L.Dense(3, name="dense_2")])
    with pytest.warns(UserWarning) as record:
        model.load_weights(path("mlp_weights.h5"), by_name=True, skip_mismatch=True)
    messages = " ".join(str(w.message) for w in record)
    assert "dense_1" in messages and "(16, 6)" in messages and "dense_2" in messages
    with h5py.File(path("mlp_weights.h5"), "r") as f:
        np.testing.assert_array_equal(model.get_layer("dense").kernel.numpy(), f["dense"]["dense"]["kernel:0"][()])


def test_layer_count_mismatch_is_a_clear_error():
    model = keras.Sequential([keras.Input((8,)), L.Dense(16), L.Dense(3)])
    with pytest.raises(ValueError, match="Layer count mismatch.*expects 2 layers.*file has 3"):
        model.load_weights(path("mlp_weights.h5"))


@pytest.mark.parametrize("suffix", [".h5", ".hdf5"])
def test_save_weights_h5_round_trip_and_layout(tmp_path, suffix, keras_ref):
    model = _mlp()
    target = tmp_path / f"w{suffix}"
    model.save_weights(target)
    with h5py.File(target, "r") as f:
        assert [_text(n) for n in f.attrs["layer_names"]] == [x.name for x in model.layers]
        assert "model_config" not in f.attrs
    other = _mlp()
    other.load_weights(target)
    for a, b in zip(model.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(a, b)
    # real Keras 3 reads the legacy file too (its Keras 2 HDF5 weights loader)
    K = keras_ref
    ref = K.Sequential([K.Input((8,)), K.layers.Dense(16, activation="relu"), K.layers.Dense(6, activation="sigmoid"),
                        K.layers.Dense(3, activation="softmax")])
    ref.load_weights(target)
    for a, b in zip(model.get_weights(), ref.get_weights()):
        np.testing.assert_array_equal(a, b)
    x = np.random.default_rng(0).normal(size=(4, 8)).astype("float32")
    np.testing.assert_allclose(model.predict(x, verbose=0), ref.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_model_checkpoint_writes_legacy_h5(tmp_path):
    model = _mlp()
    model.compile(optimizer="adam", loss="categorical_crossentropy")
    x = np.random.default_rng(0).normal(size=(8, 8)).astype("float32")
    y = np.eye(3, dtype="float32")[np.arange(8) % 3]
    target = tmp_path / "best.h5"
    model.fit(x, y, epochs=1, verbose=0, callbacks=[keras.callbacks.ModelCheckpoint(str(target), monitor="loss")])
    again = keras.models.load_model(target)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-6)
