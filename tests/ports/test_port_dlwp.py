"""François Chollet's "Deep Learning with Python", 3rd edition (2025, Keras 3;
fchollet/deep-learning-with-python-notebooks, chapter07..chapter18), ported:
each program's code runs twice, once with real Keras 3 on its torch backend
and once with `import kerasish as keras`, from `keras.utils.set_random_seed`
(kerasish draws Keras's random streams, so the initial weights, Dropout masks,
augmentations and `keras.random` samples are the same in both runs), on small
synthetic data made here (the book downloads MNIST, IMDB, Jena climate, ...),
with the model sizes shrunk. Where a chapter shows TensorFlow / JAX / PyTorch
variants, the PyTorch one is ported.

Covered:

1. ch07 "A deep dive on Keras": the ticket classifier, a functional model with
   three named inputs and two named outputs compiled with list and with dict
   losses / metrics, fit / evaluate / predict; `model.layers`, `layer.input`,
   `layer.output` and a new model with a third output made from an
   intermediate output; the same model as a `keras.Model` subclass on dict
   inputs; a subclassed `Classifier` called in a functional model and a
   functional model inside a subclassed one.
2. ch07: the MNIST MLP with Dropout, a custom `RootMeanSquaredError` metric
   (`add_weight`, `ops.one_hot`, `assign_add`), `EarlyStopping(monitor=
   "accuracy")`, a best-only `ModelCheckpoint(".keras")` read back by
   `load_model`, and a `LossHistory` callback (`on_train_begin`,
   `on_batch_end`, `on_epoch_end` logs).
3. ch07, the PyTorch variants of the low-level training: `train_step` with
   `loss.backward()`, `weight.value.grad`, `optimizer.apply` under
   `torch.no_grad()` and `model.zero_grad()`; the metric API
   (`update_state` / `result`, `Mean`, `stateless_update_state` /
   `stateless_result` / `stateless_reset_state`); a `keras.Model` subclass
   overriding `train_step` with a global `Mean` loss tracker exposed by a
   `metrics` property; and one calling `self.compute_loss` and updating
   `self.metrics` by name (the compiled metrics included), fit, evaluate,
   `reset_metrics`.
4. ch08 image classification: a convnet from scratch (`Rescaling`) trained on
   batches augmented by `RandomFlip` / `RandomRotation` / `RandomZoom`
   called outside the model (the book's `dataset.map`, here a `PyDataset`),
   a best-only `.keras` checkpoint; a small "pretrained" functional base
   (keras_hub's Xception shrunk) frozen and unfrozen (`trainable` counts),
   fast feature extraction with `predict`, feature extraction with
   augmentation through the frozen base, then fine-tuning its last layers.
5. ch09 residual blocks (`layers.add`, strided 1x1 projections) and the
   mini-Xception (BatchNormalization, SeparableConv2D, in-model augmentation).
6. ch10 interpretation: an activation model from the `Conv2D` /
   `MaxPooling2D` layers' `output`s, filter patterns by gradient ascent
   (the PyTorch variant: `requires_grad_`, `backward`, `ops.normalize`), and
   Grad-CAM with a classifier model built on an intermediate `layer.output`.
7. ch13 timeseries: `timeseries_dataset_from_array` (against a record of Keras
   3.15 on TensorFlow: Keras's needs TensorFlow) and the Jena models (dense,
   Conv1D, LSTM, `recurrent_dropout` LSTM and stacked GRU, Bidirectional)
   with checkpoints; SimpleRNN shapes.
8. ch14 text classification: `TextVectorization` multi-hot, bigrams and int
   (against the record), then Keras 3 on the vectorized data: a linear
   classifier with `EarlyStopping(restore_best_weights=True)`, a custom
   `OneHotEncoding` layer written with ops under a bidirectional LSTM,
   `Embedding(mask_zero=True)`, CBOW embeddings assigned to an LSTM model's.
9. ch15: the character tokenizer, the GRU language model and its stateful
   generation twin (`return_state`, `initial_state`, `set_weights`, greedy
   decoding with `predict`); the GRU sequence-to-sequence model (bidirectional
   `merge_mode="sum"`, `initial_state`, `weighted_metrics` with boolean sample
   weights) and the Transformer (custom encoder / decoder layers called with
   keyword tensors, `source != 0` masks, `use_causal_mask`, a positional
   embedding) with the chapter's greedy translation loop.
10. ch16: the mini GPT under `set_dtype_policy("mixed_float16")` (a tied
    embedding used in reverse, a `LearningRateSchedule` warm-up, from-logits
    loss, the LossScaleOptimizer made by compile), greedy, temperature and
    top-k sampling (`keras.random.categorical`, `ops.top_k`,
    `ops.take_along_axis`).
11. ch17: the VAE (a `Sampler` with its `SeedGenerator`, `compute_loss`
    overridden, trackers) and the denoising diffusion model (U-Net with
    `UpSampling2D`, `Normalization.adapt`, random noise in `call`, AdamW with
    `use_ema` on an `InverseTimeDecay`, a weights-only `.weights.h5`
    checkpoint).
12. ch18: KerasTuner's search as a plain loop (EarlyStopping, best epoch,
    retraining), the chapter's int8 quantization maths with ops, and a
    `mixed_bfloat16` model trained with `steps_per_execution=4` (Keras 3.15
    refuses more than one step per execution on torch: its run uses one).

Differences found and how they were settled (details in the tests named):
kerasish peeked at a batch before a custom-`train_step` fit that Keras does
not peek at (tests/random/test_keras_seed_parity_3.py), did not read the
peeked `PyDataset` batch (tests/trainers/test_py_dataset.py), ordered a
functional graph of keyword-called layers otherwise than Keras
(tests/models/test_functional_keyword_calls.py), returned batch-major RNN
sequences where Keras's are time-major in memory, so Dropout masks fell
elsewhere (test_keras_seed_parity_3.py), did not cast a sublayer's weight
read by a mixed parent (tests/layers/test_layer_casts.py), and wrapped int8
matmuls around (tests/ops/test_promotion.py): all fixed. Keras 3's rule that
a layer called with two tensors (a GRU with `initial_state`) gets no
implicit mask is not followed by kerasish (tf.keras 2's rule, README
"Design and conventions"): the seq2seq reference passes the mask explicitly.
"""

from __future__ import annotations

import functools
import json
import os
import warnings

import numpy as np
import pytest
import torch

import kerasish as keras

SEED = 1337


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The book's models, shrunk, are too small for two threads: one is faster
    (and much faster on a loaded machine, where two threads wait for each other)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def _fresh_names(keras_ref):
    keras_ref.utils.clear_session()
    keras.utils.clear_session()


def _np(x):
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def assert_same(ours, ref, rtol=1e-4, atol=1e-5, where="result"):
    """Nested results equal: strings, names and shapes exactly, numbers within
    the tolerances."""
    if isinstance(ref, dict):
        assert sorted(ours) == sorted(ref), where
        for k in ref:
            assert_same(ours[k], ref[k], rtol, atol, f"{where}[{k!r}]")
    elif isinstance(ref, (list, tuple)):
        assert len(ours) == len(ref), where
        for i, (a, b) in enumerate(zip(ours, ref)):
            assert_same(a, b, rtol, atol, f"{where}[{i}]")
    elif ref is None or isinstance(ref, (str, bool)):
        assert ours == ref, where
    else:
        np.testing.assert_allclose(_np(ours), _np(ref), rtol=rtol, atol=atol, err_msg=where)


def _both(keras_ref, program, *args, **kwargs):
    """The program's results under real Keras 3 and under kerasish."""
    results = []
    for K in (keras_ref, keras):
        K.utils.clear_session()
        K.utils.set_random_seed(SEED)
        results.append(program(K, *args, **kwargs))
    return results


# ------------------------------------------------- 1. ch07 ticket classifier
VOCAB, TAGS, DEPTS, N_TICKETS = 40, 12, 4, 48
_rng = np.random.default_rng(7)
TITLE = _rng.integers(0, 2, size=(N_TICKETS, VOCAB))
TEXT_BODY = _rng.integers(0, 2, size=(N_TICKETS, VOCAB))
TAGS_DATA = _rng.integers(0, 2, size=(N_TICKETS, TAGS))
PRIORITY = _rng.random(size=(N_TICKETS, 1))
DEPARTMENT = _rng.integers(0, DEPTS, size=(N_TICKETS, 1))


def _ticket_functional(K):
    layers = K.layers
    title = K.Input(shape=(VOCAB,), name="title")
    text_body = K.Input(shape=(VOCAB,), name="text_body")
    tags = K.Input(shape=(TAGS,), name="tags")
    features = layers.Concatenate()([title, text_body, tags])
    features = layers.Dense(16, activation="relu", name="dense_features")(features)
    priority = layers.Dense(1, activation="sigmoid", name="priority")(features)
    department = layers.Dense(DEPTS, activation="softmax", name="department")(features)
    model = K.Model(inputs=[title, text_body, tags], outputs=[priority, department])
    out = {}
    model.compile(optimizer="adam", loss=["mean_squared_error", "sparse_categorical_crossentropy"],
                  metrics=[["mean_absolute_error"], ["accuracy"]])
    h = model.fit([TITLE, TEXT_BODY, TAGS_DATA], [PRIORITY, DEPARTMENT], epochs=2, batch_size=16, verbose=0)
    out["list_history"] = h.history
    out["list_evaluate"] = model.evaluate([TITLE, TEXT_BODY, TAGS_DATA], [PRIORITY, DEPARTMENT], verbose=0)
    out["list_predict"] = list(model.predict([TITLE, TEXT_BODY, TAGS_DATA], verbose=0))

    model.compile(
        optimizer="adam",
        loss={"priority": "mean_squared_error", "department": "sparse_categorical_crossentropy"},
        metrics={"priority": ["mean_absolute_error"], "department": ["accuracy"]},
    )
    inputs = {"title": TITLE, "text_body": TEXT_BODY, "tags": TAGS_DATA}
    targets = {"priority": PRIORITY, "department": DEPARTMENT}
    h = model.fit(inputs, targets, epochs=1, batch_size=16, verbose=0)
    out["dict_history"] = h.history
    out["dict_evaluate"] = model.evaluate(inputs, targets, verbose=0, return_dict=True)
    out["dict_predict"] = list(model.predict(inputs, verbose=0))

    # introspection: model.layers, layer.input / layer.output
    out["layers"] = [(type(layer).__name__, layer.name) for layer in model.layers]
    concat = model.layers[3]
    out["concat_input"] = [(t.name, tuple(t.shape)) for t in concat.input]
    out["concat_output"] = tuple(concat.output.shape)
    features = model.layers[4].output
    difficulty = layers.Dense(3, activation="softmax", name="difficulty")(features)
    new_model = K.Model(inputs=[title, text_body, tags], outputs=[priority, department, difficulty])
    out["new_model_layers"] = [layer.name for layer in new_model.layers]
    out["new_model_predict"] = list(new_model.predict(inputs, verbose=0))
    out["new_model_weights"] = len(new_model.weights)
    return out


