"""Everyday Keras 2 programs, round 3, ported by changing the imports to
kerasish: Tokenizer/pad_sequences text models with masks, a sequence tagger
with temporal sample weights, model surgery, custom objects in `.h5` files
and generator training resumed from a checkpoint. Each replays the recorded
tf.keras 2 run (tools/fixtures/make_keras2_programs_3.py, whose docstring
lists the idioms) from the same initial weights on the same batches
(`shuffle=False`) and compares Histories, predictions and final weights, and
loads the `.h5` files tf.keras saved."""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import warnings

import numpy as np
import pytest

import kerasish as keras

HERE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "keras2_programs_3")
META = json.load(open(os.path.join(HERE, "metadata.json")))["programs"]
TOL = {"rtol": 2e-4, "atol": 2e-5}  # TensorFlow's kernels against torch's, a few epochs
LOADED = {"rtol": 1e-5, "atol": 1e-6}  # one forward pass of the weights in a file

# tf-keras 2.21 warns `fit_generator` & co. with a UserWarning; kerasish with the same message as a
# DeprecationWarning (tests/trainers/test_keras2_step_api.py)
DEPRECATED = DeprecationWarning

WORDS = ["good", "great", "fine", "bad", "awful", "poor", "the", "a", "movie", "plot", "was", "very", "not",
         "acting", "and", "film"]


# ------------------------------------------------- the generator's data, rebuilt with the same code
def text_data(seed, n):
    rng = np.random.RandomState(seed)
    texts, labels = [], []
    for _ in range(n):
        words = [WORDS[i] for i in rng.randint(0, len(WORDS), rng.randint(3, 10))]
        texts.append(" ".join(words).capitalize() + ("!" if rng.rand() < 0.3 else "."))
        pos = sum(w in WORDS[:3] for w in words)
        labels.append(int(pos > sum(w in WORDS[3:6] for w in words)))
    return texts, np.asarray(labels, "float32")


def tags_of(tokenizer, seqs):
    index_word = tokenizer.index_word
    out = np.zeros_like(seqs)
    for (i, j), v in np.ndenumerate(seqs):
        if v:
            w = index_word.get(int(v))
            out[i, j] = 1 if w in WORDS[:3] else 2 if w in WORDS[3:6] else 3
    return out


def regression_data(seed, n=48):
    rng = np.random.RandomState(seed)
    x = rng.randn(n, 6).astype("float32")
    y = (np.tanh(x[:, :2].sum(axis=1, keepdims=True)) + 0.1 * x[:, 2:3] ** 2).astype("float32")
    return x, y


# ------------------------------------------------- helpers
def _expected(name):
    with np.load(os.path.join(HERE, name + ".npz"), allow_pickle=False) as f:
        arrays = dict(f)
    meta = META[name]

    def listed(key):
        return [arrays[f"{key}.{i}"] for i in range(meta[key + "#len"])]

    return arrays, meta, listed


def _fixture(tmp_path, name):
    """A copy of a recorded file (tests never write into tests/fixtures)."""
    shutil.copy(os.path.join(HERE, name), tmp_path / name)
    return str(tmp_path / name)


def _assert_history(got, want, tol=TOL):
    history = got.history if hasattr(got, "history") else got
    assert sorted(history) == sorted(want)
    for key, values in want.items():
        np.testing.assert_allclose(history[key], values, err_msg=key, **tol)


def _assert_list(got, want, tol=TOL):
    assert len(got) == len(want)
    for i, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_allclose(a, b, err_msg=f"weight {i}", **tol)


