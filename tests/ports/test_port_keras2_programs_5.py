"""Everyday Keras 2 programs and files, round 5, ported by changing the
imports to kerasish: callbacks compared epoch by epoch (EarlyStopping with
restore_best_weights, LearningRateScheduler, ReduceLROnPlateau, formatted
ModelCheckpoint names), `to_json` / `model_from_json` configs, video models
(TimeDistributed(Conv2D) + LSTM, ConvLSTM1D/2D), Masking with temporal
sample weights, a siamese multi-output model resumed from `.h5`, metric
objects, learning-rate schedules with constraints and regularizers, and
truncated back-propagation through time with stateful RNNs. Each replays the
recorded tf.keras 2 run (tools/fixtures/make_keras2_programs_5.py, whose
docstring lists the idioms) from the same initial weights on the same batches
(`shuffle=False`) and compares Histories, predictions and final weights, and
loads the files tf.keras saved (kept gzipped; unpacked into `tmp_path`)."""

from __future__ import annotations

import gzip
import json
import os
import shutil

import numpy as np
import pytest

import kerasish as keras

HERE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "keras2_programs_5")
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


def sequence_data(seed=5, n=12, t=6, f=3):
    rng = np.random.RandomState(seed)
    x = rng.randn(n, t, f).astype("float32")
    lengths = rng.randint(2, t + 1, n)
    mask = np.zeros((n, t), "float32")
    for i, n_steps in enumerate(lengths):
        if i % 2 == 0:
            mask[i, :n_steps] = 1.0
        else:
            mask[i, t - n_steps:] = 1.0
    x *= mask[:, :, None]
    y = np.stack([np.cumsum(x[:, :, 0], axis=1), x[:, :, 1] - x[:, :, 2]], axis=-1).astype("float32") * 0.5
    sw = (mask * np.where(np.arange(t) % 3 == 0, 2.0, 1.0)[None, :]).astype("float32")
    return x, y, sw


def video_data(seed=6, n=8):
    rng = np.random.RandomState(seed)
    frames = rng.randn(n, 3, 6, 6, 1).astype("float32")
    labels = (frames.mean(axis=(1, 2, 3, 4)) > 0).astype("float32")
    signal = rng.randn(n, 3, 6, 2).astype("float32")
    target = signal.sum(axis=(1, 2))[:, :1].astype("float32") * 0.2
    movie = rng.rand(n, 4, 5, 5, 1).astype("float32")
    return frames, labels, signal, target, movie[:, :3], movie[:, 1:]


def siamese_data(seed=7, n=24):
    rng = np.random.RandomState(seed)
    a = rng.randn(n, 5).astype("float32")
    b = (a * rng.choice([1.0, -1.0], (n, 1)) + 0.5 * rng.randn(n, 5)).astype("float32")
    same = (np.sum(a * b, axis=1, keepdims=True) > 0).astype("float32")
    gap = np.abs(a - b).sum(axis=1, keepdims=True).astype("float32") * 0.2
    return a, b, same, gap


def classification_data(seed=8, n=32):
    rng = np.random.RandomState(seed)
    x = rng.randn(n, 4).astype("float32")
    yb = ((x[:, 0] + 0.5 * x[:, 1] + 0.3 * rng.randn(n)) > 0.2).astype("float32")[:, None]
    yc = np.eye(3, dtype="float32")[np.argmax(x[:, :3] + 0.5 * rng.randn(n, 3), axis=1)]
    return x, yb, yc


def tbptt_data(seed=9):
    rng = np.random.RandomState(seed)
    x = rng.randn(2, 2, 9, 2).astype("float32")
    y = np.cumsum(x[..., 0], axis=-1)[..., None].astype("float32") * 0.3
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
    """A copy of a recorded file in `tmp_path`, unpacked if it is kept gzipped (tests never write into
    tests/fixtures)."""
    src, dest = os.path.join(HERE, name), tmp_path / name
    if os.path.exists(src):
        shutil.copy(src, dest)
    else:
        with gzip.open(src + ".gz", "rb") as s, open(dest, "wb") as d:
            shutil.copyfileobj(s, d)
    return str(dest)


def _assert_history(got, want, tol=TOL):
    """`want` is tf.keras 2's History: its `lr` column is Keras 3's (and kerasish's) `learning_rate`, and
    `history["lr"]` reads it as in a Keras 2 program."""
    history = got.history if hasattr(got, "history") else got
    assert sorted(history) == sorted("learning_rate" if k == "lr" else k for k in want)
    for key, values in want.items():
        np.testing.assert_allclose(history[key], values, err_msg=key, **tol)


def _assert_list(got, want, tol=TOL):
    assert len(got) == len(want)
    for i, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_allclose(a, b, err_msg=f"weight {i}", **tol)