def test_ch07_ticket_classifier_functional(keras_ref):
    ref, ours = _both(keras_ref, _ticket_functional)
    assert ours["layers"] == ref["layers"]
    assert ours["concat_input"] == ref["concat_input"]
    assert ours["concat_output"] == ref["concat_output"] == (None, 2 * VOCAB + TAGS)
    assert ours["new_model_layers"] == ref["new_model_layers"]
    assert ours["new_model_weights"] == ref["new_model_weights"] == 8
    for key in ("list_history", "dict_history"):
        assert sorted(ours[key]) == sorted(ref[key]), key
    assert_same(ours, ref)


def _ticket_subclassed(K):
    layers = K.layers

    class CustomerTicketModel(K.Model):
        def __init__(self, num_departments):
            super().__init__()
            self.concat_layer = layers.Concatenate()
            self.mixing_layer = layers.Dense(16, activation="relu")
            self.priority_scorer = layers.Dense(1, activation="sigmoid")
            self.department_classifier = layers.Dense(num_departments, activation="softmax")

        def call(self, inputs):
            title = inputs["title"]
            text_body = inputs["text_body"]
            tags = inputs["tags"]
            features = self.concat_layer([title, text_body, tags])
            features = self.mixing_layer(features)
            priority = self.priority_scorer(features)
            department = self.department_classifier(features)
            return priority, department

    inputs = {"title": TITLE, "text_body": TEXT_BODY, "tags": TAGS_DATA}
    model = CustomerTicketModel(num_departments=DEPTS)
    priority, department = model(inputs)
    out = {"first_call": [priority, department]}
    model.compile(optimizer="adam", loss=["mean_squared_error", "sparse_categorical_crossentropy"],
                  metrics=[["mean_absolute_error"], ["accuracy"]])
    out["history"] = model.fit(inputs, [PRIORITY, DEPARTMENT], epochs=2, batch_size=16, verbose=0).history
    out["evaluate"] = model.evaluate(inputs, [PRIORITY, DEPARTMENT], verbose=0)
    out["predict"] = list(model.predict(inputs, verbose=0))
    out["weight_paths"] = [w.path for w in model.weights]

    # a subclassed layer-like model inside a functional model, and the reverse
    class Classifier(K.Model):
        def __init__(self, num_classes=2):
            super().__init__()
            if num_classes == 2:
                num_units, activation = 1, "sigmoid"
            else:
                num_units, activation = num_classes, "softmax"
            self.dense = layers.Dense(num_units, activation=activation)

        def call(self, inputs):
            return self.dense(inputs)

    x_in = K.Input(shape=(3,))
    features = layers.Dense(8, activation="relu")(x_in)
    outputs = Classifier(num_classes=10)(features)
    model = K.Model(inputs=x_in, outputs=outputs)
    x3 = np.random.default_rng(2).random((5, 3)).astype("float32")
    out["classifier_in_functional"] = model(x3)
    out["classifier_in_functional_weights"] = [w.path for w in model.weights]

    b_in = K.Input(shape=(8,))
    binary_classifier = K.Model(inputs=b_in, outputs=layers.Dense(1, activation="sigmoid")(b_in))

    class MyModel(K.Model):
        def __init__(self, num_classes=2):
            super().__init__()
            self.dense = layers.Dense(8, activation="relu")
            self.classifier = binary_classifier

        def call(self, inputs):
            return self.classifier(self.dense(inputs))

    model = MyModel()
    out["functional_in_subclassed"] = model(x3)
    out["functional_in_subclassed_weights"] = len(model.trainable_weights)
    return out


def test_ch07_ticket_classifier_subclassed(keras_ref):
    ref, ours = _both(keras_ref, _ticket_subclassed)
    assert ours["weight_paths"] == ref["weight_paths"]
    assert ours["classifier_in_functional_weights"] == ref["classifier_in_functional_weights"]
    assert_same(ours, ref)


# ------------------------------------- 2. ch07 custom metric and callbacks
N_MNIST = 96
_rng = np.random.default_rng(11)
MNIST_IMAGES = _rng.random((N_MNIST, 64)).astype("float32")
MNIST_LABELS = _rng.integers(0, 10, N_MNIST)
TRAIN_IMAGES, VAL_IMAGES = MNIST_IMAGES[32:], MNIST_IMAGES[:32]
TRAIN_LABELS, VAL_LABELS = MNIST_LABELS[32:], MNIST_LABELS[:32]


def _get_mnist_model(K, model_class=None):
    layers = K.layers
    inputs = K.Input(shape=(64,))
    features = layers.Dense(32, activation="relu")(inputs)
    features = layers.Dropout(0.5)(features)
    outputs = layers.Dense(10, activation="softmax")(features)
    return (model_class or K.Model)(inputs, outputs)


