"""Everyday Keras 2 programs, round 6, ported by changing the imports to
kerasish: the classic GAN (two compiled models sharing the discriminator,
`trainable = False` between the compiles), a `keras.utils.Sequence` reshuffled
by its `on_epoch_end` through `fit_generator` / `evaluate_generator` /
`predict_generator`, `train_on_batch` / `test_on_batch` loops with
`reset_metrics=False` and `reset_metrics()`, `class_weight` with
`validation_split` and `shuffle=True`, MobileNet transfer learning (frozen
base, then fine-tuning the last layers), and a custom callback driving the
learning rate through `K.get_value` / `K.set_value` with `Lambda` layers
written in `K` functions and a CSVLogger file. Each replays the recorded
tf.keras 2 run (tools/fixtures/make_keras2_programs_6.py, whose docstring
lists the idioms) from the same initial weights on the same batches and
compares losses, metrics, predictions and weights step by step or epoch by
epoch. The data comes from the fixture's data.py, shared with the generator.

Tolerances: TensorFlow's float32 kernels against torch's, a few steps:
rtol 2e-4 / atol 2e-5 (as round 5); counts and orders exactly.
"""

from __future__ import annotations

import csv
import importlib.util
import io
import json
import os
import shutil
import warnings

import numpy as np
import pytest

import kerasish as keras

HERE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "keras2_programs_6")
META = json.load(open(os.path.join(HERE, "metadata.json")))["programs"]
TOL = {"rtol": 2e-4, "atol": 2e-5}

_spec = importlib.util.spec_from_file_location("keras2_programs_6_data", os.path.join(HERE, "data.py"))
data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(data)


def _arrays(name):
    with np.load(os.path.join(HERE, name + ".npz"), allow_pickle=False) as f:
        arrays = dict(f)

    def listed(key):
        return [arrays[f"{key}.{i}"] for i in range(META[name][key + "#len"])]

    return arrays, listed


def _assert_list(got, want, tol=TOL, what=""):
    assert len(got) == len(want), what
    for i, (a, b) in enumerate(zip(got, want)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), err_msg=f"{what}[{i}]", **tol)


def _assert_history(history, want, tol=TOL):
    for key, values in want.items():
        np.testing.assert_allclose(history[key], values, err_msg=key, **tol)


# ---------------------------------------------------------------------------------------------- gan_snapshot
def _gan(toggle):
    from kerasish import layers
    from kerasish.models import Model, Sequential

    arrays, listed = _arrays("gan_snapshot")
    real, noise_d, noise_g = data.gan_data()
    generator = Sequential([layers.Input((3,)), layers.Dense(8, activation="relu"), layers.Dense(2)],
                           name="generator")
    discriminator = Sequential([layers.Input((2,)), layers.Dense(8, activation="tanh"),
                                layers.Dense(1, activation="sigmoid")], name="discriminator")
    generator.set_weights(listed("g_init"))
    discriminator.set_weights(listed("d_init"))
    discriminator.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="binary_crossentropy",
                          metrics=["accuracy"])
    discriminator.trainable = False
    z = layers.Input((3,))
    combined = Model(z, discriminator(generator(z)))
    combined.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="binary_crossentropy")
    d_losses, g_losses, g_weights, d_weights = [], [], [], []
    for step in range(6):
        fake = generator.predict(noise_d[step], verbose=0)
        start = (step % 2) * 8
        x = np.concatenate([real[start:start + 8], fake])
        y = np.concatenate([np.ones((8, 1)), np.zeros((8, 1))]).astype("float32")
        if toggle:
            discriminator.trainable = True
        d_losses.append(np.ravel(discriminator.train_on_batch(x, y)).tolist())
        if toggle:
            discriminator.trainable = False
        g_losses.append(float(combined.train_on_batch(noise_g[step], np.ones((8, 1), "float32"))))
        g_weights += generator.get_weights()
        d_weights += discriminator.get_weights()
    return discriminator, combined, d_losses, g_losses, g_weights, d_weights, listed


