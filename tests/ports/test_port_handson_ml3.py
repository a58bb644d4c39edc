"""Keras programs from Aurélien Géron's "Hands-On Machine Learning" (3rd ed.,
notebooks 10-17 of github.com/ageron/handson-ml3), ported to kerasish by
changing `tf.keras` to `keras` (`import kerasish as keras`) and `tf.*` tensor
ops to `torch.*`. Each replays the tf.keras 2.21 run recorded by
tools/fixtures/make_handson_programs.py (whose docstring lists the programs and
their idioms) from the same initial weights on the same data
(tests/fixtures/handson_ml3/data.py) and compares Histories, evaluations,
predictions and final weights.

Where the book's code needs a tf.keras 2 / Keras 3 difference, the test says
which, and runs the Keras 3 spelling (the book's, mostly: the 3rd edition's
notebooks are written for Keras 3's `tf.keras`).

Tolerances: TensorFlow's float32 kernels against torch's over a few epochs:
rtol 2e-4 / atol 2e-5 (recurrent and convolutional programs, whose errors
compound through time steps and BatchNormalization: rtol 1e-3 / atol 1e-4);
counts, names and integer outputs exactly.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import warnings
from functools import partial

import numpy as np
import pytest
import torch

import kerasish as keras

HERE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "handson_ml3")
with open(os.path.join(HERE, "metadata.json")) as _f:
    META = json.load(_f)["programs"]
TOL = {"rtol": 2e-4, "atol": 2e-5}
LOOSE = {"rtol": 1e-3, "atol": 1e-4}

_spec = importlib.util.spec_from_file_location("handson_ml3_data", os.path.join(HERE, "data.py"))
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


def _assert_adapted(layer, want):
    """A Normalization layer's adapted mean and variance. Its third weight, `count`, is where tf.keras 2 and
    Keras 3 differ: tf.keras 2's adapt stores the number of samples, Keras 3's keeps the weight (for old
    saved files) at 0 and never updates it (keras/src/layers/preprocessing/normalization.py, 3.15.1);
    kerasish follows Keras 3. Nothing reads it."""
    mean, variance, count = layer.get_weights()
    _assert_list([mean, variance], want[:2], tol={"rtol": 1e-5, "atol": 1e-6}, what=f"{layer.name} adapt")
    assert int(count) == 0 and int(want[2]) > 0


def _k3_name(key):
    """Keras 3 (and kerasish) name a metric given as a class-name string by that string
    (`RootMeanSquaredError`); tf.keras 2 snake-cases it (`root_mean_squared_error`)."""
    return key.replace("root_mean_squared_error", "RootMeanSquaredError")


class _K3Names(dict):
    def get(self, key, default=None):
        return _k3_name(key)


_K3_NAMES = _K3Names()


def _assert_history(history, want, tol=TOL, rename=None):
    """Every recorded key (renamed where Keras 3 names it differently) with the same values."""
    rename = {} if rename is None else rename
    for key, values in want.items():
        np.testing.assert_allclose(history[rename.get(key, key)], values, err_msg=key, **tol)


# ================================================================================================ chapter 10
def test_ch10_regression_callbacks(tmp_path):
    """Sequential regression with `Normalization(input_shape=...)` adapted after compile,
    `RootMeanSquaredError`, ModelCheckpoint(save_best_only) to `.weights.h5`, EarlyStopping(patience=2,
    restore_best_weights=True) and the book's PrintValTrainRatioCallback: the same adapted statistics,
    History, stopping epoch, ratios, restored weights, and a checkpoint file that loads both ways (ours,
    and the one tf.keras wrote)."""
    meta = META["ch10_regression_callbacks"]
    arrays, listed = _arrays("ch10_regression_callbacks")
    (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = data.housing_split()
    norm_layer = keras.layers.Normalization(input_shape=x_train.shape[1:])
    model = keras.Sequential([
        norm_layer,
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(1)
    ])
    optimizer = keras.optimizers.Adam(learning_rate=0.03)
    model.compile(loss="mse", optimizer=optimizer, metrics=["RootMeanSquaredError"])
    norm_layer.adapt(x_train)
    _assert_adapted(norm_layer, listed("adapted"))
    model.set_weights(listed("init"))

    ratios = []

    class PrintValTrainRatioCallback(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs):
            ratio = logs["val_loss"] / logs["loss"]
            ratios.append(ratio)

    path = str(tmp_path / "my_checkpoints.weights.h5")
    checkpoint_cb = keras.callbacks.ModelCheckpoint(path, save_weights_only=True, save_best_only=True)
    early_stopping_cb = keras.callbacks.EarlyStopping(patience=2, restore_best_weights=True)
    h = model.fit(x_train, y_train, epochs=20, validation_data=(x_valid, y_valid), verbose=0,
                  callbacks=[checkpoint_cb, early_stopping_cb, PrintValTrainRatioCallback()], shuffle=False)
    _assert_history(h.history, meta["history"], rename=_K3_NAMES)
    np.testing.assert_allclose(ratios, meta["ratios"], **TOL)
    assert early_stopping_cb.stopped_epoch == meta["stopped_epoch"]
    np.testing.assert_allclose(model.evaluate(x_test, y_test, verbose=0), meta["evaluate"], **TOL)
    np.testing.assert_allclose(model.predict(x_test[:3], verbose=0), arrays["predict"], **TOL)
    _assert_list(model.get_weights(), listed("final"))
    model.load_weights(path)
    _assert_list(model.get_weights(), listed("checkpoint"))
    model.set_weights(listed("init"))
    # tf.keras 2's file: its model weights load exactly. tf-keras 2.21 also saves the Adam state there, with 13
    # variables (no learning-rate variable) where Keras 3's Adam has 14 (Keras 3 skips it with a warning):
    # kerasish maps tf-keras's order into the built optimizer (iteration and both moments of each weight)
    import h5py

    file = os.path.join(HERE, "ch10_checkpoint.weights.h5")
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        model.load_weights(file)
    _assert_list(model.get_weights(), listed("checkpoint"), tol={"rtol": 0, "atol": 0})
    with h5py.File(file, "r") as f:
        saved = [np.asarray(f[f"optimizer/vars/{i}"]) for i in range(len(f["optimizer/vars"]))]
    assert int(model.optimizer.iterations) == int(saved[0])
    slots = sorted(np.asarray(v).tobytes() for v in model.optimizer.variables[2:])
    assert slots == sorted(v.astype(np.float32).tobytes() for v in saved[1:])


def test_ch10_classifier():
    """The Fashion-MNIST classifier: `"sparse_categorical_crossentropy"` with `"sgd"`, layer names,
    `history.params` / `history.epoch`, evaluate, predict, `to_categorical`; then the same compile spelled
    with function objects (`losses.sparse_categorical_crossentropy`, `metrics.sparse_categorical_accuracy`),
    whose History key is the function's name."""
    meta = META["ch10_classifier"]
    arrays, listed = _arrays("ch10_classifier")
    (x_train, y_train), (x_valid, y_valid) = data.fashion_split()
    model = keras.Sequential()
    model.add(keras.layers.Input(shape=[8, 8]))
    model.add(keras.layers.Flatten())
    model.add(keras.layers.Dense(30, activation="relu"))
    model.add(keras.layers.Dense(20, activation="relu"))
    model.add(keras.layers.Dense(5, activation="softmax"))
    assert [layer.name for layer in model.layers] == meta["layer_names"]
    assert model.get_layer("dense") is model.layers[1]
    model.set_weights(listed("init"))
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    h = model.fit(x_train, y_train, epochs=5, validation_data=(x_valid, y_valid), verbose=0, shuffle=False)
    assert sorted(h.history) == sorted(meta["history"])
    _assert_history(h.history, meta["history"])
    assert h.params == meta["params"] and h.epoch == meta["epoch"]
    np.testing.assert_allclose(model.evaluate(x_valid, y_valid, verbose=0), meta["evaluate"], **TOL)
    np.testing.assert_allclose(model.predict(x_valid[:3], verbose=0), arrays["predict"], **TOL)
    _assert_list(model.get_weights(), listed("final"))
    np.testing.assert_array_equal(keras.utils.to_categorical([0, 5, 1, 0], num_classes=10),
                                  arrays["to_categorical"])
    model2 = keras.models.clone_model(model)
    model2.set_weights(listed("init"))
    model2.compile(loss=keras.losses.sparse_categorical_crossentropy, optimizer=keras.optimizers.SGD(),
                   metrics=[keras.metrics.sparse_categorical_accuracy])
    h = model2.fit(x_train, y_train, epochs=2, validation_data=(x_valid, y_valid), verbose=0, shuffle=False)
    assert sorted(h.history) == sorted(meta["history_functions"])
    _assert_history(h.history, meta["history_functions"])


def _wide_deep_functional(metrics):
    input_wide = keras.layers.Input(shape=[5])  # features 0 to 4
    input_deep = keras.layers.Input(shape=[6])  # features 2 to 7
    norm_layer_wide = keras.layers.Normalization()
    norm_layer_deep = keras.layers.Normalization()
    norm_wide = norm_layer_wide(input_wide)
    norm_deep = norm_layer_deep(input_deep)
    hidden1 = keras.layers.Dense(30, activation="relu")(norm_deep)
    hidden2 = keras.layers.Dense(30, activation="relu")(hidden1)
    concat = keras.layers.concatenate([norm_wide, hidden2])
    output = keras.layers.Dense(1)(concat)
    aux_output = keras.layers.Dense(1)(hidden2)
    model = keras.Model(inputs=[input_wide, input_deep], outputs=[output, aux_output])
    optimizer = keras.optimizers.Adam(learning_rate=1e-2)
    model.compile(loss=("mse", "mse"), loss_weights=(0.9, 0.1), optimizer=optimizer, metrics=metrics)
    return model, norm_layer_wide, norm_layer_deep