# ------------------------------------------------- programs
def test_text_bilstm_maxpool_program(tmp_path):
    from kerasish.layers import LSTM, Bidirectional, Dense, Embedding, GlobalMaxPooling1D
    from kerasish.models import Sequential, load_model
    from kerasish.preprocessing.sequence import pad_sequences
    from kerasish.preprocessing.text import Tokenizer

    arrays, meta, listed = _expected("text_bilstm_maxpool")
    texts, labels = text_data(0, 40)
    tokenizer = Tokenizer(num_words=14, oov_token="<unk>")
    tokenizer.fit_on_texts(texts[:32])
    seqs = pad_sequences(tokenizer.texts_to_sequences(texts), maxlen=8, padding="post", truncating="post")
    np.testing.assert_array_equal(seqs, arrays["sequences"])
    x_train, y_train, x_val, y_val = seqs[:32], labels[:32], seqs[32:], labels[32:]
    model = Sequential()
    model.add(Embedding(14, 8, mask_zero=True, input_length=8))
    model.add(Bidirectional(LSTM(6, return_sequences=True)))
    model.add(GlobalMaxPooling1D())
    model.add(Dense(1, activation="sigmoid"))
    model.set_weights(listed("init"))
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    h = model.fit(x_train, y_train, batch_size=8, epochs=3, validation_data=(x_val, y_val), shuffle=False,
                  verbose=0)
    _assert_history(h, meta["history"])
    np.testing.assert_allclose(model.predict(x_val, verbose=0), arrays["predict"], **TOL)
    _assert_list(model.get_weights(), listed("final"))
    # tf.keras's file
    loaded = load_model(_fixture(tmp_path, "text_bilstm_maxpool.h5"))
    np.testing.assert_allclose(loaded.predict(x_val, verbose=0), arrays["loaded_predict"], **LOADED)
    _assert_list(loaded.get_weights(), listed("final"), {"rtol": 0, "atol": 0})


def test_sequence_tagging_program(tmp_path):
    from kerasish.layers import LSTM, Bidirectional, Dense, Embedding, Input, TimeDistributed
    from kerasish.models import Model, load_model
    from kerasish.preprocessing.sequence import pad_sequences
    from kerasish.preprocessing.text import Tokenizer

    arrays, meta, listed = _expected("sequence_tagging")
    texts, _ = text_data(1, 32)
    tokenizer = Tokenizer()
    tokenizer.fit_on_texts(texts)
    seqs = pad_sequences(tokenizer.texts_to_sequences(texts), maxlen=9, padding="post")
    tags = tags_of(tokenizer, seqs)
    weights = np.where(seqs > 0, np.where(tags == 3, 0.5, 1.0), 0.0).astype("float32")
    np.testing.assert_array_equal(seqs, arrays["sequences"])
    np.testing.assert_array_equal(tags, arrays["tags"])
    n_words = len(tokenizer.word_index) + 1
    inp = Input(shape=(None,), dtype="int32")
    h = Embedding(n_words, 8, mask_zero=True)(inp)
    h = Bidirectional(LSTM(8, return_sequences=True))(h)
    out = TimeDistributed(Dense(4, activation="softmax"))(h)
    model = Model(inp, out)
    model.set_weights(listed("init"))
    model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=0.01), loss="sparse_categorical_crossentropy",
                  sample_weight_mode="temporal", weighted_metrics=["accuracy"])
    h = model.fit(seqs[:24], tags[:24], sample_weight=weights[:24], batch_size=8, epochs=2, shuffle=False,
                  verbose=0)
    _assert_history(h, meta["history"])
    np.testing.assert_allclose(model.predict(seqs[24:], verbose=0), arrays["predict"], **TOL)
    np.testing.assert_allclose(model.evaluate(seqs[24:], tags[24:], sample_weight=weights[24:], verbose=0),
                               arrays["evaluate"], **TOL)
    _assert_list(model.get_weights(), listed("final"))
    loaded = load_model(_fixture(tmp_path, "sequence_tagging.h5"))
    np.testing.assert_allclose(loaded.predict(seqs[24:], verbose=0), arrays["loaded_predict"], **LOADED)
    np.testing.assert_allclose(loaded.evaluate(seqs[24:], tags[24:], sample_weight=weights[24:], verbose=0),
                               arrays["loaded_evaluate"], **LOADED)