def test_gan_snapshot_with_the_toggle_keras3_needs():
    """tf.keras 2 trains each compiled model with the `trainable` state of its `compile`: the
    discriminator, compiled trainable, keeps training after `discriminator.trainable = False`. Keras 3
    and kerasish read `trainable` at every step, so the port sets it around the discriminator's step
    (README): then every loss and weight matches tf.keras step by step."""
    meta = META["gan_snapshot"]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the toggled program gets no warning
        discriminator, combined, d_losses, g_losses, g_weights, d_weights, listed = _gan(toggle=True)
    np.testing.assert_allclose(d_losses, meta["d_losses"], **TOL)
    np.testing.assert_allclose(g_losses, meta["g_losses"], **TOL)
    _assert_list(g_weights, listed("g_steps"), what="generator")
    _assert_list(d_weights, listed("d_steps"), what="discriminator")
    assert [len(discriminator.trainable_weights), len(combined.trainable_weights)] == meta["trainable_counts"]


def test_gan_snapshot_unchanged_warns_that_the_discriminator_is_frozen():
    """The program as written for Keras 2 (no toggle): kerasish follows Keras 3 (the discriminator,
    frozen, does not train), and says so once, naming the layer and what tf.keras 2 did, instead of
    Keras 3's bare "no trainable weights"."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, _, _, _, _, d_weights, listed = _gan(toggle=False)
    messages = [str(w.message) for w in caught if "changed since `compile()`" in str(w.message)]
    assert len(messages) == 1, [str(w.message) for w in caught]
    assert "'discriminator'" in messages[0] and "tf.keras 2" in messages[0]
    _assert_list(d_weights[-4:], listed("d_init"), tol={"rtol": 0, "atol": 0}, what="frozen discriminator")


# ------------------------------------------------------------------------------------- sequence_generators
class Batches(keras.utils.Sequence):
    """The generator's Sequence, unchanged but for the import."""

    def __init__(self, x, y, batch_size, seed):
        super().__init__()
        self.x, self.y, self.batch_size = x, y, batch_size
        self.order = np.arange(len(x))
        self.rng = np.random.RandomState(seed)
        self.epochs_ended = 0

    def __len__(self):
        return int(np.ceil(len(self.x) / self.batch_size))

    def __getitem__(self, i):
        idx = self.order[i * self.batch_size:(i + 1) * self.batch_size]
        return self.x[idx], self.y[idx]

    def on_epoch_end(self):
        self.epochs_ended += 1
        self.order = self.rng.permutation(len(self.x))


def test_sequence_generators():
    """`fit_generator` / `evaluate_generator` / `predict_generator` on Sequences that reshuffle in
    `on_epoch_end`: the same Histories, the same number of `on_epoch_end` calls after each (tf.keras 2
    also calls it after `evaluate` and `predict`), so `predict_generator` sees the same order."""
    from kerasish import layers
    from kerasish.models import Sequential

    meta = META["sequence_generators"]
    arrays, listed = _arrays("sequence_generators")
    x, y = data.classification_data(31, 20)
    xv, yv = data.classification_data(32, 10)
    model = Sequential([layers.Input((4,)), layers.Dense(8, activation="relu"),
                        layers.Dense(3, activation="softmax")])
    model.set_weights(listed("init"))
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    train, val = Batches(x, y, 6, seed=1), Batches(xv, yv, 4, seed=2)
    h = model.fit_generator(train, epochs=3, validation_data=val, shuffle=False, verbose=0)
    _assert_history(h.history, meta["history"])
    assert (train.epochs_ended, val.epochs_ended) == (meta["train_epochs_ended_after_fit"],
                                                      meta["val_epochs_ended_after_fit"])
    np.testing.assert_allclose(model.evaluate_generator(val, verbose=0), meta["evaluate"], **TOL)
    assert val.epochs_ended == meta["val_epochs_ended_after_evaluate"]
    assert val.order.tolist() == meta["val_order_before_predict"]
    np.testing.assert_allclose(model.predict_generator(val, verbose=0), arrays["predict"], **TOL)
    assert val.epochs_ended == meta["val_epochs_ended_after_predict"]
    _assert_list(model.get_weights(), listed("final"))


