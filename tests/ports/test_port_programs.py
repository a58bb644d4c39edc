"""End-to-end ports: the same Keras program written twice, once with real
Keras 3 (torch backend) and once with kerasish, trained from the same initial
weights on the same deterministic data, must give the same History, final
weights, evaluate() and predict() results.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kerasish as keras

TOL = {"rtol": 1e-4, "atol": 1e-5}


# ------------------------------------------------------------------ helpers
def _np(x):
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def copy_weights(ours, theirs):
    weights = theirs.get_weights()
    assert [w.shape for w in weights] == [w.shape for w in ours.get_weights()]
    ours.set_weights(weights)


def assert_history(ours, theirs, rtol=TOL["rtol"], atol=TOL["atol"]):
    assert sorted(ours.history) == sorted(theirs.history)
    for key, values in theirs.history.items():
        assert len(ours.history[key]) == len(values), key
        np.testing.assert_allclose(ours.history[key], values, rtol=rtol, atol=atol, err_msg=key)


def assert_weights(ours, theirs, rtol=TOL["rtol"], atol=TOL["atol"]):
    a, b = ours.get_weights(), theirs.get_weights()
    assert len(a) == len(b)
    for i, (x, y) in enumerate(zip(a, b)):
        np.testing.assert_allclose(x, y, rtol=rtol, atol=atol, err_msg=f"weight {i}")


def assert_same(ours, theirs, rtol=TOL["rtol"], atol=TOL["atol"]):
    if isinstance(theirs, dict):
        assert sorted(ours) == sorted(theirs)
        for k in theirs:
            assert_same(ours[k], theirs[k], rtol, atol)
        return
    if isinstance(theirs, (list, tuple)):
        assert len(ours) == len(theirs)
        for a, b in zip(ours, theirs):
            assert_same(a, b, rtol, atol)
        return
    np.testing.assert_allclose(_np(ours), _np(theirs), rtol=rtol, atol=atol)


# ------------------------------------------------------- 1. MNIST convnet
def _mnist_model(K):
    return K.Sequential([
        K.Input(shape=(28, 28, 1)),
        K.layers.Conv2D(4, kernel_size=(3, 3), activation="relu"),
        K.layers.MaxPooling2D(pool_size=(2, 2)),
        K.layers.Conv2D(8, kernel_size=(3, 3), activation="relu"),
        K.layers.MaxPooling2D(pool_size=(2, 2)),
        K.layers.Flatten(),
        K.layers.Dropout(0.0),
        K.layers.Dense(10, activation="softmax"),
    ])


def test_mnist_convnet(keras_ref):
    rng = np.random.default_rng(0)
    x = rng.random((40, 28, 28, 1)).astype("float32")
    labels = rng.integers(0, 10, 40)
    y = np.eye(10, dtype="float32")[labels]
    ref, ours = _mnist_model(keras_ref), _mnist_model(keras)
    copy_weights(ours, ref)
    histories = []
    for m, opt in ((ref, keras_ref.optimizers.SGD(0.05, momentum=0.9)), (ours, keras.optimizers.SGD(0.05, momentum=0.9))):
        m.compile(loss="categorical_crossentropy", optimizer=opt, metrics=["accuracy"])
        histories.append(m.fit(x, y, batch_size=8, epochs=3, validation_split=0.2, shuffle=False, verbose=0))
    assert_history(histories[1], histories[0])
    assert_weights(ours, ref)
    assert_same(ours.evaluate(x, y, verbose=0), ref.evaluate(x, y, verbose=0))
    assert_same(ours.evaluate(x, y, verbose=0, return_dict=True), ref.evaluate(x, y, verbose=0, return_dict=True))
    assert_same(ours.predict(x, batch_size=16, verbose=0), ref.predict(x, batch_size=16, verbose=0))


def test_mnist_convnet_real_dropout_inference_matches(keras_ref):
    """Dropout(0.5) is random in training; inference (evaluate/predict) must
    ignore it in both."""
    rng = np.random.default_rng(1)
    x = rng.random((16, 28, 28, 1)).astype("float32")
    y = np.eye(10, dtype="float32")[rng.integers(0, 10, 16)]

    def build(K):
        m = _mnist_model(K)
        return K.Sequential([*m.layers[:-2], K.layers.Dropout(0.5), m.layers[-1]])

    ref, ours = build(keras_ref), build(keras)
    copy_weights(ours, ref)
    for m in (ref, ours):
        m.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    assert_same(ours.evaluate(x, y, verbose=0), ref.evaluate(x, y, verbose=0))
    assert_same(ours.predict(x, verbose=0), ref.predict(x, verbose=0))


# -------------------------------------------------- 2. text classification
def _text_data(rng, n=16, maxlen=7, vocab=30):
    x = np.zeros((n, maxlen), dtype="int64")
    for i in range(n):
        length = int(rng.integers(2, maxlen + 1))
        x[i, :length] = rng.integers(1, vocab, length)  # right padding with 0
    y = rng.integers(0, 3, n)
    return x, y


@pytest.mark.parametrize("head", ["global_max", "lstm"])
def test_text_classification_bilstm(keras_ref, head):
    rng = np.random.default_rng(2)
    x, y = _text_data(rng)

    def build(K):
        inputs = K.Input(shape=(None,), dtype="int64")
        h = K.layers.Embedding(30, 8, mask_zero=True)(inputs)
        h = K.layers.Bidirectional(K.layers.LSTM(6, return_sequences=True))(h)
        if head == "global_max":
            h = K.layers.GlobalMaxPooling1D()(h)
        else:
            h = K.layers.LSTM(5)(h)
        outputs = K.layers.Dense(3)(h)
        return K.Model(inputs, outputs)

    ref, ours = build(keras_ref), build(keras)
    copy_weights(ours, ref)
    histories = []
    for K, m in ((keras_ref, ref), (keras, ours)):
        m.compile(
            optimizer=K.optimizers.Adam(0.01),
            loss=K.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=["accuracy"],
        )
        # (Keras runs masked LSTMs step by step on torch: keep this small)
        histories.append(m.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0))
    assert_history(histories[1], histories[0])
    assert_weights(ours, ref)
    assert_same(ours.evaluate(x, y, verbose=0), ref.evaluate(x, y, verbose=0))
    assert_same(ours.predict(x, verbose=0), ref.predict(x, verbose=0))


# ---------------------------------------- 3. multi-input / multi-output
def test_functional_multi_input_multi_output(keras_ref):
    rng = np.random.default_rng(3)
    n = 32
    title = rng.normal(size=(n, 6)).astype("float32")
    body = rng.normal(size=(n, 4)).astype("float32")
    priority = rng.random((n, 1)).astype("float32")
    department = rng.integers(0, 4, n)

    def build(K):
        t_in = K.Input(shape=(6,), name="title")
        b_in = K.Input(shape=(4,), name="body")
        t = K.layers.Dense(8, activation="relu")(t_in)
        b = K.layers.Dense(5, activation="tanh")(b_in)
        h = K.layers.Concatenate()([t, b])
        p = K.layers.Dense(1, activation="sigmoid", name="priority")(h)
        d = K.layers.Dense(4, activation="softmax", name="department")(h)
        return K.Model(inputs=[t_in, b_in], outputs={"priority": p, "department": d})

    ref, ours = build(keras_ref), build(keras)
    copy_weights(ours, ref)
    x = {"title": title, "body": body}
    y = {"priority": priority, "department": department}
    histories = []
    for K, m in ((keras_ref, ref), (keras, ours)):
        m.compile(
            optimizer=K.optimizers.RMSprop(0.01),
            loss={"priority": "binary_crossentropy", "department": "sparse_categorical_crossentropy"},
            loss_weights={"priority": 1.0, "department": 0.2},
            metrics={"priority": ["mae"], "department": ["accuracy"]},
        )
        histories.append(m.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, validation_data=(x, y)))
    assert_history(histories[1], histories[0])
    assert_weights(ours, ref)
    assert_same(ours.evaluate(x, y, verbose=0), ref.evaluate(x, y, verbose=0))
    assert_same(ours.evaluate(x, y, verbose=0, return_dict=True), ref.evaluate(x, y, verbose=0, return_dict=True))
    assert_same(ours.predict(x, verbose=0), ref.predict(x, verbose=0))
    # list inputs in input order work as well
    assert_same(ours.predict([title, body], verbose=0), ref.predict([title, body], verbose=0))


# --------------------------------------- 4. subclassed model, custom step
def _custom_model_class(K):
    class CustomModel(K.Model):
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

    return CustomModel


def test_custom_train_step_torch_guide(keras_ref):
    rng = np.random.default_rng(4)
    x = rng.random((48, 8)).astype("float32")
    y = rng.random((48, 1)).astype("float32")

    def build(K):
        inputs = K.Input(shape=(8,))
        h = K.layers.Dense(6, activation="relu")(inputs)
        outputs = K.layers.Dense(1)(h)
        model = _custom_model_class(K)(inputs, outputs)
        model.compile(optimizer=K.optimizers.Adam(0.01), loss="mse", metrics=["mae"])
        return model

    ref, ours = build(keras_ref), build(keras)
    copy_weights(ours, ref)
    h_ref = ref.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    h_ours = ours.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0)
    assert_history(h_ours, h_ref)
    assert_weights(ours, ref)
    assert_same(ours.evaluate(x, y, verbose=0), ref.evaluate(x, y, verbose=0))
    assert_same(ours.predict(x, verbose=0), ref.predict(x, verbose=0))


def test_custom_train_step_pure_subclass(keras_ref):
    """Layers made in `__init__`, `call` written by hand, the guide's step."""

    def build(K):
        class Net(_custom_model_class(K)):
            def __init__(self, **kwargs):
                super().__init__(**kwargs)
                self.hidden = K.layers.Dense(6, activation="tanh")
                self.norm = K.layers.LayerNormalization()
                self.out = K.layers.Dense(2)

            def call(self, inputs, training=False):
                return self.out(self.norm(self.hidden(inputs)))

        model = Net()
        model(np.zeros((1, 4), "float32"))
        model.compile(optimizer=K.optimizers.RMSprop(0.01, momentum=0.5), loss="mse", metrics=["mae"])
        return model

    rng = np.random.default_rng(8)
    x = rng.normal(size=(32, 4)).astype("float32")
    y = rng.normal(size=(32, 2)).astype("float32")
    ref, ours = build(keras_ref), build(keras)
    copy_weights(ours, ref)
    h_ref = ref.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, validation_split=0.25)
    h_ours = ours.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, validation_split=0.25)
    assert_history(h_ours, h_ref)
    assert_weights(ours, ref)
    assert_same(ours.evaluate(x, y, verbose=0), ref.evaluate(x, y, verbose=0))
    assert_same(ours.predict(x, verbose=0), ref.predict(x, verbose=0))