def _written_back(name):
    """The generator's verdict on tf.keras loading the `.h5` kerasish re-saved from `name`: it loads,
    predicts the same and compiles the same loss (label smoothing and all)."""
    entry = METADATA["tf_keras_loads_kerasish"][name]
    assert entry["written"] and entry["loads"] and entry["same_loss"], entry
    assert entry["max_abs_pred_diff"] <= 1e-6, entry
    return entry


# ------------------------------------------------- programs
def _small_mlp():
    from kerasish import layers
    from kerasish.models import Sequential

    return Sequential([layers.Input((4,)), layers.Dense(8, activation="tanh"), layers.Dense(1)])


def _callbacks_data():
    x, y = regression_data(11, n=32, d=4)
    xv, yv = regression_data(12, n=16, d=4)
    return x, y, xv, yv + np.float32(0.3) * xv[:, 3:4]


def test_early_stopping_restores_best_weights():
    """EarlyStopping(patience=2, restore_best_weights=True) on a run whose val_loss turns up: the same
    epochs, the same stopped epoch, and the weights of the best epoch put back at the end."""
    from kerasish import callbacks

    arrays, meta, listed = _expected("callbacks_epochwise")
    x, y, xv, yv = _callbacks_data()
    model = _small_mlp()
    model.set_weights(listed("early_init"))
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.2, momentum=0.9), loss="mse")
    per_epoch = []
    stop = callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    keep = callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: per_epoch.append(model.get_weights()))
    h = model.fit(x, y, batch_size=8, epochs=15, validation_data=(xv, yv), shuffle=False, verbose=0,
                  callbacks=[keep, stop])
    _assert_history(h, meta["early_history"])
    assert stop.stopped_epoch == meta["early_stopped_epoch"]
    _assert_list([w for ws in per_epoch for w in ws], listed("early_epoch_weights"))
    best = meta["early_best_epoch"]
    _assert_list(model.get_weights(), listed("early_final"))
    _assert_list(model.get_weights(), per_epoch[best], EXACT)


def test_learning_rate_scheduler_and_formatted_checkpoints(tmp_path):
    """LearningRateScheduler(schedule(epoch, lr)): Keras 2 programs read the History's `lr` column;
    ModelCheckpoint("w-{epoch:02d}-{loss:.2f}.h5", save_weights_only=True) writes the same file names."""
    from kerasish import callbacks

    arrays, meta, listed = _expected("callbacks_epochwise")
    x, y, _, _ = _callbacks_data()
    model = _small_mlp()
    model.set_weights(listed("sched_init"))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.02), loss="mse", metrics=["mae"])
    h = model.fit(x, y, batch_size=8, epochs=4, shuffle=False, verbose=0,
                  callbacks=[callbacks.LearningRateScheduler(lambda epoch, lr: lr if epoch < 2 else lr * 0.5),
                             callbacks.ModelCheckpoint(str(tmp_path / "w-{epoch:02d}-{loss:.2f}.h5"),
                                                       save_weights_only=True)])
    _assert_history(h, meta["sched_history"])
    assert "lr" in h.history and h.history.get("lr") is h.history["learning_rate"]
    assert sorted(os.listdir(tmp_path)) == meta["sched_files"]
    model.load_weights(str(tmp_path / meta["sched_files"][2]))
    _assert_list(model.get_weights(), listed("sched_epoch3_weights"))


def test_reduce_lr_on_plateau_with_best_checkpoint(tmp_path):
    """ReduceLROnPlateau(patience=1, cooldown=1, min_lr=) and a whole-model ModelCheckpoint(save_best_only):
    the same learning rates epoch by epoch (History `lr`), the same files kept; the best file loads in
    kerasish and in tf.keras (metadata.json) and predicts what tf.keras's own file predicts."""
    from kerasish import callbacks
    from kerasish.models import load_model

    arrays, meta, listed = _expected("callbacks_epochwise")
    x, y, xv, yv = _callbacks_data()
    model = _small_mlp()
    model.set_weights(listed("plateau_init"))
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.2, momentum=0.9), loss="mse")
    ckdir = tmp_path / "ck"
    ckdir.mkdir()
    h = model.fit(x, y, batch_size=8, epochs=7, validation_data=(xv, yv), shuffle=False, verbose=0,
                  callbacks=[callbacks.ReduceLROnPlateau(monitor="val_loss", factor=0.5, patience=1, cooldown=1,
                                                         min_lr=0.03),
                             callbacks.ModelCheckpoint(str(ckdir / "best-{epoch:02d}.h5"), monitor="val_loss",
                                                       save_best_only=True)])
    _assert_history(h, meta["plateau_history"])
    assert sorted(os.listdir(ckdir)) == meta["plateau_files"]
    _assert_list(model.get_weights(), listed("plateau_final"))
    for path in (str(ckdir / meta["plateau_files"][-1]), _fixture(tmp_path, "callbacks_epochwise_best.h5")):
        best = load_model(path)
        np.testing.assert_allclose(best.predict(xv, verbose=0), arrays["plateau_best_predict"], **TOL)
        np.testing.assert_allclose(float(best.optimizer.learning_rate), meta["plateau_best_lr"], rtol=1e-6)
    _written_back("callbacks_epochwise_best")