def _metric_and_callbacks(K, tmp_path):
    ops = K.ops

    class RootMeanSquaredError(K.metrics.Metric):
        def __init__(self, name="rmse", **kwargs):
            super().__init__(name=name, **kwargs)
            self.mse_sum = self.add_weight(name="mse_sum", initializer="zeros")
            self.total_samples = self.add_weight(name="total_samples", initializer="zeros")

        def update_state(self, y_true, y_pred, sample_weight=None):
            y_true = ops.one_hot(y_true, num_classes=ops.shape(y_pred)[1])
            mse = ops.sum(ops.square(y_true - y_pred))
            self.mse_sum.assign_add(mse)
            num_samples = ops.shape(y_pred)[0]
            self.total_samples.assign_add(num_samples)

        def result(self):
            return ops.sqrt(self.mse_sum / self.total_samples)

        def reset_state(self):
            self.mse_sum.assign(0.0)
            self.total_samples.assign(0.0)

    out = {}
    model = _get_mnist_model(K)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["accuracy", RootMeanSquaredError()])
    h = model.fit(TRAIN_IMAGES, TRAIN_LABELS, epochs=3, batch_size=16,
                  validation_data=(VAL_IMAGES, VAL_LABELS), verbose=0)
    out["rmse_history"] = h.history
    out["rmse_evaluate"] = model.evaluate(VAL_IMAGES, VAL_LABELS, verbose=0)

    path = os.path.join(tmp_path, f"checkpoint_path_{K.__name__}.keras")
    callbacks_list = [
        K.callbacks.EarlyStopping(monitor="accuracy", patience=1),
        K.callbacks.ModelCheckpoint(filepath=path, monitor="val_loss", save_best_only=True),
    ]
    model = _get_mnist_model(K)
    model.compile(optimizer=K.optimizers.Adam(0.05), loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    h = model.fit(TRAIN_IMAGES, TRAIN_LABELS, epochs=12, batch_size=16, callbacks=callbacks_list,
                  validation_data=(VAL_IMAGES, VAL_LABELS), verbose=0)
    out["early_stopping_history"] = h.history
    out["stopped_epoch"] = callbacks_list[0].stopped_epoch
    best = int(np.argmin(h.history["val_loss"]))
    loaded = K.models.load_model(path)
    out["checkpoint_val_loss"] = loaded.evaluate(VAL_IMAGES, VAL_LABELS, verbose=0, return_dict=True)["loss"]
    out["best_val_loss"] = h.history["val_loss"][best]

    class LossHistory(K.callbacks.Callback):
        def on_train_begin(self, logs):
            self.per_batch_losses = []
            self.per_epoch = []

        def on_batch_end(self, batch, logs):
            self.per_batch_losses.append(logs.get("loss"))

        def on_epoch_end(self, epoch, logs):
            self.per_epoch.append((epoch, self.per_batch_losses, sorted(logs)))
            self.per_batch_losses = []

    model = _get_mnist_model(K)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    history_cb = LossHistory()
    model.fit(TRAIN_IMAGES, TRAIN_LABELS, epochs=2, batch_size=16, callbacks=[history_cb],
              validation_data=(VAL_IMAGES, VAL_LABELS), verbose=0)
    out["per_epoch_keys"] = [(e, keys) for e, _, keys in history_cb.per_epoch]
    out["per_batch_losses"] = [losses for _, losses, _ in history_cb.per_epoch]
    return out


def test_ch07_custom_metric_and_callbacks(keras_ref, tmp_path):
    ref, ours = _both(keras_ref, _metric_and_callbacks, tmp_path)
    assert sorted(ours["rmse_history"]) == sorted(ref["rmse_history"])
    assert "val_rmse" in ours["rmse_history"]
    assert ours["stopped_epoch"] == ref["stopped_epoch"]
    assert ours["per_epoch_keys"] == ref["per_epoch_keys"]
    assert [len(b) for b in ours["per_batch_losses"]] == [len(b) for b in ref["per_batch_losses"]] == [4, 4]
    assert_same(ours["checkpoint_val_loss"], ours["best_val_loss"])
    assert_same(ours, ref)


# ---------------------------------------- 3. ch07 low-level training (torch)
def _low_level(K):
    ops = K.ops
    out = {}
    model = _get_mnist_model(K)
    loss_fn = K.losses.SparseCategoricalCrossentropy()
    optimizer = K.optimizers.Adam()

    def train_step(inputs, targets):
        predictions = model(inputs, training=True)
        loss = loss_fn(targets, predictions)
        loss.backward()
        gradients = [weight.value.grad for weight in model.trainable_weights]
        with torch.no_grad():
            optimizer.apply(gradients, model.trainable_weights)
        model.zero_grad()
        return loss

    batch_size = 16
    out["loop_losses"] = [train_step(TRAIN_IMAGES[i:i + batch_size], TRAIN_LABELS[i:i + batch_size])
                          for i in range(0, 64, batch_size)]
    out["loop_weights"] = model.get_weights()
    out["loop_iterations"] = int(optimizer.iterations)

    metric = K.metrics.SparseCategoricalAccuracy()
    targets = ops.array([0, 1, 2])
    predictions = ops.array([[1, 0, 0], [0, 1, 0], [0, 0, 1]])
    metric.update_state(targets, predictions)
    out["metric_result"] = f"{metric.result():.2f}"
    values = ops.array([0, 1, 2, 3, 4])
    mean_tracker = K.metrics.Mean()
    for value in values:
        mean_tracker.update_state(value)
    out["mean_result"] = f"{mean_tracker.result():.2f}"
    metric = K.metrics.SparseCategoricalAccuracy()
    metric_variables = metric.variables
    metric_variables = metric.stateless_update_state(metric_variables, targets, ops.array(
        [[1, 0, 0], [0, 1, 0], [1, 0, 0]]))
    out["stateless_result"] = f"{metric.stateless_result(metric_variables):.2f}"
    out["stateless_reset"] = [_np(v) for v in metric.stateless_reset_state()]
    out["metric_untouched"] = float(metric.result())

    # a Model subclass overriding train_step, with a global loss tracker
    loss_tracker = K.metrics.Mean(name="loss")

    class CustomModel(K.Model):
        def train_step(self, data):
            inputs, targets = data
            predictions = self(inputs, training=True)
            loss = loss_fn(targets, predictions)
            loss.backward()
            trainable_weights = [v for v in self.trainable_weights]
            gradients = [v.value.grad for v in trainable_weights]
            with torch.no_grad():
                self.optimizer.apply(gradients, trainable_weights)
            loss_tracker.update_state(loss)
            return {"loss": loss_tracker.result()}

        @property
        def metrics(self):
            return [loss_tracker]

    model = _get_mnist_model(K, CustomModel)
    model.compile(optimizer=K.optimizers.Adam())
    out["tracker_history"] = model.fit(TRAIN_IMAGES, TRAIN_LABELS, epochs=3, batch_size=16, verbose=0).history
    out["tracker_weights"] = model.get_weights()

    # a train_step with compute_loss and the compiled metrics
    class CustomModel2(K.Model):
        def train_step(self, data):
            inputs, targets = data
            predictions = self(inputs, training=True)
            loss = self.compute_loss(y=targets, y_pred=predictions)
            loss.backward()
            trainable_weights = [v for v in self.trainable_weights]
            gradients = [v.value.grad for v in trainable_weights]
            with torch.no_grad():
                self.optimizer.apply(gradients, trainable_weights)
            for metric in self.metrics:
                if metric.name == "loss":
                    metric.update_state(loss)
                else:
                    metric.update_state(targets, predictions)
            return {m.name: m.result() for m in self.metrics}

    model = _get_mnist_model(K, CustomModel2)
    model.compile(optimizer=K.optimizers.Adam(), loss=K.losses.SparseCategoricalCrossentropy(),
                  metrics=[K.metrics.SparseCategoricalAccuracy()])
    out["compute_loss_history"] = model.fit(TRAIN_IMAGES, TRAIN_LABELS, epochs=3, batch_size=16,
                                            verbose=0).history
    out["metric_names"] = [m.name for m in model.metrics]
    out["compute_loss_evaluate"] = model.evaluate(VAL_IMAGES, VAL_LABELS, verbose=0, return_dict=True)
    model.reset_metrics()
    out["after_reset"] = [_np(v) for m in model.metrics for v in m.variables]
    out["compute_loss_weights"] = model.get_weights()
    return out


def test_ch07_low_level_training_torch(keras_ref):
    ref, ours = _both(keras_ref, _low_level)
    for key in ("metric_result", "mean_result", "stateless_result", "loop_iterations", "metric_names"):
        assert ours[key] == ref[key], key
    assert ours["metric_result"] == "1.00" and ours["mean_result"] == "2.00"
    assert sorted(ours["compute_loss_history"]) == sorted(ref["compute_loss_history"])
    assert_same(ours, ref)


# ------------------------- 4. ch08 image classification, augmentation, transfer
_rng = np.random.default_rng(21)
CATS_DOGS = (_rng.random((40, 24, 24, 3)) * 255).astype("float32")
CATS_DOGS_LABELS = (CATS_DOGS[:, :12].mean(axis=(1, 2, 3)) > CATS_DOGS[:, 12:].mean(axis=(1, 2, 3))).astype("int32")
TRAIN_CD, VAL_CD = slice(0, 32), slice(32, 40)


def _augmented_batches(K, data_augmentation_layers, batch_size=8):
    """The book's `train_dataset.map(data_augmentation)`: the augmentation
    layers called on each batch outside the model (training mode by default)."""

    class AugmentedDataset(K.utils.PyDataset):
        def __len__(self):
            return 32 // batch_size

        def __getitem__(self, idx):
            images = CATS_DOGS[TRAIN_CD][idx * batch_size:(idx + 1) * batch_size]
            targets = CATS_DOGS_LABELS[TRAIN_CD][idx * batch_size:(idx + 1) * batch_size]
            for layer in data_augmentation_layers:
                images = layer(images)
            return images, targets

    return AugmentedDataset()


def _image_classification(K, tmp_path):
    layers = K.layers
    out = {}
    data_augmentation_layers = [
        layers.RandomFlip("horizontal"),
        layers.RandomRotation(0.1),
        layers.RandomZoom(0.2),
    ]
    augmented = [_np(img) for img in _augmented_batches(K, data_augmentation_layers)[0][0][:2]]
    out["augmented_sample"] = augmented

    inputs = K.Input(shape=(24, 24, 3))
    x = layers.Rescaling(1.0 / 255)(inputs)
    x = layers.Conv2D(filters=8, kernel_size=3, activation="relu")(x)
    x = layers.MaxPooling2D(pool_size=2)(x)
    x = layers.Conv2D(filters=16, kernel_size=3, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.25)(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    model = K.Model(inputs=inputs, outputs=outputs)
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    path = os.path.join(tmp_path, f"convnet_from_scratch_with_augmentation_{K.__name__}.keras")
    callbacks = [K.callbacks.ModelCheckpoint(filepath=path, save_best_only=True, monitor="val_loss")]
    history = model.fit(_augmented_batches(K, data_augmentation_layers), epochs=3,
                        validation_data=(CATS_DOGS[VAL_CD], CATS_DOGS_LABELS[VAL_CD]), callbacks=callbacks, verbose=0)
    out["scratch_history"] = history.history
    test_model = K.models.load_model(path)
    out["scratch_test"] = test_model.evaluate(CATS_DOGS, CATS_DOGS_LABELS, verbose=0)

    # a "pretrained" convnet base (keras_hub's Xception shrunk to a small functional model)
    base_in = K.Input(shape=(24, 24, 3))
    b = layers.Conv2D(8, 3, strides=2, use_bias=False, name="block1_conv1")(base_in)
    b = layers.BatchNormalization(name="block1_conv1_bn")(b)
    b = layers.Activation("relu", name="block1_conv1_act")(b)
    b = layers.SeparableConv2D(16, 3, padding="same", use_bias=False, name="block2_sepconv1")(b)
    b = layers.BatchNormalization(name="block2_sepconv1_bn")(b)
    conv_base = K.Model(base_in, b, name="xception_backbone")
    preprocessor = layers.Rescaling(scale=1 / 127.5, offset=-1)
    conv_base.trainable = True
    out["trainable_when_unfrozen"] = len(conv_base.trainable_weights)
    conv_base.trainable = False
    out["trainable_when_frozen"] = len(conv_base.trainable_weights)

    # fast feature extraction: conv_base.predict, then a classifier on the features
    features = conv_base.predict(preprocessor(CATS_DOGS), verbose=0)
    out["features"] = features
    f_in = K.Input(shape=features.shape[1:])
    f = layers.GlobalAveragePooling2D()(f_in)
    f = layers.Dense(8, activation="relu")(f)
    f = layers.Dropout(0.25)(f)
    model = K.Model(f_in, layers.Dense(1, activation="sigmoid")(f))
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    out["feature_history"] = model.fit(features[TRAIN_CD], CATS_DOGS_LABELS[TRAIN_CD], epochs=3, batch_size=8,
                                       validation_data=(features[VAL_CD], CATS_DOGS_LABELS[VAL_CD]),
                                       verbose=0).history

    # feature extraction with augmentation through the frozen base, then fine-tuning
    inputs = K.Input(shape=(24, 24, 3))
    x = preprocessor(inputs)
    x = conv_base(x)
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dense(8)(x)
    x = layers.Dropout(0.25)(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    model = K.Model(inputs, outputs)
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    out["frozen_history"] = model.fit(_augmented_batches(K, data_augmentation_layers), epochs=2,
                                      validation_data=(CATS_DOGS[VAL_CD], CATS_DOGS_LABELS[VAL_CD]),
                                      verbose=0).history
    out["frozen_base_weights"] = conv_base.get_weights()
    out["model_trainable"] = [w.path for w in model.trainable_weights]
    conv_base.trainable = True
    for layer in conv_base.layers[:-2]:
        layer.trainable = False
    model.compile(loss="binary_crossentropy", optimizer=K.optimizers.Adam(learning_rate=1e-3),
                  metrics=["accuracy"])
    path = os.path.join(tmp_path, f"fine_tuning_{K.__name__}.keras")
    callbacks = [K.callbacks.ModelCheckpoint(filepath=path, save_best_only=True, monitor="val_loss")]
    out["fine_tune_history"] = model.fit(_augmented_batches(K, data_augmentation_layers), epochs=2,
                                         validation_data=(CATS_DOGS[VAL_CD], CATS_DOGS_LABELS[VAL_CD]),
                                         callbacks=callbacks, verbose=0).history
    out["fine_tuned_trainable"] = [w.path for w in model.trainable_weights]
    out["fine_tuned_base_weights"] = conv_base.get_weights()
    out["fine_tuned_test"] = K.models.load_model(path).evaluate(CATS_DOGS, CATS_DOGS_LABELS, verbose=0)
    return out


def test_ch08_image_classification_augmentation_and_fine_tuning(keras_ref, tmp_path):
    ref, ours = _both(keras_ref, _image_classification, tmp_path)
    assert ours["trainable_when_unfrozen"] == ref["trainable_when_unfrozen"] == 7
    assert ours["trainable_when_frozen"] == ref["trainable_when_frozen"] == 0
    assert ours["model_trainable"] == ref["model_trainable"]
    assert ours["fine_tuned_trainable"] == ref["fine_tuned_trainable"]
    assert_same(ours, ref, rtol=2e-4, atol=2e-5)


# ------------------------------------------ 5. ch09 residual / Xception-style
def _convnet_patterns(K):
    layers = K.layers
    out = {}
    inputs = K.Input(shape=(16, 16, 3))
    x = layers.Rescaling(1.0 / 255)(inputs)

    def residual_block(x, filters, pooling=False):
        residual = x
        x = layers.Conv2D(filters, 3, activation="relu", padding="same")(x)
        x = layers.Conv2D(filters, 3, activation="relu", padding="same")(x)
        if pooling:
            x = layers.MaxPooling2D(2, padding="same")(x)
            residual = layers.Conv2D(filters, 1, strides=2)(residual)
        elif filters != residual.shape[-1]:
            residual = layers.Conv2D(filters, 1)(residual)
        x = layers.add([x, residual])
        return x

    x = residual_block(x, filters=4, pooling=True)
    x = residual_block(x, filters=8, pooling=True)
    x = residual_block(x, filters=12, pooling=False)
    x = layers.GlobalAveragePooling2D()(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    model = K.Model(inputs=inputs, outputs=outputs)
    images, labels = CATS_DOGS[:, 4:20, 4:20], CATS_DOGS_LABELS
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    out["residual_shapes"] = [tuple(layer.output.shape) for layer in model.layers]
    out["residual_history"] = model.fit(images, labels, epochs=2, batch_size=8, verbose=0).history

    # the mini-Xception: BatchNormalization, SeparableConv2D, strided residuals, augmentation
    inputs = K.Input(shape=(16, 16, 3))
    x = layers.RandomFlip("horizontal")(inputs)
    x = layers.RandomRotation(0.1)(x)
    x = layers.RandomZoom(0.2)(x)
    x = layers.Rescaling(1.0 / 255)(x)
    x = layers.Conv2D(filters=8, kernel_size=5, use_bias=False)(x)
    for size in [8, 16]:
        residual = x
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same", use_bias=False)(x)
        x = layers.BatchNormalization()(x)
        x = layers.Activation("relu")(x)
        x = layers.SeparableConv2D(size, 3, padding="same", use_bias=False)(x)
        x = layers.MaxPooling2D(3, strides=2, padding="same")(x)
        residual = layers.Conv2D(size, 1, strides=2, padding="same", use_bias=False)(residual)
        x = layers.add([x, residual])
    x = layers.GlobalAveragePooling2D()(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    model = K.Model(inputs=inputs, outputs=outputs)
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["accuracy"])
    out["xception_history"] = model.fit(images[:32], labels[:32], epochs=2, batch_size=8,
                                        validation_data=(images[32:], labels[32:]), verbose=0).history
    out["xception_weights"] = model.get_weights()
    out["xception_predict"] = model.predict(images, verbose=0)
    return out


def test_ch09_residual_and_xception_convnets(keras_ref):
    ref, ours = _both(keras_ref, _convnet_patterns)
    assert ours["residual_shapes"] == ref["residual_shapes"]
    assert_same(ours, ref, rtol=2e-4, atol=2e-5)


# ------------------------- 6. ch10 activations, filter patterns, Grad-CAM
def _interpretation(K):
    layers, ops = K.layers, K.ops
    out = {}
    inputs = K.Input(shape=(24, 24, 3))
    x = layers.Rescaling(1.0 / 255)(inputs)
    x = layers.Conv2D(filters=8, kernel_size=3, activation="relu")(x)
    x = layers.MaxPooling2D(pool_size=2)(x)
    x = layers.Conv2D(filters=8, kernel_size=3, activation="relu")(x)
    x = layers.GlobalAveragePooling2D()(x)
    model = K.Model(inputs, layers.Dense(1, activation="sigmoid")(x))
    img_tensor = np.expand_dims(CATS_DOGS[0], axis=0)

    layer_outputs, layer_names = [], []
    for layer in model.layers:
        if isinstance(layer, (layers.Conv2D, layers.MaxPooling2D)):
            layer_outputs.append(layer.output)
            layer_names.append(layer.name)
    activation_model = K.Model(inputs=model.input, outputs=layer_outputs)
    activations = activation_model.predict(img_tensor, verbose=0)
    out["layer_names"] = layer_names
    out["activations"] = list(activations)
    out["first_layer_activation_shape"] = tuple(activations[0].shape)

    # filter patterns by gradient ascent (the PyTorch variant)
    feature_extractor = K.Model(inputs=model.input, outputs=model.get_layer(name=layer_names[-1]).output)

    def compute_loss(image, filter_index):
        activation = feature_extractor(image)
        filter_activation = activation[:, 2:-2, 2:-2, filter_index]
        return ops.mean(filter_activation)

    def gradient_ascent_step(image, filter_index, learning_rate):
        image = image.clone().detach().requires_grad_(True)
        loss = compute_loss(image, filter_index)
        loss.backward()
        grads = image.grad
        grads = ops.normalize(grads)
        image = image + learning_rate * grads
        return image

    def generate_filter_pattern(filter_index):
        image = K.random.uniform(minval=0.4, maxval=0.6, shape=(1, 24, 24, 3)) * 255
        for _ in range(5):
            image = gradient_ascent_step(image, filter_index, 10.0)
        return image[0]

    def deprocess_image(image):
        image -= ops.mean(image)
        image /= ops.std(image)
        image *= 64
        image += 128
        image = ops.clip(image, 0, 255)
        image = image[2:-2, 2:-2, :]
        image = ops.cast(image, dtype="uint8")
        return ops.convert_to_numpy(image)

    patterns = [generate_filter_pattern(i) for i in (2, 5)]
    out["patterns"] = [_np(p) for p in patterns]
    out["deprocessed"] = [deprocess_image(p.detach().clone()) for p in patterns]

    # Grad-CAM: the last conv layer's output, a classifier model on it, the class gradient
    last_conv_layer = model.layers[4]
    last_conv_layer_model = K.Model(model.inputs, last_conv_layer.output)
    classifier_input = last_conv_layer.output
    x = classifier_input
    for layer_name in [model.layers[5].name, model.layers[6].name]:
        x = model.get_layer(layer_name)(x)
    classifier_model = K.Model(classifier_input, x)

    def get_top_class_gradients(img_array):
        last_conv_layer_output = last_conv_layer_model(img_array)
        last_conv_layer_output = last_conv_layer_output.clone().detach().requires_grad_(True)
        preds = classifier_model(last_conv_layer_output)
        top_pred_index = ops.argmax(preds[0])
        top_class_channel = preds[:, top_pred_index]
        top_class_channel.backward()
        grads = last_conv_layer_output.grad
        return grads, last_conv_layer_output

    grads, last_conv_layer_output = get_top_class_gradients(img_tensor)
    grads = ops.convert_to_numpy(grads)
    last_conv_layer_output = ops.convert_to_numpy(last_conv_layer_output)
    pooled_grads = np.mean(grads, axis=(0, 1, 2))
    last_conv_layer_output = last_conv_layer_output[0].copy()
    for i in range(pooled_grads.shape[-1]):
        last_conv_layer_output[:, :, i] *= pooled_grads[i]
    heatmap = np.mean(last_conv_layer_output, axis=-1)
    out["grads"] = grads
    out["heatmap"] = heatmap
    out["classifier_layers"] = [type(layer).__name__ for layer in classifier_model.layers]
    return out


def test_ch10_activations_filters_and_grad_cam(keras_ref):
    ref, ours = _both(keras_ref, _interpretation)
    assert ours["layer_names"] == ref["layer_names"]
    assert ours["classifier_layers"] == ref["classifier_layers"]
    assert np.abs(ours["grads"]).sum() > 0
    assert_same(ours, ref, rtol=2e-4, atol=2e-5)


# The TensorFlow-only utilities' results (timeseries_dataset_from_array, TextVectorization), recorded
# with Keras 3.15.1 on TensorFlow 2.21 by tools/fixtures/make_dlwp_fixture.py
FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "dlwp")


def _record():
    with open(os.path.join(FIXTURES, "record.json"), encoding="utf-8") as f:
        meta = json.load(f)
    with np.load(os.path.join(FIXTURES, "record.npz")) as npz:
        arrays = dict(npz)
    return meta, arrays


META, REC = _record()


# --------------------------------------------------------- 7. ch13 timeseries
def test_ch13_timeseries_dataset_from_array_equals_keras_record():
    dummy = list(keras.utils.timeseries_dataset_from_array(
        data=np.arange(10)[:-3], targets=np.arange(10)[3:], sequence_length=3, batch_size=2))
    assert len(dummy) == META["dummy_batches"] == 3
    for i, (x, y) in enumerate(dummy):
        np.testing.assert_array_equal(_np(x), REC[f"dummy_x_{i}"])
        np.testing.assert_array_equal(_np(y), REC[f"dummy_y_{i}"])
    jena = META["jena"]
    raw_data, temperature, delay = REC["raw_data"], REC["temperature"], jena["delay"]
    for split, start, end in (("train", 0, 200), ("val", 200, 300), ("test", 300, None)):
        got = list(keras.utils.timeseries_dataset_from_array(
            raw_data[:-delay], targets=temperature[delay:], sampling_rate=jena["sampling_rate"],
            sequence_length=jena["sequence_length"], shuffle=False, batch_size=32, start_index=start, end_index=end))
        assert [len(x) for x, _ in got] == META[f"jena_{split}_batch_sizes"], split
        np.testing.assert_allclose(np.concatenate([_np(x) for x, _ in got]), REC[f"jena_{split}_x"], rtol=1e-12)
        np.testing.assert_allclose(np.concatenate([_np(y) for _, y in got]), REC[f"jena_{split}_y"], rtol=1e-12)
    # shuffled: the same windows, in another order
    got = list(keras.utils.timeseries_dataset_from_array(
        raw_data[:-delay], targets=temperature[delay:], sampling_rate=jena["sampling_rate"],
        sequence_length=jena["sequence_length"], shuffle=True, seed=1, batch_size=32, end_index=200))
    targets = np.concatenate([_np(y) for _, y in got])
    assert not np.array_equal(targets, REC["jena_train_y"])
    np.testing.assert_allclose(np.sort(targets), np.sort(REC["jena_train_y"]), rtol=1e-12)


def _timeseries(K, tmp_path):
    layers = K.layers
    x_train, y_train = REC["jena_train_x"].astype("float32"), REC["jena_train_y"].astype("float32")
    val = (REC["jena_val_x"].astype("float32"), REC["jena_val_y"].astype("float32"))
    x_test, y_test = REC["jena_test_x"].astype("float32"), REC["jena_test_y"].astype("float32")
    sequence_length, num_features = x_train.shape[1:]
    out = {}

    def train(name, outputs_fn, epochs=2, checkpoint=True):
        inputs = K.Input(shape=(sequence_length, num_features))
        model = K.Model(inputs, outputs_fn(inputs))
        path = os.path.join(tmp_path, f"jena_{name}_{K.__name__}.keras")
        callbacks = [K.callbacks.ModelCheckpoint(path, save_best_only=True)] if checkpoint else []
        model.compile(optimizer="adam", loss="mse", metrics=["mae"])
        history = model.fit(x_train, y_train, batch_size=32, epochs=epochs, validation_data=val,
                            callbacks=callbacks, verbose=0)
        out[f"{name}_history"] = history.history
        if checkpoint:
            model = K.models.load_model(path)
        out[f"{name}_test_mae"] = model.evaluate(x_test, y_test, verbose=0)[1]
        out[f"{name}_predict"] = model.predict(x_test[:4], verbose=0)

    train("dense", lambda x: layers.Dense(1)(layers.Dense(16, activation="relu")(layers.Flatten()(x))))

    def conv(x):
        x = layers.Conv1D(8, 4, activation="relu")(x)
        x = layers.MaxPooling1D(2)(x)
        x = layers.Conv1D(8, 2, activation="relu")(x)
        x = layers.GlobalAveragePooling1D()(x)
        return layers.Dense(1)(x)

    train("conv", conv, epochs=1)
    train("lstm", lambda x: layers.Dense(1)(layers.LSTM(8)(x)), epochs=1)
    train("lstm_dropout", lambda x: layers.Dense(1)(layers.Dropout(0.5)(layers.LSTM(8, recurrent_dropout=0.25)(x))))

    def stacked_gru(x):
        x = layers.GRU(8, recurrent_dropout=0.5, return_sequences=True)(x)
        x = layers.GRU(8, recurrent_dropout=0.5)(x)
        return layers.Dense(1)(layers.Dropout(0.5)(x))

    train("stacked_gru_dropout", stacked_gru, epochs=1)
    train("bidirectional", lambda x: layers.Dense(1)(layers.Bidirectional(layers.LSTM(8))(x)), epochs=1,
          checkpoint=False)

    # SimpleRNN output shapes
    inputs = K.Input(shape=(None, 14))
    out["simple_rnn_any_length"] = tuple(layers.SimpleRNN(16)(inputs).shape)
    inputs = K.Input(shape=(120, 14))
    out["simple_rnn_last"] = tuple(layers.SimpleRNN(16, return_sequences=False)(inputs).shape)
    out["simple_rnn_sequences"] = tuple(layers.SimpleRNN(16, return_sequences=True)(inputs).shape)
    x = layers.SimpleRNN(16, return_sequences=True)(inputs)
    x = layers.SimpleRNN(16, return_sequences=True)(x)
    stacked = K.Model(inputs, layers.SimpleRNN(16)(x))
    out["simple_rnn_stacked"] = stacked.predict(np.ones((2, 120, 14), "float32") * 0.1, verbose=0)
    return out


def test_ch13_timeseries_models(keras_ref, tmp_path):
    ref, ours = _both(keras_ref, _timeseries, tmp_path)
    assert ours["simple_rnn_any_length"] == ref["simple_rnn_any_length"] == (None, 16)
    assert ours["simple_rnn_sequences"] == ref["simple_rnn_sequences"] == (None, 120, 16)
    assert_same(ours, ref, rtol=2e-4, atol=2e-5)


# ------------------------------------------------------ 8. ch14 text classification
REVIEWS = META["reviews"]
SENTIMENT = np.array([int(("great" in r.lower() or "loved" in r.lower()) and "not" not in r.lower())
                      for r in REVIEWS])


def test_ch14_text_vectorization_equals_keras_record():
    for name, kwargs in (("multi_hot", dict(max_tokens=16, split="whitespace", output_mode="multi_hot")),
                         ("bigrams", dict(max_tokens=30, split="whitespace", output_mode="multi_hot", ngrams=2)),
                         ("int", dict(max_tokens=18, split="whitespace", output_mode="int",
                                      output_sequence_length=10))):
        text_vectorization = keras.layers.TextVectorization(**kwargs)
        text_vectorization.adapt(REVIEWS)
        assert text_vectorization.get_vocabulary() == META[f"vocab_{name}"], name
        np.testing.assert_array_equal(_np(text_vectorization(REVIEWS)), REC[f"text_{name}"], err_msg=name)
    tokenize_no_padding = keras.layers.TextVectorization(
        vocabulary=text_vectorization.get_vocabulary(), split="whitespace", output_mode="int")
    assert _np(tokenize_no_padding(REVIEWS[:1])).tolist() == META["no_padding_first"]


def _text_classification(K):
    layers, ops = K.layers, K.ops
    out = {}
    train, val = slice(0, 32), slice(32, 40)
    bag_of_words, max_tokens = REC["text_multi_hot"].astype("float32"), 16

    def build_linear_classifier(max_tokens, name):
        inputs = K.Input(shape=(max_tokens,))
        outputs = layers.Dense(1, activation="sigmoid")(inputs)
        model = K.Model(inputs, outputs, name=name)
        model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
        return model

    early_stopping = K.callbacks.EarlyStopping(monitor="val_loss", restore_best_weights=True, patience=2)
    model = build_linear_classifier(max_tokens, "bag_of_words_classifier")
    history = model.fit(bag_of_words[train], SENTIMENT[train], validation_data=(bag_of_words[val], SENTIMENT[val]),
                        epochs=6, batch_size=8, callbacks=[early_stopping], verbose=0)
    out["bag_of_words_history"] = history.history
    out["bag_of_words_weights"] = model.get_weights()
    out["bag_of_words_test"] = model.evaluate(bag_of_words, SENTIMENT, verbose=0)

    sequences, max_length, max_tokens = REC["text_int"], 10, 18

    class OneHotEncoding(K.Layer):
        def __init__(self, depth, **kwargs):
            super().__init__(**kwargs)
            self.depth = depth

        def call(self, inputs):
            flat_inputs = ops.reshape(ops.cast(inputs, "int"), [-1])
            one_hot_vectors = ops.eye(self.depth)
            outputs = ops.take(one_hot_vectors, flat_inputs, axis=0)
            return ops.reshape(outputs, ops.shape(inputs) + (self.depth,))

    one_hot_encoding = OneHotEncoding(max_tokens)
    out["one_hot_shape"] = tuple(one_hot_encoding(sequences[:3]).shape)
    hidden_dim = 6
    inputs = K.Input(shape=(max_length,), dtype="int32")
    x = one_hot_encoding(inputs)
    x = layers.Bidirectional(layers.LSTM(hidden_dim))(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    model = K.Model(inputs, outputs, name="lstm_with_one_hot")
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    out["one_hot_history"] = model.fit(sequences[train], SENTIMENT[train], epochs=2, batch_size=8,
                                       validation_data=(sequences[val], SENTIMENT[val]), verbose=0).history

    inputs = K.Input(shape=(max_length,), dtype="int32")
    x = K.layers.Embedding(input_dim=max_tokens, output_dim=hidden_dim, mask_zero=True)(inputs)
    x = K.layers.Bidirectional(K.layers.LSTM(hidden_dim))(x)
    x = K.layers.Dropout(0.5)(x)
    outputs = K.layers.Dense(1, activation="sigmoid")(x)
    model = K.Model(inputs, outputs, name="lstm_with_embedding")
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    out["embedding_history"] = model.fit(sequences[train], SENTIMENT[train], epochs=2, batch_size=8,
                                         validation_data=(sequences[val], SENTIMENT[val]), verbose=0).history
    out["embedding_predict"] = model.predict(sequences, verbose=0)

    # CBOW word embeddings (the chapter's tf.data windows, with NumPy), then reused by an LSTM
    context_size = 2
    windows = [row[i:i + 2 * context_size + 1] for row in sequences for i in range(len(row) - 2 * context_size)
               if row[i + 2 * context_size] != 0]
    windows = np.array(windows)
    bags = np.concatenate([windows[:, :context_size], windows[:, context_size + 1:]], axis=1)
    labels = windows[:, context_size]
    inputs = K.Input(shape=(2 * context_size,))
    cbow_embedding = layers.Embedding(max_tokens, hidden_dim)
    x = cbow_embedding(inputs)
    x = layers.GlobalAveragePooling1D()(x)
    outputs = layers.Dense(max_tokens, activation="sigmoid")(x)
    cbow_model = K.Model(inputs, outputs)
    cbow_model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                       metrics=["sparse_categorical_accuracy"])
    out["cbow_history"] = cbow_model.fit(bags.astype("float32"), labels, batch_size=64, epochs=2, verbose=0).history

    inputs = K.Input(shape=(max_length,))
    lstm_embedding = layers.Embedding(input_dim=max_tokens, output_dim=hidden_dim, mask_zero=True)
    x = lstm_embedding(inputs)
    x = layers.Bidirectional(layers.LSTM(hidden_dim))(x)
    x = layers.Dropout(0.5)(x)
    outputs = layers.Dense(1, activation="sigmoid")(x)
    model = K.Model(inputs, outputs, name="lstm_with_cbow")
    lstm_embedding.embeddings.assign(cbow_embedding.embeddings)
    out["assigned"] = ops.convert_to_numpy(lstm_embedding.embeddings)
    model.compile(optimizer="adam", loss="binary_crossentropy", metrics=["accuracy"])
    out["cbow_lstm_history"] = model.fit(sequences[train].astype("float32"), SENTIMENT[train], epochs=2,
                                         batch_size=8, verbose=0).history
    return out


def test_ch14_text_classification_models(keras_ref):
    ref, ours = _both(keras_ref, _text_classification)
    assert ours["one_hot_shape"] == ref["one_hot_shape"] == (3, 10, 18)
    assert 0 < SENTIMENT.mean() < 1
    assert_same(ours, ref, rtol=2e-4, atol=2e-5)


# --------------------------------------- 9. ch15 language models, seq2seq, Transformer
def test_ch15_tokenizers_equal_keras_record():
    import re
    import string

    tokenizer = keras.layers.TextVectorization(standardize=None, split="character", output_sequence_length=20)
    tokenizer.adapt(META["char_features"])
    assert tokenizer.get_vocabulary() == META["char_vocabulary"]
    assert tokenizer.vocabulary_size() == META["char_vocabulary_size"]
    np.testing.assert_array_equal(_np(tokenizer(META["char_features"])), REC["char_ids"])

    english, spanish = _translation_tokenizers()
    assert english.get_vocabulary() == META["english_vocabulary"]
    assert spanish.get_vocabulary() == META["spanish_vocabulary"]
    np.testing.assert_array_equal(_np(english([p[0] for p in META["pairs"]])), REC["english_ids"])
    np.testing.assert_array_equal(_np(spanish([p[1] for p in META["pairs"]])), REC["spanish_ids"])
    np.testing.assert_array_equal(_np(spanish(["[start]", "[start] la película"])), REC["spanish_decoded_start"])
    assert re and string  # (used by the chapter's standardization)


def _translation_tokenizers():
    import re
    import string

    strip_chars = string.punctuation + "¿"
    strip_chars = strip_chars.replace("[", "").replace("]", "")

    def custom_standardization(input_strings):
        # tf.strings.lower / regex_replace -> NumPy strings and `re`
        return np.array([re.sub(f"[{re.escape(strip_chars)}]", "", s.lower()) for s in input_strings.tolist()])

    english_tokenizer = keras.layers.TextVectorization(max_tokens=40, output_mode="int", output_sequence_length=8)
    spanish_tokenizer = keras.layers.TextVectorization(max_tokens=30, output_mode="int", output_sequence_length=9,
                                                       standardize=custom_standardization)
    english_tokenizer.adapt([p[0] for p in META["pairs"]])
    spanish_tokenizer.adapt([p[1] for p in META["pairs"]])
    return english_tokenizer, spanish_tokenizer


def _char_language_model(K):
    layers, ops = K.layers, K.ops
    out = {}
    ids = REC["char_ids"]
    features, labels = ids[:, :-1], ids[:, 1:]
    vocabulary_size, embedding_dim, hidden_dim = META["char_vocabulary_size"], 8, 16
    inputs = layers.Input(shape=(features.shape[1],), dtype="int", name="token_ids")
    x = layers.Embedding(vocabulary_size, embedding_dim)(inputs)
    x = layers.GRU(hidden_dim, return_sequences=True)(x)
    x = layers.Dropout(0.1)(x)
    outputs = layers.Dense(vocabulary_size, activation="softmax")(x)
    model = K.Model(inputs, outputs)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy",
                  metrics=["sparse_categorical_accuracy"])
    out["history"] = model.fit(features, labels, batch_size=8, epochs=2, verbose=0).history

    inputs = K.Input(shape=(1,), dtype="int", name="token_ids")
    input_state = K.Input(shape=(hidden_dim,), name="state")
    x = layers.Embedding(vocabulary_size, embedding_dim)(inputs)
    x, output_state = layers.GRU(hidden_dim, return_state=True)(x, initial_state=input_state)
    outputs = layers.Dense(vocabulary_size, activation="softmax")(x)
    generation_model = K.Model(inputs=(inputs, input_state), outputs=(outputs, output_state))
    generation_model.set_weights(model.get_weights())

    tokens = META["char_vocabulary"]
    char_to_id = dict(zip(tokens, range(vocabulary_size)))
    id_to_char = dict(zip(range(vocabulary_size), tokens))
    prompt = "The plot "
    state = ops.zeros(shape=(1, hidden_dim))
    for token_id in [char_to_id[c] for c in prompt]:
        inputs = ops.expand_dims([token_id], axis=0)
        predictions, state = generation_model.predict((inputs, state), verbose=0)
    generated_ids = []
    for _ in range(12):
        next_char = int(np.argmax(predictions, axis=-1)[0])
        generated_ids.append(next_char)
        inputs = ops.expand_dims([next_char], axis=0)
        predictions, state = generation_model.predict((inputs, state), verbose=0)
    out["generated"] = "".join(id_to_char[token_id] for token_id in generated_ids)
    out["last_state"] = state
    return out


def test_ch15_character_language_model_and_generation(keras_ref):
    ref, ours = _both(keras_ref, _char_language_model)
    assert ours["generated"] == ref["generated"]
    assert_same(ours, ref, rtol=2e-4, atol=2e-5)


def _translation(K, english_tokenizer, spanish_tokenizer):
    layers, ops = K.layers, K.ops
    out = {}
    eng = _np(english_tokenizer([p[0] for p in META["pairs"]]))
    spa = _np(spanish_tokenizer([p[1] for p in META["pairs"]]))
    features = {"english": eng, "spanish": spa[:, :-1]}
    labels = spa[:, 1:]
    sample_weights = labels != 0
    vocab_size, sequence_length, embed_dim, hidden_dim = 40, 8, 8, 12
    target_vocab_size = len(spanish_tokenizer.get_vocabulary())

    # the GRU sequence-to-sequence model
    source = K.Input(shape=(None,), dtype="int32", name="english")
    x = layers.Embedding(vocab_size, embed_dim, mask_zero=True)(source)
    rnn_layer = layers.Bidirectional(layers.GRU(hidden_dim), merge_mode="sum")
    encoder_output = rnn_layer(x)
    target = K.Input(shape=(None,), dtype="int32", name="spanish")
    x = layers.Embedding(target_vocab_size, embed_dim, mask_zero=True)(target)
    if K is keras:
        x = layers.GRU(hidden_dim, return_sequences=True)(x, initial_state=encoder_output)
    else:
        # Keras 3 passes no mask to a layer called with two tensors (here the sequence and
        # `initial_state`, neither with a `<name>_mask` argument), so its decoder GRU steps through
        # the padding; kerasish keeps tf.keras 2's rule (the first tensor's mask, README "Design and
        # conventions"): the reference gets the Embedding's mask explicitly
        x = layers.GRU(hidden_dim, return_sequences=True)(x, initial_state=encoder_output, mask=target != 0)
    x = layers.Dropout(0.5)(x)
    target_predictions = layers.Dense(target_vocab_size, activation="softmax")(x)
    seq2seq_rnn = K.Model([source, target], target_predictions)
    seq2seq_rnn.compile(optimizer="adam", loss="sparse_categorical_crossentropy", weighted_metrics=["accuracy"])
    out["rnn_history"] = seq2seq_rnn.fit(features, labels, sample_weight=sample_weights, batch_size=8, epochs=2,
                                         validation_data=(features, labels, sample_weights), verbose=0).history

    class TransformerEncoder(K.Layer):
        def __init__(self, hidden_dim, intermediate_dim, num_heads):
            super().__init__()
            key_dim = hidden_dim // num_heads
            self.self_attention = layers.MultiHeadAttention(num_heads, key_dim)
            self.self_attention_layernorm = layers.LayerNormalization()
            self.feed_forward_1 = layers.Dense(intermediate_dim, activation="relu")
            self.feed_forward_2 = layers.Dense(hidden_dim)
            self.feed_forward_layernorm = layers.LayerNormalization()

        def call(self, source, source_mask):
            residual = x = source
            mask = source_mask[:, None, :]
            x = self.self_attention(query=x, key=x, value=x, attention_mask=mask)
            x = x + residual
            x = self.self_attention_layernorm(x)
            residual = x
            x = self.feed_forward_1(x)
            x = self.feed_forward_2(x)
            x = x + residual
            x = self.feed_forward_layernorm(x)
            return x

    class TransformerDecoder(K.Layer):
        def __init__(self, hidden_dim, intermediate_dim, num_heads):
            super().__init__()
            key_dim = hidden_dim // num_heads
            self.self_attention = layers.MultiHeadAttention(num_heads, key_dim)
            self.self_attention_layernorm = layers.LayerNormalization()
            self.cross_attention = layers.MultiHeadAttention(num_heads, key_dim)
            self.cross_attention_layernorm = layers.LayerNormalization()
            self.feed_forward_1 = layers.Dense(intermediate_dim, activation="relu")
            self.feed_forward_2 = layers.Dense(hidden_dim)
            self.feed_forward_layernorm = layers.LayerNormalization()

        def call(self, target, source, source_mask):
            residual = x = target
            x = self.self_attention(query=x, key=x, value=x, use_causal_mask=True)
            x = x + residual
            x = self.self_attention_layernorm(x)
            residual = x
            mask = source_mask[:, None, :]
            x = self.cross_attention(query=x, key=source, value=source, attention_mask=mask)
            x = x + residual
            x = self.cross_attention_layernorm(x)
            residual = x
            x = self.feed_forward_1(x)
            x = self.feed_forward_2(x)
            x = x + residual
            x = self.feed_forward_layernorm(x)
            return x

    class PositionalEmbedding(K.Layer):
        def __init__(self, sequence_length, input_dim, output_dim):
            super().__init__()
            self.token_embeddings = layers.Embedding(input_dim, output_dim)
            self.position_embeddings = layers.Embedding(sequence_length, output_dim)

        def call(self, inputs):
            positions = ops.cumsum(ops.ones_like(inputs), axis=-1) - 1
            embedded_tokens = self.token_embeddings(inputs)
            embedded_positions = self.position_embeddings(positions)
            return embedded_tokens + embedded_positions

    hidden_dim, intermediate_dim, num_heads = 8, 16, 2
    source = K.Input(shape=(None,), dtype="int32", name="english")
    x = PositionalEmbedding(sequence_length, vocab_size, hidden_dim)(source)
    encoder_output = TransformerEncoder(hidden_dim, intermediate_dim, num_heads)(source=x, source_mask=source != 0)
    target = K.Input(shape=(None,), dtype="int32", name="spanish")
    x = PositionalEmbedding(sequence_length, target_vocab_size, hidden_dim)(target)
    x = TransformerDecoder(hidden_dim, intermediate_dim, num_heads)(
        target=x, source=encoder_output, source_mask=source != 0)
    x = layers.Dropout(0.5)(x)
    target_predictions = layers.Dense(target_vocab_size, activation="softmax")(x)
    transformer = K.Model([source, target], target_predictions)
    transformer.compile(optimizer="adam", loss="sparse_categorical_crossentropy", weighted_metrics=["accuracy"])
    out["transformer_history"] = transformer.fit(features, labels, sample_weight=sample_weights, batch_size=8,
                                                 epochs=2, verbose=0).history
    out["transformer_weight_paths"] = [w.path for w in transformer.weights]

    spa_vocab = spanish_tokenizer.get_vocabulary()
    spa_index_lookup = dict(zip(range(len(spa_vocab)), spa_vocab))

    def generate_translation(input_sentence):
        tokenized_input_sentence = english_tokenizer([input_sentence])
        decoded_sentence = "[start]"
        for i in range(sequence_length):
            tokenized_target_sentence = spanish_tokenizer([decoded_sentence])
            tokenized_target_sentence = tokenized_target_sentence[:, :-1]
            inputs = [tokenized_input_sentence, tokenized_target_sentence]
            next_token_predictions = transformer.predict(inputs, verbose=0)
            sampled_token_index = np.argmax(next_token_predictions[0, i, :])
            sampled_token = spa_index_lookup[sampled_token_index]
            decoded_sentence += " " + sampled_token
            if sampled_token == "[end]":
                break
        return decoded_sentence

    out["translations"] = [generate_translation(p[0]) for p in META["pairs"][:3]]
    out["transformer_predict"] = transformer.predict(features, verbose=0)
    return out


def test_ch15_seq2seq_rnn_and_transformer(keras_ref):
    # the tokenizers need TensorFlow in Keras: kerasish's (equal to the record above) feed both runs
    english, spanish = _translation_tokenizers()
    ref, ours = _both(keras_ref, _translation, english, spanish)
    assert ours["transformer_weight_paths"] == ref["transformer_weight_paths"]
    assert ours["translations"] == ref["translations"]
    assert all(t.startswith("[start]") for t in ours["translations"])
    assert_same(ours, ref, rtol=2e-4, atol=2e-5)


# --------------------------------------- 10. ch16 a mini GPT, mixed precision, sampling
def _mini_gpt(K):
    layers, ops = K.layers, K.ops
    out = {}
    tokens = REC["char_ids"].astype("int32")
    x_data, y_data = tokens[:, :-1], tokens[:, 1:]
    vocab_size, sequence_length = META["char_vocabulary_size"], x_data.shape[1]

    class TransformerDecoder(K.Layer):
        def __init__(self, hidden_dim, intermediate_dim, num_heads):
            super().__init__()
            key_dim = hidden_dim // num_heads
            self.self_attention = layers.MultiHeadAttention(num_heads, key_dim, dropout=0.1)
            self.self_attention_layernorm = layers.LayerNormalization()
            self.feed_forward_1 = layers.Dense(intermediate_dim, activation="relu")
            self.feed_forward_2 = layers.Dense(hidden_dim)
            self.feed_forward_layernorm = layers.LayerNormalization()
            self.dropout = layers.Dropout(0.1)

        def call(self, inputs):
            residual = x = inputs
            x = self.self_attention(query=x, key=x, value=x, use_causal_mask=True)
            x = self.dropout(x)
            x = x + residual
            x = self.self_attention_layernorm(x)
            residual = x
            x = self.feed_forward_1(x)
            x = self.feed_forward_2(x)
            x = self.dropout(x)
            x = x + residual
            x = self.feed_forward_layernorm(x)
            return x

    class PositionalEmbedding(K.Layer):
        def __init__(self, sequence_length, input_dim, output_dim):
            super().__init__()
            self.token_embeddings = layers.Embedding(input_dim, output_dim)
            self.position_embeddings = layers.Embedding(sequence_length, output_dim)

        def call(self, inputs, reverse=False):
            if reverse:
                token_embeddings = self.token_embeddings.embeddings
                return ops.matmul(inputs, ops.transpose(token_embeddings))
            positions = ops.cumsum(ops.ones_like(inputs), axis=-1) - 1
            embedded_tokens = self.token_embeddings(inputs)
            embedded_positions = self.position_embeddings(positions)
            return embedded_tokens + embedded_positions

    class WarmupSchedule(K.optimizers.schedules.LearningRateSchedule):
        def __init__(self):
            self.rate = 2e-3
            self.warmup_steps = 4.0

        def __call__(self, step):
            step = ops.cast(step, dtype="float32")
            scale = ops.minimum(step / self.warmup_steps, 1.0)
            return self.rate * scale

    K.config.set_dtype_policy("mixed_float16")
    try:
        inputs = K.Input(shape=(None,), dtype="int32", name="inputs")
        embedding = PositionalEmbedding(sequence_length, vocab_size, 16)
        x = embedding(inputs)
        x = layers.LayerNormalization()(x)
        for _ in range(2):
            x = TransformerDecoder(16, 32, 2)(x)
        outputs = embedding(x, reverse=True)
        mini_gpt = K.Model(inputs, outputs)
    finally:
        K.config.set_dtype_policy("float32")
    out["dtypes"] = (str(mini_gpt.layers[1].compute_dtype), str(mini_gpt.layers[1].variable_dtype))
    schedule = WarmupSchedule()
    out["schedule"] = [float(ops.convert_to_numpy(schedule(step))) for step in range(0, 8, 2)]
    mini_gpt.compile(optimizer=K.optimizers.Adam(schedule),
                     loss=K.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    out["optimizer"] = type(mini_gpt.optimizer).__name__
    history = mini_gpt.fit(x_data, y_data, batch_size=2, epochs=2, steps_per_epoch=3,
                           validation_data=(x_data[:4], y_data[:4]), verbose=0)
    out["history"] = history.history
    out["output_dtype"] = str(mini_gpt(x_data[:1]).dtype)

    prompt = list(x_data[0, :5])

    def compiled_generate(sample_fn, max_length=12):
        tokens = prompt + [0] * (max_length - len(prompt))
        for i in range(len(prompt), max_length):
            prediction = mini_gpt.predict(np.array([tokens]), verbose=0)
            prediction = prediction[0, i - 1]
            next_token = ops.convert_to_numpy(sample_fn(prediction))
            tokens[i] = np.array(next_token).item()
        return tokens

    def greedy_search(preds):
        return ops.argmax(preds)

    def random_sample(preds, temperature=1.0):
        preds = preds / temperature
        return K.random.categorical(preds[None, :], num_samples=1)[0]

    def top_k(preds, k=5, temperature=1.0):
        preds = preds / temperature
        top_preds, top_indices = ops.top_k(preds, k=k, sorted=False)
        choice = K.random.categorical(top_preds[None, :], num_samples=1)[0]
        return ops.take_along_axis(top_indices, choice, axis=-1)

    out["greedy"] = compiled_generate(greedy_search)
    out["eager_logits"] = mini_gpt(ops.convert_to_numpy([prompt]))[0, -1]
    for temperature in (2.0, 0.2):
        out[f"sample_{temperature}"] = compiled_generate(functools.partial(random_sample, temperature=temperature))
    out["top_k"] = compiled_generate(functools.partial(top_k, k=3, temperature=0.5))
    return out


def test_ch16_mini_gpt_mixed_float16_and_sampling(keras_ref):
    ref, ours = _both(keras_ref, _mini_gpt)
    assert ours["dtypes"] == ref["dtypes"] == ("float16", "float32")
    assert ours["optimizer"] == ref["optimizer"] == "LossScaleOptimizer"
    assert ours["output_dtype"] == ref["output_dtype"]
    for key in ("greedy", "sample_2.0", "sample_0.2", "top_k"):
        assert ours[key] == ref[key], key
    # float16 compute: CPU float16 kernels round alike in both, but not to float32's 1e-4
    assert_same(ours, ref, rtol=2e-3, atol=2e-3)


# --------------------------------------------- 11. ch17 VAE and a tiny diffusion model
DIGITS = np.random.default_rng(31).random((32, 8, 8, 1)).astype("float32")


def _image_generation(K, tmp_path):
    layers, ops = K.layers, K.ops
    out = {}
    latent_dim = 2
    image_inputs = K.Input(shape=(8, 8, 1))
    x = layers.Conv2D(4, 3, activation="relu", strides=2, padding="same")(image_inputs)
    x = layers.Conv2D(8, 3, activation="relu", strides=2, padding="same")(x)
    x = layers.Flatten()(x)
    x = layers.Dense(8, activation="relu")(x)
    z_mean = layers.Dense(latent_dim, name="z_mean")(x)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(x)
    encoder = K.Model(image_inputs, [z_mean, z_log_var], name="encoder")

    class Sampler(K.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.seed_generator = K.random.SeedGenerator()
            self.built = True

        def call(self, z_mean, z_log_var):
            batch_size = ops.shape(z_mean)[0]
            z_size = ops.shape(z_mean)[1]
            epsilon = K.random.normal((batch_size, z_size), seed=self.seed_generator)
            return z_mean + ops.exp(0.5 * z_log_var) * epsilon

    latent_inputs = K.Input(shape=(latent_dim,))
    x = layers.Dense(2 * 2 * 8, activation="relu")(latent_inputs)
    x = layers.Reshape((2, 2, 8))(x)
    x = layers.Conv2DTranspose(8, 3, activation="relu", strides=2, padding="same")(x)
    x = layers.Conv2DTranspose(4, 3, activation="relu", strides=2, padding="same")(x)
    decoder_outputs = layers.Conv2D(1, 3, activation="sigmoid", padding="same")(x)
    decoder = K.Model(latent_inputs, decoder_outputs, name="decoder")

    class VAE(K.Model):
        def __init__(self, encoder, decoder, **kwargs):
            super().__init__(**kwargs)
            self.encoder = encoder
            self.decoder = decoder
            self.sampler = Sampler()
            self.reconstruction_loss_tracker = K.metrics.Mean(name="reconstruction_loss")
            self.kl_loss_tracker = K.metrics.Mean(name="kl_loss")

        def call(self, inputs):
            return self.encoder(inputs)

        def compute_loss(self, x, y, y_pred, sample_weight=None, training=True):
            original = x
            z_mean, z_log_var = y_pred
            reconstruction = self.decoder(self.sampler(z_mean, z_log_var))
            reconstruction_loss = ops.mean(
                ops.sum(K.losses.binary_crossentropy(original, reconstruction), axis=(1, 2)))
            kl_loss = -0.5 * (1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))
            total_loss = reconstruction_loss + ops.mean(kl_loss)
            self.reconstruction_loss_tracker.update_state(reconstruction_loss)
            self.kl_loss_tracker.update_state(kl_loss)
            return total_loss

    vae = VAE(encoder, decoder)
    vae.compile(optimizer=K.optimizers.Adam())
    out["vae_history"] = vae.fit(DIGITS, epochs=2, batch_size=8, verbose=0).history
    out["vae_metrics"] = [m.name for m in vae.metrics]
    out["decoded"] = vae.decoder.predict(np.array([[0.5, -0.5], [0.0, 1.0]]), verbose=0)

    # the denoising diffusion model, with a U-Net of two widths on 8x8 images
    batch_size, image_size = 8, 8

    def residual_block(x, width):
        input_width = x.shape[3]
        if input_width == width:
            residual = x
        else:
            residual = layers.Conv2D(width, 1)(x)
        x = layers.BatchNormalization(center=False, scale=False)(x)
        x = layers.Conv2D(width, 3, padding="same", activation="swish")(x)
        x = layers.Conv2D(width, 3, padding="same")(x)
        x = x + residual
        return x

    def get_model(image_size, widths, block_depth):
        noisy_images = K.Input(shape=(image_size, image_size, 3))
        noise_rates = K.Input(shape=(1, 1, 1))
        x = layers.Conv2D(widths[0], 1)(noisy_images)
        n = layers.UpSampling2D(image_size, interpolation="nearest")(noise_rates)
        x = layers.Concatenate()([x, n])
        skips = []
        for width in widths[:-1]:
            for _ in range(block_depth):
                x = residual_block(x, width)
                skips.append(x)
            x = layers.AveragePooling2D(pool_size=2)(x)
        for _ in range(block_depth):
            x = residual_block(x, widths[-1])
        for width in reversed(widths[:-1]):
            x = layers.UpSampling2D(size=2, interpolation="bilinear")(x)
            for _ in range(block_depth):
                x = layers.Concatenate()([x, skips.pop()])
                x = residual_block(x, width)
        pred_noise_masks = layers.Conv2D(3, 1, kernel_initializer="zeros")(x)
        return K.Model([noisy_images, noise_rates], pred_noise_masks)

    def diffusion_schedule(diffusion_times, min_signal_rate=0.02, max_signal_rate=0.95):
        start_angle = ops.cast(ops.arccos(max_signal_rate), "float32")
        end_angle = ops.cast(ops.arccos(min_signal_rate), "float32")
        diffusion_angles = start_angle + diffusion_times * (end_angle - start_angle)
        return ops.sin(diffusion_angles), ops.cos(diffusion_angles)

    class DiffusionModel(K.Model):
        def __init__(self, image_size, widths, block_depth, **kwargs):
            super().__init__(**kwargs)
            self.image_size = image_size
            self.denoising_model = get_model(image_size, widths, block_depth)
            self.seed_generator = K.random.SeedGenerator()
            self.loss = K.losses.MeanAbsoluteError()
            self.normalizer = K.layers.Normalization()

        def denoise(self, noisy_images, noise_rates, signal_rates):
            pred_noise_masks = self.denoising_model([noisy_images, noise_rates])
            pred_images = (noisy_images - noise_rates * pred_noise_masks) / signal_rates
            return pred_images, pred_noise_masks

        def call(self, images):
            images = self.normalizer(images)
            noise_masks = K.random.normal((batch_size, self.image_size, self.image_size, 3),
                                          seed=self.seed_generator)
            diffusion_times = K.random.uniform((batch_size, 1, 1, 1), minval=0.0, maxval=1.0,
                                               seed=self.seed_generator)
            noise_rates, signal_rates = diffusion_schedule(diffusion_times)
            noisy_images = signal_rates * images + noise_rates * noise_masks
            pred_images, pred_noise_masks = self.denoise(noisy_images, noise_rates, signal_rates)
            return pred_images, pred_noise_masks, noise_masks

        def compute_loss(self, x, y, y_pred, sample_weight=None, training=True):
            _, pred_noise_masks, noise_masks = y_pred
            return self.loss(noise_masks, pred_noise_masks)

    flowers = np.random.default_rng(32).random((16, 8, 8, 3)).astype("float32") * 255
    model = DiffusionModel(image_size, widths=[4, 8], block_depth=1)
    model.normalizer.adapt(flowers)
    model.compile(optimizer=K.optimizers.AdamW(
        learning_rate=K.optimizers.schedules.InverseTimeDecay(initial_learning_rate=1e-3, decay_steps=2,
                                                               decay_rate=0.1),
        use_ema=True, ema_overwrite_frequency=3))
    path = os.path.join(tmp_path, f"diffusion_model_{K.__name__}.weights.h5")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # (no val_loss to monitor: Keras warns, so does kerasish)
        history = model.fit(flowers, epochs=2, batch_size=batch_size, verbose=0, callbacks=[
            K.callbacks.ModelCheckpoint(filepath=path, save_weights_only=True, save_best_only=True)])
    out["diffusion_history"] = history.history
    out["diffusion_weights"] = model.denoising_model.get_weights()
    out["normalizer"] = [model.normalizer.mean, model.normalizer.variance]
    out["ema_iterations"] = int(model.optimizer.iterations)
    out["checkpoint_written"] = os.path.exists(path)
    return out


def test_ch17_vae_and_diffusion(keras_ref, tmp_path):
    ref, ours = _both(keras_ref, _image_generation, tmp_path)
    assert ours["vae_metrics"] == ref["vae_metrics"]
    assert sorted(ours["vae_history"]) == sorted(ref["vae_history"]) == ["kl_loss", "loss", "reconstruction_loss"]
    assert_same(ours, ref, rtol=2e-4, atol=2e-5)


# -------------------------- 12. ch18 best practices: tuning loop, int8 maths, bfloat16, steps_per_execution
def _best_practices(K):
    layers, ops = K.layers, K.ops
    out = {}
    x_train_full, y_train_full = MNIST_IMAGES, MNIST_LABELS
    x_train, x_val = x_train_full[:-32], x_train_full[-32:]
    y_train, y_val = y_train_full[:-32], y_train_full[-32:]

    def build_model(hp):
        model = K.Sequential([layers.Dense(hp["units"], activation="relu"), layers.Dense(10, activation="softmax")])
        model.compile(optimizer=hp["optimizer"], loss="sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    # KerasTuner's search, as a plain loop over the same space
    trials = []
    for units in (8, 16):
        for optimizer in ("rmsprop", "adam"):
            hp = {"units": units, "optimizer": optimizer}
            model = build_model(hp)
            history = model.fit(x_train, y_train, batch_size=16, epochs=4, validation_data=(x_val, y_val),
                                callbacks=[K.callbacks.EarlyStopping(monitor="val_loss", patience=2)], verbose=0)
            trials.append((max(history.history["val_accuracy"]), -units, optimizer, hp))
    trials.sort(key=lambda t: (t[0], t[1], t[2]), reverse=True)
    best_hps = [t[3] for t in trials[:2]]
    out["trial_scores"] = [t[0] for t in trials]
    out["best_hps"] = [(hp["units"], hp["optimizer"]) for hp in best_hps]

    def get_best_epoch(hp):
        model = build_model(hp)
        callbacks = [K.callbacks.EarlyStopping(monitor="val_loss", mode="min", patience=3)]
        history = model.fit(x_train, y_train, validation_data=(x_val, y_val), epochs=5, batch_size=16,
                            callbacks=callbacks, verbose=0)
        val_loss_per_epoch = history.history["val_loss"]
        return val_loss_per_epoch.index(min(val_loss_per_epoch)) + 1

    def get_best_trained_model(hp):
        best_epoch = get_best_epoch(hp)
        model = build_model(hp)
        model.fit(x_train_full, y_train_full, batch_size=16, epochs=int(best_epoch * 1.2), verbose=0)
        return best_epoch, model

    out["best_models"] = []
    for hp in best_hps:
        best_epoch, model = get_best_trained_model(hp)
        out["best_models"].append((best_epoch, model.evaluate(x_val, y_val, verbose=0)))

    # the chapter's int8 quantization, written with ops
    x = ops.array([[0.1, 0.9], [1.2, -0.8]])
    kernel = ops.array([[-0.1, -2.2], [1.1, 0.7]])

    def abs_max_quantize(value):
        abs_max = ops.max(ops.abs(value), keepdims=True)
        scale = ops.divide(127, abs_max + 1e-7)
        scaled_value = value * scale
        scaled_value = ops.clip(ops.round(scaled_value), -127, 127)
        scaled_value = ops.cast(scaled_value, dtype="int8")
        return scaled_value, scale

    int_x, x_scale = abs_max_quantize(x)
    int_kernel, kernel_scale = abs_max_quantize(kernel)
    int_y = ops.matmul(int_x, int_kernel)
    y = ops.cast(int_y, dtype="float32") / (x_scale * kernel_scale)
    out["int_dtypes"] = (str(int_x.dtype), str(int_y.dtype))
    out["int_values"] = [int_x, int_kernel, int_y]
    out["dequantized"] = y
    out["float_matmul"] = ops.matmul(x, kernel)

    # mixed precision (bfloat16 on the CPU) and several steps per execution
    K.config.set_dtype_policy("mixed_bfloat16")
    try:
        model = K.Sequential([K.Input((64,)), layers.Dense(16, activation="relu"), layers.Dense(10),
                              layers.Activation("softmax", dtype="float32")])
    finally:
        K.config.set_dtype_policy("float32")
    # (Keras 3.15 refuses steps_per_execution > 1 on torch, a ValueError, checked in the test: the
    # reference runs one step per execution, which changes no number, only the batch callbacks)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"],
                  steps_per_execution=1 if K is not keras else 4)
    seen = []
    history = model.fit(x_train, y_train, batch_size=8, epochs=2, verbose=0,
                        callbacks=[K.callbacks.LambdaCallback(on_train_batch_end=lambda batch, logs: seen.append(batch))])
    out["bf16_history"] = history.history
    out["bf16_batches_seen"] = seen
    seen = None
    out["bf16_output_dtype"] = str(model(x_val[:2]).dtype)
    out["bf16_kernel_dtype"] = str(model.layers[0].kernel.dtype).replace("torch.", "")  # (Keras: "float32")
    out["bf16_predict"] = model.predict(x_val, verbose=0)
    return out


def test_ch18_tuning_loop_quantization_bfloat16_steps_per_execution(keras_ref):
    ref, ours = _both(keras_ref, _best_practices)
    assert ours["best_hps"] == ref["best_hps"]
    assert ours["int_dtypes"] == ref["int_dtypes"]
    # four steps per execution: the batch callbacks see each execution's last batch, as Keras's
    # TensorFlow and JAX trainers report it
    assert ref["bf16_batches_seen"] == list(range(8)) * 2
    assert ours["bf16_batches_seen"] == [3, 7] * 2
    model = keras_ref.Sequential([keras_ref.Input((4,)), keras_ref.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse", steps_per_execution=4)
    with pytest.raises(ValueError, match="steps_per_execution"), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(np.zeros((8, 4), "float32"), np.zeros((8, 1), "float32"), verbose=0)
    assert ours["bf16_output_dtype"] == ref["bf16_output_dtype"]
    np.testing.assert_allclose(_np(ours["dequantized"]), _np(ours["float_matmul"]), atol=0.02)
    del ours["bf16_batches_seen"], ref["bf16_batches_seen"]
    # bfloat16 compute rounds alike in both, not to float32's 1e-4
    assert_same(ours, ref, rtol=1e-2, atol=1e-2)
