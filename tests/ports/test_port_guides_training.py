"""keras.io developer guide "Training & evaluation with the built-in methods"
(guides/training_with_built_in_methods.py), shrunk, run with real Keras 3
(torch backend) and kerasish from the same weights on the same data:
History, evaluate() and predict() of compile/fit with validation data and
`validation_split`, string and object losses/metrics, a custom loss function
and `Loss` subclass, a custom stateful `Metric`, `add_loss` layers and an
endpoint layer trained without a compiled loss, class and sample weights, a
`PyDataset` (also with workers), multi-input/multi-output models with list,
dict and `None` losses and per-output metrics, EarlyStopping, a per-batch
loss callback, best-only ModelCheckpoint files and an ExponentialDecay
schedule. (The guide's TensorBoard section and tf.data inputs are skipped.)
"""

from __future__ import annotations

import os

import numpy as np
import pytest

import kerasish as keras
from tests.ports.test_port_programs import assert_history
from tests.ports.test_port_programs import assert_same


@pytest.fixture(autouse=True)
def _fresh_keras_names(keras_ref):
    keras_ref.utils.clear_session()


RNG = np.random.default_rng(0)
X_TRAIN = RNG.random((48, 20)).astype("float32")
Y_TRAIN = RNG.integers(0, 10, 48)
X_VAL = RNG.random((16, 20)).astype("float32")
Y_VAL = RNG.integers(0, 10, 16)


def _set_drawn_weights(model, scale=0.3):
    model.set_weights(
        [np.random.default_rng(i).normal(0, scale, w.shape).astype("float32")
         for i, w in enumerate(model.get_weights())]
    )
    return model


def _uncompiled_model(K):
    inputs = K.Input(shape=(20,), name="digits")
    x = K.layers.Dense(16, activation="relu", name="dense_1")(inputs)
    x = K.layers.Dense(16, activation="relu", name="dense_2")(x)
    outputs = K.layers.Dense(10, activation="softmax", name="predictions")(x)
    return _set_drawn_weights(K.Model(inputs=inputs, outputs=outputs))


def _compiled_model(K):
    model = _uncompiled_model(K)
    model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy", metrics=["sparse_categorical_accuracy"])
    return model


def _both(program, keras_ref):
    ref = program(keras_ref)
    keras_ref.utils.clear_session()
    return ref, program(keras)


def _assert_results(ours, ref):
    assert len(ours) == len(ref)
    for a, b in zip(ours, ref):
        if hasattr(b, "history"):
            assert_history(a, b)
        elif isinstance(b, (list, str)) and all(isinstance(s, str) for s in b):
            assert a == b
        else:
            assert_same(a, b)


def test_api_overview_fit_evaluate_predict(keras_ref):
    def program(K):
        model = _uncompiled_model(K)
        model.compile(
            optimizer=K.optimizers.RMSprop(),
            loss=K.losses.SparseCategoricalCrossentropy(),
            metrics=[K.metrics.SparseCategoricalAccuracy()],
        )
        history = model.fit(X_TRAIN, Y_TRAIN, batch_size=16, epochs=2, validation_data=(X_VAL, Y_VAL), verbose=0,
                            shuffle=False)
        return [history, model.evaluate(X_VAL, Y_VAL, batch_size=8, verbose=0), model.predict(X_VAL[:3], verbose=0),
                model.metrics_names]

    ref, ours = _both(program, keras_ref)
    _assert_results(ours, ref)


