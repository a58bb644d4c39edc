"""The Keras tutorials of tensorflow.org (tensorflow/docs site/en/tutorials, and tensorflow/text's Transformer
tutorial), ported by changing `tf.keras` to `keras` (`import kerasish as keras`) and `tf.*` tensor ops to torch /
`keras.ops`. Each replays the tf.keras 2 run recorded by tools/fixtures/make_tfdocs_programs.py (whose docstring
lists the tutorials and their idioms) from the same initial weights on the same batches, and compares History,
evaluate, predictions, final weights and the saved files. The data is the fixture's data.py, shared with the
generator: small seeded synthetic arrays in place of MNIST / auto-mpg / IMDB / creditcard / PetFinder / jena.

What the ports change besides the imports (each named where it happens):
- `tf.data` pipelines -> NumPy arrays / a Python generator, in the recorded order: `fit(..., shuffle=False)`, in
  the generator too (fit's default shuffle draws from each framework's own random generator);
- `tf.GradientTape` -> `torch.autograd.grad` on the loss; `@tf.function` dropped;
- `tf.strings.lower` / `regex_replace` in a TextVectorization standardizer -> `re` over the NumPy strings kerasish
  hands the callable;
- Dropout rates are `DROP` (0.0), as in the generator, so that training is deterministic.

Tolerances: TensorFlow's float32 kernels against torch's over a few steps: rtol 2e-4 / atol 2e-5 unless a test
says why it needs more; counts, vocabularies and file names exactly.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import string

import numpy as np
import pytest
import torch

import kerasish as keras
from kerasish import layers

HERE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "tfdocs")
META = json.load(open(os.path.join(HERE, "metadata.json")))["programs"]
TOL = {"rtol": 2e-4, "atol": 2e-5}
DROP = 0.0

_spec = importlib.util.spec_from_file_location("tfdocs_data", os.path.join(HERE, "data.py"))
data = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(data)


@pytest.fixture(autouse=True)
def _one_thread():
    """The tutorials' models are tiny: one torch thread runs them fastest, and on a loaded 2-core machine two
    threads made the LSTM programs ~15x slower (1.7 s against 28 s measured for time_series)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _arrays(name):
    with np.load(os.path.join(HERE, name + ".npz"), allow_pickle=False) as f:
        arrays = dict(f)

    def listed(key):
        return [arrays[f"{key}.{i}"] for i in range(META[name][key + "#len"])]

    return arrays, listed


def _assert_list(got, want, tol=TOL, what=""):
    assert len(got) == len(want), what
    for i, (a, b) in enumerate(zip(got, want)):
        a = a.detach().cpu().numpy() if isinstance(a, torch.Tensor) else np.asarray(a)
        np.testing.assert_allclose(a, np.asarray(b), err_msg=f"{what}[{i}]", **tol)


def _assert_history(history, want, tol=TOL):
    assert sorted(history.history) == sorted(want)
    for key, values in want.items():
        np.testing.assert_allclose(history.history[key], values, err_msg=key, **tol)


def _np(t):
    return t.detach().cpu().numpy() if isinstance(t, torch.Tensor) else np.asarray(t)


# ------------------------------------------------------------------------------------------------ quickstart
def test_quickstart_beginner():
    arrays, listed = _arrays("quickstart_beginner")
    meta = META["quickstart_beginner"]
    x_train, y_train = data.images(1, 40)
    x_test, y_test = data.images(2, 16)
    model = keras.models.Sequential([
        keras.layers.Flatten(input_shape=(6, 6)),
        keras.layers.Dense(16, activation='relu'),
        keras.layers.Dropout(DROP),
        keras.layers.Dense(4)
    ])
    model.set_weights(listed("init"))
    predictions = _np(model(x_train[:1]))
    np.testing.assert_allclose(predictions, arrays["first_logits"], **TOL)
    np.testing.assert_allclose(_np(keras.ops.softmax(predictions)), arrays["first_softmax"], **TOL)  # tf.nn.softmax
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    np.testing.assert_allclose(float(loss_fn(y_train[:1], predictions)), meta["first_loss"], **TOL)
    model.compile(optimizer='adam', loss=loss_fn, metrics=['accuracy'])
    _assert_history(model.fit(x_train, y_train, epochs=4, verbose=0, shuffle=False), meta["history"])
    np.testing.assert_allclose(model.evaluate(x_test, y_test, verbose=0), meta["evaluate"], **TOL)
    probability_model = keras.Sequential([model, keras.layers.Softmax()])
    np.testing.assert_allclose(_np(probability_model(x_test[:5])), arrays["probabilities"], **TOL)
    _assert_list(model.get_weights(), listed("final"), what="final")


def test_quickstart_advanced_gradient_tape_loop_becomes_autograd():
    """`@tf.function` train_step with a GradientTape -> the same step with `torch.autograd.grad`, metrics objects
    called and `reset_state()` per epoch as written."""
    from kerasish import Model
    from kerasish.layers import Conv2D, Dense, Flatten

    arrays, listed = _arrays("quickstart_advanced")
    x_train, y_train = data.images(3, 24)
    x_test, y_test = data.images(4, 12)
    x_train, x_test = x_train[..., None], x_test[..., None]  # tf.newaxis
    train_ds = [(x_train[i:i + 8], y_train[i:i + 8]) for i in range(0, 24, 8)]
    test_ds = [(x_test[i:i + 8], y_test[i:i + 8]) for i in range(0, 12, 8)]

    class MyModel(Model):
        def __init__(self):
            super().__init__()
            self.conv1 = Conv2D(4, 3, activation='relu')
            self.flatten = Flatten()
            self.d1 = Dense(8, activation='relu')
            self.d2 = Dense(4)

        def call(self, x):
            x = self.conv1(x)
            x = self.flatten(x)
            x = self.d1(x)
            return self.d2(x)

    model = MyModel()
    model(x_train[:1])
    model.set_weights(listed("init"))
    loss_object = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    optimizer = keras.optimizers.Adam()
    train_loss = keras.metrics.Mean(name='train_loss')
    train_accuracy = keras.metrics.SparseCategoricalAccuracy(name='train_accuracy')
    test_loss = keras.metrics.Mean(name='test_loss')
    test_accuracy = keras.metrics.SparseCategoricalAccuracy(name='test_accuracy')

    def train_step(images, labels):
        predictions = model(images, training=True)
        loss = loss_object(labels, predictions)
        gradients = torch.autograd.grad(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        train_loss(loss)
        train_accuracy(labels, predictions)

    def test_step(images, labels):
        predictions = model(images, training=False)
        t_loss = loss_object(labels, predictions)
        test_loss(t_loss)
        test_accuracy(labels, predictions)

    epochs = []
    for _epoch in range(3):
        train_loss.reset_state()
        train_accuracy.reset_state()
        test_loss.reset_state()
        test_accuracy.reset_state()
        for images, labels in train_ds:
            train_step(images, labels)
        for test_images, test_labels in test_ds:
            test_step(test_images, test_labels)
        epochs.append([float(m.result()) for m in (train_loss, train_accuracy, test_loss, test_accuracy)])
    np.testing.assert_allclose(epochs, META["quickstart_advanced"]["epochs"], **TOL)
    _assert_list(model.get_weights(), listed("final"), what="final")


# ------------------------------------------------------------------------------------------------ keras/
def test_regression_normalization_adapt():
    arrays, listed = _arrays("regression")
    meta = META["regression"]
    x, y = data.regression()
    train_features, test_features = x[:48], x[48:]
    train_labels, test_labels = y[:48], y[48:]
    normalizer = keras.layers.Normalization(axis=-1)
    normalizer.adapt(np.array(train_features))
    np.testing.assert_allclose(_np(normalizer.mean), arrays["normalizer_mean"], rtol=1e-5)
    np.testing.assert_allclose(_np(normalizer.variance), arrays["normalizer_variance"], rtol=1e-4)
    horsepower = np.array(train_features[:, 2])
    horsepower_normalizer = layers.Normalization(input_shape=[1, ], axis=None)
    horsepower_normalizer.adapt(horsepower)
    horsepower_model = keras.Sequential([horsepower_normalizer, layers.Dense(units=1)])
    # tf.keras 2's get_weights() lists the Normalization's mean / variance / count first; Keras 3's the same
    _assert_list(horsepower_model.get_weights()[:2], listed("hp_init")[:2], tol={"rtol": 1e-5}, what="hp norm")
    horsepower_model.set_weights(listed("hp_init"))
    np.testing.assert_allclose(horsepower_model.predict(horsepower[:5], verbose=0), arrays["hp_untrained"], **TOL)
    horsepower_model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.1), loss='mean_absolute_error')
    h = horsepower_model.fit(train_features[:, 2], train_labels, epochs=5, verbose=0, validation_split=0.2, shuffle=False)
    _assert_history(h, meta["hp_history"])
    np.testing.assert_allclose(horsepower_model.evaluate(test_features[:, 2], test_labels, verbose=0),
                               meta["hp_evaluate"], **TOL)
    np.testing.assert_allclose(horsepower_model.predict(np.linspace(0.0, 250, 11, dtype="float32"), verbose=0),
                               arrays["hp_predict"], **TOL)  # tf.linspace

    linear_model = keras.Sequential([normalizer, layers.Dense(units=1)])
    linear_model.build((None, 5))
    linear_model.set_weights(listed("linear_init"))
    linear_model.compile(optimizer=keras.optimizers.Adam(learning_rate=0.1), loss='mean_absolute_error')
    _assert_history(linear_model.fit(train_features, train_labels, epochs=5, verbose=0, validation_split=0.2, shuffle=False),
                    meta["linear_history"])

    def build_and_compile_model(norm):
        model = keras.Sequential([norm, layers.Dense(16, activation='relu'), layers.Dense(16, activation='relu'),
                                  layers.Dense(1)])
        model.compile(loss='mean_absolute_error', optimizer=keras.optimizers.Adam(0.001))
        return model

    dnn_model = build_and_compile_model(normalizer)
    dnn_model.build((None, 5))
    dnn_model.set_weights(listed("dnn_init"))
    _assert_history(dnn_model.fit(train_features, train_labels, validation_split=0.2, verbose=0, epochs=5, shuffle=False),
                    meta["dnn_history"])
    np.testing.assert_allclose(dnn_model.evaluate(test_features, test_labels, verbose=0), meta["dnn_evaluate"], **TOL)
    np.testing.assert_allclose(dnn_model.predict(test_features, verbose=0).flatten(), arrays["dnn_predict"], **TOL)


