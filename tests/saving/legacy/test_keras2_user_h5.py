"""tf.keras 2 `.h5` files of models users have (recorded by
tools/fixtures/make_keras2_user_h5.py with tf-keras 2): a Sequential CNN with
BatchNormalization and Dropout, a functional model with a shared Embedding and
two LSTM branches, both compiled with Adam and saved after training. kerasish
loads them, predicts and evaluates as tf.keras did, and continues training
with the saved optimizer state to tf.keras's recorded losses and weights."""

import json
import os

import numpy as np
import pytest

import kerasish as keras

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "keras2_user_h5")
META = json.load(open(os.path.join(FIXTURES, "metadata.json")))["fixtures"]


def _load(name):
    arrays = dict(np.load(os.path.join(FIXTURES, f"{name}.npz"), allow_pickle=False))
    return keras.models.load_model(os.path.join(FIXTURES, f"{name}.h5")), arrays


def test_sequential_cnn_with_batchnorm_and_dropout_predicts_and_evaluates_as_tf_keras():
    model, f = _load("seq_cnn_bn_dropout")
    np.testing.assert_allclose(model.predict(f["x"], verbose=0), f["pred"], rtol=1e-5, atol=1e-6)
    logs = model.evaluate(f["x"], f["y"], batch_size=8, verbose=0, return_dict=True)
    want = META["seq_cnn_bn_dropout"]["evaluate"]
    assert logs.keys() == want.keys()
    for k in want:
        np.testing.assert_allclose(logs[k], want[k], rtol=1e-5, atol=1e-6)
    assert int(model.optimizer.iterations) == META["seq_cnn_bn_dropout"]["optimizer_iterations"]
    assert isinstance(model.optimizer, keras.optimizers.Adam)


def _continue(model, f):
    return model.fit([f["x1"], f["x2"]], f["y"], epochs=3, batch_size=8, verbose=0, shuffle=False).history


def test_shared_embedding_two_lstms_continues_training_as_tf_keras():
    model, f = _load("shared_embedding_lstms")
    np.testing.assert_allclose(model.predict([f["x1"], f["x2"]], verbose=0), f["pred"], rtol=1e-5, atol=1e-6)
    assert model.get_layer("shared_embedding").mask_zero
    history = _continue(model, f)
    want = META["shared_embedding_lstms"]["continued_fit"]
    assert history.keys() == want.keys()
    for k in want:
        np.testing.assert_allclose(history[k], want[k], rtol=1e-5, atol=1e-6)
    weights = model.get_weights()
    assert len(weights) == len(META["shared_embedding_lstms"]["weight_names"])
    for i, w in enumerate(weights):
        np.testing.assert_allclose(w, f[f"final_w{i}"], rtol=1e-4, atol=2e-6)


def test_the_saved_adam_state_is_what_made_the_continuation_match():
    # the same file with the optimizer state dropped trains differently:
    # the comparison above really checks the h5's optimizer weights
    model, f = _load("shared_embedding_lstms")
    fresh = keras.models.load_model(os.path.join(FIXTURES, "shared_embedding_lstms.h5"), compile=False)
    fresh.compile(optimizer=keras.optimizers.Adam(0.01), loss="binary_crossentropy", metrics=["accuracy"])
    restored, cold = _continue(model, f)["loss"], _continue(fresh, f)["loss"]
    np.testing.assert_allclose(restored, META["shared_embedding_lstms"]["continued_fit"]["loss"], rtol=1e-5)
    assert np.abs(np.array(cold) - np.array(restored)).max() > 1e-4


@pytest.mark.parametrize("name", ["seq_cnn_bn_dropout", "shared_embedding_lstms"])
def test_kerasish_resaves_the_file_and_reloads_it_identically(name, tmp_path):
    model, f = _load(name)
    x = f["x"] if "x" in f else [f["x1"], f["x2"]]
    path = str(tmp_path / f"{name}.h5")
    model.save(path)
    again = keras.models.load_model(path)
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    assert int(again.optimizer.iterations) == int(model.optimizer.iterations)


def _masked_functional(kind, masked=True):
    if kind == "embedding":
        inp = keras.Input((6,), dtype="int32")
        h = keras.layers.Embedding(12, 4, mask_zero=masked, name="emb")(inp)
    else:
        inp = keras.Input((6, 4))
        h = keras.layers.Masking(mask_value=2.0)(inp) if masked else keras.layers.Activation("linear")(inp)
    h = keras.layers.Dropout(0.1)(h)
    h = keras.layers.LSTM(3, name="lstm")(h)
    return keras.Model(inp, keras.layers.Dense(2, name="head")(h))


@pytest.mark.parametrize("kind", ["embedding", "masking"])
def test_functional_model_with_propagated_mask_saves_as_keras2_h5(tmp_path, kind):
    # kerasish's functional graph (like Keras 3's) holds the Embedding /
    # Masking mask as op nodes feeding `mask=`; Keras 2 HDF5 refused them.
    # Keras 2 propagates the mask itself: the node is dropped on writing and
    # the reloaded model still masks (tf.keras loads these files too:
    # checked by hand with tools/fixtures/make_keras2_user_h5.py's env).
    import h5py

    model = _masked_functional(kind)
    if kind == "embedding":
        x = np.array([[3, 5, 7, 0, 0, 0], [1, 2, 3, 4, 5, 6]], "int32")
    else:
        x = np.random.default_rng(0).normal(size=(2, 6, 4)).astype("float32")
        x[0, 3:] = 2.0
    path = str(tmp_path / "masked.h5")
    model.save(path)
    with h5py.File(path, "r") as f:
        classes = [x["class_name"] for x in json.loads(f.attrs["model_config"])["config"]["layers"]]
    assert not {"NotEqual", "Any"} & set(classes)
    again = keras.models.load_model(path)
    np.testing.assert_allclose(again.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-6, atol=1e-7)
    unmasked = _masked_functional(kind, masked=False)
    unmasked.set_weights(model.get_weights())
    assert np.abs(unmasked.predict(x, verbose=0)[0] - model.predict(x, verbose=0)[0]).max() > 1e-4


def test_an_explicit_mask_from_elsewhere_is_still_refused(tmp_path):
    # only the mask Keras 2 would propagate by itself may be dropped
    ids = keras.Input((6,), dtype="int32")
    other = keras.Input((6,), dtype="int32")
    h = keras.layers.Embedding(12, 4)(ids)
    h = keras.layers.LSTM(3)(h, mask=keras.ops.not_equal(other, 0))
    model = keras.Model([ids, other], h)
    with pytest.raises(ValueError, match="Keras 2 HDF5.*Save as `.keras`"):
        model.save(str(tmp_path / "explicit.h5"))