def test_custom_losses_and_metrics(keras_ref):
    def program(K):
        ops = K.ops
        out = []

        def custom_mean_squared_error(y_true, y_pred):
            return ops.mean(ops.square(y_true - y_pred), axis=-1)

        y_train_one_hot = ops.one_hot(Y_TRAIN, num_classes=10)
        model = _uncompiled_model(K)
        model.compile(optimizer=K.optimizers.Adam(), loss=custom_mean_squared_error)
        out.append(model.fit(X_TRAIN, y_train_one_hot, batch_size=16, epochs=1, verbose=0, shuffle=False))

        class CustomMSE(K.losses.Loss):
            def __init__(self, regularization_factor=0.1, name="custom_mse"):
                super().__init__(name=name)
                self.regularization_factor = regularization_factor

            def call(self, y_true, y_pred):
                mse = ops.mean(ops.square(y_true - y_pred), axis=-1)
                reg = ops.mean(ops.square(0.5 - y_pred), axis=-1)
                return mse + reg * self.regularization_factor

        model = _uncompiled_model(K)
        model.compile(optimizer=K.optimizers.Adam(), loss=CustomMSE())
        out.append(model.fit(X_TRAIN, y_train_one_hot, batch_size=16, epochs=1, verbose=0, shuffle=False))

        class CategoricalTruePositives(K.metrics.Metric):
            def __init__(self, name="categorical_true_positives", **kwargs):
                super().__init__(name=name, **kwargs)
                self.true_positives = self.add_variable(shape=(), name="ctp", initializer="zeros")

            def update_state(self, y_true, y_pred, sample_weight=None):
                y_pred = ops.reshape(ops.argmax(y_pred, axis=1), (-1, 1))
                values = ops.cast(ops.cast(y_true, "int32") == ops.cast(y_pred, "int32"), "float32")
                if sample_weight is not None:
                    values = ops.multiply(values, ops.cast(sample_weight, "float32"))
                self.true_positives.assign_add(ops.sum(values))

            def result(self):
                return self.true_positives

            def reset_state(self):
                self.true_positives.assign(0.0)

        model = _uncompiled_model(K)
        model.compile(optimizer=K.optimizers.RMSprop(learning_rate=1e-3),
                      loss=K.losses.SparseCategoricalCrossentropy(), metrics=[CategoricalTruePositives()])
        out.append(model.fit(X_TRAIN, Y_TRAIN, batch_size=16, epochs=2, verbose=0, shuffle=False))
        out.append(model.evaluate(X_VAL, Y_VAL, verbose=0, return_dict=True))
        return out

    ref, ours = _both(program, keras_ref)
    _assert_results(ours, ref)


def test_add_loss_layers_and_an_endpoint_layer(keras_ref):
    def program(K):
        ops = K.ops
        out = []

        class ActivityRegularizationLayer(K.layers.Layer):
            def call(self, inputs):
                self.add_loss(ops.sum(inputs) * 0.1)
                return inputs

        inputs = K.Input(shape=(20,), name="digits")
        x = K.layers.Dense(16, activation="relu", name="dense_1")(inputs)
        x = ActivityRegularizationLayer()(x)
        x = K.layers.Dense(16, activation="relu", name="dense_2")(x)
        outputs = K.layers.Dense(10, name="predictions")(x)
        model = _set_drawn_weights(K.Model(inputs=inputs, outputs=outputs))
        model.compile(optimizer=K.optimizers.RMSprop(learning_rate=1e-3),
                      loss=K.losses.SparseCategoricalCrossentropy(from_logits=True))
        out.append(model.fit(X_TRAIN, Y_TRAIN, batch_size=16, epochs=1, verbose=0, shuffle=False))

        class LogisticEndpoint(K.layers.Layer):
            def __init__(self, name=None):
                super().__init__(name=name)
                self.loss_fn = K.losses.BinaryCrossentropy(from_logits=True)

            def call(self, targets, logits, sample_weights=None):
                self.add_loss(self.loss_fn(targets, logits, sample_weights))
                return ops.softmax(logits)

        inputs = K.Input(shape=(3,), name="inputs")
        targets = K.Input(shape=(10,), name="targets")
        logits = K.layers.Dense(10)(inputs)
        predictions = LogisticEndpoint(name="predictions")(targets, logits)
        model = _set_drawn_weights(K.Model(inputs=[inputs, targets], outputs=predictions))
        model.compile(optimizer="adam")  # no loss argument!
        data = {
            "inputs": np.random.default_rng(5).random((3, 3)).astype("float32"),
            "targets": np.random.default_rng(6).random((3, 10)).astype("float32"),
        }
        out.append(model.fit(data, epochs=2, verbose=0))
        out.append(model.get_weights())
        return out

    ref, ours = _both(program, keras_ref)
    _assert_results(ours, ref)


def test_validation_split_class_and_sample_weights(keras_ref):
    def program(K):
        out = []
        model = _compiled_model(K)
        out.append(model.fit(X_TRAIN, Y_TRAIN, batch_size=16, validation_split=0.2, epochs=1, verbose=0, shuffle=False))
        class_weight = {i: 1.0 for i in range(10)}
        class_weight[5] = 2.0
        model = _compiled_model(K)
        out.append(model.fit(X_TRAIN, Y_TRAIN, class_weight=class_weight, batch_size=16, epochs=1, verbose=0,
                             shuffle=False))
        sample_weight = np.ones(shape=(len(Y_TRAIN),))
        sample_weight[Y_TRAIN == 5] = 2.0
        model = _uncompiled_model(K)
        model.compile(optimizer="rmsprop", loss="sparse_categorical_crossentropy",
                      metrics=["sparse_categorical_accuracy"], weighted_metrics=["sparse_categorical_accuracy"])
        out.append(model.fit(X_TRAIN, Y_TRAIN, sample_weight=sample_weight, batch_size=16, epochs=1, verbose=0,
                             shuffle=False))
        out.append(model.evaluate(X_TRAIN, Y_TRAIN, sample_weight=sample_weight, verbose=0, return_dict=True))
        return out

    ref, ours = _both(program, keras_ref)
    _assert_results(ours, ref)