# ------------------------------------------------------------------------------------------- batch_loops
def test_batch_loops():
    """`train_on_batch(reset_metrics=False)` accumulates the metrics over an epoch until
    `reset_metrics()`; `test_on_batch(reset_metrics=False)` accumulates too; `return_dict=True`;
    `sample_weight` / `class_weight` in `train_on_batch`; `predict_on_batch`. `metrics_names` is Keras 3's
    (documented in round 4): `["loss", "compile_metrics"]` from `compile` on, where tf.keras 2 has `[]`
    before the first step and then lists each metric (the values are the same, one per metric)."""
    from kerasish import layers
    from kerasish.models import Sequential

    meta = META["batch_loops"]
    arrays, listed = _arrays("batch_loops")
    x, y = data.classification_data(41, 16)
    xv, yv = data.classification_data(42, 8)
    model = Sequential([layers.Input((4,)), layers.Dense(6, activation="relu"),
                        layers.Dense(3, activation="softmax")])
    model.set_weights(listed("init"))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.02), loss="categorical_crossentropy",
                  metrics=["accuracy", "mae"])
    assert meta["metrics_names_before#len"] == 0 and model.metrics_names == ["loss", "compile_metrics"]
    train_out = []
    for _epoch in range(2):
        for b in range(4):
            sl = slice(4 * b, 4 * b + 4)
            train_out.append(np.ravel(model.train_on_batch(x[sl], y[sl], reset_metrics=False)).tolist())
        model.reset_metrics()
    np.testing.assert_allclose(train_out, meta["train_out"], **TOL)
    assert meta["metrics_names_after"] == ["loss", "accuracy", "mae"]
    assert model.metrics_names == ["loss", "compile_metrics"]
    got = [model.test_on_batch(xv[:4], yv[:4], reset_metrics=False),
           model.test_on_batch(xv[4:], yv[4:], reset_metrics=False)]
    np.testing.assert_allclose(got, meta["test_accumulated"], **TOL)
    got = model.test_on_batch(xv, yv, return_dict=True)
    assert sorted(got) == sorted(meta["test_dict"])
    np.testing.assert_allclose([got[k] for k in sorted(got)], [meta["test_dict"][k] for k in sorted(got)], **TOL)
    sw = np.linspace(0.5, 1.5, 4).astype("float32")
    got = [model.train_on_batch(x[:4], y[:4], sample_weight=sw),
           model.train_on_batch(x[4:8], y[4:8], class_weight={0: 1.0, 1: 2.0, 2: 0.5})]
    np.testing.assert_allclose(got, meta["weighted_steps"], **TOL)
    np.testing.assert_allclose(model.predict_on_batch(xv), arrays["predict_on_batch"], **TOL)
    _assert_list(model.get_weights(), listed("final"))


