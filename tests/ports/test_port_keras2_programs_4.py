"""Everyday Keras 2 programs and files, round 4, ported by changing the
imports to kerasish: tf-keras's own `.keras` / `.weights.h5` files resumed,
TensorFlow-only files (TF checkpoint, SavedModel) refused with a way out,
multi-output models compiled with dicts, `.h5` layouts of layers not recorded
before, and tf-keras legacy optimizer states resumed. Each replays the
recorded tf.keras 2 run (tools/fixtures/make_keras2_programs_4.py, whose
docstring lists the idioms) from the same initial weights on the same batches
(`shuffle=False`) and compares Histories, predictions and final weights, and
loads the files tf.keras saved (kept gzipped; unpacked into `tmp_path`)."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import warnings

import numpy as np
import pytest

import kerasish as keras

HERE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "keras2_programs_4")
METADATA = json.load(open(os.path.join(HERE, "metadata.json")))
META = METADATA["programs"]
TOL = {"rtol": 2e-4, "atol": 2e-5}  # TensorFlow's kernels against torch's, a few epochs
LOADED = {"rtol": 1e-5, "atol": 1e-6}  # one forward pass of the weights in a file
EXACT = {"rtol": 0, "atol": 0}


# ------------------------------------------------- the generator's data, rebuilt with the same code
def regression_data(seed, n=32, d=6):
    rng = np.random.RandomState(seed)
    x = rng.randn(n, d).astype("float32")
    y = (np.tanh(x[:, :2].sum(axis=1, keepdims=True)) + 0.1 * x[:, 2:3] ** 2).astype("float32")
    return x, y


def multi_data(seed=3, n=24):
    rng = np.random.RandomState(seed)
    num = rng.randn(n, 5).astype("float32")
    cat = rng.randn(n, 3).astype("float32")
    price = (num[:, :1] * 0.5 + cat[:, 1:2]).astype("float32")
    kind = (np.argmax(num[:, :3] + cat, axis=1)).astype("int64")
    sw_price = rng.uniform(0.5, 1.5, n).astype("float32")
    sw_kind = np.where(kind == 0, 2.0, 1.0).astype("float32")
    return num, cat, price, kind, sw_price, sw_kind


def zoo_data(seed=4, n=12):
    rng = np.random.RandomState(seed)
    return {"seq": rng.randn(n, 8, 3).astype("float32"), "img": rng.randn(n, 5, 5, 2).astype("float32"),
            "vol": rng.randn(n, 3, 3, 3, 1).astype("float32"), "tokens": rng.randint(1, 12, (n, 6)).astype("int32"),
            "y": rng.randn(n, 2).astype("float32")}


# ------------------------------------------------- helpers
def _expected(name):
    with np.load(os.path.join(HERE, name + ".npz"), allow_pickle=False) as f:
        arrays = dict(f)
    meta = META[name]

    def listed(key):
        return [arrays[f"{key}.{i}"] for i in range(meta[key + "#len"])]

    return arrays, meta, listed


def _fixture(tmp_path, name):
    """A copy of a recorded file or directory in `tmp_path`, `.gz` files unpacked (tests never write
    into tests/fixtures)."""
    src, dest = os.path.join(HERE, name), tmp_path / name
    if os.path.isdir(src):
        shutil.copytree(src, dest)
        for root, _, files in os.walk(dest):
            for f in files:
                if f.endswith(".gz"):
                    _gunzip(os.path.join(root, f), os.path.join(root, f[:-3]))
                    os.remove(os.path.join(root, f))
    elif os.path.exists(src):
        shutil.copy(src, dest)
    else:
        _gunzip(src + ".gz", dest)
    return str(dest)


def _gunzip(src, dest):
    with gzip.open(src, "rb") as s, open(dest, "wb") as d:
        shutil.copyfileobj(s, d)


def _assert_history(got, want, tol=TOL):
    history = got.history if hasattr(got, "history") else got
    assert sorted(history) == sorted(want)
    for key, values in want.items():
        np.testing.assert_allclose(history[key], values, err_msg=key, **tol)


def _assert_list(got, want, tol=TOL):
    assert len(got) == len(want)
    for i, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_allclose(a, b, err_msg=f"weight {i}", **tol)


def _written_back(name):
    """The generator's verdict on tf.keras loading the `.h5` kerasish re-saved from `name`."""
    entry = METADATA["tf_keras_loads_kerasish"][name]
    assert entry["written"] and entry["loads"], entry
    assert entry["max_abs_pred_diff"] <= 1e-6, entry
    return entry