def test_overfit_and_underfit_schedule_regularizers_early_stopping():
    """A repeating dataset with `steps_per_epoch` (a Python generator here), InverseTimeDecay inside Adam, a named
    BinaryCrossentropy metric monitored by EarlyStopping, l2 penalties added to the loss."""
    from kerasish import regularizers

    arrays, listed = _arrays("overfit_and_underfit")
    meta = META["overfit_and_underfit"]
    x, y = data.higgs()
    n_train, batch = 64, 16
    steps_per_epoch = n_train // batch

    def train_ds():  # Dataset.from_tensor_slices((x, y)).repeat().batch(batch).map(expand_dims(y, -1))
        while True:
            for i in range(0, n_train, batch):
                yield x[i:i + batch], y[i:i + batch, None]

    validate_ds = (x[n_train:], y[n_train:, None])
    lr_schedule = keras.optimizers.schedules.InverseTimeDecay(0.01, decay_steps=steps_per_epoch * 2, decay_rate=1,
                                                              staircase=False)
    np.testing.assert_allclose([float(lr_schedule(s)) for s in (0, 4, 10, 40)], meta["schedule"], rtol=1e-6)

    def compile_and_fit(model, name, optimizer=None, max_epochs=30):
        if optimizer is None:
            optimizer = keras.optimizers.Adam(lr_schedule)
        model.compile(optimizer=optimizer, loss=keras.losses.BinaryCrossentropy(from_logits=True),
                      metrics=[keras.metrics.BinaryCrossentropy(from_logits=True, name='binary_crossentropy'),
                               'accuracy'])
        return model.fit(train_ds(), steps_per_epoch=steps_per_epoch, epochs=max_epochs,
                         validation_data=validate_ds, validation_batch_size=batch,
                         callbacks=[keras.callbacks.EarlyStopping(monitor='val_binary_crossentropy', patience=3)],
                         verbose=0)

    small_model = keras.Sequential([layers.Dense(16, activation='elu', input_shape=(6,)),
                                    layers.Dense(16, activation='elu'), layers.Dense(1)])
    small_model.set_weights(listed("small_init"))
    _assert_history(compile_and_fit(small_model, "sizes/Small"), meta["small_history"], tol={"rtol": 1e-3,
                                                                                             "atol": 1e-4})
    _assert_list(small_model.get_weights(), listed("small_final"), tol={"rtol": 1e-3, "atol": 1e-4}, what="small")
    combined_model = keras.Sequential([
        layers.Dense(16, kernel_regularizer=regularizers.l2(0.001), activation='elu', input_shape=(6,)),
        layers.Dropout(DROP),
        layers.Dense(16, kernel_regularizer=regularizers.l2(0.001), activation='elu'),
        layers.Dropout(DROP),
        layers.Dense(1)])
    combined_model.set_weights(listed("combined_init"))
    _assert_history(compile_and_fit(combined_model, "regularizers/combined", max_epochs=6),
                    meta["combined_history"])
    _assert_list(combined_model.get_weights(), listed("combined_final"), what="combined")


def test_save_and_load_checkpoints_and_files(tmp_path):
    """ModelCheckpoint(save_weights_only=True) to `cp.weights.h5` and `cp-{epoch:04d}.weights.h5` every
    `2 * n_batches` steps, `save_weights` / `load_weights`, `model.save` to `.keras` and `.h5`: the same files
    and numbers as tf.keras, and the files tf.keras wrote (committed) load into kerasish with the same results.

    Training on after `load_weights` into a fresh compiled model: tf.keras 2 and Keras 3 leave the optimizer
    unbuilt until the first step, so the file's optimizer state is skipped with a warning and Adam starts again
    (iterations 1 after one step); `load_model` builds it and goes on (its iterations continue). kerasish used to
    build the optimizer under `load_weights` too, silently giving other numbers than both (fixed)."""
    arrays, listed = _arrays("save_and_load")
    meta = META["save_and_load"]
    x, y = data.images(5, 40)
    train_images, train_labels = x[:32].reshape(-1, 36), y[:32]
    test_images, test_labels = x[32:].reshape(-1, 36), y[32:]
    inits = listed("inits")
    inits = [inits[i:i + 4] for i in range(0, len(inits), 4)]

    def create_model():
        model = keras.Sequential([
            keras.layers.Dense(12, activation='relu', input_shape=(36,)),
            keras.layers.Dropout(DROP),
            keras.layers.Dense(4)
        ])
        model.compile(optimizer='adam', loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                      metrics=[keras.metrics.SparseCategoricalAccuracy()])
        model.set_weights(inits.pop(0))  # the recorded initial weights, in the generator's order
        return model

    model = create_model()
    checkpoint_path = str(tmp_path / "training_1/cp.weights.h5")
    cp_callback = keras.callbacks.ModelCheckpoint(filepath=checkpoint_path, save_weights_only=True, verbose=0)
    h = model.fit(train_images, train_labels, epochs=3, validation_data=(test_images, test_labels),
                  callbacks=[cp_callback], verbose=0, shuffle=False)
    _assert_history(h, meta["history_1"])
    assert sorted(os.listdir(os.path.dirname(checkpoint_path))) == meta["training_1"]
    model = create_model()
    np.testing.assert_allclose(model.evaluate(test_images, test_labels, verbose=0), meta["untrained_evaluate"], **TOL)
    with pytest.warns(UserWarning, match="Skipping variable loading for optimizer"):  # unbuilt until fit: its state is skipped, as in Keras
        model.load_weights(checkpoint_path)
    np.testing.assert_allclose(model.evaluate(test_images, test_labels, verbose=0), meta["restored_evaluate"], **TOL)
    _assert_history(model.fit(train_images, train_labels, epochs=1, verbose=0, shuffle=False),
                    meta["restored_resumed"])
    assert int(model.optimizer.iterations) == meta["restored_resumed_iterations"]
    _assert_list(model.get_weights(), listed("restored_resumed_final"), what="resumed after load_weights")

    checkpoint_path = str(tmp_path / "training_2/cp-{epoch:04d}.weights.h5")
    os.mkdir(os.path.dirname(checkpoint_path))
    batch_size = 8
    n_batches = int(np.ceil(len(train_images) / batch_size))
    cp_callback = keras.callbacks.ModelCheckpoint(filepath=checkpoint_path, verbose=0, save_weights_only=True,
                                                  save_freq=2 * n_batches)
    model = create_model()
    model.save_weights(checkpoint_path.format(epoch=0))
    h = model.fit(train_images, train_labels, epochs=5, batch_size=batch_size, callbacks=[cp_callback],
                  validation_data=(test_images, test_labels), verbose=0, shuffle=False)
    _assert_history(h, meta["history_2"])
    assert sorted(os.listdir(os.path.dirname(checkpoint_path))) == meta["training_2"]
    latest = max(os.listdir(os.path.dirname(checkpoint_path)), key=lambda f: int(f.split('-')[1].split('.')[0]))
    assert latest == meta["latest"]
    model = create_model()
    with pytest.warns(UserWarning, match="Skipping variable loading for optimizer"):  # unbuilt until fit: its state is skipped, as in Keras
        model.load_weights(os.path.join(os.path.dirname(checkpoint_path), latest))
    np.testing.assert_allclose(model.evaluate(test_images, test_labels, verbose=0), meta["latest_evaluate"], **TOL)

    model = create_model()
    _assert_history(model.fit(train_images, train_labels, epochs=3, verbose=0, shuffle=False), meta["history_keras"])
    model.save(str(tmp_path / 'my_model.keras'))
    new_model = keras.models.load_model(str(tmp_path / 'my_model.keras'))
    np.testing.assert_allclose(new_model.evaluate(test_images, test_labels, verbose=0), meta["keras_evaluate"], **TOL)
    np.testing.assert_allclose(new_model.predict(test_images, verbose=0), arrays["keras_predict"], **TOL)
    _assert_history(new_model.fit(train_images, train_labels, epochs=1, verbose=0, shuffle=False),
                    meta["keras_resumed"])
    assert int(new_model.optimizer.iterations) == meta["keras_resumed_iterations"]
    _assert_list(new_model.get_weights(), listed("keras_resumed_final"), what=".keras resumed")

    model = create_model()
    _assert_history(model.fit(train_images, train_labels, epochs=3, verbose=0, shuffle=False), meta["history_h5"])
    model.save(str(tmp_path / 'my_model.h5'))
    new_model = keras.models.load_model(str(tmp_path / 'my_model.h5'))
    np.testing.assert_allclose(new_model.evaluate(test_images, test_labels, verbose=0), meta["h5_evaluate"], **TOL)
    _assert_history(new_model.fit(train_images, train_labels, epochs=1, verbose=0, shuffle=False), meta["h5_resumed"])
    assert int(new_model.optimizer.iterations) == meta["h5_resumed_iterations"]
    _assert_list(new_model.get_weights(), listed("h5_resumed_final"), what="h5 resumed")

    # the files tf.keras 2.21 wrote
    fresh = keras.Sequential([keras.layers.Dense(12, activation='relu', input_shape=(36,)),
                              keras.layers.Dropout(DROP), keras.layers.Dense(4)])
    fresh.compile(optimizer='adam', loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                  metrics=[keras.metrics.SparseCategoricalAccuracy()])
    with pytest.warns(UserWarning, match="Skipping variable loading for optimizer"):  # unbuilt until fit: its state is skipped, as in Keras
        fresh.load_weights(os.path.join(HERE, "save_and_load_cp.weights.h5"))
    np.testing.assert_allclose(fresh.evaluate(test_images, test_labels, verbose=0), meta["restored_evaluate"], **TOL)
    _assert_history(fresh.fit(train_images, train_labels, epochs=1, verbose=0, shuffle=False),
                    meta["restored_resumed"])
    assert int(fresh.optimizer.iterations) == meta["restored_resumed_iterations"]
    _assert_list(fresh.get_weights(), listed("restored_resumed_final"), what="tf.keras weights.h5 resumed")
    tf_keras_model = keras.models.load_model(os.path.join(HERE, "save_and_load_my_model.keras"))
    np.testing.assert_allclose(tf_keras_model.predict(test_images, verbose=0), arrays["keras_predict"], **TOL)
    np.testing.assert_allclose(tf_keras_model.evaluate(test_images, test_labels, verbose=0), meta["keras_evaluate"],
                               **TOL)
    _assert_history(tf_keras_model.fit(train_images, train_labels, epochs=1, verbose=0, shuffle=False),
                    meta["keras_resumed"])
    assert int(tf_keras_model.optimizer.iterations) == meta["keras_resumed_iterations"]
    _assert_list(tf_keras_model.get_weights(), listed("keras_resumed_final"), what="tf.keras .keras resumed")
    tf_keras_model = keras.models.load_model(os.path.join(HERE, "save_and_load_my_model.h5"))
    np.testing.assert_allclose(tf_keras_model.evaluate(test_images, test_labels, verbose=0), meta["h5_evaluate"],
                               **TOL)
    _assert_history(tf_keras_model.fit(train_images, train_labels, epochs=1, verbose=0, shuffle=False),
                    meta["h5_resumed"])
    _assert_list(tf_keras_model.get_weights(), listed("h5_resumed_final"), what="tf.keras .h5 resumed")


