"""compile / fit / evaluate / predict, as a user would use them.

Most tests use a small subclassed model built on the `Trainer` mixin
directly, so they do not depend on the models package; a few run the same
checks through `keras.Sequential` / the functional `keras.Model` when they
are available."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from torch import nn

import kerasish as keras
import kerasish.callbacks  # noqa: F401
from kerasish.trainers.trainer import Trainer


class Net(Trainer, keras.layers.Layer):
    """A subclassed model: a stack of layers."""

    def __init__(self, layers, **kwargs):
        super().__init__(**kwargs)
        self.body = nn.ModuleList(layers)

    def call(self, x, training=None):  # (takes `training`: fit passes training=True, as Keras 3 does)
        for layer in self.body:
            x = layer(x)
        return x


def mlp(out=1, hidden=8, activation=None, dropout=None):
    layers = [keras.layers.Dense(hidden, activation="tanh")]
    if dropout:
        layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(out, activation=activation))
    return Net(layers)


def regression_data(n=64, d=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    y = (x @ rng.normal(size=(d, 1)) + 0.1).astype("float32")
    return x, y


def classification_data(n=96, d=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype("float32")
    y = np.argmax(x[:, :classes] + 0.1 * rng.normal(size=(n, classes)), axis=1).astype("int64")
    return x, y


def built(model, x):
    model(torch.as_tensor(x[:2]))
    return model


# ----------------------------------------------------------------- maths
def test_fit_matches_hand_written_torch_loop():
    """Same initial weights, same SGD-with-momentum maths, no shuffling: the
    per-epoch losses of `fit` equal those of a hand-written loop."""
    x, y = regression_data(n=50)
    model = built(mlp(), x)
    twin = copy.deepcopy(model)
    model.compile(optimizer=keras.optimizers.SGD(0.05, momentum=0.9), loss="mse")
    history = model.fit(x, y, batch_size=16, epochs=4, shuffle=False, verbose=0)

    opt = torch.optim.SGD(twin.parameters(), lr=0.05, momentum=0.9)
    xt, yt = torch.as_tensor(x), torch.as_tensor(y)
    expected = []
    for _ in range(4):
        total, count = 0.0, 0
        for start in range(0, len(x), 16):
            xb, yb = xt[start:start + 16], yt[start:start + 16]
            opt.zero_grad()
            loss = ((twin(xb) - yb) ** 2).mean()
            loss.backward()
            opt.step()
            total += loss.item() * len(xb)
            count += len(xb)
        expected.append(total / count)
    np.testing.assert_allclose(history.history["loss"], expected, rtol=1e-5)
    for a, b in zip(model.parameters(), twin.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_fit_matches_real_keras(keras_ref):
    """Same weights, same data order, Keras's own SGD: identical histories."""
    x, y = regression_data(n=40)
    ref = keras_ref.Sequential([
        keras_ref.Input((3,)), keras_ref.layers.Dense(8, activation="tanh"), keras_ref.layers.Dense(1),
    ])
    model = built(mlp(), x)
    model.set_weights(ref.get_weights())
    for m, opt in ((ref, keras_ref.optimizers.SGD(0.1)), (model, keras.optimizers.SGD(0.1))):
        m.compile(optimizer=opt, loss="mse", metrics=["mae"])
    h_ref = ref.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, validation_split=0.25)
    h = model.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, validation_split=0.25)
    assert list(h.history) == list(h_ref.history)
    for key in h_ref.history:
        np.testing.assert_allclose(h.history[key], h_ref.history[key], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), ref.evaluate(x, y, verbose=0), rtol=1e-5)
    np.testing.assert_allclose(model.predict(x, verbose=0), ref.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_dict_loss_order_follows_the_loss_dict_like_keras(keras_ref):
    """Dict outputs + dict loss: Keras orders the per-output losses (logs,
    `evaluate()` list, `metrics_names`) by the loss dict, not by output name."""
    rng = np.random.default_rng(0)
    x = rng.normal(size=(8, 3)).astype("float32")
    y = {"b_out": rng.normal(size=(8, 1)).astype("float32"), "a_out": rng.normal(size=(8, 2)).astype("float32")}

    def build(k):
        inp = k.Input((3,))
        return k.Model(inp, {"b_out": k.layers.Dense(1, name="b_out")(inp), "a_out": k.layers.Dense(2, name="a_out")(inp)})

    ref, model = build(keras_ref), build(keras)
    model.set_weights(ref.get_weights())
    for m in (ref, model):
        m.compile(optimizer="sgd", loss={"b_out": "mse", "a_out": "mae"}, loss_weights={"b_out": 2.0, "a_out": 0.5})
    np.testing.assert_allclose(model.evaluate(x, y, verbose=0), ref.evaluate(x, y, verbose=0), rtol=1e-5)
    assert model.metrics_names == ref.metrics_names == ["loss", "b_out_loss", "a_out_loss"]


def test_fit_with_torch_optimizer_and_adam_decreases_loss():
    x, y = classification_data()
    model = built(mlp(out=3), x)
    model.compile(optimizer=torch.optim.Adam(model.parameters(), lr=0.05),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    history = model.fit(x, y, epochs=8, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert history.history["accuracy"][-1] > 0.7
    model2 = built(mlp(out=3), x)
    model2.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    assert set(model2.fit(x, y, verbose=0).history) == {"loss"}


def test_training_flag_reaches_layers_only_in_fit(keras_ref):
    x, y = regression_data(n=8)
    modes = {}
    for lib in (keras_ref, keras):  # the same program in real Keras 3
        seen = []

        class Probe(lib.layers.Layer):
            def call(self, x, training=None):
                if x.device.type != "meta":  # (Keras traces the model on meta tensors first)
                    seen.append(bool(training))
                return x

        model = lib.Sequential([lib.Input((3,)), lib.layers.Dense(1), Probe()])
        model.compile(optimizer="sgd", loss="mse")
        model.fit(x, y, batch_size=8, epochs=1, verbose=0, validation_data=(x, y))
        in_fit = list(seen)
        seen.clear()
        model.evaluate(x, y, verbose=0)
        model.predict(x, verbose=0)
        modes[lib] = (in_fit, list(seen))
    assert modes[keras] == modes[keras_ref] == ([True, False], [False, False])
    seen = []

    class Probe(keras.layers.Layer):
        def call(self, x, training=None):
            seen.append(bool(training))
            return x

    model = Net([keras.layers.Dense(1), Probe()])  # a subclassed model (kerasish's Trainer on a Layer)
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, validation_data=(x, y))
    assert seen == [True, False]
    assert not model.training
    seen.clear()
    model.evaluate(x, y, verbose=0)
    model.predict(x, verbose=0)
    assert seen == [False, False]

    class NoTrainingArg(Net):
        def call(self, x):
            for layer in self.body:
                x = layer(x)
            return x

    # a `call` without `training`: Keras 3's trainers call `self(x)`, the
    # layers get their default (tests/trainers/test_training_arg_propagation.py
    # compares this with Keras)
    seen.clear()
    model = NoTrainingArg([keras.layers.Dense(1), Probe()])
    model.compile(optimizer="sgd", loss="mse")
    model.fit(x, y, batch_size=8, epochs=1, verbose=0, validation_data=(x, y))
    assert seen == [False, False]


def test_dropout_active_in_fit_not_in_predict():
    x, y = regression_data(n=32)
    model = built(mlp(dropout=0.9), x)
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    a = model.predict(x, verbose=0)
    b = model.predict(x, verbose=0)
    np.testing.assert_array_equal(a, b)
    train_loss = model.fit(x, y, batch_size=32, epochs=1, verbose=0, shuffle=False).history["loss"][0]
    assert train_loss != pytest.approx(model.evaluate(x, y, verbose=0), rel=1e-4)


# ------------------------------------------------------------- outputs
def test_evaluate_predict_return_types():
    x, y = regression_data()
    model = built(mlp(), x)
    model.compile(optimizer="sgd", loss="mse")
    assert isinstance(model.evaluate(x, y, verbose=0), float)
    model.compile(optimizer="sgd", loss="mse", metrics=["mae", keras.metrics.RootMeanSquaredError()])
    values = model.evaluate(x, y, batch_size=10, verbose=0)
    assert isinstance(values, list) and len(values) == 3
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "mae", "root_mean_squared_error"}
    np.testing.assert_allclose(values, [logs["loss"], logs["mae"], logs["root_mean_squared_error"]], rtol=1e-6)
    pred = model.predict(x, batch_size=7, verbose=0)
    assert isinstance(pred, np.ndarray) and pred.shape == (64, 1)
    np.testing.assert_allclose(pred, model(torch.as_tensor(x)).detach().numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(logs["loss"], np.mean((pred - y) ** 2), rtol=1e-5)
    assert model.metrics_names == ["loss", "compile_metrics"]


def test_on_batch_methods():
    x, y = regression_data(n=16)
    model = built(mlp(), x)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", metrics=["mae"])
    before = model.test_on_batch(x, y)
    assert len(before) == 2
    logs = model.train_on_batch(x, y, return_dict=True)
    assert set(logs) == {"loss", "mae"}
    np.testing.assert_allclose(logs["loss"], before[0], rtol=1e-6)
    assert model.test_on_batch(x, y)[0] < before[0]
    out = model.predict_on_batch(x)
    assert isinstance(out, np.ndarray) and out.shape == (16, 1)


def test_sample_and_class_weights():
    x, y = regression_data(n=20)
    w = np.linspace(0.1, 2.0, 20).astype("float32")
    model = built(mlp(), x)
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse", weighted_metrics=["mse"], metrics=["mse"])
    pred = model.predict(x, verbose=0)
    per_sample = ((pred - y) ** 2).mean(axis=1)
    logs = model.evaluate(x, y, sample_weight=w, batch_size=20, verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["loss"], (per_sample * w).sum() / 20, rtol=1e-5)  # sum_over_batch_size
    np.testing.assert_allclose(logs["weighted_mse"], (per_sample * w).sum() / w.sum(), rtol=1e-5)
    np.testing.assert_allclose(logs["mse"], per_sample.mean(), rtol=1e-5)

    xc, yc = classification_data(n=30)
    clf = built(mlp(out=3), xc)
    clf.compile(optimizer=keras.optimizers.SGD(0.0), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    cw = {0: 1.0, 1: 3.0, 2: 0.5}
    loss = clf.fit(xc, yc, class_weight=cw, batch_size=30, verbose=0).history["loss"][0]
    logits = torch.as_tensor(clf.predict(xc, verbose=0))
    ce = torch.nn.functional.cross_entropy(logits, torch.as_tensor(yc), reduction="none").numpy()
    np.testing.assert_allclose(loss, (ce * np.array([cw[int(c)] for c in yc])).mean(), rtol=1e-5)


def test_validation_split_freq_and_history_keys():
    x, y = regression_data(n=40)
    model = built(mlp(), x)
    model.compile(optimizer="sgd", loss="mse", metrics=["mae"])
    history = model.fit(x, y, epochs=4, verbose=0, validation_split=0.25, validation_freq=2)
    assert list(history.history) == ["loss", "mae", "val_loss", "val_mae"]
    assert len(history.history["loss"]) == 4 and len(history.history["val_loss"]) == 2
    assert history.epoch == [0, 1, 2, 3] and model.history is history
    history = model.fit(x, y, epochs=3, initial_epoch=1, verbose=0, steps_per_epoch=1)
    assert history.epoch == [1, 2]


def test_add_loss_and_regularizers_enter_the_loss():
    x, y = regression_data(n=16)

    class WithAuxLoss(keras.layers.Layer):
        def call(self, x):
            self.add_loss(0.5 * x.abs().mean())
            return x

    dense = keras.layers.Dense(1, kernel_regularizer=keras.regularizers.L2(0.1))
    model = Net([dense, WithAuxLoss()])
    built(model, x)
    model.compile(optimizer=keras.optimizers.SGD(0.0), loss="mse")
    logs = model.evaluate(x, y, batch_size=16, verbose=0)
    out = model(torch.as_tensor(x))
    expected = ((out - torch.as_tensor(y)) ** 2).mean() + 0.5 * out.abs().mean() + 0.1 * (dense.kernel ** 2).sum()
    np.testing.assert_allclose(logs, expected.item(), rtol=1e-5)

    no_loss = built(mlp(), x)
    no_loss.compile(optimizer="sgd")
    with pytest.raises(ValueError, match="No loss to compute"):
        no_loss.fit(x, y, verbose=0)


# --------------------------------------------------------------- inputs
def test_dataloader_dataset_and_generator_inputs():
    x, y = regression_data(n=32)
    ds = torch.utils.data.TensorDataset(torch.as_tensor(x), torch.as_tensor(y))
    model = built(mlp(), x)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    h1 = model.fit(torch.utils.data.DataLoader(ds, batch_size=8), epochs=2, verbose=0)
    h2 = model.fit(ds, batch_size=8, epochs=2, verbose=0)
    assert len(h1.history["loss"]) == len(h2.history["loss"]) == 2

    def gen():
        while True:
            for i in range(0, 32, 8):
                yield x[i:i + 8], y[i:i + 8]

    h3 = model.fit(gen(), steps_per_epoch=4, epochs=3, verbose=0, validation_data=(x, y))
    assert len(h3.history["val_loss"]) == 3
    assert model.predict(torch.utils.data.DataLoader(torch.as_tensor(x), batch_size=5), verbose=0).shape == (32, 1)
    with pytest.raises(ValueError, match="`y` should not be passed"):
        model.fit(torch.utils.data.DataLoader(ds), y, verbose=0)

    finite = (b for b in [(x[:8], y[:8])] * 3)
    with pytest.warns(UserWarning, match="ran out of data"):
        h4 = model.fit(finite, steps_per_epoch=2, epochs=3, verbose=0)
    # Keras 3: the generator ran out in epoch 2; epoch 3 gets the two batches
    # its adapter peeked at up front (tests/test_user_patterns_2.py compares)
    assert len(h4.history["loss"]) == 3


def test_dict_inputs_and_multi_output_losses():
    class TwoHeads(Trainer, keras.layers.Layer):
        output_names = ["out_a", "out_b"]

        def __init__(self):
            super().__init__()
            self.shared = keras.layers.Dense(8, activation="relu")
            self.head_a = keras.layers.Dense(1)
            self.head_b = keras.layers.Dense(3)

        def call(self, inputs):
            h = self.shared(torch.cat([inputs["num"], inputs["extra"]], dim=-1))
            return [self.head_a(h), self.head_b(h)]

    rng = np.random.default_rng(0)
    x = {"num": rng.normal(size=(24, 2)).astype("float32"), "extra": rng.normal(size=(24, 1)).astype("float32")}
    ya = rng.normal(size=(24, 1)).astype("float32")
    yb = rng.integers(0, 3, 24)
    model = TwoHeads()
    model.compile(
        optimizer=keras.optimizers.SGD(0.0),
        loss={"out_a": "mse", "out_b": keras.losses.SparseCategoricalCrossentropy(from_logits=True)},
        loss_weights={"out_a": 2.0, "out_b": 0.5},
        metrics={"out_a": ["mae"], "out_b": ["accuracy"]},
    )
    logs = model.evaluate(x, {"out_a": ya, "out_b": yb}, batch_size=24, verbose=0, return_dict=True)
    assert set(logs) == {"loss", "out_a_loss", "out_b_loss", "out_a_mae", "out_b_accuracy"}
    np.testing.assert_allclose(logs["loss"], 2.0 * logs["out_a_loss"] + 0.5 * logs["out_b_loss"], rtol=1e-5)
    pa, pb = model.predict(x, verbose=0)
    np.testing.assert_allclose(logs["out_a_loss"], np.mean((pa - ya) ** 2), rtol=1e-5)
    np.testing.assert_allclose(logs["out_b_accuracy"], np.mean(pb.argmax(1) == yb), rtol=1e-6)
    history = model.fit(x, [ya, yb], epochs=1, verbose=0)  # a list of targets works too
    assert "out_b_loss" in history.history


@pytest.mark.parametrize(
    "y_shape,out,expected",
    [((10, 1), 1, "BinaryAccuracy"), ((10,), 3, "SparseCategoricalAccuracy"), ((10, 3), 3, "CategoricalAccuracy")],
)
def test_accuracy_string_resolved_from_shapes(y_shape, out, expected, keras_ref):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(10, 4)).astype("float32")
    y = rng.integers(0, 2, y_shape).astype("float32") if expected != "SparseCategoricalAccuracy" else rng.integers(0, 3, 10)
    activation = "sigmoid" if out == 1 else "softmax"
    model = built(mlp(out=out, activation=activation), x)
    loss = {"BinaryAccuracy": "binary_crossentropy", "SparseCategoricalAccuracy": "sparse_categorical_crossentropy",
            "CategoricalAccuracy": "categorical_crossentropy"}[expected]
    model.compile(optimizer="sgd", loss=loss, metrics=["acc"])
    logs = model.evaluate(x, y, verbose=0, return_dict=True)
    assert "acc" in logs
    (metric,) = model.metrics[1].metrics
    assert type(metric).__name__ == expected and metric.name == "acc"
    # real Keras 3 resolves "acc" from the same shapes: the same logs
    ref = keras_ref.Sequential([keras_ref.Input((4,)), keras_ref.layers.Dense(8, activation="tanh"),
                                keras_ref.layers.Dense(out, activation=activation)])
    ref.set_weights(model.get_weights())
    ref.compile(optimizer="sgd", loss=loss, metrics=["acc"])
    ref_logs = ref.evaluate(x, y, verbose=0, return_dict=True)
    assert set(logs) == set(ref_logs)
    for key in logs:
        np.testing.assert_allclose(logs[key], ref_logs[key], rtol=1e-5, err_msg=key)


def test_steps_per_execution_groups_batch_callbacks():
    x, y = regression_data(n=40)
    seen = []
    model = built(mlp(), x)
    model.compile(optimizer="sgd", loss="mse", steps_per_execution=2)
    cb = keras.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append((batch, sorted(logs))))
    model.fit(x, y, batch_size=8, verbose=0, callbacks=[cb])
    assert seen == [(1, ["loss"]), (3, ["loss"]), (4, ["loss"])]


# ----------------------------------------------------------- custom steps
def test_custom_train_step_keras3_torch_guide():
    class CustomModel(Net):
        def train_step(self, data):
            x, y = data
            self.zero_grad()
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred)
            loss.backward()
            trainable_weights = [v for v in self.trainable_weights]
            gradients = [v.value.grad for v in trainable_weights]
            with torch.no_grad():
                self.optimizer.apply(gradients, trainable_weights)
            for metric in self.metrics:
                if metric.name == "loss":
                    metric.update_state(loss)
                else:
                    metric.update_state(y, y_pred)
            return {m.name: m.result() for m in self.metrics}

    x, y = regression_data()
    model = built(CustomModel([keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)]), x)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse", metrics=["mae"])
    history = model.fit(x, y, epochs=5, verbose=0)
    assert set(history.history) == {"loss", "mae"}
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_custom_train_step_with_optimizer_step_and_own_tracker():
    class Custom(Net):
        def __init__(self, layers):
            super().__init__(layers)
            self.tracker = keras.metrics.Mean(name="my_loss")

        def train_step(self, data):
            x, y = data
            self.zero_grad()
            loss = ((self(x, training=True) - y) ** 2).mean()
            loss.backward()
            self.optimizer.step()
            self.tracker.update_state(loss)
            return {"my_loss": self.tracker.result()}

    x, y = regression_data()
    model = built(Custom([keras.layers.Dense(1)]), x)
    model.compile(optimizer=torch.optim.SGD(model.parameters(), lr=0.1))
    history = model.fit(x, y, epochs=3, verbose=0)
    assert history.history["my_loss"][-1] < history.history["my_loss"][0]