# ------------------------------------------------------------------------------------ class_weight_split
def test_class_weight_split():
    """`fit(validation_split=0.25, shuffle=True, class_weight=...)` with `weighted_metrics`: the last quarter
    validates (taken before shuffling); one batch per epoch, so the shuffle reorders only a sum. Then
    `class_weight` with `sample_weight` (a documented Keras 2 / Keras 3 difference)."""
    from kerasish import layers
    from kerasish.models import Sequential

    meta = META["class_weight_split"]
    arrays, listed = _arrays("class_weight_split")
    x, y, sw = data.imbalanced_data()
    assert int(y.sum()) == meta["positives"]
    model = Sequential([layers.Input((5,)), layers.Dense(8, activation="relu"),
                        layers.Dense(1, activation="sigmoid")])
    model.set_weights(listed("init"))
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5), loss="binary_crossentropy",
                  metrics=["accuracy"], weighted_metrics=["accuracy"])
    h = model.fit(x, y, batch_size=64, epochs=4, validation_split=0.25, shuffle=True,
                  class_weight={0: 1.0, 1: 4.0}, verbose=0)
    assert sorted(h.history) == sorted(meta["history"])
    _assert_history(h.history, meta["history"])
    _assert_list(model.get_weights(), listed("final"))
    # `class_weight` with `sample_weight`: tf.keras 2 multiplies them, Keras 3 (and kerasish) refuse the
    # pair; the port passes their product as `sample_weight` and gets tf.keras's numbers
    model = Sequential([layers.Input((5,)), layers.Dense(8, activation="relu"),
                        layers.Dense(1, activation="sigmoid")])
    model.set_weights(listed("both_init"))
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5), loss="binary_crossentropy",
                  weighted_metrics=["accuracy"])
    with pytest.raises(ValueError, match="You cannot `class_weight` and `sample_weight` at the same time"):
        model.fit(x, y, class_weight={0: 1.0, 1: 4.0}, sample_weight=sw, verbose=0)
    product = sw * np.where(y[:, 0] == 1, 4.0, 1.0).astype("float32")
    h = model.fit(x, y, batch_size=10, epochs=2, shuffle=False, sample_weight=product, verbose=0)
    _assert_history(h.history, meta["both_history"])
    _assert_list(model.get_weights(), listed("both_final"))


# ------------------------------------------------------------------------------------ transfer_mobilenet
def test_transfer_mobilenet():
    """`applications.MobileNet(include_top=False, weights=None)` frozen under a new head (called with
    `training=False`), fitted; the last 6 base layers unfrozen, recompiled, fitted again: the same
    trainable/non-trainable counts, Histories, predictions and fine-tuned weights."""
    from kerasish import layers
    from kerasish.applications import MobileNet
    from kerasish.models import Model

    meta = META["transfer_mobilenet"]
    arrays, listed = _arrays("transfer_mobilenet")
    x, y = data.image_data()
    base = MobileNet(input_shape=(32, 32, 3), alpha=0.25, include_top=False, weights=None)
    assert len(base.layers) == meta["base_layers"]
    base.set_weights(data.deterministic_conv_net_weights([w.shape for w in base.get_weights()]))
    base.trainable = False
    inputs = layers.Input((32, 32, 3))
    h = base(inputs, training=False)
    h = layers.GlobalAveragePooling2D()(h)
    outputs = layers.Dense(3, activation="softmax")(h)
    model = Model(inputs, outputs)
    model.layers[-1].set_weights(listed("head_init"))
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.01), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    assert [len(model.trainable_weights), len(model.non_trainable_weights)] == meta["frozen_counts"]
    h1 = model.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    _assert_history(h1.history, meta["history_frozen"])
    np.testing.assert_allclose(model.predict(x, verbose=0), arrays["predict_frozen"], **TOL)
    base.trainable = True
    for layer in base.layers[:-6]:
        layer.trainable = False
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss="categorical_crossentropy",
                  metrics=["accuracy"])
    assert [len(model.trainable_weights), len(model.non_trainable_weights)] == meta["finetune_counts"]
    h2 = model.fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0)
    _assert_history(h2.history, meta["history_finetune"])
    np.testing.assert_allclose(model.predict(x, verbose=0), arrays["predict_finetuned"], **TOL)
    _assert_list(model.layers[-1].get_weights(), listed("head_final"), what="head")
    assert [layer.name for layer in base.layers[-6:]] == meta["base_tail_names"]
    _assert_list([w for layer in base.layers[-6:] for w in layer.get_weights()], listed("base_tail_final"),
                 what="base tail")