def custom_standardization(input_data):
    # tf.strings.lower / tf.strings.regex_replace -> `re` over the NumPy array of str kerasish passes
    lowercase = np.char.lower(input_data.astype(str))
    stripped_html = [s.replace('<br />', ' ') for s in lowercase.tolist()]
    return np.array([re.sub('[%s]' % re.escape(string.punctuation), '', s) for s in stripped_html])  # noqa: UP031 (the tutorial's)


def test_text_classification_custom_standardize_and_export_model():
    from kerasish import losses

    arrays, listed = _arrays("text_classification")
    meta = META["text_classification"]
    texts, labels = data.reviews()
    raw_train = (texts[:24], labels[:24])
    raw_val = (texts[24:32], labels[24:32])
    raw_test = (texts[32:], labels[32:])
    max_features = 20
    sequence_length = 8
    vectorize_layer = layers.TextVectorization(standardize=custom_standardization, max_tokens=max_features,
                                               output_mode='int', output_sequence_length=sequence_length)
    vectorize_layer.adapt(raw_train[0])
    assert vectorize_layer.get_vocabulary() == meta["vocabulary"]

    def vectorize_text(text, label):
        text = np.expand_dims(text, -1)  # tf.expand_dims
        return vectorize_layer(text), label

    train_ds = vectorize_text(*raw_train)
    val_ds = vectorize_text(*raw_val)
    test_ds = vectorize_text(*raw_test)
    np.testing.assert_array_equal(_np(train_ds[0]), arrays["train_ids"])
    embedding_dim = 6
    model = keras.Sequential([
        layers.Embedding(max_features, embedding_dim),
        layers.Dropout(DROP),
        layers.GlobalAveragePooling1D(),
        layers.Dropout(DROP),
        layers.Dense(1, activation='sigmoid')])
    model.build((None, sequence_length))
    model.set_weights(listed("init"))
    model.compile(loss=losses.BinaryCrossentropy(), optimizer=keras.optimizers.Adam(0.01),
                  metrics=[keras.metrics.BinaryAccuracy(threshold=0.5)])
    h = model.fit(train_ds[0], train_ds[1], validation_data=val_ds, epochs=4, batch_size=8, verbose=0,
                  shuffle=False)
    _assert_history(h, meta["history"])
    np.testing.assert_allclose(model.evaluate(*test_ds, verbose=0), meta["evaluate"], **TOL)
    export_model = keras.Sequential([vectorize_layer, model, layers.Activation('sigmoid')])
    export_model.compile(loss=losses.BinaryCrossentropy(from_logits=False), optimizer="adam", metrics=['accuracy'])
    got = export_model.evaluate(raw_test[0], raw_test[1], return_dict=True, verbose=0)
    assert sorted(got) == sorted(meta["export_evaluate"])
    for key, value in meta["export_evaluate"].items():
        np.testing.assert_allclose(got[key], value, err_msg=key, **TOL)
    examples = np.array(["The movie was great!", "The movie was okay.", "The movie was terrible..."])
    np.testing.assert_allclose(export_model.predict(examples, verbose=0), arrays["export_predict"], **TOL)
    _assert_list(model.get_weights(), listed("final"), what="final")


# ------------------------------------------------------------------------------------------------ structured_data/
def test_imbalanced_data_metrics_bias_class_weight_early_stopping(tmp_path):
    arrays, listed = _arrays("imbalanced_data")
    meta = META["imbalanced_data"]
    x, y = data.fraud()
    train_features, train_labels = x[:150], y[:150]
    val_features, val_labels = x[150:], y[150:]
    neg, pos = np.bincount(train_labels.astype(int))
    assert [neg, pos] == meta["neg_pos"]
    METRICS = [
        keras.metrics.BinaryCrossentropy(name='cross entropy'),
        keras.metrics.MeanSquaredError(name='Brier score'),
        keras.metrics.TruePositives(name='tp'),
        keras.metrics.FalsePositives(name='fp'),
        keras.metrics.TrueNegatives(name='tn'),
        keras.metrics.FalseNegatives(name='fn'),
        keras.metrics.BinaryAccuracy(name='accuracy'),
        keras.metrics.Precision(name='precision'),
        keras.metrics.Recall(name='recall'),
        keras.metrics.AUC(name='auc'),
        keras.metrics.AUC(name='prc', curve='PR'),
    ]

    def make_model(metrics=METRICS, output_bias=None):
        if output_bias is not None:
            output_bias = keras.initializers.Constant(output_bias)
        model = keras.Sequential([
            keras.layers.Dense(8, activation='relu', input_shape=(train_features.shape[-1],)),
            keras.layers.Dropout(DROP),
            keras.layers.Dense(1, activation='sigmoid', bias_initializer=output_bias),
        ])
        model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-2), loss=keras.losses.BinaryCrossentropy(),
                      metrics=metrics)
        return model

    BATCH_SIZE = 64
    initial_bias = np.log([pos / neg])
    model = make_model(output_bias=initial_bias)
    biased_init = listed("biased_init")
    np.testing.assert_allclose(_np(model.layers[-1].bias), biased_init[3], rtol=1e-6)  # Constant(log(pos/neg))
    model.set_weights(biased_init)
    np.testing.assert_allclose(model.evaluate(train_features, train_labels, batch_size=BATCH_SIZE, verbose=0),
                               meta["biased_evaluate"], **TOL)
    initial_weights = str(tmp_path / 'initial.weights.h5')
    model.save_weights(initial_weights)

    model = make_model()
    model.load_weights(initial_weights)
    model.layers[-1].bias.assign([0.0])
    h = model.fit(train_features, train_labels, batch_size=BATCH_SIZE, epochs=3,
                  validation_data=(val_features, val_labels), verbose=0, shuffle=False)
    _assert_history(h, meta["zero_bias_history"])

    early_stopping = keras.callbacks.EarlyStopping(monitor='val_prc', verbose=0, patience=2, mode='max',
                                                   restore_best_weights=True)
    weight_for_0 = (1 / neg) * ((neg + pos) / 2.0)
    weight_for_1 = (1 / pos) * ((neg + pos) / 2.0)
    class_weight = {0: weight_for_0, 1: weight_for_1}
    weighted_model = make_model()
    weighted_model.load_weights(initial_weights)
    h = weighted_model.fit(train_features, train_labels, batch_size=BATCH_SIZE, epochs=12,
                           callbacks=[early_stopping], validation_data=(val_features, val_labels),
                           class_weight=class_weight, verbose=0, shuffle=False)
    _assert_history(h, meta["weighted_history"])
    assert early_stopping.stopped_epoch == meta["stopped_epoch"]
    _assert_list(weighted_model.get_weights(), listed("weighted_final"), what="restored best")
    got = weighted_model.evaluate(val_features, val_labels, batch_size=BATCH_SIZE, verbose=0, return_dict=True)
    assert sorted(got) == sorted(meta["weighted_evaluate"])
    for key, value in meta["weighted_evaluate"].items():
        np.testing.assert_allclose(got[key], value, err_msg=key, **TOL)


def test_preprocessing_layers_dict_inputs_lookups_and_keras_file(tmp_path):
    """A functional model over a dict of named inputs (float, int64 and string columns): Normalization(axis=None)
    adapted per column, StringLookup / IntegerLookup(max_tokens=5) adapted vocabularies (most frequent first) into
    CategoryEncoding(num_tokens=vocabulary_size()) multi-hot, `layers.concatenate`; saved to `.keras`, reloaded,
    and asked about one sample given as a dict of 1-element tensors."""
    arrays, listed = _arrays("preprocessing_layers")
    meta = META["preprocessing_layers"]
    cols, target = data.pets()
    train = {k: v[:32] for k, v in cols.items()}, target[:32]
    val = {k: v[32:40] for k, v in cols.items()}, target[32:40]
    test = {k: v[40:] for k, v in cols.items()}, target[40:]
    vocabularies = {}

    def to_inputs(frame):  # df_to_dataset: {key: value.to_numpy()[:, tf.newaxis]}
        return {key: value[:, None] for key, value in frame.items()}

    def get_normalization_layer(name, features):
        normalizer = layers.Normalization(axis=None)
        normalizer.adapt(features[name])
        return normalizer

    def get_category_encoding_layer(name, features, dtype, max_tokens=None):
        if dtype == 'string':
            index = layers.StringLookup(max_tokens=max_tokens)
        else:
            index = layers.IntegerLookup(max_tokens=max_tokens)
        index.adapt(features[name])
        vocabularies[name] = [str(v) for v in index.get_vocabulary()]
        encoder = layers.CategoryEncoding(num_tokens=index.vocabulary_size())
        return lambda feature: encoder(index(feature))

    train_inputs = to_inputs(train[0])
    all_inputs, encoded_features = {}, []
    for header in ['PhotoAmt', 'Fee']:
        numeric_col = keras.Input(shape=(1,), name=header)
        normalization_layer = get_normalization_layer(header, train_inputs)
        encoded_features.append(normalization_layer(numeric_col))
        all_inputs[header] = numeric_col
    age_col = keras.Input(shape=(1,), name='Age', dtype='int64')
    encoding_layer = get_category_encoding_layer(name='Age', features=train_inputs, dtype='int64', max_tokens=5)
    encoded_features.append(encoding_layer(age_col))
    all_inputs['Age'] = age_col
    for header in ['Type', 'Color1', 'Gender', 'FurLength']:
        categorical_col = keras.Input(shape=(1,), name=header, dtype='string')
        encoding_layer = get_category_encoding_layer(name=header, features=train_inputs, dtype='string',
                                                     max_tokens=5)
        encoded_features.append(encoding_layer(categorical_col))
        all_inputs[header] = categorical_col
    assert vocabularies == {k[len("vocab_"):]: v for k, v in meta.items() if k.startswith("vocab_")}
    all_features = layers.concatenate(encoded_features)
    x = layers.Dense(8, activation="relu")(all_features)
    x = layers.Dropout(DROP)(x)
    output = layers.Dense(1)(x)
    model = keras.Model(all_inputs, output)
    for w, value in zip(model.trainable_weights, listed("init"), strict=True):
        w.assign(value)
    model.compile(optimizer='adam', loss=keras.losses.BinaryCrossentropy(from_logits=True), metrics=["accuracy"],
                  run_eagerly=True)
    np.testing.assert_allclose(_np(keras.Model(all_inputs, all_features)({k: v[:2] for k, v in train_inputs.items()})),
                               arrays["encoded_first"], **TOL)
    h = model.fit(train_inputs, train[1], batch_size=8, epochs=3, validation_data=(to_inputs(val[0]), val[1]),
                  verbose=0, shuffle=False)
    _assert_history(h, meta["history"])
    got = model.evaluate(to_inputs(test[0]), test[1], return_dict=True, verbose=0)
    assert sorted(got) == sorted(meta["evaluate"])
    for key, value in meta["evaluate"].items():
        np.testing.assert_allclose(got[key], value, err_msg=key, **TOL)
    path = str(tmp_path / 'my_pet_classifier.keras')
    model.save(path)
    reloaded_model = keras.models.load_model(path)
    sample = {'Type': 'Cat', 'Age': 3, 'Color1': 'Black', 'Gender': 'Male', 'FurLength': 'Short',
              'PhotoAmt': 2, 'Fee': 100}
    # tf.convert_to_tensor([value]): strings stay a list of str (kerasish's string tensors are NumPy str arrays)
    input_dict = {name: value if isinstance(value, str) else torch.tensor([value]) for name, value in sample.items()}
    input_dict = {name: np.array([value]) if isinstance(value, str) else value for name, value in input_dict.items()}
    logit = reloaded_model.predict(input_dict, verbose=0)
    np.testing.assert_allclose(logit, arrays["sample_logit"], **TOL)
    np.testing.assert_allclose(float(torch.sigmoid(torch.as_tensor(logit[0][0]))), meta["sample_probability"], **TOL)
    _assert_list(model.trainable_weights, listed("final"), what="final")