def test_model_surgery_program(tmp_path):
    from kerasish.layers import Dense, Dropout, Input
    from kerasish.models import Model, Sequential, clone_model, load_model

    arrays, meta, listed = _expected("model_surgery")
    x, y = regression_data(2)
    y_cls = np.digitize(y[:, 0], [-0.3, 0.4]).astype("int64")
    inp = Input(shape=(6,), name="features")
    h = Dense(16, activation="relu", name="hidden_1")(inp)
    h = Dense(8, activation="relu", name="hidden_2")(h)
    h = Dropout(0.0, name="drop")(h)
    out = Dense(1, name="regress")(h)
    base = Model(inp, out, name="base")
    base.set_weights(listed("init_base"))
    base.compile(optimizer="adam", loss="mse")
    _assert_history(base.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0), meta["history_base"])
    base_weights = str(tmp_path / "base_weights.h5")
    base.save_weights(base_weights)

    feature = Model(inputs=base.input, outputs=base.layers[-3].output, name="feature")
    model = Sequential([feature, Dense(3, activation="softmax", name="head")], name="transfer")
    model.layers[-1].set_weights(listed("init_head"))
    for layer in feature.layers:
        layer.trainable = False
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    assert len(model.trainable_weights) == meta["n_trainable_frozen"]
    _assert_history(model.fit(x, y_cls, batch_size=16, epochs=2, shuffle=False, verbose=0), meta["history_frozen"])
    feature.layers[-1].trainable = True
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9),
                  loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    assert len(model.trainable_weights) == meta["n_trainable_unfrozen"]
    _assert_history(model.fit(x, y_cls, batch_size=16, epochs=2, shuffle=False, verbose=0),
                    meta["history_finetune"])
    _assert_list(model.get_weights(), listed("final"))
    np.testing.assert_allclose(model.predict(x[:8], verbose=0), arrays["predict"], **TOL)
    np.testing.assert_allclose(base.predict(x[:8], verbose=0), arrays["base_predict"], **TOL)
    # the nested model saved whole: kerasish's own file and tf.keras's
    path = str(tmp_path / "model_surgery.h5")
    model.save(path)
    np.testing.assert_allclose(load_model(path).predict(x[:8], verbose=0), model.predict(x[:8], verbose=0),
                               rtol=0, atol=0)
    loaded = load_model(_fixture(tmp_path, "model_surgery.h5"))
    np.testing.assert_allclose(loaded.predict(x[:8], verbose=0), arrays["loaded_predict"], **LOADED)
    assert len(loaded.trainable_weights) == meta["loaded_n_trainable"]
    _assert_history(loaded.fit(x, y_cls, batch_size=16, epochs=1, shuffle=False, verbose=0), meta["loaded_history"])
    _assert_list(loaded.get_weights(), listed("loaded_final"))

    clone = clone_model(model)
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone.predict(x[:8], verbose=0), arrays["clone_predict"], **TOL)
    w, b = model.layers[-1].get_weights()
    clone.layers[-1].set_weights([w * 0.5, b + 0.1])
    np.testing.assert_allclose(clone.predict(x[:8], verbose=0), arrays["clone_predict_edited"], **TOL)

    seq = Sequential([Dense(8, activation="relu", input_shape=(6,), name="s1"), Dense(4, name="s2"),
                      Dense(1, name="s3")])
    seq.set_weights(listed("init_seq"))
    seq.pop()
    seq.add(Dense(2, activation="softmax", name="s3_new"))
    seq.layers[-1].set_weights(listed("init_seq_new_head"))
    assert len(seq.layers) == meta["seq_n_layers"]
    assert list(seq.output_shape) == meta["seq_output_shape"]
    np.testing.assert_allclose(seq.predict(x[:8], verbose=0), arrays["seq_predict"], **LOADED)

    def other_model():
        inp2 = Input(shape=(6,), name="features")
        h2 = Dense(16, activation="relu", name="hidden_1")(inp2)
        h2 = Dense(8, activation="relu", name="hidden_2")(h2)
        other = Model(inp2, Dense(2, name="regress")(h2), name="other")
        other.set_weights(listed("init_other"))
        return other

    for weights_file in (base_weights, _fixture(tmp_path, "model_surgery_base_weights.h5")):
        other = other_model()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            other.load_weights(weights_file, by_name=True, skip_mismatch=True)
        assert any("regress" in str(w.message) for w in caught)
        # hidden_1/hidden_2 loaded (kerasish's file after kerasish's training), "regress" kept its own weights
        _assert_list(other.get_weights(), listed("other_after_load"),
                     TOL if weights_file == base_weights else {"rtol": 0, "atol": 0})