# ------------------------------------------------- programs
def _archive_model():
    from kerasish import layers
    from kerasish.models import Model

    inp = layers.Input((6,), name="features")
    h = layers.Dense(12, activation="relu", name="hidden")(inp)
    h = layers.BatchNormalization(name="bn")(h)
    out = layers.Dense(1, name="out")(h)
    return Model(inp, out, name="archive")


def test_tfkeras_archive_program(tmp_path):
    """tf-keras 2.21's `model.save("m.keras")` / `save_weights("m.weights.h5")`: kerasish loads the
    model, its compile state and its Adam state, and resumes training as tf-keras does."""
    from kerasish.models import load_model

    arrays, meta, listed = _expected("tfkeras_archive")
    x, y = regression_data(1)
    model = _archive_model()
    model.set_weights(listed("init"))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="mse", metrics=["mae"])
    _assert_history(model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0), meta["history"])
    np.testing.assert_allclose(model.predict(x[:6], verbose=0), arrays["predict"], **TOL)
    _assert_list(model.get_weights(), listed("final"))

    loaded = load_model(_fixture(tmp_path, "tfkeras_archive.keras"))
    _assert_list(loaded.get_weights(), listed("final"), EXACT)
    np.testing.assert_allclose(loaded.predict(x[:6], verbose=0), arrays["loaded_predict"], **LOADED)
    assert int(loaded.optimizer.iterations) == meta["loaded_iterations"]
    np.testing.assert_allclose(loaded.evaluate(x, y, batch_size=8, verbose=0), meta["loaded_evaluate"], **LOADED)
    _assert_history(loaded.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0), meta["history_resumed"])
    _assert_list(loaded.get_weights(), listed("resumed_final"))

    # kerasish re-saved it as Keras 2 `.h5`: tf.keras loads it with its Adam state (metadata.json)
    entry = _written_back("tfkeras_archive")
    assert entry["optimizer_iterations"] == entry["own_iterations"] == meta["loaded_iterations"]

    fresh = _archive_model()
    fresh.load_weights(_fixture(tmp_path, "tfkeras_archive.weights.h5"))
    _assert_list(fresh.get_weights(), listed("final"), EXACT)

    # compiled with `optimizers.legacy.Adam`: tf-keras writes no optimizer state; both start it fresh
    legacy = load_model(_fixture(tmp_path, "tfkeras_archive_legacy.keras"))
    _assert_list(legacy.get_weights(), listed("legacy_saved"), EXACT)
    assert int(legacy.optimizer.iterations) == meta["legacy_loaded_iterations"] == 0
    _assert_history(legacy.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0),
                    meta["legacy_history_resumed"])
    _assert_list(legacy.get_weights(), listed("legacy_resumed_final"))


@pytest.mark.parametrize("name", ["rnn", "nested", "amsgrad"])
def test_tfkeras_archives_more_resume(tmp_path, name):
    """More tf-keras `.keras` archives: Keras 2 layer configs inside (RNNs, masking, a nested Sequential)
    and optimizers whose tf-keras variable order is not plain interleaving (centered RMSprop with
    momentum: slot by slot; Adam(amsgrad=True): its `vhat`s last; SGD with Nesterov momentum). Each was
    saved after 1 epoch; kerasish and tf-keras resume 1 more."""
    from kerasish.models import load_model

    arrays, meta, listed = _expected("tfkeras_archives_more")
    rng = np.random.RandomState(8)
    tokens = rng.randint(0, 20, (8, 5)).astype("int32")
    tokens[:3, 3:] = 0
    x2 = rng.randn(8, 3).astype("float32")
    y = rng.randn(8, 2).astype("float32")
    x = tokens if name == "rnn" else x2
    loaded = load_model(_fixture(tmp_path, f"tfkeras_archives_more_{name}.keras"))
    _assert_list(loaded.get_weights(), listed(f"{name}_saved"), EXACT)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), arrays[f"{name}_loaded_predict"], **LOADED)
    assert int(loaded.optimizer.iterations) == meta[f"{name}_loaded_iterations"] == 2
    _assert_history(loaded.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0),
                    meta[f"{name}_history_resumed"])
    _assert_list(loaded.get_weights(), listed(f"{name}_resumed_final"))