def test_time_series_windows_and_feedback_model():
    """WindowGenerator windows (NumPy here), `compile_and_fit` with EarlyStopping: a linear model, an LSTM with
    return_sequences, the multi-step Lambda + Conv1D + zero-initialised Dense + Reshape, and the autoregressive
    `FeedBack(Model)` whose methods are attached after the class (`FeedBack.warmup = warmup`): an RNN over an
    LSTMCell with return_state for the warm-up, then the cell stepped by hand (`states=state`)."""
    arrays, listed = _arrays("time_series")
    meta = META["time_series"]
    series = data.weather()
    train_df, val_df = series[:84], series[84:]
    num_features = series.shape[1]
    MAX_EPOCHS = 4

    def compile_and_fit(model, window, patience=2):
        early_stopping = keras.callbacks.EarlyStopping(monitor='val_loss', patience=patience, mode='min')
        model.compile(loss=keras.losses.MeanSquaredError(), optimizer=keras.optimizers.Adam(),
                      metrics=[keras.metrics.MeanAbsoluteError()])
        return model.fit(window[0][0], window[0][1], epochs=MAX_EPOCHS, batch_size=16, shuffle=False,
                         validation_data=window[1], callbacks=[early_stopping], verbose=0)

    def make_window(input_width, label_width, shift, label_columns=None):
        out = []
        for df in (train_df, val_df):
            inputs, labels = data.split_window(df, input_width, label_width, shift)
            if label_columns is not None:
                labels = labels[..., label_columns]
            out.append((inputs, labels))
        return out

    single_step_window = make_window(1, 1, 1, label_columns=[0])
    linear = keras.Sequential([keras.layers.Dense(units=1)])
    linear.build((None, 1, num_features))
    linear.set_weights(listed("linear_init"))
    _assert_history(compile_and_fit(linear, single_step_window), meta["linear_history"])
    got = linear.evaluate(*single_step_window[1], return_dict=True, verbose=0)
    assert sorted(got) == sorted(meta["linear_evaluate"])
    np.testing.assert_allclose([got[k] for k in sorted(got)], [meta["linear_evaluate"][k] for k in sorted(got)],
                               **TOL)

    wide_window = make_window(12, 12, 1, label_columns=[0])
    lstm_model = keras.models.Sequential([keras.layers.LSTM(8, return_sequences=True),
                                          keras.layers.Dense(units=1)])
    lstm_model.build((None, 12, num_features))
    lstm_model.set_weights(listed("lstm_init"))
    _assert_history(compile_and_fit(lstm_model, wide_window), meta["lstm_history"])
    np.testing.assert_allclose(lstm_model.predict(wide_window[1][0][:4], verbose=0), arrays["lstm_predict"], **TOL)

    OUT_STEPS, CONV_WIDTH = 6, 3
    multi_window = make_window(12, OUT_STEPS, OUT_STEPS)
    multi_conv_model = keras.Sequential([
        keras.layers.Lambda(lambda x: x[:, -CONV_WIDTH:, :]),
        keras.layers.Conv1D(16, activation='relu', kernel_size=(CONV_WIDTH)),
        keras.layers.Dense(OUT_STEPS * num_features, kernel_initializer=keras.initializers.zeros()),
        keras.layers.Reshape([OUT_STEPS, num_features])])
    multi_conv_model.build((None, 12, num_features))
    conv_init = listed("conv_init")
    assert not np.any(_np(multi_conv_model.layers[2].kernel)) and not np.any(conv_init[2])  # tf.initializers.zeros
    multi_conv_model.set_weights(conv_init)
    _assert_history(compile_and_fit(multi_conv_model, multi_window), meta["conv_history"])

    class FeedBack(keras.Model):
        def __init__(self, units, out_steps):
            super().__init__()
            self.out_steps = out_steps
            self.units = units
            self.lstm_cell = keras.layers.LSTMCell(units)
            self.lstm_rnn = keras.layers.RNN(self.lstm_cell, return_state=True)
            self.dense = keras.layers.Dense(num_features)

    def warmup(self, inputs):
        x, *state = self.lstm_rnn(inputs)
        prediction = self.dense(x)
        return prediction, state

    FeedBack.warmup = warmup

    def call(self, inputs, training=None):
        predictions = []
        prediction, state = self.warmup(inputs)
        predictions.append(prediction)
        for _n in range(1, self.out_steps):
            x = prediction
            x, state = self.lstm_cell(x, states=state, training=training)
            prediction = self.dense(x)
            predictions.append(prediction)
        predictions = torch.stack(predictions)  # tf.stack
        predictions = predictions.permute(1, 0, 2)  # tf.transpose(predictions, [1, 0, 2])
        return predictions

    FeedBack.call = call
    feedback_model = FeedBack(units=8, out_steps=OUT_STEPS)
    prediction, state = feedback_model.warmup(multi_window[0][0][:2])
    assert [list(prediction.shape)] + [list(s.shape) for s in state] == meta["warmup_shapes"]
    feedback_model.set_weights(listed("feedback_init"))
    _assert_history(compile_and_fit(feedback_model, multi_window), meta["feedback_history"])
    got = feedback_model.evaluate(*multi_window[1], return_dict=True, verbose=0)
    assert sorted(got) == sorted(meta["feedback_evaluate"])
    np.testing.assert_allclose([got[k] for k in sorted(got)], [meta["feedback_evaluate"][k] for k in sorted(got)],
                               **TOL)
    _assert_list(feedback_model.get_weights(), listed("feedback_final"), what="feedback")


# ------------------------------------------------------------------------------------------------ customization/
def test_custom_layers_and_training_walkthrough():
    """`MyDenseLayer.build` calls `self.add_weight("kernel", shape=[...])` (tf.keras 2's `add_weight(name, shape)`
    order; Keras 3's first parameter is `shape`), `ResnetIdentityBlock(Model)` passes `training` to its
    BatchNormalizations, and the walkthrough trains with `tape.gradient` -> `torch.autograd.grad`."""
    import torch.nn.functional as F

    arrays, listed = _arrays("custom_layers_walkthrough")
    meta = META["custom_layers_walkthrough"]

    class MyDenseLayer(keras.layers.Layer):
        def __init__(self, num_outputs):
            super(MyDenseLayer, self).__init__()  # noqa: UP008 (the tutorial's)
            self.num_outputs = num_outputs

        def build(self, input_shape):
            self.kernel = self.add_weight("kernel", shape=[int(input_shape[-1]), self.num_outputs])

        def call(self, inputs):
            return torch.matmul(inputs, self.kernel)  # tf.matmul

    layer = MyDenseLayer(3)
    xs = np.linspace(-1, 1, 10).reshape(2, 5).astype("float32")
    layer(xs)
    # tf.keras 2's `name` is "my_dense_layer/kernel:0"; Keras 3's is "kernel" with path "my_dense_layer/kernel"
    assert [v.path + ":0" for v in layer.trainable_variables] == meta["dense_names"]
    assert tuple(layer.kernel.shape) == arrays["dense_kernel"].shape
    layer.kernel.assign(arrays["dense_kernel"])
    np.testing.assert_allclose(_np(layer(xs)), xs @ arrays["dense_kernel"], rtol=1e-5)

    class ResnetIdentityBlock(keras.Model):
        def __init__(self, kernel_size, filters):
            super(ResnetIdentityBlock, self).__init__(name='')  # noqa: UP008 (the tutorial's)
            filters1, filters2, filters3 = filters
            self.conv2a = keras.layers.Conv2D(filters1, (1, 1))
            self.bn2a = keras.layers.BatchNormalization()
            self.conv2b = keras.layers.Conv2D(filters2, kernel_size, padding='same')
            self.bn2b = keras.layers.BatchNormalization()
            self.conv2c = keras.layers.Conv2D(filters3, (1, 1))
            self.bn2c = keras.layers.BatchNormalization()

        def call(self, input_tensor, training=False):
            x = self.conv2a(input_tensor)
            x = self.bn2a(x, training=training)
            x = F.relu(x)  # tf.nn.relu
            x = self.conv2b(x)
            x = self.bn2b(x, training=training)
            x = F.relu(x)
            x = self.conv2c(x)
            x = self.bn2c(x, training=training)
            x += input_tensor
            return F.relu(x)

    block = ResnetIdentityBlock(1, [1, 2, 3])
    img = np.linspace(-1, 1, 2 * 3 * 3).reshape(1, 2, 3, 3).astype("float32")
    block(torch.zeros([1, 2, 3, 3]))
    block.set_weights(listed("block_init"))
    assert [len(block.variables), len(block.trainable_variables), len(block.layers)] == meta["block_counts"]
    np.testing.assert_allclose(_np(block(img, training=True)), arrays["block_train"], **TOL)
    after = listed("block_after_train_call")
    # tf.keras 2's fused (4-D) BatchNormalization moves its moving_variance toward the Bessel-corrected batch
    # variance (n / (n - 1), n = 1 * 2 * 3 values per channel); Keras 3, and kerasish with it, toward the biased
    # one (test_custom_layers_block_matches_keras3): the same update with the correction taken out.
    n = img.shape[0] * img.shape[1] * img.shape[2]
    for i in (5, 11, 17):
        after[i] = 0.99 * 1.0 + (after[i] - 0.99) * (n - 1) / n
    _assert_list(block.get_weights(), after, what="moving statistics")
    infer = _np(block(img))
    assert not np.allclose(infer, arrays["block_infer"], **TOL)  # the moving variances differ, as above

    # custom_training_walkthrough
    x, y = data.iris()
    train_x, train_y, test_x, test_y = x[:48], y[:48], x[48:], y[48:]
    model = keras.Sequential([
        keras.layers.Dense(10, activation=F.relu, input_shape=(4,)),  # activation=tf.nn.relu
        keras.layers.Dense(10, activation=F.relu),
        keras.layers.Dense(3)])
    model.set_weights(listed("iris_init"))
    loss_object = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def loss(model, x, y, training):
        y_ = model(x, training=training)
        return loss_object(y_true=y, y_pred=y_)

    np.testing.assert_allclose(loss(model, train_x, train_y, training=False).item(), meta["iris_first_loss"], **TOL)

    def grad(model, inputs, targets):
        loss_value = loss(model, inputs, targets, training=True)
        return loss_value, torch.autograd.grad(loss_value, model.trainable_variables)  # tape.gradient

    optimizer = keras.optimizers.SGD(learning_rate=0.01)
    iterations, train_loss_results, train_accuracy_results = [], [], []
    for _epoch in range(4):
        epoch_loss_avg = keras.metrics.Mean()
        epoch_accuracy = keras.metrics.SparseCategoricalAccuracy()
        for i in range(0, 48, 16):
            xb, yb = train_x[i:i + 16], train_y[i:i + 16]
            loss_value, grads = grad(model, xb, yb)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            epoch_loss_avg.update_state(loss_value)
            epoch_accuracy.update_state(yb, model(xb, training=True))
        train_loss_results.append(float(epoch_loss_avg.result()))
        train_accuracy_results.append(float(epoch_accuracy.result()))
        iterations.append(int(optimizer.iterations))
    assert iterations == meta["iris_iterations"]
    np.testing.assert_allclose(train_loss_results, meta["iris_loss"], **TOL)
    np.testing.assert_allclose(train_accuracy_results, meta["iris_accuracy"], **TOL)
    test_accuracy = keras.metrics.Accuracy()
    logits = model(test_x, training=False)
    prediction = torch.argmax(logits, dim=1)  # tf.math.argmax(logits, axis=1, output_type=tf.int64)
    test_accuracy(prediction, test_y)
    np.testing.assert_allclose(float(test_accuracy.result()), meta["iris_test_accuracy"], **TOL)
    _assert_list(model.get_weights(), listed("iris_final"), what="iris")