class Scale(keras.layers.Layer):
    """The program's custom layer: `x * scale + offset`, one learned scale per feature."""

    def __init__(self, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.offset = offset

    def build(self, input_shape):
        self.scale = self.add_weight(name="scale", shape=(input_shape[-1],), initializer="ones")

    def call(self, inputs):
        return inputs * self.scale + self.offset

    def get_config(self):
        return {**super().get_config(), "offset": self.offset}


@pytest.mark.parametrize("name", ["seq", "func"])
def test_json_configs(tmp_path, name):
    """`model_from_json(model.to_json())` of a tf.keras Sequential / functional model (causal dilated
    Conv1D with regularizer and constraint, BatchNormalization, a shared layer, the merge layers, a custom
    layer through `custom_objects`), `load_weights` of the `save_weights` `.h5`, the same predictions;
    the same from `model.get_config()` JSON and `Model.from_config`."""
    from kerasish.models import Model, Sequential, model_from_json

    arrays, meta, listed = _expected("json_configs")
    rng = np.random.RandomState(13)
    xs = rng.randn(5, 8, 3).astype("float32")
    xa, xb = rng.randn(5, 4).astype("float32"), rng.randn(5, 4).astype("float32")
    x = xs if name == "seq" else [xa, xb]
    with open(_fixture(tmp_path, f"json_configs_{name}.json")) as f:
        model = model_from_json(f.read(), custom_objects={"Scale": Scale})
    model.load_weights(_fixture(tmp_path, f"json_configs_{name}_weights.h5"))
    _assert_list(model.get_weights(), listed(f"{name}_weights"), EXACT)
    np.testing.assert_allclose(model.predict(x, verbose=0), arrays[f"{name}_predict"], **LOADED)
    with open(_fixture(tmp_path, f"json_configs_{name}.config")) as f:
        config = json.load(f)
    cls = Sequential if name == "seq" else Model
    again = cls.from_config(config, custom_objects={"Scale": Scale})
    again.set_weights(listed(f"{name}_weights"))
    np.testing.assert_allclose(again.predict(x, verbose=0), arrays[f"{name}_predict"], **LOADED)
    # the config kerasish writes back reads again the same
    third = model_from_json(model.to_json(), custom_objects={"Scale": Scale})
    third.set_weights(model.get_weights())
    np.testing.assert_allclose(third.predict(x, verbose=0), arrays[f"{name}_predict"], **LOADED)


def test_to_yaml_is_refused_as_keras2_does():
    """tf.keras 2.21 removed YAML configs (arbitrary code execution); a ported `to_yaml()` /
    `model_from_yaml()` gets the same RuntimeError pointing at the JSON methods."""
    from kerasish.models import model_from_yaml

    meta = META["json_configs"]
    model = _small_mlp()
    with pytest.raises(RuntimeError) as err:
        model.to_yaml()
    assert str(err.value) == meta["to_yaml_error"].split(": ", 1)[1]
    with pytest.raises(RuntimeError) as err:
        model_from_yaml("a: 1")
    assert str(err.value) == meta["model_from_yaml_error"].split(": ", 1)[1]


def _video_models():
    from kerasish import layers
    from kerasish.models import Sequential

    # tf.keras 2's ConvLSTM default `recurrent_activation` is its own "hard_sigmoid" (clip(0.2 x + 0.5));
    # Keras 3's (and kerasish's) is "sigmoid": a port that relied on the default names Keras 2's function
    keras2_hard_sigmoid = keras.activations.get("kerasish>keras2_hard_sigmoid")

    td = Sequential([layers.Input((3, 6, 6, 1)),
                     layers.TimeDistributed(layers.Conv2D(3, 3, activation="relu"), name="td_conv"),
                     layers.TimeDistributed(layers.MaxPooling2D(2), name="td_pool"),
                     layers.TimeDistributed(layers.Flatten(), name="td_flat"),
                     layers.LSTM(4, name="lstm"), layers.Dense(1, activation="sigmoid", name="out")])
    c1 = Sequential([layers.Input((3, 6, 2)), layers.ConvLSTM1D(3, 3, padding="same", name="convlstm1d",
                                                                recurrent_activation=keras2_hard_sigmoid),
                     layers.Flatten(), layers.Dense(1, name="out")])
    c2 = Sequential([layers.Input((3, 5, 5, 1)),
                     layers.ConvLSTM2D(3, 3, padding="same", return_sequences=True, name="convlstm2d",
                                       recurrent_activation=keras2_hard_sigmoid),
                     layers.BatchNormalization(name="bn"),
                     layers.Conv3D(1, (1, 3, 3), padding="same", activation="sigmoid", name="frame")])
    return {"td": td, "c1": c1, "c2": c2}


@pytest.mark.parametrize("name", ["td", "c1", "c2"])
def test_video_convlstm_program(tmp_path, name):
    """TimeDistributed(Conv2D/MaxPooling2D/Flatten) + LSTM, ConvLSTM1D, ConvLSTM2D(return_sequences) +
    BatchNormalization + Conv3D: 2 epochs from tf.keras's initial weights, then tf.keras's `.h5` loaded
    and 1 more epoch with its Adam state."""
    from kerasish.models import load_model

    arrays, meta, listed = _expected("video_convlstm")
    frames, labels, signal, target, movie_in, movie_out = video_data()
    x, y, loss = {"td": (frames, labels, "binary_crossentropy"), "c1": (signal, target, "mse"),
                  "c2": (movie_in, movie_out, "binary_crossentropy")}[name]
    model = _video_models()[name]
    model.set_weights(listed(f"{name}_init"))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss=loss)
    _assert_history(model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0), meta[f"{name}_history"])
    _assert_list(model.get_weights(), listed(f"{name}_final"))

    loaded = load_model(_fixture(tmp_path, f"video_convlstm_{name}.h5"))
    _assert_list(loaded.get_weights(), listed(f"{name}_final"), EXACT)
    np.testing.assert_allclose(loaded.predict(x, verbose=0), arrays[f"{name}_loaded_predict"], **LOADED)
    _assert_history(loaded.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0),
                    meta[f"{name}_resumed_history"])
    _assert_list(loaded.get_weights(), listed(f"{name}_resumed_final"))
    _written_back(f"video_convlstm_{name}")