def test_tf_formats_refused_with_a_way_out(tmp_path):
    """TensorFlow-only files: a TF checkpoint (`save_weights("ckpt")`) and a SavedModel directory. kerasish
    names what the file is and how to convert it (tools/convert_tf_keras_files.py), never an h5py/zipfile
    crash; the `.h5` that converter wrote in the TensorFlow environment loads and predicts the same."""
    from kerasish import layers
    from kerasish.models import Sequential, load_model

    arrays, meta, listed = _expected("tf_formats")
    model = Sequential([layers.Input((4,)), layers.Dense(5, activation="tanh"), layers.Dense(1)])
    ckpt_dir = _fixture(tmp_path, "tf_formats_ckpt")
    for path in ("ckpt", "ckpt.index", "ckpt.data-00000-of-00001"):
        with pytest.raises(ValueError, match="TensorFlow checkpoint.*convert_tf_keras_files.py"):
            model.load_weights(os.path.join(ckpt_dir, path))
    with pytest.raises(ValueError, match="TensorFlow checkpoint.*convert_tf_keras_files.py"):
        load_model(os.path.join(ckpt_dir, "ckpt"))
    saved = _fixture(tmp_path, "tf_formats_saved")
    with pytest.raises(ValueError, match="TensorFlow SavedModel directory.*convert_tf_keras_files.py"):
        load_model(saved)
    with pytest.raises(ValueError, match="TensorFlow SavedModel directory.*convert_tf_keras_files.py"):
        model.load_weights(saved)

    assert meta["converter_saved_model"]["returncode"] == 0
    converted = load_model(_fixture(tmp_path, "tf_formats_converted.h5"))
    _assert_list(converted.get_weights(), listed("weights"), EXACT)
    np.testing.assert_allclose(converted.predict(arrays["x"], verbose=0), arrays["predict"], **LOADED)
    _written_back("tf_formats_converted")
    assert meta["converter_checkpoint"]["returncode"] == 0
    model.load_weights(_fixture(tmp_path, "tf_formats_ckpt_converted.h5"))
    _assert_list(model.get_weights(), listed("weights"), EXACT)
    np.testing.assert_allclose(model.predict(arrays["x"], verbose=0), arrays["predict"], **LOADED)