# ------------------------------------------------------------------------------------------------ generative/
def test_dcgan_two_tapes_train_step():
    """Generator (Dense without bias, BatchNormalization, LeakyReLU, Conv2DTranspose strides 2) and discriminator
    (strided Conv2D, LeakyReLU, Flatten, Dense) trained by one step with two GradientTapes: one forward, two
    `torch.autograd.grad` calls (the first keeps the graph for the second)."""
    arrays, listed = _arrays("dcgan")
    meta = META["dcgan"]
    real, noise = data.gan()
    noise_dim = noise.shape[-1]

    def make_generator_model():
        model = keras.Sequential()
        model.add(layers.Dense(2 * 2 * 8, use_bias=False, input_shape=(noise_dim,)))
        model.add(layers.BatchNormalization())
        model.add(layers.LeakyReLU())
        model.add(layers.Reshape((2, 2, 8)))
        model.add(layers.Conv2DTranspose(4, (3, 3), strides=(1, 1), padding='same', use_bias=False))
        model.add(layers.BatchNormalization())
        model.add(layers.LeakyReLU())
        model.add(layers.Conv2DTranspose(4, (3, 3), strides=(2, 2), padding='same', use_bias=False))
        model.add(layers.BatchNormalization())
        model.add(layers.LeakyReLU())
        model.add(layers.Conv2DTranspose(1, (3, 3), strides=(2, 2), padding='same', use_bias=False,
                                         activation='tanh'))
        return model

    def make_discriminator_model():
        model = keras.Sequential()
        model.add(layers.Conv2D(4, (3, 3), strides=(2, 2), padding='same', input_shape=[8, 8, 1]))
        model.add(layers.LeakyReLU())
        model.add(layers.Dropout(DROP))
        model.add(layers.Conv2D(8, (3, 3), strides=(2, 2), padding='same'))
        model.add(layers.LeakyReLU())
        model.add(layers.Dropout(DROP))
        model.add(layers.Flatten())
        model.add(layers.Dense(1))
        return model

    generator = make_generator_model()
    discriminator = make_discriminator_model()
    generator.set_weights(listed("g_init"))
    discriminator.set_weights(listed("d_init"))
    generated_image = generator(noise[0][:1], training=False)
    np.testing.assert_allclose(_np(discriminator(generated_image)), arrays["untrained_decision"], **TOL)
    cross_entropy = keras.losses.BinaryCrossentropy(from_logits=True)

    def discriminator_loss(real_output, fake_output):
        real_loss = cross_entropy(torch.ones_like(real_output), real_output)  # tf.ones_like
        fake_loss = cross_entropy(torch.zeros_like(fake_output), fake_output)
        return real_loss + fake_loss

    def generator_loss(fake_output):
        return cross_entropy(torch.ones_like(fake_output), fake_output)

    generator_optimizer = keras.optimizers.Adam(1e-2)
    discriminator_optimizer = keras.optimizers.Adam(1e-2)

    def train_step(images, noise):
        generated_images = generator(noise, training=True)
        real_output = discriminator(images, training=True)
        fake_output = discriminator(generated_images, training=True)
        gen_loss = generator_loss(fake_output)
        disc_loss = discriminator_loss(real_output, fake_output)
        gradients_of_generator = torch.autograd.grad(gen_loss, generator.trainable_variables, retain_graph=True)
        gradients_of_discriminator = torch.autograd.grad(disc_loss, discriminator.trainable_variables)
        generator_optimizer.apply_gradients(zip(gradients_of_generator, generator.trainable_variables))
        discriminator_optimizer.apply_gradients(zip(gradients_of_discriminator, discriminator.trainable_variables))
        return gen_loss, disc_loss

    losses = [[v.item() for v in train_step(real, noise[step])] for step in range(len(noise))]
    np.testing.assert_allclose(losses, meta["losses"], **TOL)
    # the two 4-D BatchNormalizations' moving variances (9, 14): tf.keras 2's fused kernel moves them toward the
    # Bessel-corrected batch variance (n / (n - 1), n = 16 * 2 * 2 and 16 * 4 * 4), Keras 3 and kerasish toward
    # the biased one (see test_custom_layers_block_matches_keras3): 1e-3 covers 3 steps of that 1.6 % of 0.01 * var
    g_final, g_got = listed("g_final"), generator.get_weights()
    _assert_list([w for i, w in enumerate(g_got) if i not in (9, 14)],
                 [w for i, w in enumerate(g_final) if i not in (9, 14)], what="generator")
    _assert_list([g_got[9], g_got[14]], [g_final[9], g_final[14]], tol={"rtol": 1e-3}, what="moving variances")
    _assert_list(discriminator.get_weights(), listed("d_final"), what="discriminator")
    np.testing.assert_allclose(_np(generator(noise[0][:2], training=False)), arrays["generated"], **TOL)


def test_autoencoder_subclassed_denoise_and_anomaly_threshold():
    from kerasish import losses
    from kerasish.models import Model

    arrays, listed = _arrays("autoencoder")
    meta = META["autoencoder"]
    x, _ = data.images(6, 32, size=8)
    x_train, x_test = x[:24], x[24:]
    latent_dim = 4

    class Autoencoder(Model):
        def __init__(self, latent_dim, shape):
            super(Autoencoder, self).__init__()  # noqa: UP008 (the tutorial's)
            self.latent_dim = latent_dim
            self.shape = shape
            self.encoder = keras.Sequential([layers.Flatten(), layers.Dense(latent_dim, activation='relu')])
            # tf.math.reduce_prod(shape).numpy() -> np.prod
            self.decoder = keras.Sequential([layers.Dense(int(np.prod(shape)), activation='sigmoid'),
                                             layers.Reshape(shape)])

        def call(self, x):
            encoded = self.encoder(x)
            decoded = self.decoder(encoded)
            return decoded

    shape = x_test.shape[1:]
    autoencoder = Autoencoder(latent_dim, shape)
    autoencoder(x_train[:1])
    autoencoder.set_weights(listed("ae_init"))
    autoencoder.compile(optimizer=keras.optimizers.Adam(0.01), loss=losses.MeanSquaredError())
    h = autoencoder.fit(x_train, x_train, epochs=3, batch_size=8, shuffle=False, validation_data=(x_test, x_test),
                        verbose=0)
    _assert_history(h, meta["ae_history"])
    encoded_imgs = _np(autoencoder.encoder(x_test))
    np.testing.assert_allclose(_np(autoencoder.decoder(encoded_imgs)), arrays["ae_decoded"], **TOL)

    noise_factor = 0.2
    rng = np.random.RandomState(12)
    x_train_noisy = np.clip(x_train[..., None] + noise_factor * rng.randn(*x_train.shape, 1), 0., 1.).astype("float32")
    x_test_noisy = np.clip(x_test[..., None] + noise_factor * rng.randn(*x_test.shape, 1), 0., 1.).astype("float32")

    class Denoise(Model):
        def __init__(self):
            super(Denoise, self).__init__()  # noqa: UP008 (the tutorial's)
            self.encoder = keras.Sequential([
                layers.Input(shape=(8, 8, 1)),
                layers.Conv2D(4, (3, 3), activation='relu', padding='same', strides=2),
                layers.Conv2D(2, (3, 3), activation='relu', padding='same', strides=2)])
            self.decoder = keras.Sequential([
                layers.Conv2DTranspose(2, kernel_size=3, strides=2, activation='relu', padding='same'),
                layers.Conv2DTranspose(4, kernel_size=3, strides=2, activation='relu', padding='same'),
                layers.Conv2D(1, kernel_size=(3, 3), activation='sigmoid', padding='same')])

        def call(self, x):
            encoded = self.encoder(x)
            decoded = self.decoder(encoded)
            return decoded

    denoise = Denoise()
    denoise(x_train_noisy[:1])
    denoise.set_weights(listed("dn_init"))
    denoise.compile(optimizer=keras.optimizers.Adam(0.01), loss=losses.MeanSquaredError())
    h = denoise.fit(x_train_noisy, x_train[..., None], epochs=3, batch_size=8, shuffle=False,
                    validation_data=(x_test_noisy, x_test[..., None]), verbose=0)
    _assert_history(h, meta["dn_history"])
    np.testing.assert_allclose(_np(denoise.decoder(_np(denoise.encoder(x_test_noisy)))), arrays["dn_decoded"], **TOL)

    reconstructions = autoencoder.predict(x_train, verbose=0)
    train_loss = losses.mae(reconstructions.reshape(len(x_train), -1), x_train.reshape(len(x_train), -1))
    threshold = np.mean(_np(train_loss)) + np.std(_np(train_loss))
    np.testing.assert_allclose(_np(train_loss), arrays["train_loss"], **TOL)
    np.testing.assert_allclose(threshold, meta["threshold"], **TOL)
    test_loss = losses.mae(_np(autoencoder(x_test)).reshape(len(x_test), -1), x_test.reshape(len(x_test), -1))
    np.testing.assert_array_equal(_np(torch.less(test_loss, threshold)), arrays["anomalies"])  # tf.math.less