def test_custom_step_lower_level_torch_guide(keras_ref):
    """The guide's 'going lower-level' variant: own loss function, own
    trackers exposed through `metrics`, compile with only an optimizer, and
    a custom `test_step`."""

    def cls(K):
        class CustomModel(K.Model):
            def __init__(self, *args, **kwargs):
                super().__init__(*args, **kwargs)
                self.loss_tracker = K.metrics.Mean(name="loss")
                self.mae_metric = K.metrics.MeanAbsoluteError(name="mae")
                self.loss_fn = K.losses.MeanSquaredError()

            def train_step(self, data):
                x, y = data
                self.zero_grad()
                y_pred = self(x, training=True)
                loss = self.loss_fn(y, y_pred)
                loss.backward()
                trainable_weights = [v for v in self.trainable_weights]
                gradients = [v.value.grad for v in trainable_weights]
                with torch.no_grad():
                    self.optimizer.apply(gradients, trainable_weights)
                self.loss_tracker.update_state(loss)
                self.mae_metric.update_state(y, y_pred)
                return {"loss": self.loss_tracker.result(), "mae": self.mae_metric.result()}

            def test_step(self, data):
                x, y = data
                y_pred = self(x, training=False)
                loss = self.loss_fn(y, y_pred)
                self.loss_tracker.update_state(loss)
                self.mae_metric.update_state(y, y_pred)
                return {m.name: m.result() for m in self.metrics}

            @property
            def metrics(self):
                return [self.loss_tracker, self.mae_metric]

        return CustomModel

    rng = np.random.default_rng(5)
    x = rng.random((40, 5)).astype("float32")
    y = rng.random((40, 1)).astype("float32")

    def build(K):
        inputs = K.Input(shape=(5,))
        outputs = K.layers.Dense(1)(inputs)
        model = cls(K)(inputs, outputs)
        model.compile(optimizer=K.optimizers.SGD(0.1, momentum=0.5))
        return model

    ref, ours = build(keras_ref), build(keras)
    copy_weights(ours, ref)
    h_ref = ref.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, validation_data=(x, y))
    h_ours = ours.fit(x, y, batch_size=8, epochs=3, shuffle=False, verbose=0, validation_data=(x, y))
    assert_history(h_ours, h_ref)
    assert_weights(ours, ref)
    assert_same(ours.evaluate(x, y, verbose=0), ref.evaluate(x, y, verbose=0))