def test_multi_output_dicts_program(tmp_path):
    from kerasish import layers
    from kerasish.models import Model, load_model

    arrays, meta, listed = _expected("multi_output_dicts")
    num, cat, price, kind, sw_price, sw_kind = multi_data()
    a = layers.Input((5,), name="num")
    b = layers.Input((3,), name="cat")
    h = layers.Concatenate(name="merge")([layers.Dense(8, activation="relu", name="num_proj")(a),
                                          layers.Dense(4, activation="relu", name="cat_proj")(b)])
    price_out = layers.Dense(1, name="price")(h)
    kind_out = layers.Dense(3, activation="softmax", name="kind")(h)
    model = Model(inputs=[a, b], outputs=[price_out, kind_out], name="shop")
    model.set_weights(listed("init"))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01),
                  loss={"price": "mse", "kind": "sparse_categorical_crossentropy"},
                  loss_weights={"price": 0.5, "kind": 2.0},
                  metrics={"price": ["mae"], "kind": ["accuracy"]})
    x = {"num": num[:16], "cat": cat[:16]}
    yd = {"price": price[:16], "kind": kind[:16]}
    val = ({"num": num[16:], "cat": cat[16:]}, {"price": price[16:], "kind": kind[16:]})
    h1 = model.fit(x, yd, sample_weight={"price": sw_price[:16], "kind": sw_kind[:16]}, batch_size=8, epochs=2,
                   validation_data=val, shuffle=False, verbose=0)
    _assert_history(h1, meta["history"])
    _assert_list(model.predict(val[0], verbose=0), listed("predict"))
    _assert_list(model.get_weights(), listed("final"))

    loaded = load_model(_fixture(tmp_path, "multi_output_dicts.h5"))
    _assert_list(loaded.predict(val[0], verbose=0), listed("loaded_predict"), LOADED)
    # the same values under the same names; the list order is Keras 3's (loss, per-output losses, then the
    # compiled metrics sorted by name), where tf.keras 2 listed `price_mae` before `kind_accuracy`
    logs = loaded.evaluate(*val, verbose=0, return_dict=True)
    assert sorted(logs) == sorted(meta["loaded_metrics_names"])
    for key, want in zip(meta["loaded_metrics_names"], meta["loaded_evaluate"]):
        np.testing.assert_allclose(logs[key], want, err_msg=key, **LOADED)
    _written_back("multi_output_dicts")

    # class_weight with several outputs: refused, as tf.keras 2 refused it (recorded message)
    kind_error, _, message = meta["multi_output_class_weight_error"].partition(": ")
    assert kind_error == "ValueError"
    with pytest.raises(ValueError, match=re.escape(message)):
        model.fit(x, yd, class_weight={0: 1.0, 1: 3.0, 2: 0.5}, batch_size=8, epochs=1, verbose=0)

    c = layers.Input((5,), name="num")
    clf = Model(c, layers.Dense(3, activation="softmax", name="kind")(layers.Dense(6, activation="tanh")(c)))
    clf.set_weights(listed("clf_init"))
    clf.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="sparse_categorical_crossentropy",
                metrics=["accuracy"])
    hc = clf.fit(num, kind, class_weight={0: 1.0, 1: 3.0, 2: 0.5}, batch_size=8, epochs=2, shuffle=False,
                 verbose=0)
    _assert_history(hc, meta["history_clf"])
    _assert_list(clf.get_weights(), listed("clf_final"))


def _conv_zoo():
    from kerasish import layers
    from kerasish.models import Model

    seq = layers.Input((8, 3), name="seq")
    img = layers.Input((5, 5, 2), name="img")
    vol = layers.Input((3, 3, 3, 1), name="vol")
    s = layers.SeparableConv1D(4, 3, depth_multiplier=2, padding="same", name="sep1d")(seq)
    s = layers.GlobalAveragePooling1D()(s)
    i = layers.DepthwiseConv2D(2, depth_multiplier=2, name="dw")(img)
    i = layers.PReLU(shared_axes=[1, 2], alpha_initializer=keras.initializers.Constant(0.2), name="prelu")(i)
    i = layers.Conv2DTranspose(3, 3, strides=2, output_padding=1, name="deconv2d")(i)
    i = layers.GlobalAveragePooling2D()(i)
    v = layers.Conv3DTranspose(2, 2, strides=2, output_padding=1, padding="same", name="deconv3d")(vol)
    v = layers.GlobalAveragePooling3D()(v)
    return Model([seq, img, vol], layers.Dense(2, name="head")(layers.Concatenate()([s, i, v])), name="conv_zoo")


def _seq_zoo():
    from kerasish import layers, regularizers
    from kerasish.models import Model

    tok = layers.Input((6,), dtype="int32", name="tokens")
    e = layers.Embedding(12, 6, embeddings_regularizer=regularizers.l2(0.01), name="emb")(tok)
    r = layers.SimpleRNN(5, return_sequences=True, name="rnn")(e)
    b_none = layers.Bidirectional(layers.GRU(3, return_sequences=True), merge_mode=None, name="bi_none")(r)
    b_ave = layers.Bidirectional(layers.LSTM(4, return_sequences=True), merge_mode="ave", name="bi_ave")(e)
    b_mul = layers.Bidirectional(layers.SimpleRNN(3, return_sequences=True), merge_mode="mul", name="bi_mul")(r)
    att = layers.Attention(use_scale=True, name="att")([b_none[0], b_none[1]])
    add = layers.AdditiveAttention(use_scale=True, name="add_att")([b_ave, b_ave])
    pooled = layers.Concatenate()([layers.GlobalAveragePooling1D()(t) for t in (att, add, b_mul)])
    return Model(tok, layers.Dense(2, name="head")(pooled), name="seq_zoo")