# ------------------------------------------------------------------ errors
def test_fit_before_compile():
    x, y = regression_data()
    model = mlp()
    with pytest.raises(RuntimeError, match=r"You must call `compile\(\)` before using the model\."):
        model.fit(x, y)
    with pytest.raises(ValueError, match="compile"):
        model.evaluate(x, y)


def test_bad_inputs_and_names():
    x, y = regression_data()
    model = mlp()
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(ValueError, match="Data cardinality is ambiguous"):
        model.fit(x, y[:10], verbose=0)
    with pytest.raises(ValueError, match="not_a_loss"):
        model.compile(optimizer="sgd", loss="not_a_loss")
    with pytest.raises(ValueError, match="nadamx"):
        model.compile(optimizer="nadamx", loss="mse")
    with pytest.raises(ValueError, match="bogus_metric"):
        model.compile(optimizer="sgd", loss="mse", metrics=["bogus_metric"])
    with pytest.raises(ValueError, match="validation_split"):
        model.fit(x[:1], y[:1], validation_split=0.5, verbose=0)
    with pytest.raises(ValueError, match="class_weight"):
        model.train_on_batch(x, y, sample_weight=np.ones(64), class_weight={0: 1.0})
    with pytest.raises(ValueError, match="steps_per_execution"):
        model.compile(optimizer="sgd", loss="mse", steps_per_execution=0)