# ------------------------- 5. BatchNorm regression, EarlyStopping, saving
def test_batchnorm_regression_early_stopping_and_save(keras_ref, tmp_path):
    rng = np.random.default_rng(6)
    x = rng.normal(size=(64, 5)).astype("float32") * 3 + 1
    y = (x @ rng.normal(size=(5, 1)) + 0.1 * rng.normal(size=(64, 1))).astype("float32")
    x_val, y_val = x[:16] + 0.5, y[:16]

    def build(K):
        return K.Sequential([
            K.Input(shape=(5,)),
            K.layers.Dense(16, activation="relu"),
            K.layers.BatchNormalization(),
            K.layers.Dense(8, activation="relu"),
            K.layers.BatchNormalization(momentum=0.9),
            K.layers.Dense(1),
        ])

    ref, ours = build(keras_ref), build(keras)
    copy_weights(ours, ref)
    histories = []
    for K, m in ((keras_ref, ref), (keras, ours)):
        m.compile(optimizer=K.optimizers.SGD(0.05, momentum=0.9), loss="mse", metrics=["mae"])
        stop = K.callbacks.EarlyStopping(monitor="val_loss", patience=1, restore_best_weights=True)
        histories.append(m.fit(
            x, y, batch_size=16, epochs=30, shuffle=False, verbose=0,
            validation_data=(x_val, y_val), callbacks=[stop],
        ))
        histories[-1].stopped_epoch = stop.stopped_epoch
    assert histories[0].stopped_epoch < 29, "the data must make Keras stop early"
    assert histories[1].stopped_epoch == histories[0].stopped_epoch
    assert_history(histories[1], histories[0])
    assert_weights(ours, ref)  # incl. moving mean / variance, best weights restored
    assert_same(ours.evaluate(x, y, verbose=0), ref.evaluate(x, y, verbose=0))
    pred = ours.predict(x, verbose=0)
    assert_same(pred, ref.predict(x, verbose=0))

    path = str(tmp_path / "x.keras")
    ours.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_array_equal(loaded.predict(x, verbose=0), pred)
    assert_same(loaded.evaluate(x, y, verbose=0), ours.evaluate(x, y, verbose=0))
    # training resumes from the restored optimizer state identically
    h1 = ours.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    h2 = loaded.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    assert_history(h2, h1)
    # and real Keras reads our archive
    theirs = keras_ref.saving.load_model(path)
    assert_same(theirs.predict(x, verbose=0), pred)