# tf.keras 2 names a functional output's History keys by its layer (`dense_2_loss`), Keras 3 by the
# output's name, which for a Dense output is the layer's name too; metrics get Keras 3's snake-case name
@pytest.mark.parametrize("metrics", [
    ["RootMeanSquaredError", "RootMeanSquaredError"],  # the book's (Keras 3) spelling
    [["RootMeanSquaredError"], ["RootMeanSquaredError"]],  # what tf.keras 2 needs
], ids=["flat", "nested"])
def test_ch10_wide_deep_functional(metrics):
    """Wide & deep with two inputs and two outputs, `loss_weights=(0.9, 0.1)`: the same History (total,
    per-output losses and RMSEs), evaluate list and predictions. The book's flat
    `metrics=["RootMeanSquaredError", "RootMeanSquaredError"]` is Keras 3's one-per-output form; tf.keras
    2.21 applies a flat list to every output and fails on it ("Found two metrics with the same name"), so
    the recording uses the nested form; kerasish, like Keras 3, takes both."""
    meta = META["ch10_wide_deep"]
    arrays, listed = _arrays("ch10_wide_deep")
    (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = data.housing_split()
    model, norm_layer_wide, norm_layer_deep = _wide_deep_functional(metrics)
    x_train_wide, x_train_deep = x_train[:, :5], x_train[:, 2:]
    x_valid_wide, x_valid_deep = x_valid[:, :5], x_valid[:, 2:]
    x_test_wide, x_test_deep = x_test[:, :5], x_test[:, 2:]
    x_new_wide, x_new_deep = x_test_wide[:3], x_test_deep[:3]
    norm_layer_wide.adapt(x_train_wide)
    norm_layer_deep.adapt(x_train_deep)
    # the weights list begins with the deep branch's Normalization (tf.keras 2, Keras 3 and kerasish order
    # a functional model's layers alike), then its Dense, then the wide branch's Normalization
    _assert_adapted(norm_layer_deep, listed("init")[0:3])
    _assert_adapted(norm_layer_wide, listed("init")[5:8])
    model.set_weights(listed("init"))
    h = model.fit((x_train_wide, x_train_deep), (y_train, y_train), epochs=4,
                  validation_data=((x_valid_wide, x_valid_deep), (y_valid, y_valid)), verbose=0, shuffle=False)
    assert sorted(h.history) == sorted(_k3_name(k) for k in meta["history"])
    _assert_history(h.history, meta["history"], rename=_K3_NAMES)
    np.testing.assert_allclose(model.evaluate((x_test_wide, x_test_deep), (y_test, y_test), verbose=0),
                               meta["evaluate"], **TOL)
    y_pred_main, y_pred_aux = model.predict((x_new_wide, x_new_deep), verbose=0)
    np.testing.assert_allclose(y_pred_main, arrays["pred_main"], **TOL)
    np.testing.assert_allclose(y_pred_aux, arrays["pred_aux"], **TOL)
    _assert_list(model.get_weights(), listed("final"))


class WideAndDeepModel(keras.Model):
    def __init__(self, units=30, activation="relu", **kwargs):
        super().__init__(**kwargs)  # needed to support naming the model
        self.norm_layer_wide = keras.layers.Normalization()
        self.norm_layer_deep = keras.layers.Normalization()
        self.hidden1 = keras.layers.Dense(units, activation=activation)
        self.hidden2 = keras.layers.Dense(units, activation=activation)
        self.main_output = keras.layers.Dense(1)
        self.aux_output = keras.layers.Dense(1)

    def call(self, inputs):
        input_wide, input_deep = inputs
        norm_wide = self.norm_layer_wide(input_wide)
        norm_deep = self.norm_layer_deep(input_deep)
        hidden1 = self.hidden1(norm_deep)
        hidden2 = self.hidden2(hidden1)
        concat = keras.layers.concatenate([norm_wide, hidden2])
        output = self.main_output(concat)
        aux_output = self.aux_output(hidden2)
        return output, aux_output


def test_ch10_wide_deep_subclassed():
    """The subclassed WideAndDeepModel: the same weights order, History, evaluation and predictions.
    History keys differ for a subclassed model's unnamed outputs (mapped below). `evaluate()`'s list
    follows Keras 3's layout (6 entries, the first metric repeated, as Keras 3.15.1 returns), so the values
    are compared through `return_dict=True`."""
    meta = META["ch10_wide_deep"]
    arrays, listed = _arrays("ch10_wide_deep")
    (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = data.housing_split()
    x_train_wide, x_train_deep = x_train[:, :5], x_train[:, 2:]
    x_valid_wide, x_valid_deep = x_valid[:, :5], x_valid[:, 2:]
    x_test_wide, x_test_deep = x_test[:, :5], x_test[:, 2:]
    x_new_wide, x_new_deep = x_test_wide[:3], x_test_deep[:3]
    model = WideAndDeepModel(30, activation="relu", name="my_cool_model")
    optimizer = keras.optimizers.Adam(learning_rate=1e-2)
    model.compile(loss=["mse", "mse"], loss_weights=[0.9, 0.1], optimizer=optimizer,
                  metrics=["RootMeanSquaredError", "RootMeanSquaredError"])
    model.norm_layer_wide.adapt(x_train_wide)
    model.norm_layer_deep.adapt(x_train_deep)
    model((x_new_wide, x_new_deep))
    assert model.name == "my_cool_model"
    _assert_adapted(model.norm_layer_wide, listed("sub_init")[0:3])
    _assert_adapted(model.norm_layer_deep, listed("sub_init")[3:6])
    model.set_weights(listed("sub_init"))
    h = model.fit((x_train_wide, x_train_deep), (y_train, y_train), epochs=3,
                  validation_data=((x_valid_wide, x_valid_deep), (y_valid, y_valid)), verbose=0, shuffle=False)
    # a subclassed model's outputs have no names: tf.keras 2 keys them `output_1` / `output_2`; Keras 3 keys the
    # losses by the loss name (`mse_loss`, and collides the second into it: 3.15.1 logs one `mse_loss`), the
    # metrics `RootMeanSquaredError` / `RootMeanSquaredError_1`; kerasish keys the second loss `mse_1_loss`
    names = {"loss": "loss", "output_1_loss": "mse_loss", "output_2_loss": "mse_1_loss",
             "output_1_root_mean_squared_error": "RootMeanSquaredError",
             "output_2_root_mean_squared_error": "RootMeanSquaredError_1"}
    names.update({"val_" + k: "val_" + v for k, v in names.items()})
    assert sorted(h.history) == sorted(names[k] for k in meta["sub_history"])
    _assert_history(h.history, meta["sub_history"], rename=names)
    got = model.evaluate((x_test_wide, x_test_deep), (y_test, y_test), verbose=0, return_dict=True)
    want = dict(zip(["loss", "output_1_loss", "output_2_loss", "output_1_root_mean_squared_error",
                     "output_2_root_mean_squared_error"], meta["sub_evaluate"]))
    np.testing.assert_allclose([got[names[k]] for k in want], list(want.values()), **TOL)
    y_pred_main, y_pred_aux = model.predict((x_new_wide, x_new_deep), verbose=0)
    np.testing.assert_allclose(y_pred_main, arrays["sub_pred_main"], **TOL)
    np.testing.assert_allclose(y_pred_aux, arrays["sub_pred_aux"], **TOL)
    _assert_list(model.get_weights(), listed("sub_final"))


# ================================================================================================ chapter 11
@pytest.mark.filterwarnings("ignore:Argument `alpha` is deprecated:UserWarning")  # Keras 3's, for the book's alpha=
def test_ch11_deep_nets():
    """he_normal, VarianceScaling fan_avg, LeakyReLU(alpha=0.2), BatchNormalization after the activation
    and before it (`use_bias=False`), `partial(Dense, kernel_regularizer=l2(0.01))`, `max_norm(1.)`,
    SGD with momentum: the same History (the l2 penalty in the loss), predictions, BatchNormalization
    statistics and constrained kernels. SELU + lecun_normal + AlphaDropout and a Dropout net agree in
    inference; MC Dropout (`model(x, training=True)` and the book's MCDropout subclass) samples."""
    meta = META["ch11_deep_nets"]
    arrays, listed = _arrays("ch11_deep_nets")
    (x_train, y_train), (x_valid, y_valid) = data.fashion_split()
    he_avg_init = keras.initializers.VarianceScaling(scale=2., mode="fan_avg", distribution="uniform")
    RegularizedDense = partial(keras.layers.Dense, activation="relu", kernel_initializer="he_normal",
                               kernel_regularizer=keras.regularizers.l2(0.01))
    MaxNormDense = partial(keras.layers.Dense, activation="relu", kernel_initializer="he_normal",
                           kernel_constraint=keras.constraints.max_norm(1.))
    model = keras.Sequential([
        keras.layers.Flatten(input_shape=[8, 8]),
        keras.layers.Dense(24, kernel_initializer="he_normal"),
        keras.layers.LeakyReLU(alpha=0.2),  # Keras 3 warns: "Argument `alpha` is deprecated"
        keras.layers.BatchNormalization(),
        keras.layers.Dense(20, kernel_initializer=he_avg_init, use_bias=False),
        keras.layers.BatchNormalization(),
        keras.layers.Activation("relu"),
        RegularizedDense(16),
        MaxNormDense(12),
        keras.layers.Dense(5, activation="softmax")
    ])
    model.set_weights(listed("init"))
    model.compile(loss="sparse_categorical_crossentropy",
                  optimizer=keras.optimizers.SGD(learning_rate=0.05, momentum=0.9), metrics=["accuracy"])
    h = model.fit(x_train, y_train, epochs=3, validation_data=(x_valid, y_valid), verbose=0, shuffle=False)
    _assert_history(h.history, meta["history"])
    np.testing.assert_allclose(model.predict(x_valid[:4], verbose=0), arrays["predict"], **TOL)
    _assert_list(model.get_weights(), listed("final"))
    norms = np.linalg.norm(model.layers[8].get_weights()[0], axis=0)
    np.testing.assert_allclose(norms.max(), meta["max_norm_final"], **TOL)
    assert norms.max() <= 1.0 + 1e-6

    selu = keras.Sequential()
    selu.add(keras.layers.Flatten(input_shape=[8, 8]))
    for _ in range(2):
        selu.add(keras.layers.Dense(16, activation="selu", kernel_initializer="lecun_normal"))
        selu.add(keras.layers.AlphaDropout(rate=0.1))
    selu.add(keras.layers.Dense(5, activation="softmax"))
    selu.set_weights(listed("selu_init"))
    selu.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    np.testing.assert_allclose(selu.evaluate(x_valid, y_valid, verbose=0), meta["selu_evaluate"], **TOL)
    np.testing.assert_allclose(selu.predict(x_valid[:4], verbose=0), arrays["selu_predict"], **TOL)

    dropout = keras.Sequential([
        keras.layers.Flatten(input_shape=[8, 8]),
        keras.layers.Dropout(rate=0.2),
        keras.layers.Dense(16, activation="relu", kernel_initializer="he_normal"),
        keras.layers.Dropout(rate=0.2),
        keras.layers.Dense(5, activation="softmax")
    ])
    dropout.set_weights(listed("dropout_init"))
    y_inference = dropout.predict(x_valid, verbose=0)
    np.testing.assert_allclose(y_inference, arrays["dropout_predict"], **TOL)
    keras.utils.set_random_seed(42)
    y_probas = np.stack([keras.ops.convert_to_numpy(dropout(x_valid, training=True)) for sample in range(100)])
    assert not np.allclose(y_probas[0], y_probas[1])  # each sample drops other units
    np.testing.assert_allclose(y_probas.sum(-1), 1, rtol=1e-5)
    np.testing.assert_allclose(y_probas.mean(0), y_inference, atol=0.1)  # MC average near the mean network

    class MCDropout(keras.layers.Dropout):
        def call(self, inputs, training=None):
            return super().call(inputs, training=True)

    Dropout = keras.layers.Dropout
    mc_model = keras.Sequential([
        MCDropout(layer.rate) if isinstance(layer, Dropout) else layer
        for layer in dropout.layers
    ])
    mc_model.set_weights(dropout.get_weights())
    a, b = mc_model.predict(x_valid[:4], verbose=0), mc_model.predict(x_valid[:4], verbose=0)
    assert not np.allclose(a, b)  # predict() samples too
    np.testing.assert_allclose(dropout.predict(x_valid, verbose=0), y_inference, rtol=0, atol=0)


def _schedule_model():
    return keras.Sequential([
        keras.layers.Flatten(input_shape=[8, 8]),
        keras.layers.Dense(16, activation="relu", kernel_initializer="he_normal"),
        keras.layers.Dense(5, activation="softmax")
    ])


def _exponential_decay(lr0, s):
    def exponential_decay_fn(epoch):
        return lr0 * 0.1 ** (epoch / s)
    return exponential_decay_fn


def _exponential_decay_lr(epoch, lr):
    return lr * 0.1 ** (1 / 4)


class ExponentialDecay(keras.callbacks.Callback):
    def __init__(self, n_steps=40_000):
        super().__init__()
        self.n_steps = n_steps

    def on_batch_begin(self, batch, logs=None):
        # Note: the `batch` argument is reset at each epoch
        lr = self.model.optimizer.learning_rate.numpy()
        new_learning_rate = lr * 0.1 ** (1 / self.n_steps)
        self.model.optimizer.learning_rate = new_learning_rate

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        logs['lr'] = self.model.optimizer.learning_rate.numpy()


def _piecewise_constant(boundaries, values):
    boundaries = np.array([0] + boundaries)
    values = np.array(values)

    def piecewise_constant_fn(epoch):
        return values[(boundaries > epoch).argmax() - 1]
    return piecewise_constant_fn


class OneCycleScheduler(keras.callbacks.Callback):
    def __init__(self, iterations, max_lr=1e-3, start_lr=None,
                 last_iterations=None, last_lr=None):
        self.iterations = iterations  # the book does not call super().__init__()
        self.max_lr = max_lr
        self.start_lr = start_lr or max_lr / 10
        self.last_iterations = last_iterations or iterations // 10 + 1
        self.half_iteration = (iterations - self.last_iterations) // 2
        self.last_lr = last_lr or self.start_lr / 1000
        self.iteration = 0

    def _interpolate(self, iter1, iter2, lr1, lr2):
        return (lr2 - lr1) * (self.iteration - iter1) / (iter2 - iter1) + lr1

    def on_batch_begin(self, batch, logs):
        if self.iteration < self.half_iteration:
            lr = self._interpolate(0, self.half_iteration, self.start_lr, self.max_lr)
        elif self.iteration < 2 * self.half_iteration:
            lr = self._interpolate(self.half_iteration, 2 * self.half_iteration, self.max_lr, self.start_lr)
        else:
            lr = self._interpolate(2 * self.half_iteration, self.iterations, self.start_lr, self.last_lr)
        self.iteration += 1
        self.model.optimizer.learning_rate = lr


_SCHEDULES = {
    "power": lambda: (keras.optimizers.SGD(learning_rate=keras.optimizers.schedules.InverseTimeDecay(
        initial_learning_rate=0.05, decay_steps=4, decay_rate=1.0, staircase=False)), []),
    "exponential": lambda: (keras.optimizers.SGD(learning_rate=keras.optimizers.schedules.ExponentialDecay(
        initial_learning_rate=0.05, decay_steps=8, decay_rate=0.1, staircase=False)), []),
    "piecewise": lambda: (keras.optimizers.SGD(learning_rate=keras.optimizers.schedules.PiecewiseConstantDecay(
        boundaries=[5, 12], values=[0.05, 0.02, 0.005])), []),
    "scheduler_epoch": lambda: (keras.optimizers.SGD(learning_rate=0.001), [
        keras.callbacks.LearningRateScheduler(_exponential_decay(lr0=0.05, s=2))]),
    "scheduler_epoch_lr": lambda: (keras.optimizers.SGD(learning_rate=0.05), [
        keras.callbacks.LearningRateScheduler(_exponential_decay_lr)]),
    "batch_callback": lambda: (keras.optimizers.SGD(learning_rate=0.05), [ExponentialDecay(4 * math.ceil(80 / 16))]),
    "piecewise_fn_nadam": lambda: (keras.optimizers.Nadam(learning_rate=0.01), [
        keras.callbacks.LearningRateScheduler(_piecewise_constant([1, 3], [0.01, 0.005, 0.001]))]),
    "plateau": lambda: (keras.optimizers.SGD(learning_rate=0.2), [
        keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=0)]),
    "onecycle": lambda: (keras.optimizers.SGD(), [OneCycleScheduler(math.ceil(80 / 16) * 4, max_lr=0.1)]),
}


@pytest.mark.parametrize("name", list(_SCHEDULES))
def test_ch11_schedules(name):
    """Learning-rate schedules as `schedules.*` objects (power = InverseTimeDecay, exponential,
    piecewise constant), as LearningRateScheduler callbacks (`fn(epoch)`, `fn(epoch, lr)`, a NumPy
    piecewise function under Nadam), ReduceLROnPlateau, the book's per-batch ExponentialDecay callback
    (`optimizer.learning_rate.numpy()`, `optimizer.learning_rate = value`, `logs['lr']`) and its
    OneCycleScheduler (which skips `super().__init__()`): the same History, learning rates included,
    and weights. tf.keras 2 logs a callback-set rate as `lr`; Keras 3 and kerasish as `learning_rate`."""
    meta = META["ch11_schedules"]
    arrays, listed = _arrays("ch11_schedules")
    (x_train, y_train), (x_valid, y_valid) = data.fashion_split()
    optimizer, callbacks = _SCHEDULES[name]()
    model = _schedule_model()
    model.set_weights(listed("init"))
    model.compile(loss="sparse_categorical_crossentropy", optimizer=optimizer, metrics=["accuracy"])
    h = model.fit(x_train, y_train, epochs=4, batch_size=16, verbose=0, validation_data=(x_valid, y_valid),
                  callbacks=callbacks, shuffle=False)
    want = meta[name + "_history"]
    # kerasish logs a built-in callback's rate as Keras 3's `learning_rate` (its History also answers tf.keras
    # 2's `history["lr"]`); the book's own per-batch callback writes `logs['lr']` itself
    builtin = name in ("scheduler_epoch", "scheduler_epoch_lr", "piecewise_fn_nadam", "plateau")
    rename = {"lr": "learning_rate"} if builtin else {}
    assert sorted(h.history) == sorted(rename.get(k, k) for k in want)
    _assert_history(h.history, want, rename=rename)
    if builtin:
        np.testing.assert_allclose(h.history["lr"], want["lr"], rtol=1e-6)
    _assert_list(model.get_weights(), listed(name + "_final"))
    if name == "onecycle":
        np.testing.assert_allclose(float(model.optimizer.learning_rate.numpy()), meta["onecycle_last_lr"],
                                   rtol=1e-6)


# ================================================================================================ chapter 12
def huber_fn(y_true, y_pred):
    error = y_true - y_pred
    is_small_error = torch.abs(error) < 1
    squared_loss = torch.square(error) / 2
    linear_loss = torch.abs(error) - 0.5
    return torch.where(is_small_error, squared_loss, linear_loss)


def create_huber(threshold=1.0):
    def huber_fn(y_true, y_pred):
        error = y_true - y_pred
        is_small_error = torch.abs(error) < threshold
        squared_loss = torch.square(error) / 2
        linear_loss = threshold * torch.abs(error) - threshold ** 2 / 2
        return torch.where(is_small_error, squared_loss, linear_loss)
    return huber_fn


class HuberLoss(keras.losses.Loss):
    def __init__(self, threshold=1.0, **kwargs):
        self.threshold = threshold
        super().__init__(**kwargs)

    def call(self, y_true, y_pred):
        error = y_true - y_pred
        is_small_error = torch.abs(error) < self.threshold
        squared_loss = torch.square(error) / 2
        linear_loss = self.threshold * torch.abs(error) - self.threshold**2 / 2
        return torch.where(is_small_error, squared_loss, linear_loss)

    def get_config(self):
        base_config = super().get_config()
        return {**base_config, "threshold": self.threshold}


class HuberMetric(keras.metrics.Metric):
    def __init__(self, threshold=1.0, **kwargs):
        super().__init__(**kwargs)  # handles base args (e.g., dtype)
        self.threshold = threshold
        self.huber_fn = create_huber(threshold)
        self.total = self.add_weight(name="total", initializer="zeros")
        self.count = self.add_weight(name="count", initializer="zeros")

    def update_state(self, y_true, y_pred, sample_weight=None):
        sample_metrics = self.huber_fn(y_true, y_pred)
        self.total.assign_add(torch.sum(sample_metrics))
        self.count.assign_add(torch.tensor(y_true.numel(), dtype=torch.float32))

    def result(self):
        return self.total / self.count

    def get_config(self):
        base_config = super().get_config()
        return {**base_config, "threshold": self.threshold}


class HuberMeanMetric(keras.metrics.Mean):  # the book's second `HuberMetric`
    def __init__(self, threshold=1.0, name='HuberMetric', dtype=None):
        self.threshold = threshold
        self.huber_fn = create_huber(threshold)
        super().__init__(name=name, dtype=dtype)

    def update_state(self, y_true, y_pred, sample_weight=None):
        metric = self.huber_fn(y_true, y_pred)
        super(HuberMeanMetric, self).update_state(metric, sample_weight)  # noqa: UP008 (the book's)

    def get_config(self):
        base_config = super().get_config()
        return {**base_config, "threshold": self.threshold}


def _huber_model():
    return keras.Sequential([
        keras.layers.Dense(16, activation="relu", kernel_initializer="he_normal", input_shape=[8]),
        keras.layers.Dense(1),
    ])


def test_ch12_custom_losses_metrics(tmp_path):
    """A loss function, a `Loss` subclass with `get_config` saved to `.keras` and reloaded with
    `custom_objects` (then trained on), a function as a metric, the streaming `HuberMetric(Metric)`
    (14, then 7, as the book derives), `HuberMetric(Mean)` as a weighted metric with `sample_weight`, and
    custom activation / initializer / regularizer / constraint functions with a `Regularizer` subclass:
    the same Histories and weights. The targets are 1-D for a (batch, 1) prediction, as in the book: the
    custom loss and metric get them as (batch, 1), as in tf.keras 2 (Keras 3.15 broadcasts the pair to
    (batch, batch) there and trains on a wrong loss; kerasish does not)."""
    meta = META["ch12_custom_losses_metrics"]
    arrays, listed = _arrays("ch12_custom_losses_metrics")
    (x_train, x_valid, x_test), (y_train, y_valid, y_test) = data.scaled_housing()

    def fresh():
        model = _huber_model()
        model.set_weights(listed("init"))
        return model

    model = fresh()
    model.compile(loss=huber_fn, optimizer="nadam", metrics=["mae"])
    h = model.fit(x_train, y_train, epochs=2, validation_data=(x_valid, y_valid), verbose=0, shuffle=False)
    _assert_history(h.history, meta["fn_history"])

    model = fresh()
    model.compile(loss=HuberLoss(2.), optimizer="nadam", metrics=["mae"])
    h = model.fit(x_train, y_train, epochs=2, validation_data=(x_valid, y_valid), verbose=0, shuffle=False)
    _assert_history(h.history, meta["class_history"])
    config = HuberLoss(2.).get_config()
    assert config["threshold"] == meta["loss_config"]["threshold"] == 2.0
    assert config["name"] == "huber_loss"  # tf.keras 2 has name None until a loss is used (`loss_config`)
    path = str(tmp_path / "my_model_with_a_custom_loss_class.keras")
    model.save(path)
    model = keras.models.load_model(path, custom_objects={"HuberLoss": HuberLoss})
    assert model.loss.threshold == 2.0
    # the reloaded model (weights and Nadam state) continues as the unsaved one does in tf.keras 2; tf-keras's own
    # reloaded run differs (its Nadam u-product is not saved: reset to 1 on load, a tf-keras defect)
    h = model.fit(x_train, y_train, epochs=2, validation_data=(x_valid, y_valid), verbose=0, shuffle=False)
    _assert_history(h.history, meta["class_continued_history"])
    _assert_list(model.get_weights(), listed("class_final"))
    assert not np.allclose(meta["class_reloaded_history"]["loss"], meta["class_continued_history"]["loss"],
                           rtol=1e-4, atol=0)

    model = fresh()
    model.compile(loss="mse", optimizer="nadam", metrics=[create_huber(2.0)])
    h = model.fit(x_train, y_train, epochs=2, verbose=0, shuffle=False)
    _assert_history(h.history, meta["metric_fn_history"])

    m = HuberMetric(2.)
    streamed = [float(m(torch.tensor([[2.]]), torch.tensor([[10.]])))]
    streamed.append(float(m(torch.tensor([[0.], [5.]]), torch.tensor([[1.], [9.25]]))))
    streamed.append(float(m.result()))
    assert streamed == meta["streamed"] == [14.0, 7.0, 7.0]
    assert [float(v.numpy()) for v in m.variables] == meta["streamed_variables"]
    m.reset_state()
    assert [float(v.numpy()) for v in m.variables] == meta["reset_variables"]

    model = fresh()
    model.compile(loss=create_huber(2.0), optimizer="nadam", metrics=[HuberMetric(2.0)])
    h = model.fit(x_train, y_train, epochs=2, verbose=0, shuffle=False)
    assert sorted(h.history) == sorted(meta["metric_class_history"]) == ["huber_metric_1", "loss"]
    _assert_history(h.history, meta["metric_class_history"])

    model = fresh()
    model.compile(loss=keras.losses.Huber(2.0), optimizer="nadam", weighted_metrics=[HuberMeanMetric(2.0)])
    sample_weight = np.random.RandomState(42).rand(len(y_train))
    h = model.fit(x_train, y_train, epochs=2, sample_weight=sample_weight, verbose=0, shuffle=False)
    _assert_history(h.history, meta["weighted_history"])
    _assert_list(model.get_weights(), listed("weighted_final"))

    def my_softplus(z):
        return torch.log(1.0 + torch.exp(z))

    def my_glorot_initializer(shape, dtype="float32"):  # Keras 3 passes the dtype as a string
        stddev = math.sqrt(2. / (shape[0] + shape[1]))
        return keras.random.normal(shape, stddev=stddev, dtype=dtype)  # tf.random.normal

    def my_l1_regularizer(weights):
        return torch.sum(torch.abs(0.01 * weights))

    def my_positive_weights(weights):  # return value is just torch.relu(weights)
        return torch.where(weights < 0., torch.zeros_like(weights), weights)

    class MyL1Regularizer(keras.regularizers.Regularizer):
        def __init__(self, factor):
            self.factor = factor

        def __call__(self, weights):
            return torch.sum(torch.abs(self.factor * weights))

        def get_config(self):
            return {"factor": self.factor}

    model = keras.Sequential([
        keras.layers.Dense(16, activation="relu", kernel_initializer="he_normal", input_shape=[8],
                           kernel_regularizer=MyL1Regularizer(0.01)),
        keras.layers.Dense(1, activation=my_softplus, kernel_initializer=my_glorot_initializer,
                           kernel_regularizer=my_l1_regularizer, kernel_constraint=my_positive_weights),
    ])
    model.set_weights(listed("functions_init"))
    model.compile(loss="mse", optimizer="nadam")
    h = model.fit(x_train, y_train, epochs=3, verbose=0, shuffle=False)
    _assert_history(h.history, meta["functions_history"])
    _assert_list(model.get_weights(), listed("functions_final"))
    assert (model.layers[1].kernel.numpy() >= 0).all()


class MyDense(keras.layers.Layer):
    def __init__(self, units, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.activation = keras.activations.get(activation)

    def build(self, batch_input_shape):
        self.kernel = self.add_weight(
            name="kernel", shape=[batch_input_shape[-1], self.units],
            initializer="he_normal")
        self.bias = self.add_weight(
            name="bias", shape=[self.units], initializer="zeros")

    def call(self, X):
        return self.activation(X @ self.kernel + self.bias)

    def get_config(self):
        base_config = super().get_config()
        return {**base_config, "units": self.units,
                "activation": keras.activations.serialize(self.activation)}


class ResidualBlock(keras.layers.Layer):
    def __init__(self, n_layers, n_neurons, **kwargs):
        super().__init__(**kwargs)
        self.hidden = [keras.layers.Dense(n_neurons, activation="relu",
                                          kernel_initializer="he_normal")
                       for _ in range(n_layers)]

    def call(self, inputs):
        Z = inputs
        for layer in self.hidden:
            Z = layer(Z)
        return inputs + Z


class ResidualRegressor(keras.Model):
    def __init__(self, output_dim, **kwargs):
        super().__init__(**kwargs)
        self.output_dim = output_dim
        self.hidden1 = keras.layers.Dense(16, activation="relu",
                                          kernel_initializer="he_normal")
        self.block1 = ResidualBlock(2, 16)
        self.block2 = ResidualBlock(2, 16)
        self.out = keras.layers.Dense(output_dim)

    def call(self, inputs):
        Z = self.hidden1(inputs)
        for _ in range(1 + 3):
            Z = self.block1(Z)
        Z = self.block2(Z)
        return self.out(Z)

    def get_config(self):
        base_config = super().get_config()
        return {**base_config, "output_dim": self.output_dim}


class ReconstructingRegressor(keras.Model):
    def __init__(self, output_dim, **kwargs):
        super().__init__(**kwargs)
        self.hidden = [keras.layers.Dense(16, activation="relu",
                                          kernel_initializer="he_normal")
                       for _ in range(5)]
        self.out = keras.layers.Dense(output_dim)

    def build(self, batch_input_shape):
        n_inputs = batch_input_shape[-1]
        self.reconstruct = keras.layers.Dense(n_inputs)

    def call(self, inputs, training=None):
        Z = inputs
        for layer in self.hidden:
            Z = layer(Z)
        reconstruction = self.reconstruct(Z)
        recon_loss = torch.mean(torch.square(reconstruction - inputs))
        self.add_loss(0.05 * recon_loss)
        return self.out(Z)


def test_ch12_custom_layers_models(tmp_path):
    """`Lambda(lambda x: torch.exp(x))`; `MyDense` with `add_weight` (saved, reloaded with
    `custom_objects`, trained on); the subclassed `ResidualRegressor` calling one block 4 times; the
    `ReconstructingRegressor` that makes a layer in `build` and adds a reconstruction loss with
    `add_loss` in `call`: the same Histories (the added loss in `loss`), evaluations, predictions,
    weights."""
    meta = META["ch12_custom_layers_models"]
    arrays, listed = _arrays("ch12_custom_layers_models")
    (x_train, x_valid, x_test), (y_train, y_valid, y_test) = data.scaled_housing()
    y_pos = np.exp(y_train / 4).astype("float32")
    exponential_layer = keras.layers.Lambda(lambda x: torch.exp(x))
    np.testing.assert_allclose(exponential_layer(torch.tensor([-1., 0., 1.])).detach().numpy(), arrays["exp_values"],
                               rtol=1e-6)
    model = keras.Sequential([
        keras.layers.Dense(16, activation="relu", input_shape=[8]),
        keras.layers.Dense(1),
        exponential_layer
    ])
    model.set_weights(listed("exp_init"))
    model.compile(loss="mse", optimizer="sgd")
    h = model.fit(x_train, y_pos, epochs=3, validation_data=(x_valid, np.exp(y_valid / 4)), verbose=0,
                  shuffle=False)
    _assert_history(h.history, meta["exp_history"])
    np.testing.assert_allclose(model.evaluate(x_test, np.exp(y_test / 4), verbose=0), meta["exp_evaluate"], **TOL)

    model = keras.Sequential([
        MyDense(16, activation="relu", input_shape=[8]),
        MyDense(1)
    ])
    model.set_weights(listed("mydense_init"))
    model.compile(loss="mse", optimizer="nadam")
    h = model.fit(x_train, y_train, epochs=2, validation_data=(x_valid, y_valid), verbose=0, shuffle=False)
    _assert_history(h.history, meta["mydense_history"])
    np.testing.assert_allclose(model.evaluate(x_test, y_test, verbose=0), meta["mydense_evaluate"], **TOL)
    path = str(tmp_path / "my_model_with_a_custom_layer.keras")
    model.save(path)
    model = keras.models.load_model(path, custom_objects={"MyDense": MyDense})
    h = model.fit(x_train, y_train, epochs=2, validation_data=(x_valid, y_valid), verbose=0, shuffle=False)
    _assert_history(h.history, meta["mydense_continued_history"])  # see the Nadam note in the losses test
    _assert_list(model.get_weights(), listed("mydense_final"))

    model = ResidualRegressor(1)
    model(x_train[:1])
    assert [w.shape for w in model.get_weights()] == [w.shape for w in listed("residual_init")]
    model.set_weights(listed("residual_init"))
    model.compile(loss="mse", optimizer=keras.optimizers.Nadam(learning_rate=1e-4))
    h = model.fit(x_train, y_train, epochs=2, verbose=0, shuffle=False)
    _assert_history(h.history, meta["residual_history"])
    np.testing.assert_allclose(model.evaluate(x_test, y_test, verbose=0), meta["residual_evaluate"], **TOL)
    np.testing.assert_allclose(model.predict(x_test[:3], verbose=0), arrays["residual_predict"], **TOL)
    _assert_list(model.get_weights(), listed("residual_final"))

    model = ReconstructingRegressor(1)
    model(x_train[:1])
    assert len(model.losses) == meta["recon_losses_after_call"] == 1
    model.set_weights(listed("recon_init"))
    model.compile(loss="mse", optimizer="nadam")
    h = model.fit(x_train, y_train, epochs=3, verbose=0, shuffle=False)
    _assert_history(h.history, meta["recon_history"])
    np.testing.assert_allclose(model.evaluate(x_test, y_test, verbose=0), meta["recon_evaluate"], **TOL)
    _assert_list(model.get_weights(), listed("recon_final"))


def test_ch12_custom_loop():
    """The book's custom training loop, `tf.GradientTape` -> torch autograd: `model(X, training=True)`,
    the mean loss plus `model.losses` (l2 penalties), `optimizer.apply_gradients(zip(grads, vars))`,
    constraints applied by hand through `variable.constraint`, `Mean` / `MeanAbsoluteError` updated by
    calling them and reset with `reset_state()`: the same per-epoch metrics and weights."""
    meta = META["ch12_custom_loop"]
    arrays, listed = _arrays("ch12_custom_loop")
    (x_train, x_valid, x_test), (y_train, y_valid, y_test) = data.scaled_housing()
    y_train = y_train[:, None]
    l2_reg = keras.regularizers.l2(0.05)
    model = keras.models.Sequential([
        keras.layers.Dense(16, activation="relu", kernel_initializer="he_normal",
                           kernel_regularizer=l2_reg, kernel_constraint=keras.constraints.max_norm(1.)),
        keras.layers.Dense(1, kernel_regularizer=l2_reg)
    ])
    model.build((None, 8))
    model.set_weights(listed("init"))
    n_epochs = 3
    batch_size = 16
    n_steps = len(x_train) // batch_size
    batches = iter(data.random_batch_indices(len(x_train), n_epochs * n_steps, batch_size))

    def random_batch(X, y, batch_size=32):
        idx = next(batches)  # np.random.randint(len(X), size=batch_size) in the book, drawn in data.py
        return X[idx], y[idx]

    optimizer = keras.optimizers.SGD(learning_rate=0.01)
    loss_fn = keras.losses.MeanSquaredError()
    mean_loss = keras.metrics.Mean()
    metrics = [keras.metrics.MeanAbsoluteError()]
    epochs = []
    for epoch in range(1, n_epochs + 1):  # noqa: B007 (the book's loop)
        for step in range(1, n_steps + 1):  # noqa: B007
            X_batch, y_batch = random_batch(x_train, y_train)
            y_pred = model(X_batch, training=True)
            main_loss = torch.mean(loss_fn(y_batch, y_pred))
            loss = torch.stack([main_loss] + model.losses).sum()  # tf.add_n

            gradients = torch.autograd.grad(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(gradients, model.trainable_variables))

            for variable in model.variables:
                if variable.constraint is not None:
                    variable.assign(variable.constraint(variable))

            mean_loss(loss)
            for metric in metrics:
                metric(y_batch, y_pred)
        epochs.append([float(m.result()) for m in [mean_loss] + metrics])
        for metric in [mean_loss] + metrics:
            metric.reset_state()
    np.testing.assert_allclose(epochs, meta["epochs"], **TOL)
    _assert_list(model.get_weights(), listed("final"))
    assert len(model.losses) == meta["n_losses"]
    norms = np.linalg.norm(model.layers[0].get_weights()[0], axis=0)
    assert norms.max() <= 1.0 + 1e-6


# ================================================================================================ chapter 13
def test_ch13_preprocessing():
    """Normalization.adapt, Discretization with `bin_boundaries` and adapted `num_bins`, CategoryEncoding
    (one-hot, multi-hot, count, the offset trick), StringLookup (adapted vocabulary order, OOV, one-hot,
    `num_oov_indices=5`), Hashing, Embedding, a StringLookup + Embedding Sequential, and the chapter's
    numeric + string-category functional model trained: the same outputs and weights."""
    meta = META["ch13_preprocessing"]
    arrays, listed = _arrays("ch13_preprocessing")
    x, _ = data.housing(32)
    norm_layer = keras.layers.Normalization()
    norm_layer.adapt(x)
    _assert_adapted(norm_layer, listed("norm_weights"))
    np.testing.assert_allclose(norm_layer(x[:4]).numpy(), arrays["norm_out"], rtol=1e-5, atol=1e-5)

    age = torch.tensor([[10.], [93.], [57.], [18.], [37.], [5.]])
    discretize_layer = keras.layers.Discretization(bin_boundaries=[18., 50.])
    age_categories = discretize_layer(age)
    np.testing.assert_array_equal(age_categories.numpy(), arrays["age_categories"])
    discretize_layer = keras.layers.Discretization(num_bins=3)
    discretize_layer.adapt(age)
    np.testing.assert_allclose(discretize_layer.bin_boundaries, meta["adapted_boundaries"], rtol=1e-6)
    np.testing.assert_array_equal(discretize_layer(age).numpy(), arrays["adapted_categories"])

    onehot_layer = keras.layers.CategoryEncoding(num_tokens=3)
    np.testing.assert_array_equal(onehot_layer(age_categories).numpy(), arrays["onehot"])
    two_age_categories = np.array([[1, 0], [2, 2], [2, 0]])
    np.testing.assert_array_equal(onehot_layer(two_age_categories).numpy(), arrays["multi_hot"])
    np.testing.assert_array_equal(
        keras.layers.CategoryEncoding(num_tokens=3, output_mode="count")(two_age_categories).numpy(),
        arrays["count"])
    onehot_layer = keras.layers.CategoryEncoding(num_tokens=3 + 3)
    np.testing.assert_array_equal(onehot_layer(two_age_categories + [0, 3]).numpy(), arrays["offset_multi_hot"])

    cities = ["Auckland", "Paris", "Paris", "San Francisco"]
    str_lookup_layer = keras.layers.StringLookup()
    str_lookup_layer.adapt(cities)
    assert [str(v) for v in str_lookup_layer.get_vocabulary()] == meta["vocabulary"]
    queries = [["Paris"], ["Auckland"], ["Auckland"], ["Montreal"]]
    np.testing.assert_array_equal(np.asarray(str_lookup_layer(queries)), arrays["lookup"])
    str_lookup_layer = keras.layers.StringLookup(output_mode="one_hot")
    str_lookup_layer.adapt(cities)
    np.testing.assert_array_equal(np.asarray(str_lookup_layer(queries)), arrays["lookup_one_hot"])
    str_lookup_layer = keras.layers.StringLookup(num_oov_indices=5)
    str_lookup_layer.adapt(cities)
    np.testing.assert_array_equal(
        np.asarray(str_lookup_layer([["Paris"], ["Auckland"], ["Foo"], ["Bar"], ["Baz"]])), arrays["lookup_oov5"])
    hashing_layer = keras.layers.Hashing(num_bins=10)
    np.testing.assert_array_equal(np.asarray(hashing_layer([["Paris"], ["Tokyo"], ["Auckland"], ["Montreal"]])),
                                  arrays["hashed"])

    embedding_layer = keras.layers.Embedding(input_dim=5, output_dim=2)
    embedding_layer.build((None,))
    embedding_layer.set_weights(listed("embedding_weights"))
    np.testing.assert_allclose(embedding_layer(np.array([2, 4, 2])).detach().numpy(), arrays["embedded"], rtol=0)

    str_lookup_layer = keras.layers.StringLookup()
    str_lookup_layer.adapt(cities)
    lookup_and_embed = keras.Sequential([
        keras.layers.InputLayer(input_shape=[], dtype="string"),
        str_lookup_layer,
        keras.layers.Embedding(input_dim=str_lookup_layer.vocabulary_size(), output_dim=2)
    ])
    # tf.keras 2 lists a StringLookup's vocabulary among the model's weights (first); Keras 3 and kerasish keep
    # it out of get_weights()/set_weights() (it is in the layer's config and `get_vocabulary()`)
    vocabulary, *weights = listed("lookup_embed_weights")
    assert vocabulary.tolist() == meta["vocabulary"][1:] and len(lookup_and_embed.get_weights()) == 1
    lookup_and_embed.set_weights(weights)
    np.testing.assert_allclose(lookup_and_embed(np.array(["<1H OCEAN", "Paris", "Auckland"])).detach().numpy(),
                               arrays["lookup_embedded"], rtol=0)

    rng = np.random.RandomState(13)
    x_num = rng.normal(size=(40, 3)).astype("float32")
    x_cat = np.array(["<1H OCEAN", "INLAND", "NEAR BAY", "NEAR OCEAN", "ISLAND"])[rng.randint(0, 5, 40)]
    y = (x_num.sum(1) + (x_cat == "INLAND") - (x_cat == "ISLAND")).astype("float32")
    ocean_prox = ["<1H OCEAN", "INLAND", "NEAR OCEAN", "NEAR BAY", "ISLAND"]
    str_lookup_layer = keras.layers.StringLookup()
    str_lookup_layer.adapt(ocean_prox)
    assert [str(v) for v in str_lookup_layer.get_vocabulary()] == meta["model_vocabulary"]
    num_input = keras.layers.Input(shape=[3], name="num")
    cat_input = keras.layers.Input(shape=[], dtype="string", name="cat")
    cat_embeddings = keras.layers.Embedding(input_dim=6, output_dim=2)(str_lookup_layer(cat_input))
    encoded_inputs = keras.layers.concatenate([num_input, cat_embeddings])
    outputs = keras.layers.Dense(1)(encoded_inputs)
    model = keras.models.Model(inputs=[num_input, cat_input], outputs=[outputs])
    vocabulary, *weights = listed("model_init")
    assert vocabulary.tolist() == meta["model_vocabulary"][1:]
    model.set_weights(weights)
    model.compile(loss="mse", optimizer=keras.optimizers.SGD(learning_rate=0.05))
    h = model.fit((x_num, x_cat), y, epochs=3, batch_size=8, verbose=0, shuffle=False)
    _assert_history(h.history, meta["model_history"])
    np.testing.assert_allclose(model.predict({"num": x_num[:4], "cat": x_cat[:4]}, verbose=0),
                               arrays["model_predict"], **TOL)
    _assert_list(model.get_weights(), listed("model_final")[1:])


# ================================================================================================ chapter 14
DefaultConv2D = partial(keras.layers.Conv2D, kernel_size=3, strides=1, padding="same",
                        kernel_initializer="he_normal", use_bias=False)


class ResidualUnit(keras.layers.Layer):
    def __init__(self, filters, strides=1, activation="relu", **kwargs):
        super().__init__(**kwargs)
        self.activation = keras.activations.get(activation)
        self.main_layers = [
            DefaultConv2D(filters, strides=strides),
            keras.layers.BatchNormalization(),
            self.activation,
            DefaultConv2D(filters),
            keras.layers.BatchNormalization()
        ]
        self.skip_layers = []
        if strides > 1:
            self.skip_layers = [
                DefaultConv2D(filters, kernel_size=1, strides=strides),
                keras.layers.BatchNormalization()
            ]

    def call(self, inputs):
        Z = inputs
        for layer in self.main_layers:
            Z = layer(Z)
        skip_Z = inputs
        for layer in self.skip_layers:
            skip_Z = layer(skip_Z)
        return self.activation(Z + skip_Z)


def test_ch14_resnet():
    """The ResNet-34 `ResidualUnit` (a list mixing layers and the activation function, a strided skip
    branch) in a small ResNet: the same parameter count, weights order (BatchNormalization's moving
    statistics included), History, predictions and weights after two epochs."""
    meta = META["ch14_resnet"]
    arrays, listed = _arrays("ch14_resnet")
    x, y = data.images()
    model = keras.Sequential([
        DefaultConv2D(8, kernel_size=7, strides=2, input_shape=[16, 16, 3]),
        keras.layers.BatchNormalization(),
        keras.layers.Activation("relu"),
        keras.layers.MaxPool2D(pool_size=3, strides=2, padding="same"),
    ])
    prev_filters = 8
    for filters in [8] * 2 + [16] * 2:
        strides = 1 if filters == prev_filters else 2
        model.add(ResidualUnit(filters, strides=strides))
        prev_filters = filters
    model.add(keras.layers.GlobalAvgPool2D())
    model.add(keras.layers.Flatten())
    model.add(keras.layers.Dense(4, activation="softmax"))
    assert model.count_params() == meta["n_params"]
    # tf.keras 2 lists a custom layer's weights as all its trainable ones (sublayers' included), then all its
    # non-trainable ones: conv, gamma, beta, conv, gamma, beta, ..., then the BatchNormalizations' moving
    # statistics. Keras 3 and kerasish list them sublayer by sublayer (conv, gamma, beta, moving mean,
    # moving variance, conv, ...), so tf.keras 2's `get_weights()` list does not fit `set_weights()` here;
    # the port assigns it in tf.keras 2's order.
    unit = model.layers[6]
    assert ["/".join(w.path.split("/")[-3:]) for w in unit.trainable_weights + unit.non_trainable_weights] == [
        n.rsplit(":", 1)[0] for n in meta["unit_weight_names"]]
    assert [w.path for w in unit.weights] != [w.path for w in unit.trainable_weights + unit.non_trainable_weights]
    tf2_order = [w for layer in model.layers for w in layer.trainable_weights + layer.non_trainable_weights]
    for variable, value in zip(tf2_order, listed("init"), strict=True):
        variable.assign(value)
    model.compile(loss="sparse_categorical_crossentropy", optimizer="nadam", metrics=["accuracy"])
    h = model.fit(x, y, epochs=2, batch_size=8, verbose=0, shuffle=False)
    _assert_history(h.history, meta["history"], tol=LOOSE)
    # tf.keras 2 runs a BatchNormalization on 4-D inputs through TensorFlow's fused kernel, whose batch
    # variance for the moving average is Bessel-corrected (n / (n - 1), n = batch x height x width: 32 on the
    # 2x2 maps here); Keras 3 and kerasish average the biased batch variance (the one they normalize with).
    # The moving variances differ by up to that factor on their updates; everything else matches.
    for variable, want, start in zip(tf2_order, listed("final"), listed("init"), strict=True):
        got = variable.numpy()
        if variable.path.endswith("moving_variance"):
            # after 6 steps of momentum 0.99: final = 0.99**6 * start + c * S, S the averaged biased batch
            # variances, c = n / (n - 1) in tf.keras 2 and 1 here; n = 8 images x the map's height x width
            decayed = 0.99 ** 6 * start
            errors = {n: np.abs(got - (decayed + (want - decayed) * (n - 1) / n)).max() for n in (32, 128, 512)}
            assert min(errors.values()) < 1e-4, (variable.path, errors)
            assert not np.allclose(got, want, rtol=1e-6, atol=0)  # the difference is real, not round-off
        else:
            np.testing.assert_allclose(got, want, err_msg=variable.path, **LOOSE)
    for variable, value in zip(tf2_order, listed("final"), strict=True):  # inference from tf.keras's weights
        variable.assign(value)
    np.testing.assert_allclose(model.predict(x[:4], verbose=0), arrays["predict"], **LOOSE)


# ================================================================================================ chapter 15
class LNSimpleRNNCell(keras.layers.Layer):
    def __init__(self, units, activation="tanh", **kwargs):
        super().__init__(**kwargs)
        self.state_size = units
        self.output_size = units
        self.simple_rnn_cell = keras.layers.SimpleRNNCell(units, activation=None)
        self.layer_norm = keras.layers.LayerNormalization()
        self.activation = keras.activations.get(activation)

    def call(self, inputs, states):
        outputs, new_states = self.simple_rnn_cell(inputs, states)
        norm_outputs = self.activation(self.layer_norm(outputs))
        return norm_outputs, [norm_outputs]


def _wavenet():
    wavenet_model = keras.Sequential()
    wavenet_model.add(keras.layers.InputLayer(input_shape=[None, 5]))
    for rate in (1, 2, 4, 8) * 2:
        wavenet_model.add(keras.layers.Conv1D(
            filters=8, kernel_size=2, padding="causal", activation="relu", dilation_rate=rate))
    wavenet_model.add(keras.layers.Conv1D(filters=4, kernel_size=1))
    return wavenet_model


_SERIES_MODELS = {
    "univar": ("univar", 0.05, lambda: keras.Sequential([
        keras.layers.SimpleRNN(8, input_shape=[None, 1]),
        keras.layers.Dense(1)])),
    "deep": ("univar", 0.01, lambda: keras.Sequential([
        keras.layers.SimpleRNN(8, return_sequences=True, input_shape=[None, 1]),
        keras.layers.SimpleRNN(8, return_sequences=True),
        keras.layers.SimpleRNN(8),
        keras.layers.Dense(1)])),
    "ln": ("seq2seq", 0.05, lambda: keras.Sequential([
        keras.layers.RNN(LNSimpleRNNCell(8), return_sequences=True, input_shape=[None, 5]),
        keras.layers.Dense(4)])),
    "lstm": ("seq2seq", 0.1, lambda: keras.models.Sequential([
        keras.layers.LSTM(8, return_sequences=True, input_shape=[None, 5]),
        keras.layers.Dense(4)])),
    "gru": ("seq2seq", 0.1, lambda: keras.Sequential([
        keras.layers.GRU(8, return_sequences=True, input_shape=[None, 5]),
        keras.layers.Dense(4)])),
    "conv_gru": ("downsampled", 0.1, lambda: keras.Sequential([
        keras.layers.Conv1D(filters=8, kernel_size=4, strides=2, activation="relu", input_shape=[None, 5]),
        keras.layers.GRU(8, return_sequences=True),
        keras.layers.Dense(4)])),
    "wavenet": ("seq2seq", 0.05, _wavenet),
}


@pytest.mark.parametrize("name", list(_SERIES_MODELS))
def test_ch15_time_series(name):
    """The chapter's forecasting models through its `fit_and_evaluate` (Huber loss, SGD with momentum,
    `EarlyStopping(monitor="val_mae", restore_best_weights=True)`): SimpleRNN, a deep SimpleRNN, the
    custom LNSimpleRNNCell in `RNN`, LSTM and GRU seq2seq with `return_sequences`, Conv1D + GRU on
    downsampled targets, WaveNet's causal dilated Conv1D stack: the same History, evaluation and
    (restored) weights."""
    meta = META["ch15_time_series"]
    arrays, listed = _arrays("ch15_time_series")
    x, y_seq, y_next = data.series()
    xt, xv = x[:32], x[32:]
    sets = {"univar": ((xt[..., :1], y_next[:32]), (xv[..., :1], y_next[32:])),
            "seq2seq": ((xt, y_seq[:32]), (xv, y_seq[32:])),
            "downsampled": ((xt, y_seq[:32, 3::2]), (xv, y_seq[32:, 3::2]))}
    kind, learning_rate, build = _SERIES_MODELS[name]
    train, valid = sets[kind]
    model = build()
    model.set_weights(listed(name + "_init"))
    early_stopping_cb = keras.callbacks.EarlyStopping(monitor="val_mae", patience=2, restore_best_weights=True)
    opt = keras.optimizers.SGD(learning_rate=learning_rate, momentum=0.9)
    model.compile(loss=keras.losses.Huber(), optimizer=opt, metrics=["mae"])
    h = model.fit(*train, validation_data=valid, epochs=4, batch_size=8, verbose=0,
                  callbacks=[early_stopping_cb], shuffle=False)
    _assert_history(h.history, meta[name + "_history"], tol=LOOSE)
    np.testing.assert_allclose(model.evaluate(*valid, verbose=0), meta[name + "_evaluate"], **LOOSE)
    _assert_list(model.get_weights(), listed(name + "_final"), tol=LOOSE)


# ================================================================================================ chapter 16
class ResetStatesCallback(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs):
        self.model.reset_states()


def test_ch16_stateful_char_rnn():
    """The stateful char-RNN: `Embedding(batch_input_shape=[batch, None])` (Keras 2's argument, which
    Keras 3 dropped; kerasish takes it), `GRU(stateful=True, return_sequences=True)`, the book's
    ResetStatesCallback, batches that continue each other (`shuffle=False`): the same History and
    weights; `predict` carries the state from one window to the next until `reset_states()`."""
    meta = META["ch16_nlp"]
    arrays, listed = _arrays("ch16_nlp")
    x, y = data.char_sequences()
    n_tokens, batch = 7, x.shape[1]
    model = keras.Sequential([
        keras.layers.Embedding(input_dim=n_tokens, output_dim=4, batch_input_shape=[batch, None]),
        keras.layers.GRU(8, return_sequences=True, stateful=True),
        keras.layers.Dense(n_tokens, activation="softmax")
    ])
    model.set_weights(listed("stateful_init"))
    model.compile(loss="sparse_categorical_crossentropy", optimizer="nadam", metrics=["accuracy"])
    h = model.fit(x.reshape(-1, x.shape[-1]), y.reshape(-1, y.shape[-1]), batch_size=batch, shuffle=False,
                  epochs=3, callbacks=[ResetStatesCallback()], verbose=0)
    _assert_history(h.history, meta["stateful_history"])
    _assert_list(model.get_weights(), listed("stateful_final"))
    model.reset_states()
    _assert_list([model.predict(x[w], verbose=0) for w in range(2)], listed("stateful_predict"))
    model.reset_states()
    after_reset = model.predict(x[1], verbose=0)
    np.testing.assert_allclose(after_reset, arrays["stateful_predict_after_reset"], **TOL)
    assert not np.allclose(after_reset, listed("stateful_predict")[1], rtol=1e-3)


def test_ch16_sentiment_mask_zero():
    """Sentiment analysis: `Embedding(mask_zero=True)` before a GRU, padded reviews: the mask reaches
    the GRU (padding steps skipped), so the same History, predictions and weights."""
    meta = META["ch16_nlp"]
    arrays, listed = _arrays("ch16_nlp")
    xr, yr = data.reviews()
    model = keras.Sequential([
        keras.layers.Embedding(20, 4, mask_zero=True),
        keras.layers.GRU(8),
        keras.layers.Dense(1, activation="sigmoid")
    ])
    model.build((None, None))
    model.set_weights(listed("sentiment_init"))
    model.compile(loss="binary_crossentropy", optimizer="nadam", metrics=["accuracy"])
    h = model.fit(xr[:24], yr[:24], validation_data=(xr[24:], yr[24:]), epochs=3, batch_size=8, verbose=0,
                  shuffle=False)
    _assert_history(h.history, meta["sentiment_history"])
    np.testing.assert_allclose(model.predict(xr[24:], verbose=0), arrays["sentiment_predict"], **TOL)
    _assert_list(model.get_weights(), listed("sentiment_final"))


def test_ch16_encoder_decoder_attention():
    """The translation model with a Bidirectional LSTM encoder (`return_state=True`, its four states
    joined with `torch.cat` on the symbolic tensors), an LSTM decoder started from them, Luong
    `Attention()([decoder_outputs, encoder_outputs])` with both padding masks, and a masked
    sparse-categorical loss: the same History, predictions and weights."""
    meta = META["ch16_nlp"]
    arrays, listed = _arrays("ch16_nlp")
    enc, dec, target = data.translation_pairs()
    vocab_size, embed_size = 16, 6
    encoder_inputs = keras.layers.Input(shape=[None], dtype="int64")
    decoder_inputs = keras.layers.Input(shape=[None], dtype="int64")
    encoder_embedding_layer = keras.layers.Embedding(vocab_size, embed_size, mask_zero=True)
    decoder_embedding_layer = keras.layers.Embedding(vocab_size, embed_size, mask_zero=True)
    encoder_embeddings = encoder_embedding_layer(encoder_inputs)
    decoder_embeddings = decoder_embedding_layer(decoder_inputs)
    encoder = keras.layers.Bidirectional(keras.layers.LSTM(8, return_sequences=True, return_state=True))
    encoder_outputs, *encoder_state = encoder(encoder_embeddings)
    encoder_state = [torch.cat(encoder_state[::2], dim=-1),  # short-term (0 & 2)
                     torch.cat(encoder_state[1::2], dim=-1)]  # long-term (1 & 3)
    decoder = keras.layers.LSTM(16, return_sequences=True)
    decoder_outputs = decoder(decoder_embeddings, initial_state=encoder_state)
    attention_layer = keras.layers.Attention()
    attention_outputs = attention_layer([decoder_outputs, encoder_outputs])
    output_layer = keras.layers.Dense(vocab_size, activation="softmax")
    Y_proba = output_layer(attention_outputs)
    model = keras.Model(inputs=[encoder_inputs, decoder_inputs], outputs=[Y_proba])
    model.set_weights(listed("translate_init"))
    model.compile(loss="sparse_categorical_crossentropy", optimizer="nadam", metrics=["accuracy"])
    h = model.fit((enc[:16], dec[:16]), target[:16], epochs=3, batch_size=8,
                  validation_data=((enc[16:], dec[16:]), target[16:]), verbose=0, shuffle=False)
    _assert_history(h.history, meta["translate_history"])
    np.testing.assert_allclose(model.predict((enc[16:20], dec[16:20]), verbose=0), arrays["translate_predict"],
                               **TOL)
    _assert_list(model.get_weights(), listed("translate_final"))


# ================================================================================================ chapter 17
class DenseTranspose(keras.layers.Layer):
    def __init__(self, dense, activation=None, **kwargs):
        super().__init__(**kwargs)
        self.dense = dense
        self.activation = keras.activations.get(activation)

    def build(self, batch_input_shape):
        self.biases = self.add_weight(name="bias", shape=self.dense.input_shape[-1], initializer="zeros")
        super().build(batch_input_shape)

    def call(self, inputs):
        Z = torch.matmul(inputs, self.dense.weights[0].T)  # tf.matmul(..., transpose_b=True)
        return self.activation(Z + self.biases)


def test_ch17_autoencoders():
    """A stacked autoencoder (Sequential of Sequentials), the tied-weights autoencoder whose
    `DenseTranspose` reads `dense.input_shape` and multiplies by `dense.weights[0]` transposed (one kernel
    trained by both), a convolutional autoencoder (Conv2D / MaxPool2D / Conv2DTranspose): the same
    Histories, codings and weights."""
    meta = META["ch17_generative"]
    arrays, listed = _arrays("ch17_generative")
    x, _ = data.fashion(32)
    stacked_encoder = keras.Sequential([
        keras.layers.Flatten(),
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(4, activation="relu"),
    ])
    stacked_decoder = keras.Sequential([
        keras.layers.Dense(16, activation="relu"),
        keras.layers.Dense(8 * 8),
        keras.layers.Reshape([8, 8])
    ])
    stacked_ae = keras.Sequential([stacked_encoder, stacked_decoder])
    stacked_ae.build((None, 8, 8))
    stacked_ae.set_weights(listed("stacked_init"))
    stacked_ae.compile(loss="mse", optimizer="nadam")
    h = stacked_ae.fit(x[:24], x[:24], epochs=2, batch_size=8, validation_data=(x[24:], x[24:]), verbose=0,
                       shuffle=False)
    _assert_history(h.history, meta["stacked_history"])
    np.testing.assert_allclose(stacked_encoder.predict(x[24:], verbose=0), arrays["stacked_codings"], **TOL)
    _assert_list(stacked_ae.get_weights(), listed("stacked_final"))

    dense_1 = keras.layers.Dense(16, activation="relu")
    dense_2 = keras.layers.Dense(4, activation="relu")
    tied_encoder = keras.Sequential([keras.layers.Flatten(), dense_1, dense_2])
    tied_decoder = keras.Sequential([
        DenseTranspose(dense_2, activation="relu"),
        DenseTranspose(dense_1),
        keras.layers.Reshape([8, 8])
    ])
    tied_ae = keras.Sequential([tied_encoder, tied_decoder])
    tied_ae.build((None, 8, 8))
    assert len(tied_ae.get_weights()) == len(listed("tied_init")) == 6  # the kernels are not repeated
    tied_ae.set_weights(listed("tied_init"))
    tied_ae.compile(loss="mse", optimizer="nadam")
    h = tied_ae.fit(x[:24], x[:24], epochs=2, batch_size=8, verbose=0, shuffle=False)
    _assert_history(h.history, meta["tied_history"])
    _assert_list(tied_ae.get_weights(), listed("tied_final"))

    conv_encoder = keras.Sequential([
        keras.layers.Reshape([8, 8, 1]),
        keras.layers.Conv2D(4, 3, padding="same", activation="relu"),
        keras.layers.MaxPool2D(pool_size=2),
        keras.layers.Conv2D(8, 3, padding="same", activation="relu"),
        keras.layers.MaxPool2D(pool_size=2),
    ])
    conv_decoder = keras.Sequential([
        keras.layers.Conv2DTranspose(4, 3, strides=2, padding="same", activation="relu"),
        keras.layers.Conv2DTranspose(1, 3, strides=2, padding="same"),
        keras.layers.Reshape([8, 8])
    ])
    conv_ae = keras.Sequential([conv_encoder, conv_decoder])
    conv_ae.build((None, 8, 8))
    conv_ae.set_weights(listed("conv_init"))
    conv_ae.compile(loss="mse", optimizer="nadam")
    h = conv_ae.fit(x[:24], x[:24], epochs=2, batch_size=8, verbose=0, shuffle=False)
    _assert_history(h.history, meta["conv_history"], tol=LOOSE)
    _assert_list(conv_ae.get_weights(), listed("conv_final"), tol=LOOSE)


def test_ch17_variational_autoencoder():
    """The VAE: a `Sampling` layer (its normal draw fixed from data.py in both frameworks), encoder and
    decoder models nested in a functional model, and the latent loss built with `torch.*` ops on the
    symbolic tensors and added with `variational_ae.add_loss(...)`: the same History (reconstruction +
    latent loss), evaluation, generated images and weights."""
    meta = META["ch17_generative"]
    arrays, listed = _arrays("ch17_generative")
    x, _ = data.fashion(32)
    noise = data.vae_noise()[0]

    class Sampling(keras.layers.Layer):
        def call(self, inputs):
            mean, log_var = inputs
            # torch.randn(log_var.shape) in a plain port: one fixed draw from data.py
            return torch.as_tensor(noise)[:log_var.shape[0]] * torch.exp(log_var / 2) + mean

    codings_size = 4
    inputs = keras.layers.Input(shape=[8, 8])
    Z = keras.layers.Flatten()(inputs)
    Z = keras.layers.Dense(16, activation="relu")(Z)
    codings_mean = keras.layers.Dense(codings_size)(Z)  # μ
    codings_log_var = keras.layers.Dense(codings_size)(Z)  # γ
    codings = Sampling()([codings_mean, codings_log_var])
    variational_encoder = keras.Model(inputs=[inputs], outputs=[codings_mean, codings_log_var, codings])
    decoder_inputs = keras.layers.Input(shape=[codings_size])
    z = keras.layers.Dense(16, activation="relu")(decoder_inputs)
    z = keras.layers.Dense(8 * 8)(z)
    outputs = keras.layers.Reshape([8, 8])(z)
    variational_decoder = keras.Model(inputs=[decoder_inputs], outputs=[outputs])
    _, _, codings = variational_encoder(inputs)
    reconstructions = variational_decoder(codings)
    variational_ae = keras.Model(inputs=[inputs], outputs=[reconstructions])
    latent_loss = -0.5 * torch.sum(
        1 + codings_log_var - torch.exp(codings_log_var) - torch.square(codings_mean), dim=-1)
    variational_ae.add_loss(torch.mean(latent_loss) / 64.)
    variational_ae.set_weights(listed("vae_init"))
    variational_ae.compile(loss="mse", optimizer=keras.optimizers.Nadam())
    h = variational_ae.fit(x[:16 * 2], x[:16 * 2], epochs=2, batch_size=16, verbose=0, shuffle=False)
    _assert_history(h.history, meta["vae_history"])
    np.testing.assert_allclose(variational_ae.evaluate(x[:16], x[:16], verbose=0), meta["vae_evaluate"], **TOL)
    generated = variational_decoder(np.linspace(-1, 1, 12).reshape(3, 4).astype("float32"))
    np.testing.assert_allclose(keras.ops.convert_to_numpy(generated), arrays["vae_generated"], **TOL)
    _assert_list(variational_ae.get_weights(), listed("vae_final"))


def test_ch17_gan():
    """The book's GAN: `discriminator.compile`, `discriminator.trainable = False`, `gan.compile`, then
    `train_gan`'s `discriminator.train_on_batch` / `gan.train_on_batch` (noise from data.py). tf.keras 2
    trains each model with the `trainable` state of its `compile`; Keras 3 and kerasish read it at every
    step (documented; see test_port_keras2_programs_6's GAN), so the port sets
    `discriminator.trainable = True` around the discriminator's step: the same losses and weights."""
    meta = META["ch17_generative"]
    arrays, listed = _arrays("ch17_generative")
    x, _ = data.fashion(32)
    codings_size = 6
    Dense = keras.layers.Dense
    generator = keras.Sequential([
        Dense(16, activation="relu", kernel_initializer="he_normal"),
        Dense(8 * 8, activation="sigmoid"),
        keras.layers.Reshape([8, 8])
    ])
    discriminator = keras.Sequential([
        keras.layers.Flatten(),
        Dense(16, activation="relu", kernel_initializer="he_normal"),
        Dense(1, activation="sigmoid")
    ])
    gan = keras.Sequential([generator, discriminator])
    gan.build((None, codings_size))
    gan.set_weights(listed("gan_init"))
    discriminator.compile(loss="binary_crossentropy", optimizer="rmsprop")
    discriminator.trainable = False
    gan.compile(loss="binary_crossentropy", optimizer="rmsprop")
    gan_noise = data.gan_noise()
    batch_size = 8

    def train_gan(gan, dataset, batch_size, codings_size, n_epochs):
        generator, discriminator = gan.layers
        d_losses, g_losses = [], []
        for epoch in range(n_epochs):  # noqa: B007 (the book's loop)
            for step, X_batch in enumerate(dataset):
                # phase 1 - training the discriminator
                noise = torch.as_tensor(gan_noise[step, 0])  # torch.randn(batch_size, codings_size)
                generated_images = generator(noise)
                X_fake_and_real = torch.cat([generated_images, X_batch], dim=0)
                y1 = torch.tensor([[0.]] * batch_size + [[1.]] * batch_size)
                discriminator.trainable = True  # Keras 3 (see the docstring)
                d_losses.append(float(discriminator.train_on_batch(X_fake_and_real, y1)))
                discriminator.trainable = False
                # phase 2 - training the generator
                noise = torch.as_tensor(gan_noise[step, 1])  # torch.randn(batch_size, codings_size)
                y2 = torch.tensor([[1.]] * batch_size)
                g_losses.append(float(gan.train_on_batch(noise, y2)))
        return d_losses, g_losses

    dataset = [torch.as_tensor(x[i * batch_size:(i + 1) * batch_size]) for i in range(4)]
    d_losses, g_losses = train_gan(gan, dataset, batch_size, codings_size, n_epochs=1)
    np.testing.assert_allclose(d_losses, meta["gan_d_losses"], **TOL)
    np.testing.assert_allclose(g_losses, meta["gan_g_losses"], **TOL)
    _assert_list(gan.get_weights(), listed("gan_final"))


class TimeEncoding(keras.layers.Layer):
    def __init__(self, T, embed_size, dtype=torch.float32, **kwargs):
        super().__init__(dtype=dtype, **kwargs)
        assert embed_size % 2 == 0, "embed_size must be even"
        p, i = np.meshgrid(np.arange(T + 1), 2 * np.arange(embed_size // 2))
        t_emb = np.empty((T + 1, embed_size))
        t_emb[:, ::2] = np.sin(p / 10_000 ** (i / embed_size)).T
        t_emb[:, 1::2] = np.cos(p / 10_000 ** (i / embed_size)).T
        self.time_encodings = torch.tensor(t_emb.astype(self.dtype))

    def call(self, inputs):
        return self.time_encodings[inputs]  # tf.gather


def test_ch17_diffusion():
    """One diffusion model step: the cosine variance schedule and `prepare_batch` (draws from data.py),
    the custom `TimeEncoding` layer, time added to every pixel with `time[:, None, None, :] + Z` on
    symbolic tensors, ZeroPadding2D / SeparableConv2D / MaxPooling2D / Conv2DTranspose / UpSampling2D /
    `add` / `concatenate`, the output sliced `[:, 1:-1, 1:-1]`, a dict of named inputs, Huber loss:
    the same noisy batch, History, predictions and weights."""
    meta = META["ch17_generative"]
    arrays, listed = _arrays("ch17_generative")
    T = 20

    def variance_schedule(T, s=0.008, max_beta=0.999):
        t = np.arange(T + 1)
        f = np.cos((t / T + s) / (1 + s) * np.pi / 2) ** 2
        alpha = np.clip(f[1:] / f[:-1], 1 - max_beta, 1)
        alpha = np.append(1, alpha).astype(np.float32)  # add α₀ = 1
        beta = 1 - alpha
        alpha_cumprod = np.cumprod(alpha)
        return alpha, alpha_cumprod, beta

    alpha, alpha_cumprod, beta = variance_schedule(T)
    x0, t, noise = data.diffusion_batch(T=T)
    t = t[:, 0].astype("int32")
    alpha_cm = torch.as_tensor(alpha_cumprod)[torch.as_tensor(t, dtype=torch.long)]
    alpha_cm = torch.reshape(alpha_cm, [x0.shape[0]] + [1] * 3)
    X_noisy = alpha_cm ** 0.5 * torch.as_tensor(x0) + (1 - alpha_cm) ** 0.5 * torch.as_tensor(noise)
    np.testing.assert_allclose(X_noisy.numpy(), arrays["x_noisy"], rtol=1e-5, atol=1e-6)

    X_noisy_in = keras.layers.Input(shape=[8, 8, 1], name="X_noisy")
    time_input = keras.layers.Input(shape=[], dtype="int32", name="time")
    time_enc = TimeEncoding(T, 8)(time_input)
    dim = 4
    Z = keras.layers.ZeroPadding2D((1, 1))(X_noisy_in)
    Z = keras.layers.Conv2D(dim, 3)(Z)
    Z = keras.layers.BatchNormalization()(Z)
    Z = keras.layers.Activation("relu")(Z)
    time = keras.layers.Dense(dim)(time_enc)
    Z = time[:, None, None, :] + Z
    skip = Z
    Z = keras.layers.Activation("relu")(Z)
    Z = keras.layers.SeparableConv2D(8, 3, padding="same")(Z)
    Z = keras.layers.BatchNormalization()(Z)
    cross_skip = Z
    Z = keras.layers.MaxPooling2D(3, strides=2, padding="same")(Z)
    skip_link = keras.layers.Conv2D(8, 1, strides=2, padding="same")(skip)
    Z = keras.layers.add([Z, skip_link])
    Z = keras.layers.Activation("relu")(Z)
    Z = keras.layers.Conv2DTranspose(8, 3, padding="same")(Z)
    Z = keras.layers.BatchNormalization()(Z)
    Z = keras.layers.UpSampling2D(2)(Z)
    Z = keras.layers.concatenate([Z, cross_skip], axis=-1)
    outputs = keras.layers.Conv2D(1, 3, padding="same")(Z)[:, 1:-1, 1:-1]
    model = keras.Model(inputs=[X_noisy_in, time_input], outputs=[outputs])
    model.set_weights(listed("diffusion_init"))
    model.compile(loss=keras.losses.Huber(), optimizer=keras.optimizers.Nadam())
    h = model.fit({"X_noisy": X_noisy.numpy(), "time": t}, noise[:, 1:-1, 1:-1], epochs=2, batch_size=4,
                  shuffle=False, verbose=0)
    _assert_history(h.history, meta["diffusion_history"], tol=LOOSE)
    # The biases of the convolutions that feed a BatchNormalization get a zero gradient (the normalization
    # subtracts the batch mean), so each framework's is float32 round-off of order 1e-9, which Nadam scales
    # to full-size steps of either sign: those biases (and the moving means that follow them) are not
    # comparable, only bounded by the step size. Every other weight matches.
    noise_driven = {"conv2d/bias", "separable_conv2d/bias", "conv2d_transpose/bias",
                    "batch_normalization/moving_mean", "batch_normalization_1/moving_mean"}
    final, init = listed("diffusion_final"), listed("diffusion_init")
    paths = [w.path for w in model.weights]
    assert noise_driven <= set(paths)
    for path, got, want, start in zip(paths, model.get_weights(), final, init, strict=True):
        if path in noise_driven and path.endswith("bias"):
            assert np.abs(got - start).max() <= 4 * 1e-3 * 1.01  # 4 Nadam steps of at most lr = 1e-3
        elif path not in noise_driven:
            np.testing.assert_allclose(got, want, err_msg=path, **LOOSE)
    # inference with tf.keras's final weights: the same predictions
    model.set_weights(final)
    np.testing.assert_allclose(model.predict({"X_noisy": X_noisy.numpy()[:2], "time": t[:2]}, verbose=0),
                               arrays["diffusion_predict"], **LOOSE)


# ================================================================================= the same programs in Keras 3
def _k3_classifier(k, listed):
    (x_train, y_train), (x_valid, y_valid) = data.fashion_split()
    model = k.Sequential([k.layers.Input(shape=[8, 8]), k.layers.Flatten(), k.layers.Dense(30, activation="relu"),
                          k.layers.Dense(20, activation="relu"), k.layers.Dense(5, activation="softmax")])
    model.set_weights(listed("init"))
    model.compile(loss="sparse_categorical_crossentropy", optimizer="sgd", metrics=["accuracy"])
    return model.fit(x_train, y_train, epochs=5, validation_data=(x_valid, y_valid), verbose=0,
                     shuffle=False).history, model.get_weights()


def _k3_huber_class(k, listed):
    (x_train, x_valid, _), (y_train, y_valid, _) = data.scaled_housing()

    class Huber2(k.losses.Loss):  # the book's HuberLoss(2.), 1-D regression targets
        def call(self, y_true, y_pred):
            error = y_true - y_pred
            small = torch.abs(error) < 2.0
            return torch.where(small, torch.square(error) / 2, 2.0 * torch.abs(error) - 2.0)

    model = k.Sequential([k.layers.Input((8,)), k.layers.Dense(16, activation="relu"), k.layers.Dense(1)])
    model.set_weights(listed("init"))
    model.compile(loss=Huber2(), optimizer="nadam", metrics=["mae"])
    return model.fit(x_train, y_train, epochs=2, validation_data=(x_valid, y_valid), verbose=0,
                     shuffle=False).history, model.get_weights()


def _k3_sentiment(k, listed):
    xr, yr = data.reviews()
    model = k.Sequential([k.layers.Embedding(20, 4, mask_zero=True), k.layers.GRU(8),
                          k.layers.Dense(1, activation="sigmoid")])
    model.build((None, None))
    model.set_weights(listed("sentiment_init"))
    model.compile(loss="binary_crossentropy", optimizer="nadam", metrics=["accuracy"])
    return model.fit(xr[:24], yr[:24], validation_data=(xr[24:], yr[24:]), epochs=3, batch_size=8, verbose=0,
                     shuffle=False).history, model.get_weights()


_K3_PROGRAMS = {  # name: (builder, fixture, History key in the metadata, tf.keras 2 agrees with Keras 3)
    "classifier": (_k3_classifier, "ch10_classifier", "history", True),
    "huber_class_1d_targets": (_k3_huber_class, "ch12_custom_losses_metrics", "class_history", False),
    "sentiment_mask_zero": (_k3_sentiment, "ch16_nlp", "sentiment_history", True),
}


@pytest.mark.parametrize("name", list(_K3_PROGRAMS))
def test_keras3_runs_the_same_programs(keras_ref, name):
    """Programs that are valid Keras 3 too, run by real Keras 3.15 (torch backend) from the same weights:
    Keras 3 and kerasish give the same History and weights, and both match tf.keras 2, except where Keras 3
    is wrong: the book's HuberLoss class on 1-D targets broadcasts (batch,) against (batch, 1) in Keras 3.15
    (a different, wrong loss; tf.keras 2 and kerasish expand the target). (Keras 3's LSTM on the CPU takes
    ~20 s for the ch15 program, so the recurrent check is the GRU one.)"""
    build, fixture, key, keras3_agrees = _K3_PROGRAMS[name]
    _, listed = _arrays(fixture)
    tf2 = META[fixture][key]
    ours, our_weights = build(keras, listed)
    theirs, their_weights = build(keras_ref, listed)
    _assert_history(ours, tf2)
    if keras3_agrees:
        _assert_history(theirs, tf2)
        _assert_list([keras_ref.ops.convert_to_numpy(w) for w in their_weights], our_weights)
    else:
        assert abs(theirs["loss"][0] - tf2["loss"][0]) > 0.05 * tf2["loss"][0]  # Keras 3's broadcast loss