def test_custom_layers_block_matches_keras3(keras_ref):
    """The ResnetIdentityBlock's training call and then inference, in real Keras 3 with the recorded initial
    weights: kerasish's outputs and moving statistics equal Keras 3's (whose moving_variance follows the biased
    batch variance, where tf.keras 2's fused kernel used the unbiased one)."""
    import torch.nn.functional as F

    _, listed = _arrays("custom_layers_walkthrough")

    def make_block(K):
        class ResnetIdentityBlock(K.Model):
            def __init__(self):
                super().__init__(name='')
                self.conv2a = K.layers.Conv2D(1, (1, 1))
                self.bn2a = K.layers.BatchNormalization()
                self.conv2b = K.layers.Conv2D(2, 1, padding='same')
                self.bn2b = K.layers.BatchNormalization()
                self.conv2c = K.layers.Conv2D(3, (1, 1))
                self.bn2c = K.layers.BatchNormalization()

            def call(self, input_tensor, training=False):
                x = F.relu(self.bn2a(self.conv2a(input_tensor), training=training))
                x = F.relu(self.bn2b(self.conv2b(x), training=training))
                x = self.bn2c(self.conv2c(x), training=training)
                return F.relu(x + input_tensor)

        block = ResnetIdentityBlock()
        block(torch.zeros([1, 2, 3, 3]))
        block.set_weights(listed("block_init"))
        return block

    img = np.linspace(-1, 1, 2 * 3 * 3).reshape(1, 2, 3, 3).astype("float32")
    ours, ref = make_block(keras), make_block(keras_ref)
    np.testing.assert_allclose(_np(ours(img, training=True)), _np(ref(torch.as_tensor(img), training=True)), **TOL)
    _assert_list(ours.get_weights(), ref.get_weights(), what="moving statistics against Keras 3")
    np.testing.assert_allclose(_np(ours(img)), _np(ref(torch.as_tensor(img))), **TOL)


# ------------------------------------------------------------------------------------------------ text/transformer
def _transformer_program(keras):
    """The tutorial's program, written once for `keras` = kerasish or real Keras 3; returns what it computes."""
    import math

    _, listed = _arrays("transformer")
    out = {}
    ctx, tgt_in, tgt_out = data.translation()
    VOCAB = 12

    def positional_encoding(length, depth):
        depth = depth / 2
        positions = np.arange(length)[:, np.newaxis]
        depths = np.arange(depth)[np.newaxis, :] / depth
        angle_rates = 1 / (10000**depths)
        angle_rads = positions * angle_rates
        pos_encoding = np.concatenate([np.sin(angle_rads), np.cos(angle_rads)], axis=-1)
        return torch.as_tensor(pos_encoding, dtype=torch.float32)  # tf.cast(pos_encoding, dtype=tf.float32)

    class PositionalEmbedding(keras.layers.Layer):
        def __init__(self, vocab_size, d_model):
            super().__init__()
            self.d_model = d_model
            self.embedding = keras.layers.Embedding(vocab_size, d_model, mask_zero=True)
            self.pos_encoding = positional_encoding(length=64, depth=d_model)

        def compute_mask(self, *args, **kwargs):
            return self.embedding.compute_mask(*args, **kwargs)

        def call(self, x):
            length = x.shape[1]  # tf.shape(x)[1]
            x = self.embedding(x)
            x *= math.sqrt(self.d_model)  # tf.math.sqrt(tf.cast(self.d_model, tf.float32))
            x = x + self.pos_encoding[None, :length, :].to(x.device)
            return x

    class BaseAttention(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__()
            self.mha = keras.layers.MultiHeadAttention(**kwargs)
            self.layernorm = keras.layers.LayerNormalization()
            self.add = keras.layers.Add()

    class CrossAttention(BaseAttention):
        def call(self, x, context):
            attn_output, attn_scores = self.mha(query=x, key=context, value=context, return_attention_scores=True)
            self.last_attn_scores = attn_scores
            x = self.add([x, attn_output])
            x = self.layernorm(x)
            return x

    class GlobalSelfAttention(BaseAttention):
        def call(self, x):
            attn_output = self.mha(query=x, value=x, key=x)
            x = self.add([x, attn_output])
            x = self.layernorm(x)
            return x

    class CausalSelfAttention(BaseAttention):
        def call(self, x):
            attn_output = self.mha(query=x, value=x, key=x, use_causal_mask=True)
            x = self.add([x, attn_output])
            x = self.layernorm(x)
            return x

    class FeedForward(keras.layers.Layer):
        def __init__(self, d_model, dff, dropout_rate=0.1):
            super().__init__()
            self.seq = keras.Sequential([keras.layers.Dense(dff, activation='relu'), keras.layers.Dense(d_model),
                                         keras.layers.Dropout(dropout_rate)])
            self.add = keras.layers.Add()
            self.layer_norm = keras.layers.LayerNormalization()

        def call(self, x):
            x = self.add([x, self.seq(x)])
            x = self.layer_norm(x)
            return x

    class EncoderLayer(keras.layers.Layer):
        def __init__(self, *, d_model, num_heads, dff, dropout_rate=0.1):
            super().__init__()
            self.self_attention = GlobalSelfAttention(num_heads=num_heads, key_dim=d_model, dropout=dropout_rate)
            self.ffn = FeedForward(d_model, dff)

        def call(self, x):
            x = self.self_attention(x)
            x = self.ffn(x)
            return x

    class Encoder(keras.layers.Layer):
        def __init__(self, *, num_layers, d_model, num_heads, dff, vocab_size, dropout_rate=0.1):
            super().__init__()
            self.d_model = d_model
            self.num_layers = num_layers
            self.pos_embedding = PositionalEmbedding(vocab_size=vocab_size, d_model=d_model)
            self.enc_layers = [EncoderLayer(d_model=d_model, num_heads=num_heads, dff=dff, dropout_rate=dropout_rate)
                               for _ in range(num_layers)]
            self.dropout = keras.layers.Dropout(dropout_rate)

        def call(self, x):
            x = self.pos_embedding(x)
            x = self.dropout(x)
            for i in range(self.num_layers):
                x = self.enc_layers[i](x)
            return x

    class DecoderLayer(keras.layers.Layer):
        def __init__(self, *, d_model, num_heads, dff, dropout_rate=0.1):
            super(DecoderLayer, self).__init__()  # noqa: UP008 (the tutorial's)
            self.causal_self_attention = CausalSelfAttention(num_heads=num_heads, key_dim=d_model,
                                                             dropout=dropout_rate)
            self.cross_attention = CrossAttention(num_heads=num_heads, key_dim=d_model, dropout=dropout_rate)
            self.ffn = FeedForward(d_model, dff)

        def call(self, x, context):
            x = self.causal_self_attention(x=x)
            x = self.cross_attention(x=x, context=context)
            self.last_attn_scores = self.cross_attention.last_attn_scores
            x = self.ffn(x)
            return x

    class Decoder(keras.layers.Layer):
        def __init__(self, *, num_layers, d_model, num_heads, dff, vocab_size, dropout_rate=0.1):
            super(Decoder, self).__init__()  # noqa: UP008 (the tutorial's)
            self.d_model = d_model
            self.num_layers = num_layers
            self.pos_embedding = PositionalEmbedding(vocab_size=vocab_size, d_model=d_model)
            self.dropout = keras.layers.Dropout(dropout_rate)
            self.dec_layers = [DecoderLayer(d_model=d_model, num_heads=num_heads, dff=dff, dropout_rate=dropout_rate)
                               for _ in range(num_layers)]
            self.last_attn_scores = None

        def call(self, x, context):
            x = self.pos_embedding(x)
            x = self.dropout(x)
            for i in range(self.num_layers):
                x = self.dec_layers[i](x, context)
            self.last_attn_scores = self.dec_layers[-1].last_attn_scores
            return x

    class Transformer(keras.Model):
        def __init__(self, *, num_layers, d_model, num_heads, dff, input_vocab_size, target_vocab_size,
                     dropout_rate=0.1):
            super().__init__()
            self.encoder = Encoder(num_layers=num_layers, d_model=d_model, num_heads=num_heads, dff=dff,
                                   vocab_size=input_vocab_size, dropout_rate=dropout_rate)
            self.decoder = Decoder(num_layers=num_layers, d_model=d_model, num_heads=num_heads, dff=dff,
                                   vocab_size=target_vocab_size, dropout_rate=dropout_rate)
            self.final_layer = keras.layers.Dense(target_vocab_size)

        def call(self, inputs):
            context, x = inputs
            context = self.encoder(context)
            x = self.decoder(x, context)
            logits = self.final_layer(x)
            try:
                del logits._keras_mask
            except AttributeError:
                pass
            return logits

    d_model = 8
    transformer = Transformer(num_layers=1, d_model=d_model, num_heads=2, dff=16, input_vocab_size=VOCAB,
                              target_vocab_size=VOCAB, dropout_rate=DROP)
    transformer((ctx[:2], tgt_in[:2]))
    transformer.set_weights(listed("init"))
    out["untrained_logits"] = _np(transformer((ctx[:2], tgt_in[:2])))
    out["attn_scores"] = _np(transformer.decoder.dec_layers[-1].last_attn_scores)

    class CustomSchedule(keras.optimizers.schedules.LearningRateSchedule):
        def __init__(self, d_model, warmup_steps=4000):
            super().__init__()
            self.d_model = d_model
            self.d_model = keras.ops.cast(self.d_model, "float32")  # tf.cast(self.d_model, tf.float32)
            self.warmup_steps = warmup_steps

        def __call__(self, step):  # tf.cast / tf.math.rsqrt / tf.math.minimum -> keras.ops
            step = keras.ops.cast(step, dtype="float32")
            arg1 = keras.ops.rsqrt(step)
            arg2 = step * (self.warmup_steps ** -1.5)
            return keras.ops.rsqrt(self.d_model) * keras.ops.minimum(arg1, arg2)

    learning_rate = CustomSchedule(d_model, warmup_steps=4)
    out["schedule"] = [float(learning_rate(s)) for s in (1, 2, 4, 8, 100)]
    optimizer = keras.optimizers.Adam(learning_rate, beta_1=0.9, beta_2=0.98, epsilon=1e-9)

    def masked_loss(label, pred):
        mask = label != 0
        loss_object = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction='none')
        loss = loss_object(label, pred)
        mask = mask.to(loss.dtype)  # tf.cast(mask, dtype=loss.dtype)
        loss *= mask
        loss = torch.sum(loss) / torch.sum(mask)  # tf.reduce_sum
        return loss

    def masked_accuracy(label, pred):
        pred = torch.argmax(pred, dim=2)  # tf.argmax(pred, axis=2)
        label = label.to(pred.dtype)
        match = label == pred
        mask = label != 0
        match = match & mask
        match = match.to(torch.float32)
        mask = mask.to(torch.float32)
        return torch.sum(match) / torch.sum(mask)

    transformer.compile(loss=masked_loss, optimizer=optimizer, metrics=[masked_accuracy])
    h = transformer.fit((ctx[:12], tgt_in[:12]), tgt_out[:12], batch_size=4, epochs=3, shuffle=False,
                        validation_data=((ctx[12:], tgt_in[12:]), tgt_out[12:]), verbose=0)
    out["history"] = h.history
    out["final"] = [_np(w) for w in transformer.get_weights()]
    out["paths"] = [w.path for w in transformer.weights]
    out["predict"] = transformer.predict((ctx[12:], tgt_in[12:]), verbose=0)
    return out