def _custom_objects():
    class RBF(keras.layers.Layer):
        def __init__(self, units, gamma=1.0, **kwargs):
            super().__init__(**kwargs)
            self.units = units
            self.gamma = gamma

        def build(self, input_shape):
            self.centers = self.add_weight(name="centers", shape=(self.units, int(input_shape[-1])),
                                           initializer="random_normal", trainable=True)
            super().build(input_shape)

        def call(self, inputs):
            diff = inputs[:, None, :] - self.centers[None, :, :]
            return keras.backend.exp(-self.gamma * keras.backend.sum(diff * diff, axis=-1))

        def get_config(self):
            config = super().get_config()
            config.update({"units": self.units, "gamma": self.gamma})
            return config

    def huber_like(y_true, y_pred):
        err = y_pred - y_true
        return keras.backend.mean(keras.backend.sqrt(1.0 + err * err) - 1.0, axis=-1)

    def rmse(y_true, y_pred):
        return keras.backend.sqrt(keras.backend.mean((y_pred - y_true) ** 2, axis=-1))

    return RBF, huber_like, rmse


def soft_clip(t):
    return t / (1.0 + abs(t))


def test_custom_objects_program(tmp_path):
    from kerasish.layers import Dense, Input, Lambda
    from kerasish.models import Model, load_model
    from kerasish.utils import CustomObjectScope

    arrays, meta, listed = _expected("custom_objects")
    RBF, huber_like, rmse = _custom_objects()
    x, y = regression_data(3)
    y = np.concatenate([y, 0.5 * x[:, 3:4] - y], axis=1)
    inp = Input(shape=(6,))
    h = RBF(8, gamma=0.5, name="rbf")(inp)
    h = Dense(8, name="dense")(h)
    h = Lambda(lambda t: soft_clip(t) * 2.0, name="squash")(h)
    out = Dense(2, name="out")(h)
    model = Model(inp, out)
    model.set_weights(listed("init"))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.02), loss=huber_like, metrics=[rmse, "mae"])
    h = model.fit(x[:40], y[:40], batch_size=10, epochs=2, shuffle=False, verbose=0)
    _assert_history(h, meta["history"])
    np.testing.assert_allclose(model.predict(x[40:], verbose=0), arrays["predict"], **TOL)
    _assert_list(model.get_weights(), listed("final"))

    path = _fixture(tmp_path, "custom_objects.h5")
    objects = {"RBF": RBF, "huber_like": huber_like, "rmse": rmse, "soft_clip": soft_clip}
    # tf.keras 2 runs the Lambda's bytecode from an .h5 unasked; kerasish only with safe_mode=False
    with pytest.raises(ValueError, match="safe_mode=False"):
        load_model(path, custom_objects=objects)
    loaded = load_model(path, custom_objects=objects, safe_mode=False)
    np.testing.assert_allclose(loaded.predict(x[40:], verbose=0), arrays["loaded_predict"], **LOADED)
    np.testing.assert_allclose(loaded.evaluate(x[40:], y[40:], verbose=0), arrays["loaded_evaluate"], **LOADED)
    with CustomObjectScope(objects):
        scoped = load_model(path, safe_mode=False)
    np.testing.assert_allclose(scoped.predict(x[40:], verbose=0), arrays["scoped_predict"], **LOADED)
    _assert_history(scoped.fit(x[:40], y[:40], batch_size=10, epochs=1, shuffle=False, verbose=0),
                    meta["scoped_history"])
    _assert_list(scoped.get_weights(), listed("scoped_final"))