def test_masking_temporal_program(tmp_path):
    """Masking over post- and pre-padded float sequences into LSTM / GRU(reset_after=False) /
    LSTM(go_backwards=True) / TimeDistributed(Dense), `sample_weight_mode="temporal"` with a 2-D
    per-step sample_weight and `weighted_metrics`: predictions (masked steps too), 2 epochs, the `.h5`
    reloaded, evaluated with the weights and trained 1 more epoch."""
    from kerasish import layers
    from kerasish.models import Model, load_model

    arrays, meta, listed = _expected("masking_temporal")
    x, y, sw = sequence_data()
    inp = layers.Input((6, 3), name="frames")
    h = layers.Masking(mask_value=0.0, name="mask")(inp)
    h = layers.LSTM(5, return_sequences=True, name="lstm")(h)
    h = layers.GRU(4, return_sequences=True, reset_after=False, name="gru_v1")(h)
    h = layers.LSTM(3, return_sequences=True, go_backwards=True, name="backwards")(h)
    model = Model(inp, layers.TimeDistributed(layers.Dense(2), name="per_step")(h))
    model.set_weights(listed("init"))
    np.testing.assert_allclose(model.predict(x, verbose=0), arrays["init_predict"], **LOADED)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="mse", sample_weight_mode="temporal",
                  weighted_metrics=["mae"])
    _assert_history(model.fit(x, y, sample_weight=sw, batch_size=4, epochs=2, shuffle=False, verbose=0),
                    meta["history"])
    _assert_list(model.get_weights(), listed("final"))
    np.testing.assert_allclose(model.predict(x, verbose=0), arrays["predict"], **TOL)

    loaded = load_model(_fixture(tmp_path, "masking_temporal.h5"))
    _assert_list(loaded.get_weights(), listed("final"), EXACT)
    np.testing.assert_allclose(loaded.evaluate(x, y, sample_weight=sw, batch_size=4, verbose=0),
                               meta["loaded_evaluate"], **LOADED)
    # the same values under the same names (Keras 3's `metrics_names` says `compile_metrics` where tf.keras 2
    # listed `mae`; `evaluate(return_dict=True)` has the names)
    logs = loaded.evaluate(x, y, sample_weight=sw, batch_size=4, verbose=0, return_dict=True)
    assert sorted(logs) == sorted(meta["loaded_metrics_names"])
    for key, want in zip(meta["loaded_metrics_names"], meta["loaded_evaluate"]):
        np.testing.assert_allclose(logs[key], want, err_msg=key, **LOADED)
    _assert_history(loaded.fit(x, y, sample_weight=sw, batch_size=4, epochs=1, shuffle=False, verbose=0),
                    meta["resumed_history"])
    _assert_list(loaded.get_weights(), listed("resumed_final"))
    _written_back("masking_temporal")