def _example_py_dataset(K):
    class ExamplePyDataset(K.utils.PyDataset):
        def __init__(self, x, y, batch_size, **kwargs):
            super().__init__(**kwargs)
            self.x, self.y, self.batch_size = x, y, batch_size

        def __len__(self):
            return int(np.ceil(len(self.x) / float(self.batch_size)))

        def __getitem__(self, idx):
            batch_x = self.x[idx * self.batch_size : (idx + 1) * self.batch_size]
            batch_y = self.y[idx * self.batch_size : (idx + 1) * self.batch_size]
            return batch_x, batch_y

    return ExamplePyDataset


def test_py_dataset(keras_ref):
    """Keras 3.15 on torch feeds a `workers=2` PyDataset's batches in the order
    1, 2, 0 (seen from `train_step`), a quirk of its enqueuer; kerasish keeps
    the dataset's order, so its threaded run is compared with Keras's
    `workers=1` run (the same enqueuer, in order)."""

    def program(K, workers):
        ExamplePyDataset = _example_py_dataset(K)
        out = []
        model = _compiled_model(K)
        out.append(model.fit(ExamplePyDataset(X_TRAIN, Y_TRAIN, batch_size=16),
                             validation_data=ExamplePyDataset(X_VAL, Y_VAL, batch_size=16), epochs=1, verbose=0,
                             shuffle=False))  # (shuffle=True would draw the order of the batches)
        out.append(model.evaluate(ExamplePyDataset(X_VAL, Y_VAL, batch_size=16), verbose=0))
        model = _compiled_model(K)
        threaded = ExamplePyDataset(X_TRAIN, Y_TRAIN, batch_size=16, workers=workers, use_multiprocessing=False)
        out.append(model.fit(threaded, epochs=2, verbose=0, shuffle=False))
        return out

    ref = program(keras_ref, workers=1)
    keras_ref.utils.clear_session()
    _assert_results(program(keras, workers=2), ref)


def test_train_step_set_on_the_instance_is_called(keras_ref):
    """`model.train_step = fn` (wrapping the step, e.g. to see the batches)
    is what Keras's fit calls; kerasish's fit ignored an instance attribute
    and ran its built-in step."""

    def program(K):
        model = _compiled_model(K)
        seen = []
        built_in = model.train_step

        def train_step(data):
            seen.append(float(data[0][0, 0]))
            return built_in(data)

        model.train_step = train_step
        history = model.fit(_example_py_dataset(K)(X_TRAIN, Y_TRAIN, batch_size=16), epochs=1, verbose=0,
                            shuffle=False)
        return [history, np.array(seen)]

    ref, ours = _both(program, keras_ref)
    _assert_results(ours, ref)
    np.testing.assert_allclose(ours[1], X_TRAIN[::16, 0], rtol=1e-6)


def _multi_io_model(K):
    image_input = K.Input(shape=(8, 8, 3), name="img_input")
    timeseries_input = K.Input(shape=(None, 10), name="ts_input")
    x1 = K.layers.GlobalMaxPooling2D()(K.layers.Conv2D(3, 3)(image_input))
    x2 = K.layers.GlobalMaxPooling1D()(K.layers.Conv1D(3, 3)(timeseries_input))
    x = K.layers.concatenate([x1, x2])
    score_output = K.layers.Dense(1, name="score_output")(x)
    class_output = K.layers.Dense(5, name="class_output")(x)
    return _set_drawn_weights(K.Model(inputs=[image_input, timeseries_input], outputs=[score_output, class_output]))


def test_multi_input_multi_output(keras_ref):
    rng = np.random.default_rng(1)
    img = rng.random((24, 8, 8, 3)).astype("float32")
    ts = rng.random((24, 6, 10)).astype("float32")
    score = rng.random((24, 1)).astype("float32")
    cls = np.eye(5, dtype="float32")[rng.integers(0, 5, 24)]

    def program(K):
        out = []
        model = _multi_io_model(K)
        model.compile(
            optimizer=K.optimizers.RMSprop(1e-3),
            loss=[K.losses.MeanSquaredError(), K.losses.CategoricalCrossentropy()],
            metrics=[[K.metrics.MeanAbsolutePercentageError(), K.metrics.MeanAbsoluteError()],
                     [K.metrics.CategoricalAccuracy()]],
        )
        out.append(model.fit([img, ts], [score, cls], batch_size=8, epochs=2, verbose=0, shuffle=False))
        out.append(model.metrics_names)
        model = _multi_io_model(K)
        model.compile(
            optimizer=K.optimizers.RMSprop(1e-3),
            loss={"score_output": K.losses.MeanSquaredError(), "class_output": K.losses.CategoricalCrossentropy()},
            metrics={"score_output": [K.metrics.MeanAbsolutePercentageError(), K.metrics.MeanAbsoluteError()],
                     "class_output": [K.metrics.CategoricalAccuracy()]},
            loss_weights={"score_output": 2.0, "class_output": 1.0},
        )
        data = ({"img_input": img, "ts_input": ts}, {"score_output": score, "class_output": cls})
        out.append(model.fit(*data, batch_size=8, epochs=2, verbose=0, shuffle=False))
        out.append(model.evaluate(*data, verbose=0, return_dict=True))
        model = _multi_io_model(K)
        model.compile(optimizer=K.optimizers.RMSprop(1e-3), loss=[None, K.losses.CategoricalCrossentropy()])
        out.append(model.fit([img, ts], [score, cls], batch_size=8, epochs=1, verbose=0, shuffle=False))
        out.append(model.predict([img[:2], ts[:2]], verbose=0))
        return out

    ref, ours = _both(program, keras_ref)
    _assert_results(ours, ref)