def test_transformer_against_tf_keras():
    """Where tf.keras 2 and Keras 3 agree, kerasish gives tf.keras's numbers: the learning-rate schedule, and the
    untrained Transformer on the sample with no padding (sample 1). Where they differ on purpose, kerasish follows
    Keras 3 (test_transformer_matches_keras3): Keras 3's merge layers called eagerly return no mask, so the
    padding mask stops at the first `Add` of each attention block; tf.keras 2 carried it through Add and
    LayerNormalization into every MultiHeadAttention. On sample 0 (context padded at positions 4, 5) tf.keras's
    cross-attention gives those keys weight 0, Keras 3's and kerasish's do not; training (every batch has padding)
    is therefore compared with Keras 3 only."""
    arrays, _ = _arrays("transformer")
    meta = META["transformer"]
    out = _transformer_program(keras)
    np.testing.assert_allclose(out["schedule"], meta["schedule"], rtol=1e-6)
    np.testing.assert_allclose(out["untrained_logits"][1], arrays["untrained_logits"][1], **TOL)
    np.testing.assert_allclose(out["attn_scores"][1], arrays["attn_scores"][1], **TOL)
    assert np.all(arrays["attn_scores"][0, :, :6, 4:] == 0)  # tf.keras 2: padded context keys masked
    assert np.all(out["attn_scores"][0, :, :6, 4:] > 0.05)  # Keras 3 / kerasish: the mask ended at the first Add
    assert not np.allclose(out["untrained_logits"][0], arrays["untrained_logits"][0], **TOL)


def test_transformer_matches_keras3(keras_ref):
    """tensorflow/text's Transformer tutorial: the padding mask made by `Embedding(mask_zero=True)` and passed on by
    `PositionalEmbedding.compute_mask` reaches every MultiHeadAttention through Add / LayerNormalization (Keras's
    automatic masks), the decoder's self-attention adds `use_causal_mask=True`, the cross-attention returns its
    scores, `del logits._keras_mask` keeps the loss unmasked by Keras, a `LearningRateSchedule` subclass drives
    Adam(beta_2=0.98, epsilon=1e-9), and `masked_loss` / `masked_accuracy` are plain functions given to compile."""
    ours, ref = _transformer_program(keras), _transformer_program(keras_ref)
    np.testing.assert_allclose(ours["untrained_logits"], ref["untrained_logits"], **TOL)
    np.testing.assert_allclose(ours["attn_scores"], ref["attn_scores"], **TOL)
    np.testing.assert_allclose(ours["schedule"], ref["schedule"], rtol=1e-6)
    assert sorted(ours["history"]) == sorted(ref["history"])
    for key in ref["history"]:
        np.testing.assert_allclose(ours["history"][key], ref["history"][key], err_msg=key, **TOL)
    # The attention key biases have a zero gradient in exact arithmetic (a constant added to every logit of a
    # softmax row), and Adam with epsilon=1e-9 turns their float32 round-off gradients into full-size steps:
    # they wander by noise in every framework, change no output (the predictions below agree), and are left out.
    keep = [i for i, path in enumerate(ours["paths"]) if not path.endswith("key/bias")]
    assert len(keep) == len(ours["final"]) - 3
    _assert_list([ours["final"][i] for i in keep], [ref["final"][i] for i in keep], what="final")
    np.testing.assert_allclose(ours["predict"], ref["predict"], **TOL)


def test_load_weights_into_a_fresh_model_skips_the_optimizer_like_keras3(keras_ref, tmp_path):
    """The save_and_load tutorial's restore-then-train, in kerasish and in real Keras 3, each from its own file:
    a compiled model that has not trained skips the file's optimizer state with the same warning, and one more
    step starts Adam again (iterations 1) in both; a model whose optimizer is built loads it (iterations go on)."""
    x = np.linspace(-1, 1, 32).reshape(8, 4).astype("float32")
    y = np.linspace(0, 1, 24).reshape(8, 3).astype("float32")
    for K in (keras, keras_ref):
        def make(K=K):
            m = K.Sequential([K.Input((4,)), K.layers.Dense(3)])
            m.compile(optimizer="adam", loss="mse")
            return m

        m = make()
        m.fit(x, y, batch_size=4, epochs=2, verbose=0, shuffle=False)
        path = str(tmp_path / f"{K.__name__}.weights.h5")
        m.save_weights(path)
        fresh = make()
        with pytest.warns(UserWarning, match="Skipping variable loading for optimizer"):
            fresh.load_weights(path)
        fresh.fit(x[:4], y[:4], verbose=0, shuffle=False)
        assert int(fresh.optimizer.iterations) == 1, K.__name__
        built = make()
        built.optimizer.build(built.trainable_variables)
        built.load_weights(path)
        assert int(built.optimizer.iterations) == 4, K.__name__