def test_shared_multi_output_resumed(tmp_path):
    """A siamese model (one shared tower on two inputs) with two outputs compiled with loss /
    loss_weights / metrics lists and Adamax: 2 epochs with validation, then tf.keras's `.h5` loaded and
    `fit` continues 2 epochs with the saved Adamax state to tf.keras's numbers."""
    from kerasish import layers
    from kerasish.models import Model, Sequential, load_model

    arrays, meta, listed = _expected("shared_multi_output")
    a, b, same, gap = siamese_data()
    tower = Sequential([layers.Input((5,)), layers.Dense(6, activation="relu"), layers.Dense(4)], name="tower")
    ia, ib = layers.Input((5,), name="left"), layers.Input((5,), name="right")
    ea, eb = tower(ia), tower(ib)
    same_out = layers.Dense(1, activation="sigmoid", name="same")(layers.Multiply(name="prod")([ea, eb]))
    gap_out = layers.Dense(1, name="gap")(layers.Subtract(name="diff")([ea, eb]))
    model = Model([ia, ib], [same_out, gap_out], name="siamese")
    model.set_weights(listed("init"))
    model.compile(optimizer=keras.optimizers.Adamax(learning_rate=0.01), loss=["binary_crossentropy", "mse"],
                  loss_weights=[1.0, 0.5], metrics=[["accuracy"], ["mae"]])
    _assert_history(model.fit([a[:16], b[:16]], [same[:16], gap[:16]], batch_size=8, epochs=2,
                              validation_data=([a[16:], b[16:]], [same[16:], gap[16:]]), shuffle=False, verbose=0),
                    meta["history"])
    _assert_list(model.get_weights(), listed("final"))

    loaded = load_model(_fixture(tmp_path, "shared_multi_output.h5"))
    _assert_list(loaded.get_weights(), listed("final"), EXACT)
    assert int(loaded.optimizer.iterations) == meta["loaded_iterations"]
    for got, want in zip(loaded.predict([a[16:], b[16:]], verbose=0), listed("loaded_predict")):
        np.testing.assert_allclose(got, want, **LOADED)
    _assert_history(loaded.fit([a[:16], b[:16]], [same[:16], gap[:16]], batch_size=8, epochs=2, shuffle=False,
                               verbose=0), meta["resumed_history"])
    _assert_list(loaded.get_weights(), listed("resumed_final"))
    assert int(loaded.optimizer.iterations) == meta["resumed_iterations"]
    _written_back("shared_multi_output")


def test_nadam_follows_eager_tf_keras():
    """tf-keras 2.21's Nadam caches `u_product` with a Python counter, right eagerly but not inside a
    tf.function (`fit`'s train step), where later variables multiply it again: kerasish's Nadam (Keras 3's
    algorithm) gives the eager numbers on four variables, which the recorded graph run does not."""
    import torch

    arrays, _, _ = _expected("shared_multi_output")
    ws = [keras.Variable(np.array([1.0, -2.0], "float32") * (i + 1)) for i in range(4)]
    opt = keras.optimizers.Nadam(learning_rate=0.01)
    for _ in range(3):
        opt.apply_gradients([(0.5 * torch.as_tensor(w.numpy()) + 0.3, w) for w in ws])
    got = np.stack([w.numpy() for w in ws])
    np.testing.assert_allclose(got, arrays["nadam_eager"], rtol=1e-6, atol=1e-6)
    assert np.abs(arrays["nadam_graph"] - arrays["nadam_eager"]).max() > 1e-3  # the tf-keras quirk