# ----------------------------------------------------------------------------------- lr_callback_backend
def _lr_program(tmp_path, csv_path, epochs, initial_epoch=0, model=None, append=False):
    from kerasish import backend as K
    from kerasish import callbacks, layers
    from kerasish.models import Sequential

    x, y = data.regression_data()

    class HalveLr(callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seen = []

        def on_epoch_begin(self, epoch, logs=None):
            if epoch > 0:
                K.set_value(self.model.optimizer.lr, K.get_value(self.model.optimizer.lr) * 0.5)
            self.seen.append(float(K.get_value(self.model.optimizer.lr)))

    if model is None:
        model = Sequential([
            layers.Input((5,)), layers.Dense(6),
            layers.Lambda(lambda t: t - K.mean(t, axis=-1, keepdims=True)),
            layers.Lambda(lambda t: K.concatenate([t, K.square(t)], axis=-1)),
            layers.Dense(1)])
        model.set_weights(_arrays("lr_callback_backend")[1]("init"))
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.5), loss="mse")
    halve = HalveLr()
    h = model.fit(x, y, batch_size=8, epochs=epochs, initial_epoch=initial_epoch, shuffle=False, verbose=0,
                  callbacks=[halve, callbacks.ReduceLROnPlateau(monitor="loss", factor=0.5, patience=0,
                                                                min_delta=0.05),
                             callbacks.CSVLogger(str(csv_path), append=append)])
    return model, h, halve


def test_lr_callback_backend(tmp_path):
    """A custom callback halving `self.model.optimizer.lr` through `K.get_value` / `K.set_value`, Lambda
    layers in `K` functions, ReduceLROnPlateau: the same History (`lr` read as Keras 2 names it), the
    same learning rates seen, the same weights. The CSV: kerasish writes Keras 3's `learning_rate`
    column; appending to tf.keras 2's own file keeps its `lr` column, filled with the learning rate."""
    meta = META["lr_callback_backend"]
    arrays, listed = _arrays("lr_callback_backend")
    model, h, halve = _lr_program(tmp_path, tmp_path / "ours.csv", epochs=4)
    np.testing.assert_allclose(h.history["loss"], meta["history"]["loss"], **TOL)
    np.testing.assert_allclose(h.history["lr"], meta["history"]["lr"], rtol=1e-6)
    np.testing.assert_allclose(halve.seen, meta["lr_seen"], rtol=1e-6)
    _assert_list(model.get_weights(), listed("final"))
    ours = list(csv.DictReader(open(tmp_path / "ours.csv", newline="")))
    theirs = list(csv.DictReader(io.StringIO(meta["csv"])))
    assert list(ours[0]) == ["epoch", "learning_rate", "loss", "val_learning_rate", "val_loss"]
    assert list(theirs[0]) == ["epoch", "loss", "lr", "val_loss", "val_lr"]
    for a, b in zip(ours, theirs):
        assert a["epoch"] == b["epoch"]
        np.testing.assert_allclose(float(a["loss"]), float(b["loss"]), **TOL)
        np.testing.assert_allclose(float(a["learning_rate"]), float(b["lr"]), rtol=1e-6)
    # resume into tf.keras 2's file: two more epochs, appended under its header
    theirs_path = tmp_path / "theirs.csv"
    theirs_path.write_text(meta["csv"])
    model, h2, _ = _lr_program(tmp_path, theirs_path, epochs=6, initial_epoch=4, model=model, append=True)
    rows = list(csv.DictReader(open(theirs_path, newline="")))
    assert [r["epoch"] for r in rows] == ["0", "1", "2", "3", "4", "5"] and list(rows[0]) == list(theirs[0])
    np.testing.assert_allclose([float(r["loss"]) for r in rows[4:]], h2.history["loss"], rtol=1e-6)
    np.testing.assert_allclose([float(r["lr"]) for r in rows[4:]], h2.history["learning_rate"], rtol=1e-6)
    assert [r["val_loss"] for r in rows[4:]] == ["NA", "NA"]
    shutil.rmtree(tmp_path, ignore_errors=True)