def test_text_generation_states_one_step_and_custom_train_step():
    """tensorflow/text's text_generation tutorial: character StringLookups (and the inverted one), a model whose
    `__init__` calls `super().__init__(self)` (tf.keras 2 ignored the positional `self`; Keras 3 raises) and whose
    `call` asks `self.gru.get_initial_state(x)` with a batch (tf.keras 2's spelling; Keras 3's takes
    `batch_size`), the OneStep generator carrying GRU states (greedy: `tf.random.categorical` -> argmax in the
    generator too), and `CustomTraining.train_step` with `tape.gradient` -> `torch.autograd.grad`, returning
    `{'loss': loss}` (History holds each epoch's last batch loss, as tf.keras)."""
    arrays, listed = _arrays("text_generation")
    meta = META["text_generation"]
    text = data.shakespeare()
    vocab = sorted(set(text))
    ids_from_chars = keras.layers.StringLookup(vocabulary=list(vocab), mask_token=None)
    chars_from_ids = keras.layers.StringLookup(vocabulary=ids_from_chars.get_vocabulary(), invert=True,
                                               mask_token=None)

    def text_from_ids(ids):  # tf.strings.reduce_join(chars_from_ids(ids), axis=-1)
        return "".join(np.asarray(chars_from_ids(ids)).tolist())

    all_ids = _np(ids_from_chars(np.array(list(text))))  # tf.strings.unicode_split(text, 'UTF-8')
    np.testing.assert_array_equal(all_ids, arrays["all_ids"])
    seq_length, BATCH_SIZE = 10, 4
    n_seq = len(all_ids) // (seq_length + 1)  # ids_dataset.batch(seq_length + 1, drop_remainder=True)
    sequences = all_ids[:n_seq * (seq_length + 1)].reshape(n_seq, seq_length + 1)

    def split_input_target(sequence):
        input_text = sequence[:, :-1]
        target_text = sequence[:, 1:]
        return input_text, target_text

    n_batches = n_seq // BATCH_SIZE  # .batch(BATCH_SIZE, drop_remainder=True)
    inputs_all, targets_all = split_input_target(sequences[:n_batches * BATCH_SIZE])
    assert text_from_ids(inputs_all[0]) == meta["first_text"]
    vocab_size = len(ids_from_chars.get_vocabulary())
    embedding_dim, rnn_units = 4, 8

    class MyModel(keras.Model):
        def __init__(self, vocab_size, embedding_dim, rnn_units):
            super().__init__(self)
            self.embedding = keras.layers.Embedding(vocab_size, embedding_dim)
            self.gru = keras.layers.GRU(rnn_units, return_sequences=True, return_state=True)
            self.dense = keras.layers.Dense(vocab_size)

        def call(self, inputs, states=None, return_state=False, training=False):
            x = inputs
            x = self.embedding(x, training=training)
            if states is None:
                states = self.gru.get_initial_state(x)
            x, states = self.gru(x, initial_state=states, training=training)
            x = self.dense(x, training=training)
            if return_state:
                return x, states
            else:
                return x

    model = MyModel(vocab_size=vocab_size, embedding_dim=embedding_dim, rnn_units=rnn_units)
    assert model.trainable is True
    example = inputs_all[:BATCH_SIZE]
    model(example)
    model.set_weights(listed("init"))
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(optimizer='adam', loss=loss)
    _assert_history(model.fit(inputs_all, targets_all, batch_size=BATCH_SIZE, epochs=2, verbose=0, shuffle=False),
                    meta["history"])
    _assert_list(model.get_weights(), listed("final"), what="final")

    class OneStep(keras.Model):
        def __init__(self, model, chars_from_ids, ids_from_chars, temperature=1.0):
            super().__init__()
            self.temperature = temperature
            self.model = model
            self.chars_from_ids = chars_from_ids
            self.ids_from_chars = ids_from_chars
            skip_ids = self.ids_from_chars(['[UNK]'])[:, None]
            # tf.SparseTensor(values=[-inf] * len(skip_ids), indices=skip_ids, dense_shape=[vocab]) -> to_dense
            self.prediction_mask = torch.zeros(len(ids_from_chars.get_vocabulary()))
            self.prediction_mask[skip_ids[:, 0]] = -float('inf')

        def generate_one_step(self, inputs, states=None):
            input_chars = np.array([list(s) for s in inputs])  # tf.strings.unicode_split(...).to_tensor()
            input_ids = self.ids_from_chars(input_chars)
            predicted_logits, states = self.model(inputs=input_ids, states=states, return_state=True)
            predicted_logits = predicted_logits[:, -1, :]
            predicted_logits = predicted_logits / self.temperature
            predicted_logits = predicted_logits + self.prediction_mask
            predicted_ids = torch.argmax(predicted_logits, dim=-1)  # as the generator: greedy
            predicted_chars = self.chars_from_ids(predicted_ids)
            return predicted_chars, states

    one_step_model = OneStep(model, chars_from_ids, ids_from_chars)
    states = None
    next_char = np.array(['ROMEO:', 'All: s'])
    result = [next_char]
    for _n in range(8):
        next_char, states = one_step_model.generate_one_step(next_char, states=states)
        result.append(np.asarray(next_char))
    result = ["".join(parts) for parts in zip(*[r.tolist() for r in result])]  # tf.strings.join
    assert result == meta["generated"]

    class CustomTraining(MyModel):
        def train_step(self, inputs):
            inputs, labels = inputs
            predictions = self(inputs, training=True)
            loss = self.loss(labels, predictions)
            grads = torch.autograd.grad(loss, model.trainable_variables)  # tape.gradient
            self.optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return {'loss': loss}

    model = CustomTraining(vocab_size=len(ids_from_chars.get_vocabulary()), embedding_dim=embedding_dim,
                           rnn_units=rnn_units)
    model(example)
    model.set_weights(listed("custom_init"))
    model.compile(optimizer=keras.optimizers.Adam(),
                  loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    _assert_history(model.fit(inputs_all, targets_all, batch_size=BATCH_SIZE, epochs=2, verbose=0, shuffle=False),
                    meta["custom_history"])
    _assert_list(model.get_weights(), listed("custom_final"), what="custom final")


def test_custom_train_step_returning_loss_logs_it_where_keras3_logs_zero(keras_ref):
    """text_generation's `CustomTraining.train_step` returns `{'loss': loss}` without updating the compiled loss
    tracker. Keras 3 (`_get_metrics_result_or_logs`: same keys, so the metrics' results win) logs the empty
    tracker's 0.0 every epoch; tf.keras 2 logged the step's loss. kerasish logs the step's loss (a History of
    zeros is silently wrong), and still prefers the tracker once the step updates it."""
    x = np.linspace(-1, 1, 16).reshape(8, 2).astype("float32")
    y = np.ones((8, 1), "float32")

    def run(K, update_tracker):
        class CustomTraining(K.Model):
            def __init__(self):
                super().__init__()
                self.d = K.layers.Dense(1)

            def call(self, x):
                return self.d(x)

            def train_step(self, data):
                x, y = data
                loss = self.loss(y, self(x, training=True))
                variables = self.trainable_variables
                grads = torch.autograd.grad(loss, [getattr(v, "value", v) for v in variables])
                self.optimizer.apply_gradients(zip(grads, variables))
                if update_tracker:
                    self.metrics[0].update_state(loss * 2)  # a mean the test can tell from the step's loss
                return {"loss": loss}

        model = CustomTraining()
        model(x[:1])
        model.set_weights([np.full((2, 1), 0.5, "float32"), np.zeros(1, "float32")])
        model.compile(optimizer=K.optimizers.SGD(0.1), loss=K.losses.MeanSquaredError())
        return model.fit(x, y, batch_size=4, epochs=2, verbose=0, shuffle=False).history["loss"]

    # the reference: the last batch's MSE of each epoch, by hand (NumPy SGD on the same batches)
    w, b, last = np.full((2, 1), 0.5), np.zeros(1), []
    for _epoch in range(2):
        for i in (0, 4):
            xb, yb = x[i:i + 4].astype("float64"), y[i:i + 4]
            err = xb @ w + b - yb
            loss = float(np.mean(err ** 2))
            w, b = w - 0.1 * 2 * xb.T @ err / 4, b - 0.1 * 2 * err.mean(0)
        last.append(loss)
    np.testing.assert_allclose(run(keras, False), last, rtol=1e-5)
    np.testing.assert_allclose(run(keras_ref, False), [0.0, 0.0])  # Keras 3.15
    np.testing.assert_allclose(run(keras, True), run(keras_ref, True), rtol=1e-5)  # tracker updated: the same


def test_tf_keras2_spellings_in_text_generation():
    """The two tf.keras 2 spellings text_generation relies on, on their own: `super().__init__(self)` in a
    subclassed Model drops the positional model (it used to land in `trainable`, where a model defining
    `__len__` made itself silently untrainable), and `rnn.get_initial_state(batch_of_inputs)` gives zero states
    for the batch; anything else gets an error naming the layer and the argument."""

    class Blocks(keras.Model):
        def __init__(self):
            super().__init__(self)
            self.d = keras.layers.Dense(2)

        def __len__(self):  # a model counting its blocks
            return 0

        def call(self, x):
            return self.d(x)

    model = Blocks()
    model(np.zeros((1, 3), "float32"))
    assert model.trainable is True and len(model.trainable_weights) == 2

    gru = keras.layers.GRU(6, return_state=True)
    lstm = keras.layers.LSTM(3)
    (state,) = gru.get_initial_state(torch.ones(2, 5, 3))
    assert tuple(state.shape) == (2, 6) and not state.any()
    assert [tuple(s.shape) for s in lstm.get_initial_state(np.ones((7, 2, 2)))] == [(7, 3), (7, 3)]
    assert [tuple(s.shape) for s in lstm.get_initial_state(4)] == [(4, 3), (4, 3)]
    with pytest.raises(TypeError, match=r"Layer 'lstm.*get_initial_state.*batch_size.*Received: batch_size='x'"):
        lstm.get_initial_state("x")


def test_cvae_reparameterization_and_elbo_loop():
    """generative/cvae: a subclassed CVAE whose Sequentials start with `InputLayer(input_shape=...)`, `tf.split`
    -> `torch.split`, the reparameterization (its `tf.random.normal` noise drawn in data.py for both), the ELBO
    from `log_normal_pdf` and `tf.nn.sigmoid_cross_entropy_with_logits` ->
    `F.binary_cross_entropy_with_logits(reduction='none')`, a tape step -> autograd, `sample` with sigmoid."""
    import torch.nn.functional as F

    arrays, listed = _arrays("cvae")
    meta = META["cvae"]
    train_images, noise = data.cvae()
    latent_dim = 2
    eps_queue = list(noise)

    class CVAE(keras.Model):
        """Convolutional variational autoencoder."""

        def __init__(self, latent_dim):
            super(CVAE, self).__init__()  # noqa: UP008 (the tutorial's)
            self.latent_dim = latent_dim
            self.encoder = keras.Sequential([
                keras.layers.InputLayer(input_shape=(8, 8, 1)),
                keras.layers.Conv2D(filters=2, kernel_size=3, strides=(2, 2), activation='relu'),
                keras.layers.Conv2D(filters=4, kernel_size=3, strides=(2, 2), activation='relu'),
                keras.layers.Flatten(),
                keras.layers.Dense(latent_dim + latent_dim)])
            self.decoder = keras.Sequential([
                keras.layers.InputLayer(input_shape=(latent_dim,)),
                keras.layers.Dense(units=2 * 2 * 4, activation=F.relu),  # activation=tf.nn.relu
                keras.layers.Reshape(target_shape=(2, 2, 4)),
                keras.layers.Conv2DTranspose(filters=4, kernel_size=3, strides=2, padding='same', activation='relu'),
                keras.layers.Conv2DTranspose(filters=2, kernel_size=3, strides=2, padding='same', activation='relu'),
                keras.layers.Conv2DTranspose(filters=1, kernel_size=3, strides=1, padding='same')])

        def sample(self, eps=None):
            return self.decode(eps, apply_sigmoid=True)

        def encode(self, x):
            mean, logvar = torch.split(self.encoder(x), 2, dim=1)  # tf.split(..., num_or_size_splits=2, axis=1)
            return mean, logvar

        def reparameterize(self, mean, logvar):
            eps = torch.as_tensor(eps_queue.pop(0))  # tf.random.normal(shape=mean.shape), drawn in data.py
            return eps * torch.exp(logvar * .5) + mean

        def decode(self, z, apply_sigmoid=False):
            logits = self.decoder(z)
            if apply_sigmoid:
                probs = torch.sigmoid(logits)
                return probs
            return logits

    optimizer = keras.optimizers.Adam(1e-2)

    def log_normal_pdf(sample, mean, logvar, raxis=1):
        log2pi = np.log(2. * np.pi)  # tf.math.log
        logvar = torch.as_tensor(logvar)
        return torch.sum(-.5 * ((sample - mean) ** 2. * torch.exp(-logvar) + logvar + log2pi), dim=raxis)

    def compute_loss(model, x):
        x = torch.as_tensor(x)
        mean, logvar = model.encode(x)
        z = model.reparameterize(mean, logvar)
        x_logit = model.decode(z)
        cross_ent = F.binary_cross_entropy_with_logits(x_logit, x, reduction="none")
        logpx_z = -torch.sum(cross_ent, dim=[1, 2, 3])
        logpz = log_normal_pdf(z, 0., 0.)
        logqz_x = log_normal_pdf(z, mean, logvar)
        return -torch.mean(logpx_z + logpz - logqz_x)

    def train_step(model, x, optimizer):
        loss = compute_loss(model, x)
        gradients = torch.autograd.grad(loss, model.trainable_variables)  # tape.gradient
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss

    with pytest.warns(UserWarning, match="`input_shape` is deprecated. Use `shape`"):  # Keras 3's InputLayer warning
        model = CVAE(latent_dim)
    model.set_weights(listed("init"))
    losses = []
    for _epoch in range(2):
        for i in range(0, 16, 8):
            losses.append(train_step(model, train_images[i:i + 8], optimizer).item())
    np.testing.assert_allclose(losses, meta["losses"], **TOL)
    _assert_list(model.get_weights(), listed("final"), what="final")
    np.testing.assert_allclose(_np(model.sample(np.linspace(-1, 1, 6).reshape(3, 2).astype("float32"))),
                               arrays["sample"], **TOL)


def test_word2vec_pair_input_einsum_and_get_layer():
    """tensorflow/text's word2vec: a subclassed model over a `(target, context)` pair, `tf.squeeze` / `tf.einsum`
    -> torch, CategoricalCrossentropy(from_logits=True) with 'accuracy' on one-hot labels, the learnt vectors read
    back by `get_layer('w2v_embedding')` (a name given to a layer of a subclassed model)."""
    arrays, listed = _arrays("word2vec")
    meta = META["word2vec"]
    targets, contexts, labels = data.skipgrams()
    vocab_size, embedding_dim = 16, 4
    BATCH_SIZE = 16

    class Word2Vec(keras.Model):
        def __init__(self, vocab_size, embedding_dim):
            super(Word2Vec, self).__init__()  # noqa: UP008 (the tutorial's)
            self.target_embedding = layers.Embedding(vocab_size, embedding_dim, name="w2v_embedding")
            self.context_embedding = layers.Embedding(vocab_size, embedding_dim)

        def call(self, pair):
            target, context = pair
            if len(target.shape) == 2:
                target = torch.squeeze(target, dim=1)  # tf.squeeze(target, axis=1)
            word_emb = self.target_embedding(target)
            context_emb = self.context_embedding(context)
            dots = torch.einsum('be,bce->bc', word_emb, context_emb)  # tf.einsum
            return dots

    word2vec = Word2Vec(vocab_size, embedding_dim)
    word2vec((targets[:2], contexts[:2]))
    word2vec.set_weights(listed("init"))
    word2vec.compile(optimizer='adam', loss=keras.losses.CategoricalCrossentropy(from_logits=True),
                     metrics=['accuracy'])
    # Dataset.from_tensor_slices(((targets, contexts), labels)).batch(BATCH_SIZE, drop_remainder=True)
    h = word2vec.fit((targets, contexts), labels, batch_size=BATCH_SIZE, epochs=3, verbose=0, shuffle=False)
    _assert_history(h, meta["history"])
    np.testing.assert_allclose(word2vec.get_layer('w2v_embedding').get_weights()[0], arrays["w2v_embedding"], **TOL)
    _assert_list(word2vec.get_weights(), listed("final"), what="final")