def test_metric_objects_program(tmp_path):
    """AUC (ROC, PR), Precision, Recall, BinaryAccuracy(threshold=0.3), TruePositives, FalseNegatives;
    TopKCategoricalAccuracy(k=2), CategoricalAccuracy, Precision(class_id=1) with label smoothing: the
    History epoch by epoch (validation too), and the `.h5` files reloaded with their compiled metrics
    evaluating to tf.keras's numbers (the loss keeps its label smoothing), and tf-keras's `.keras` archive too."""
    from kerasish import layers, losses, metrics
    from kerasish.models import Sequential, load_model

    arrays, meta, listed = _expected("metrics_objects")
    x, yb, yc = classification_data()
    binary = Sequential([layers.Input((4,)), layers.Dense(6, activation="tanh"), layers.Dense(1, activation="sigmoid")])
    binary.set_weights(listed("bin_init"))
    binary.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="binary_crossentropy",
                   metrics=[metrics.AUC(name="auc"), metrics.AUC(curve="PR", name="pr_auc"),
                            metrics.Precision(name="precision"), metrics.Recall(name="recall"),
                            metrics.BinaryAccuracy(threshold=0.3, name="acc03"), metrics.TruePositives(name="tp"),
                            metrics.FalseNegatives(name="fn")])
    _assert_history(binary.fit(x[:24], yb[:24], batch_size=8, epochs=3, shuffle=False, verbose=0,
                               validation_data=(x[24:], yb[24:])), meta["bin_history"])
    _assert_list(binary.get_weights(), listed("bin_final"))
    multi = Sequential([layers.Input((4,)), layers.Dense(6, activation="relu"), layers.Dense(3, activation="softmax")])
    multi.set_weights(listed("multi_init"))
    multi.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1),
                  loss=losses.CategoricalCrossentropy(label_smoothing=0.1),
                  metrics=[metrics.TopKCategoricalAccuracy(k=2, name="top2"), metrics.CategoricalAccuracy(name="acc"),
                           metrics.Precision(class_id=1, name="precision_1")])
    _assert_history(multi.fit(x[:24], yc[:24], batch_size=8, epochs=3, shuffle=False, verbose=0,
                              validation_data=(x[24:], yc[24:])), meta["multi_history"])
    _assert_list(multi.get_weights(), listed("multi_final"))
    for name, y in (("bin", yb), ("multi", yc)):
        loaded = load_model(_fixture(tmp_path, f"metrics_objects_{name}.h5"))
        got = loaded.evaluate(x, y, batch_size=8, verbose=0, return_dict=True)
        want = meta[f"{name}_loaded_evaluate"]
        assert sorted(got) == sorted(want)
        for key in want:
            np.testing.assert_allclose(got[key], want[key], err_msg=key, **LOADED)
        _written_back(f"metrics_objects_{name}")
    # tf-keras's own `.keras` archive of the label-smoothing model compiles with that loss (it carried a
    # Keras 2 `fn` that made the compile fail: the model loaded uncompiled, with a warning)
    loaded = load_model(_fixture(tmp_path, "metrics_objects_multi.keras"))
    assert loaded.loss.get_config()["label_smoothing"] == 0.1
    got = loaded.evaluate(x, yc, batch_size=8, verbose=0, return_dict=True)
    want = meta["multi_keras_loaded_evaluate"]
    assert sorted(got) == sorted(want)
    for key in want:
        np.testing.assert_allclose(got[key], want[key], err_msg=key, **LOADED)


def _constrained_mlp():
    from kerasish import constraints, layers, regularizers
    from kerasish.models import Sequential

    return Sequential([
        layers.Input((5,)),
        layers.Dense(8, activation="relu", kernel_regularizer=regularizers.l1_l2(l1=1e-3, l2=1e-2),
                     activity_regularizer=regularizers.l2(1e-3), kernel_constraint=constraints.max_norm(0.5),
                     bias_constraint=constraints.non_neg(), name="d1"),
        layers.Dense(4, activation="tanh", kernel_constraint=constraints.unit_norm(axis=0),
                     bias_regularizer=regularizers.l2(0.01), name="d2"),
        layers.Dense(1, kernel_constraint=constraints.min_max_norm(0.2, 1.0, rate=0.5), name="d3")])