def test_callbacks_and_learning_rate_schedule(keras_ref, tmp_path):
    def program(K):
        out = []
        model = _compiled_model(K)
        early = K.callbacks.EarlyStopping(monitor="val_loss", min_delta=1e-2, patience=2, verbose=0)
        history = model.fit(X_TRAIN, Y_TRAIN, epochs=8, batch_size=16, callbacks=[early], validation_split=0.2,
                            verbose=0, shuffle=False)
        out += [history, early.stopped_epoch, history.epoch, history.params]

        class LossHistory(K.callbacks.Callback):
            def on_train_begin(self, logs):
                self.per_batch_losses = []

            def on_batch_end(self, batch, logs):
                self.per_batch_losses.append(logs.get("loss"))

        loss_history = LossHistory()
        model = _compiled_model(K)
        model.fit(X_TRAIN, Y_TRAIN, epochs=1, batch_size=16, callbacks=[loss_history], verbose=0, shuffle=False)
        out.append(np.array(loss_history.per_batch_losses, "float64"))

        folder = tmp_path / K.__name__
        folder.mkdir()
        model = _compiled_model(K)
        checkpoint = K.callbacks.ModelCheckpoint(filepath=str(folder / "mymodel_{epoch}.keras"), save_best_only=True,
                                                 monitor="val_loss", verbose=0)
        model.fit(X_TRAIN, Y_TRAIN, epochs=3, batch_size=16, callbacks=[checkpoint], validation_split=0.2, verbose=0,
                  shuffle=False)
        out.append(sorted(os.listdir(folder)))

        lr_schedule = K.optimizers.schedules.ExponentialDecay(0.1, decay_steps=2, decay_rate=0.96, staircase=True)
        model = _uncompiled_model(K)
        model.compile(optimizer=K.optimizers.RMSprop(learning_rate=lr_schedule),
                      loss="sparse_categorical_crossentropy")
        out.append(model.fit(X_TRAIN, Y_TRAIN, epochs=2, batch_size=16, verbose=0, shuffle=False))
        out.append(float(model.optimizer.learning_rate))
        out.append(int(model.optimizer.iterations))
        return out

    ref, ours = _both(program, keras_ref)
    assert ours[3] == ref[3]  # History.params
    ours[3] = ref[3] = 0
    _assert_results(ours, ref)


def test_step_methods_set_on_the_instance(keras_ref):
    """Siblings of `model.train_step = fn`: `test_step`, `predict_step` and
    `compute_metrics` set on the instance are called by evaluate / predict /
    fit, as Keras calls them (kerasish's fit skipped an instance
    `compute_metrics`)."""
    counts = []
    for K in (keras_ref, keras):
        model = _compiled_model(K)
        calls = {"test_step": 0, "predict_step": 0, "compute_metrics": 0}

        def wrap(name):
            built_in = getattr(model, name)

            def method(*args, **kwargs):
                calls[name] += 1
                return built_in(*args, **kwargs)

            setattr(model, name, method)

        for name in calls:
            wrap(name)
        model.evaluate(X_VAL, Y_VAL, batch_size=8, verbose=0)
        model.predict(X_VAL, batch_size=8, verbose=0)
        model.fit(X_TRAIN, Y_TRAIN, batch_size=16, epochs=1, verbose=0, shuffle=False)
        counts.append(calls)
    ref, ours = counts
    # one call per batch: 2 evaluate batches, 3 fit batches
    assert ours == {"test_step": 2, "predict_step": 2, "compute_metrics": 5}
    assert ref["test_step"] == 2 and ref["predict_step"] == 2
    # Keras also calls it once on symbolic data to build the metrics before the first batch
    assert ref["compute_metrics"] == 6