@pytest.mark.parametrize("name", ["conv_zoo", "seq_zoo"])
def test_layer_zoo_program(tmp_path, name):
    """Weight layouts of SeparableConv1D, DepthwiseConv2D(depth_multiplier=2), PReLU(shared_axes),
    Conv2D/3DTranspose(output_padding), SimpleRNN, Bidirectional(merge_mode=None/"ave"/"mul"),
    Attention/AdditiveAttention(use_scale) and a regularized Embedding, trained and in tf.keras's `.h5`."""
    from kerasish.models import load_model

    arrays, meta, listed = _expected("layer_zoo")
    d = zoo_data()
    model, x = (_conv_zoo(), [d["seq"], d["img"], d["vol"]]) if name == "conv_zoo" else (_seq_zoo(), d["tokens"])
    model.set_weights(listed(f"{name}_init"))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="mse")
    _assert_history(model.fit(x, d["y"], batch_size=4, epochs=2, shuffle=False, verbose=0), meta[f"{name}_history"])
    np.testing.assert_allclose(model.predict(x, verbose=0), arrays[f"{name}_predict"], **TOL)
    _assert_list(model.get_weights(), listed(f"{name}_final"))

    loaded = load_model(_fixture(tmp_path, f"layer_zoo_{name}.h5"))
    _assert_list(loaded.get_weights(), listed(f"{name}_final"), EXACT)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), arrays[f"{name}_predict"], **LOADED)
    assert int(loaded.optimizer.iterations) == 6
    entry = _written_back(f"layer_zoo_{name}")
    assert entry["optimizer_iterations"] == entry["own_iterations"] == 6


def test_locally_connected_h5_is_refused_clearly(tmp_path):
    """tf-keras 2 still has LocallyConnected1D/2D; Keras 3 (and kerasish) removed them: a clear error
    naming the layer and the way out, not an unknown-class error from deep inside deserialization."""
    from kerasish.models import load_model

    with pytest.raises(ValueError, match="LocallyConnected1D.*removed in Keras 3"):
        load_model(_fixture(tmp_path, "layer_zoo_local.h5"))


LEGACY_OPTIMIZERS = {
    "rmsprop_centered": ("RMSprop", dict(learning_rate=0.01, rho=0.8, momentum=0.5, centered=True)),
    "adagrad": ("Adagrad", dict(learning_rate=0.1, initial_accumulator_value=0.2)),
    "nadam": ("Nadam", dict(learning_rate=0.01)),
    "adamax": ("Adamax", dict(learning_rate=0.02)),
    "ftrl": ("Ftrl", dict(learning_rate=0.1, l1_regularization_strength=0.001, l2_regularization_strength=0.01)),
    "sgd_nesterov": ("SGD", dict(learning_rate=0.05, momentum=0.9, nesterov=True)),
}


@pytest.mark.parametrize("key", list(LEGACY_OPTIMIZERS))
def test_legacy_optimizer_state_resumed(tmp_path, key):
    """A tf-keras legacy optimizer's state in `.h5` (legacy Nadam's `momentum_cache` too), resumed by
    kerasish's `keras.optimizers.legacy` optimizer for 2 epochs as tf-keras resumed it."""
    from kerasish.models import load_model

    arrays, meta, listed = _expected("legacy_optimizers")
    x, y = regression_data(5, n=16, d=4)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # (no "Skipping loading optimizer weights", no other warning)
        loaded = load_model(_fixture(tmp_path, f"legacy_optimizers_{key}.h5"))
    assert type(loaded.optimizer) is getattr(keras.optimizers.legacy, LEGACY_OPTIMIZERS[key][0])
    _assert_list(loaded.get_weights(), listed(f"{key}_saved"), EXACT)
    assert int(loaded.optimizer.iterations) == 4
    h = loaded.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
    _assert_history(h, meta[f"{key}_resumed_history"])
    _assert_list(loaded.get_weights(), listed(f"{key}_resumed_final"))
    assert int(loaded.optimizer.iterations) == meta[f"{key}_resumed_iterations"]