@pytest.mark.parametrize("name", ["expdecay", "piecewise"])
def test_schedules_constraints_program(tmp_path, name):
    """Regularizers (l1_l2 kernel, activity, bias) in the loss, constraints (max_norm, non_neg, unit_norm,
    min_max_norm) after each step, Adam(ExponentialDecay(staircase=True)) / SGD(PiecewiseConstantDecay,
    momentum): 2 epochs, then tf.keras's `.h5` (the schedule in its optimizer config) resumed 1 epoch."""
    from kerasish.models import load_model
    from kerasish.optimizers import schedules

    arrays, meta, listed = _expected("schedules_constraints")
    x, y = regression_data(14, n=24, d=5)
    opt = {"expdecay": lambda: keras.optimizers.Adam(schedules.ExponentialDecay(0.05, decay_steps=3, decay_rate=0.5,
                                                                                 staircase=True)),
           "piecewise": lambda: keras.optimizers.SGD(schedules.PiecewiseConstantDecay([4, 8], [0.1, 0.05, 0.01]),
                                                     momentum=0.9)}[name]()
    model = _constrained_mlp()
    model.set_weights(listed(f"{name}_init"))
    model.compile(optimizer=opt, loss="mse")
    _assert_history(model.fit(x, y, batch_size=6, epochs=2, shuffle=False, verbose=0), meta[f"{name}_history"])
    _assert_list(model.get_weights(), listed(f"{name}_final"))

    loaded = load_model(_fixture(tmp_path, f"schedules_constraints_{name}.h5"))
    _assert_list(loaded.get_weights(), listed(f"{name}_final"), EXACT)
    # the schedule came back from the file's optimizer config, at the saved step (2 epochs of 4 batches)
    assert int(loaded.optimizer.iterations) == 8
    schedule = loaded.optimizer.get_config()["learning_rate"]
    assert schedule["class_name"] == {"expdecay": "ExponentialDecay", "piecewise": "PiecewiseConstantDecay"}[name]
    want_lr = 0.05 * 0.5 ** (8 // 3) if name == "expdecay" else 0.05  # staircase step 2; boundaries [4, 8]
    np.testing.assert_allclose(float(loaded.optimizer.learning_rate), want_lr, rtol=1e-6)
    _assert_history(loaded.fit(x, y, batch_size=6, epochs=1, shuffle=False, verbose=0),
                    meta[f"{name}_resumed_history"])
    _assert_list(loaded.get_weights(), listed(f"{name}_resumed_final"))
    _written_back(f"schedules_constraints_{name}")


def test_stateful_tbptt_program(tmp_path):
    """Truncated BPTT: stateful GRU(return_sequences) -> stateful SimpleRNN with
    batch_input_shape=(2, 3, 2), `train_on_batch` over 3 chunks of each of two sequences with
    `reset_states()` between them (the losses chunk by chunk), `predict_on_batch` carrying the state,
    `layer.reset_states(states=...)`; tf.keras's `.h5` reloaded carries the state the same way."""
    from kerasish import layers
    from kerasish.models import Sequential, load_model

    arrays, meta, listed = _expected("stateful_tbptt")
    x, y = tbptt_data()
    model = Sequential([layers.GRU(4, stateful=True, return_sequences=True, batch_input_shape=(2, 3, 2), name="gru"),
                        layers.SimpleRNN(3, stateful=True, return_sequences=True, name="rnn"),
                        layers.TimeDistributed(layers.Dense(1), name="out")])
    model.set_weights(listed("init"))
    model.compile(optimizer=keras.optimizers.RMSprop(learning_rate=0.01), loss="mse")
    losses = []
    for _ in range(2):
        for s in range(2):
            for c in range(3):
                losses.append(float(model.train_on_batch(x[s, :, 3 * c:3 * c + 3], y[s, :, 3 * c:3 * c + 3])))
            model.reset_states()
    np.testing.assert_allclose(losses, meta["losses"], **TOL)
    _assert_list(model.get_weights(), listed("trained"))
    _assert_list([model.predict_on_batch(x[0, :, 3 * c:3 * c + 3]) for c in range(3)], listed("predict_chunks"))
    model.get_layer("gru").reset_states(states=np.full((2, 4), 0.5, "float32"))
    model.get_layer("rnn").reset_states()
    np.testing.assert_allclose(model.predict_on_batch(x[1, :, :3]), arrays["predict_given_state"], **TOL)

    loaded = load_model(_fixture(tmp_path, "stateful_tbptt.h5"))
    _assert_list(loaded.get_weights(), listed("trained"), EXACT)
    _assert_list([loaded.predict_on_batch(x[1, :, 3 * c:3 * c + 3]) for c in range(3)], listed("loaded_chunks"),
                 LOADED)
    _written_back("stateful_tbptt")


# Where a tf-keras 2.21 default differs from kerasish's (Keras 3's): (class, config key) -> why. A port that
# relied on one of these defaults computes something else unless it writes the Keras 2 value out.
KERAS2_DEFAULT_DIFFERENCES = {
    ("ConvLSTM1D", "recurrent_activation"): "tf.keras 2: its hard_sigmoid, clip(0.2 x + 0.5); Keras 3: sigmoid",
    ("ConvLSTM2D", "recurrent_activation"): "tf.keras 2: its hard_sigmoid, clip(0.2 x + 0.5); Keras 3: sigmoid",
    ("ConvLSTM3D", "recurrent_activation"): "tf.keras 2: its hard_sigmoid, clip(0.2 x + 0.5); Keras 3: sigmoid",
    ("Lion", "learning_rate"): "tf.keras 2: 1e-4; Keras 3: 1e-3",
    ("RMSprop", "ema_overwrite_frequency"): "tf.keras 2: 100; Keras 3: None (only with use_ema=True)",
    ("MeanIoU", "dtype"): "tf.keras 2: float32; Keras 3: int32 (its confusion-matrix counts; same result)",
    ("RandomContrast", "factor"): "spelling only: Keras 3 writes 0.2 as (0, 0.2), the same range",
    ("RandomRotation", "factor"): "spelling only: Keras 3 writes 0.2 as (-0.2, 0.2), the same range",
    ("StringLookup", "dtype"): "config only: tf.keras 2 writes the int64 output as the layer dtype; Keras 3 float32",
    ("IntegerLookup", "dtype"): "config only: tf.keras 2 writes the int64 output as the layer dtype; Keras 3 float32",
    ("TextVectorization", "dtype"): "config only: tf.keras 2 writes `string`; Keras 3 float32",
}
# tf-keras layers kerasish does not have (Keras 3 removed them), and those Keras 3 builds otherwise
KERAS2_ONLY_LAYERS = {"AbstractRNNCell", "LocallyConnected1D", "LocallyConnected2D", "RandomHeight", "RandomWidth",
                      "ThresholdedReLU"}
KERAS3_REQUIRES = {"AveragePooling1D", "AveragePooling2D", "AveragePooling3D", "AvgPool1D", "AvgPool2D", "AvgPool3D",
                   "Discretization", "InputLayer"}  # `pool_size` / `bin_boundaries or num_bins` / `shape` required


def _config_diffs(tf_value, ours, path=""):
    """Where two configs disagree, comparing only the keys both have (Keras 3 added keys such as an
    initializer's `input_axes`); numbers with float32 tolerance, loss reduction "auto" as Keras 3's default."""
    if isinstance(tf_value, dict) and isinstance(ours, dict):
        if {"class_name", "config"} <= set(tf_value) and {"class_name", "config"} <= set(ours):
            if tf_value["class_name"] in ("Policy", "DTypePolicy"):
                return _config_diffs(tf_value["config"].get("name"), ours["config"].get("name"), path)
            if tf_value["class_name"] != ours["class_name"]:
                return [path]
            return _config_diffs(tf_value["config"], ours["config"], path)
        if ours.get("class_name") in ("DTypePolicy",) and isinstance(tf_value, str):
            return _config_diffs(tf_value, ours["config"]["name"], path)
        return [d for k in tf_value if k in ours and k not in ("name", "seed")
                for d in _config_diffs(tf_value[k], ours[k], f"{path}.{k}" if path else k)]
    if isinstance(ours, dict) and ours.get("class_name") == "DTypePolicy":
        return _config_diffs(tf_value, ours["config"]["name"], path)
    if isinstance(tf_value, (list, tuple)) and isinstance(ours, (list, tuple)):
        if len(tf_value) != len(ours):
            return [path]
        return [d for a, b in zip(tf_value, ours) for d in _config_diffs(a, b, path)]
    if isinstance(tf_value, bool) or isinstance(ours, bool):
        return [] if tf_value == ours else [path]
    if isinstance(tf_value, (int, float)) and isinstance(ours, (int, float)):
        return [] if np.isclose(tf_value, ours, rtol=1e-6, atol=0) else [path]
    if path.endswith("reduction") and {tf_value, ours} <= {"auto", "sum_over_batch_size"}:
        return []
    return [] if tf_value == ours else [path]


def test_keras2_defaults_differ_only_where_documented():
    """Every tf-keras 2.21 layer built with only its required arguments, and its optimizers, metrics and
    losses built with none (recorded configs): kerasish's defaults equal them except the documented
    `KERAS2_DEFAULT_DIFFERENCES` (README: "Porting tf.keras 2 code")."""
    import json as _json

    with gzip.open(os.path.join(HERE, "defaults_sweep.json.gz"), "rt") as f:
        recorded = _json.load(f)
    found, missing, refused = {}, set(), set()
    cases = [("layers", keras.layers, n, e["args"], e["config"]) for n, e in recorded["layers"].items()]
    cases += [("optimizers", keras.optimizers, n, {}, c) for n, c in recorded["optimizers"].items()]
    cases += [("metrics", keras.metrics, n, e["args"], e["config"]) for n, e in recorded["metrics"].items()]
    cases += [("losses", keras.losses, n, {}, c) for n, c in recorded["losses"].items()]
    assert len(cases) > 150
    for _, module, name, args, tf_config in cases:
        cls = getattr(module, name, None)
        if cls is None:
            missing.add(name)
            continue
        try:
            obj = cls(**args)
        except (TypeError, ValueError):
            refused.add(name)
            continue
        ours = _json.loads(_json.dumps(obj.get_config(), default=lambda v: list(v) if isinstance(v, tuple) else str(v)))
        for key in _config_diffs({k: v for k, v in tf_config.items() if k not in ("trainable", "batch_input_shape")},
                                 ours):
            found[(name, key.split(".")[0])] = (tf_config.get(key.split(".")[0]), ours.get(key.split(".")[0]))
    assert missing == KERAS2_ONLY_LAYERS
    assert refused == KERAS3_REQUIRES
    assert set(found) == set(KERAS2_DEFAULT_DIFFERENCES), found