# -------------------------------------------------------------- state/misc
def test_state_dict_holds_only_model_weights_and_mixed_precision():
    x, y = regression_data(n=32)
    model = built(mlp(), x)
    keys = list(model.state_dict())
    model.compile(optimizer="adam", loss="mse", metrics=["mae", keras.metrics.AUC()])
    model.fit(x, (y > 0).astype("float32"), epochs=1, verbose=0)
    assert list(model.state_dict()) == keys

    keras.mixed_precision.set_global_policy("mixed_float16")
    try:
        mp = Net([keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1, dtype="float32")])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    mp.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    history = mp.fit(x, y, epochs=4, verbose=0)
    # dynamic loss scaling by the LossScaleOptimizer compile wrapped around SGD (Keras 3), no GradScaler
    assert isinstance(mp.optimizer, keras.optimizers.LossScaleOptimizer) and mp.__dict__["_grad_scaler"] is None
    assert mp.body[0].kernel.dtype == torch.float32
    assert history.history["loss"][-1] < history.history["loss"][0]


def test_compile_config_round_trip_and_jit_flags():
    model = mlp()
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
    config = model.get_compile_config()
    assert config["optimizer"]["class_name"] == "Adam" and config["loss"] == "mse"
    other = mlp()
    other.compile_from_config(config)
    assert isinstance(other.optimizer, keras.optimizers.Adam)
    assert float(other.optimizer.learning_rate) == pytest.approx(0.01)
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        model.compile(optimizer="sgd", loss="mse", run_eagerly=True, jit_compile=True)
    assert not model.jit_compile and any("jit_compile" in str(m.message) for m in w)


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # torch's own, from importing inductor
def test_jit_compile_true_matches_eager():
    """`jit_compile=True` runs the steps under `torch.compile` (the first,
    building step eagerly) with the same results."""
    x, y = regression_data(n=32)
    model = built(mlp(), x)
    twin = copy.deepcopy(model)
    model.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse", jit_compile=True)
    twin.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse")
    assert model.jit_compile and not twin.jit_compile
    h = model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    h_eager = twin.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(h.history["loss"], h_eager.history["loss"], rtol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_fit_on_cuda_moves_batches():
    x, y = regression_data()
    model = built(mlp(), x).to("cuda")
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    history = model.fit(x, y, epochs=2, verbose=0, validation_split=0.2)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert model.predict(x, verbose=0).shape == (64, 1)


# ------------------------------------------------- through keras.models
def test_sequential_and_functional_models_train():
    Sequential, Model, Input = keras.Sequential, keras.Model, keras.Input
    x, y = classification_data()
    seq = Sequential([keras.layers.Dense(16, activation="relu"), keras.layers.Dense(3, activation="softmax")])
    seq.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history = seq.fit(x, y, epochs=5, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]

    inputs = Input(shape=(4,))
    outputs = keras.layers.Dense(3)(keras.layers.Dense(16, activation="relu")(inputs))
    model = Model(inputs, outputs)
    model.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    history = model.fit(x, y, epochs=5, verbose=0, validation_split=0.2)
    assert history.history["val_loss"][-1] < history.history["val_loss"][0]