# ------------------------------------- 6. GRU / Conv1D timeseries + schedule
@pytest.mark.parametrize("kind", ["gru", "conv1d"])
def test_timeseries_with_exponential_decay(keras_ref, kind):
    rng = np.random.default_rng(7)
    t = np.arange(64 + 12, dtype="float32")
    series = np.sin(t / 3.0) + 0.1 * rng.normal(size=t.shape).astype("float32")
    x = np.stack([series[i:i + 12] for i in range(64)])[..., None].astype("float32")
    y = series[12:12 + 64][:, None].astype("float32")

    def build(K):
        layers = [K.Input(shape=(12, 1))]
        if kind == "gru":
            layers += [K.layers.GRU(8, return_sequences=True), K.layers.GRU(4)]
        else:
            layers += [
                K.layers.Conv1D(6, 3, activation="relu", padding="causal"),
                K.layers.Conv1D(4, 3, strides=2, activation="relu"),
                K.layers.GlobalAveragePooling1D(),
            ]
        layers.append(K.layers.Dense(1))
        return K.Sequential(layers)

    ref, ours = build(keras_ref), build(keras)
    copy_weights(ours, ref)
    histories = []
    for K, m in ((keras_ref, ref), (keras, ours)):
        schedule = K.optimizers.schedules.ExponentialDecay(0.02, decay_steps=3, decay_rate=0.5, staircase=kind == "gru")
        m.compile(optimizer=K.optimizers.Adam(learning_rate=schedule), loss="mse", metrics=["mae"])
        histories.append(m.fit(x, y, batch_size=16, epochs=3, shuffle=False, verbose=0, validation_split=0.25))
    assert_history(histories[1], histories[0])
    assert_weights(ours, ref)
    assert int(ours.optimizer.iterations) == int(ref.optimizer.iterations)
    np.testing.assert_allclose(
        float(ours.optimizer.learning_rate), float(ref.optimizer.learning_rate), rtol=1e-6
    )
    assert_same(ours.evaluate(x, y, verbose=0), ref.evaluate(x, y, verbose=0))
    assert_same(ours.predict(x, verbose=0), ref.predict(x, verbose=0))