def test_generator_resume_program(tmp_path):
    from kerasish.callbacks import CSVLogger, LambdaCallback, ModelCheckpoint, TerminateOnNaN
    from kerasish.layers import Dense
    from kerasish.models import Sequential, load_model

    arrays, meta, listed = _expected("generator_resume")
    x, y = regression_data(4)

    def generator(features, targets, batch_size):
        while True:
            for i in range(0, len(features), batch_size):
                yield features[i:i + batch_size], targets[i:i + batch_size]

    model = Sequential([Dense(12, activation="tanh", input_shape=(6,)), Dense(1)])
    model.set_weights(listed("init"))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="mse", metrics=["mae"])
    csv_path = str(tmp_path / "generator_resume.csv")
    ckpt = str(tmp_path / "ckpt-{epoch:02d}.h5")
    epoch_log = []
    log_epochs = LambdaCallback(on_epoch_end=lambda epoch, logs: epoch_log.append([epoch, logs["loss"]]))
    with pytest.warns(DEPRECATED, match="fit_generator"):
        h1 = model.fit_generator(generator(x[:32], y[:32], 8), steps_per_epoch=4, epochs=2,
                                 validation_data=generator(x[32:], y[32:], 8), validation_steps=2,
                                 callbacks=[ModelCheckpoint(ckpt), CSVLogger(csv_path, append=True), log_epochs],
                                 verbose=0)
    _assert_history(h1, meta["history_1"])
    _assert_list(model.get_weights(), listed("weights_epoch_2"))
    assert sorted(os.listdir(tmp_path)) == ["ckpt-01.h5", "ckpt-02.h5", "generator_resume.csv"]

    def resume(path):
        resumed = load_model(path)
        assert int(resumed.optimizer.iterations.numpy()) == meta["resumed_iterations"]
        with pytest.warns(DEPRECATED, match="fit_generator"):
            h2 = resumed.fit_generator(generator(x[:32], y[:32], 8), steps_per_epoch=4, epochs=4, initial_epoch=2,
                                       validation_data=generator(x[32:], y[32:], 8), validation_steps=2,
                                       callbacks=[CSVLogger(csv_path, append=True), log_epochs], verbose=0)
        _assert_history(h2, meta["history_2"])
        assert list(h2.epoch) == meta["history_2_epochs"]
        _assert_list(resumed.get_weights(), listed("final"))
        return resumed

    resumed = resume(str(tmp_path / "ckpt-02.h5"))
    np.testing.assert_allclose(np.asarray(epoch_log), arrays["epoch_log"], **TOL)
    # one header, four epochs: the CSV tf.keras wrote, number for number
    with open(csv_path) as f:
        got = list(csv.reader(f))
    with open(os.path.join(HERE, "generator_resume.csv")) as f:
        want = list(csv.reader(f))
    assert got[0] == want[0] and len(got) == len(want) == 5
    np.testing.assert_allclose(np.asarray(got[1:], float), np.asarray(want[1:], float), **TOL)
    with pytest.warns(DEPRECATED, match="evaluate_generator"):
        evaluated = resumed.evaluate_generator(generator(x[32:], y[32:], 8), steps=2)
    np.testing.assert_allclose(evaluated, arrays["evaluate"], **TOL)
    with pytest.warns(DEPRECATED, match="predict_generator"):
        predicted = resumed.predict_generator(generator(x[32:], y[32:], 8), steps=2)
    np.testing.assert_allclose(predicted, arrays["predict"], **TOL)
    # tf.keras's own epoch-2 checkpoint resumes the same way
    epoch_log.clear()
    os.remove(csv_path)
    resume(_fixture(tmp_path, "generator_resume_ckpt-02.h5"))

    x_nan = x[:32].copy()
    x_nan[17, 0] = np.nan
    batches = []
    nan_model = Sequential([Dense(12, activation="tanh", input_shape=(6,)), Dense(1)])
    nan_model.set_weights(listed("init"))
    nan_model.compile(optimizer="sgd", loss="mse")
    h3 = nan_model.fit(x_nan, y[:32], batch_size=8, epochs=3, shuffle=False, verbose=0,
                       callbacks=[TerminateOnNaN(), LambdaCallback(
                           on_batch_end=lambda batch, logs: batches.append([batch, logs["loss"]]))])
    assert sorted(h3.history) == sorted(meta["nan_history"])
    assert [math.isnan(v) for v in h3.history["loss"]] == [math.isnan(v) for v in meta["nan_history"]["loss"]]
    np.testing.assert_allclose(np.asarray(batches), arrays["nan_batches"], equal_nan=True, **TOL)


def test_stateful_h5_program(tmp_path):
    from kerasish.layers import LSTM, Dense, Flatten, TimeDistributed
    from kerasish.models import Sequential, load_model

    arrays, meta, listed = _expected("stateful_h5")
    rng = np.random.RandomState(6)
    x = rng.randn(4, 3, 2).astype("float32")
    y = np.cumsum(x[..., 0], axis=1).astype("float32")
    model = Sequential([LSTM(4, stateful=True, batch_input_shape=(2, 3, 2), return_sequences=True),
                        TimeDistributed(Dense(1)), Flatten()])
    model.set_weights(listed("init"))
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    losses = []
    for _ in range(3):
        losses += model.fit(x, y, batch_size=2, epochs=1, shuffle=False, verbose=0).history["loss"]
        model.reset_states()
    np.testing.assert_allclose(losses, meta["losses"], **TOL)
    _assert_list(model.get_weights(), listed("final"))
    for path in (str(tmp_path / "kerasish.h5"), _fixture(tmp_path, "stateful_h5.h5")):
        if "kerasish" in path:
            model.save(path)
        loaded = load_model(path)
        assert loaded.layers[0].stateful and loaded.input_shape == (2, 3, 2)
        assert int(loaded.optimizer.iterations) == 6
        tol = TOL if "kerasish" in path else LOADED
        np.testing.assert_allclose(loaded.predict(x[:2], batch_size=2, verbose=0), arrays["predict_1"], **tol)
        np.testing.assert_allclose(loaded.predict(x[2:], batch_size=2, verbose=0), arrays["predict_2"], **tol)
        loaded.reset_states()
        np.testing.assert_allclose(loaded.predict(x[2:], batch_size=2, verbose=0), arrays["predict_after_reset"],
                                   **tol)
        with pytest.raises(ValueError, match="batch size"):
            loaded.predict(x[:3], batch_size=3, verbose=0)


def test_tf_keras_loaded_the_files_kerasish_wrote():
    """Recorded by the generator: kerasish loaded each `.h5` above (and the `CuDNNLSTM`/`CuDNNGRU`
    file of tests/saving/legacy/test_keras2_cudnn_h5.py) and saved it again as Keras 2 `.h5`; tf.keras 2
    loaded those files compiled (custom objects included), with the optimizer's step count, and
    predicted and evaluated exactly as on its own files (the cuDNN one: as its LSTM/GRU model did)."""
    record = json.load(open(os.path.join(HERE, "metadata.json")))["tf_keras_loads_kerasish"]
    assert sorted(record) == sorted(META)
    for name, entry in record.items():
        assert entry["written"] and entry["loads"] and entry["compiled"], (name, entry)
        assert entry["max_abs_pred_diff"] == 0.0 and entry["max_abs_evaluate_diff"] == 0.0, (name, entry)
        # (the cuDNN file was saved compiled but never trained: tf.keras cannot run it on a CPU; the
        # stateful model's SGD: its step count, kept through tf.keras's unused momentum slots)
        assert entry["optimizer_iterations"] > 0 or name == "cudnn_lstm_gru", name
    assert record["cudnn_lstm_gru"]["layers"] == ["Bidirectional", "GRU", "Dense"]
