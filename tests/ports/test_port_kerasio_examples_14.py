"""More keras.io examples and guides (continued from
test_port_kerasio_examples_13.py), ported the same way: the program's code
with `import keras` changed to `import kerasish as keras` (one builder runs
with real Keras 3 on torch and with kerasish), `tf.*` rewritten with
`keras.ops` or `torch.*`, small deterministic synthetic data, shrunk sizes,
the same initial weights and the same batches in both runs.

Covered here:

53. "Customizing what happens in `fit()` with PyTorch" (guides/
    custom_train_step_in_torch), its first four programs (the GAN that
    ends the guide is test_port_kerasio_vision.py's): a functional
    `keras.Model` subclass whose `train_step` calls `self.zero_grad()`,
    `self.compute_loss(y=, y_pred=, sample_weight=)`, `loss.backward()`,
    reads `v.value.grad` and steps `self.optimizer.apply(...)` under
    `torch.no_grad()`, and updates `self.metrics` (the compiled "loss"
    tracker and the `compile_metrics` container, whose dict result fit
    flattens into the logs); the lower-level model with its own `Mean` /
    `MeanAbsoluteError` trackers listed in a `metrics` property and a model
    compiled with an optimizer only; `fit(sample_weight=...)` through a
    three-tuple `data`; and an overridden `test_step` for `evaluate`
    (list and dict results).
54. "Few-Shot learning with Reptile" (vision/reptile): a
    Conv2D/BatchNormalization/ReLU stack compiled with no arguments and
    trained by a hand-written loop (`tf.GradientTape` ->
    `torch.autograd.grad` over `v.value`, `SGD.apply_gradients(zip(...))`),
    the meta step done on `get_weights()` lists and written back with
    `set_weights`, the evaluation fine-tune undone by `set_weights`, and
    `predict` between; `model(images)` is called without `training=`, so
    BatchNormalization normalises with its moving statistics in both
    frameworks (they never move). Omniglot becomes a seeded dict of random
    images; the example's `tf.data` shuffle/batch/repeat becomes a seeded
    NumPy permutation. (The example's `tf.argmax(test_preds)` takes the
    argmax over the samples, axis 0; kept.)
"""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch

import kerasish

from tests.ports.test_port_programs import assert_history as assert_history_close
from tests.ports.test_port_programs import assert_same

# the same autouse fixtures as the earlier files: Keras seeded, one torch thread
from tests.ports.test_port_kerasio_examples_2 import _one_thread  # noqa: F401
from tests.ports.test_port_kerasio_examples_2 import _seeded  # noqa: F401


def _weights_by_path(keras, model):
    return {w.path: np.array(keras.ops.convert_to_numpy(w.value)) for w in model.weights}


def _assert_weights_by_path(ours, theirs, rtol=1e-5, atol=1e-6):
    assert sorted(ours) == sorted(theirs)
    for path, value in theirs.items():
        np.testing.assert_allclose(ours[path], value, rtol=rtol, atol=atol, err_msg=path)


# ------------------------------------------------------------ 53. customizing fit() with PyTorch
def _custom_fit_classes(keras):
    """The guide's three `CustomModel`s (the first and third differ only by `sample_weight`: the
    third is the first with it, as the guide says), and its `test_step` model."""

    class CustomModel(keras.Model):  # "A first simple example" + "Supporting sample_weight"
        def train_step(self, data):
            if len(data) == 3:
                x, y, sample_weight = data
            else:
                sample_weight = None
                x, y = data
            self.zero_grad()
            y_pred = self(x, training=True)
            loss = self.compute_loss(y=y, y_pred=y_pred, sample_weight=sample_weight)
            loss.backward()
            trainable_weights = [v for v in self.trainable_weights]
            gradients = [v.value.grad for v in trainable_weights]
            with torch.no_grad():
                self.optimizer.apply(gradients, trainable_weights)
            for metric in self.metrics:
                if metric.name == "loss":
                    metric.update_state(loss)
                else:
                    metric.update_state(y, y_pred, sample_weight=sample_weight)
            return {m.name: m.result() for m in self.metrics}

    class LowLevelModel(keras.Model):  # "Going lower-level"
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.loss_tracker = keras.metrics.Mean(name="loss")
            self.mae_metric = keras.metrics.MeanAbsoluteError(name="mae")
            self.loss_fn = keras.losses.MeanSquaredError()

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

        @property
        def metrics(self):
            return [self.loss_tracker, self.mae_metric]

    class EvalModel(keras.Model):  # "Providing your own evaluation step"
        def test_step(self, data):
            x, y = data
            y_pred = self(x, training=False)
            loss = self.compute_loss(y=y, y_pred=y_pred)
            for metric in self.metrics:
                if metric.name == "loss":
                    metric.update_state(loss)
                else:
                    metric.update_state(y, y_pred)
            return {m.name: m.result() for m in self.metrics}

    return CustomModel, LowLevelModel, EvalModel


def _custom_fit_run(keras, initial, data):
    x, y, sw = data
    keras.utils.clear_session()
    results = []
    for index, cls in enumerate(_custom_fit_classes(keras) + (_custom_fit_classes(keras)[0],)):
        inputs = keras.Input(shape=(32,))
        outputs = keras.layers.Dense(1)(inputs)
        model = cls(inputs, outputs)
        model.set_weights(initial)
        if index == 1:
            model.compile(optimizer="adam")  # (no loss, no metrics)
        elif index == 2:
            model.compile(loss="mse", metrics=["mae"])  # (no optimizer: evaluate only)
            results.append((model.evaluate(x, y, batch_size=16, verbose=0),
                            model.evaluate(x, y, batch_size=16, verbose=0, return_dict=True)))
            continue
        else:
            model.compile(optimizer="adam", loss="mse", metrics=["mae"])
        # (epochs 3 / 5 / 3 of 1000 samples; batch 32 by default)
        history = model.fit(x, y, sample_weight=sw if index == 3 else None, epochs=3, batch_size=16,
                            shuffle=False, verbose=0)
        results.append((history, [m.name for m in model.metrics], model.get_weights()))
    return results


def test_customizing_fit_with_pytorch(keras_ref):
    rng = np.random.default_rng(53)
    x = rng.random((64, 32))  # (1000, 32): float64, as the guide's np.random.random
    y = rng.random((64, 1))
    sw = rng.random((64, 1))
    keras_ref.utils.clear_session()
    inputs = keras_ref.Input(shape=(32,))
    initial = keras_ref.Model(inputs, keras_ref.layers.Dense(1)(inputs)).get_weights()
    theirs = _custom_fit_run(keras_ref, initial, (x, y, sw))
    ours = _custom_fit_run(kerasish, initial, (x, y, sw))
    # History keys: the compiled metrics come back flattened out of `compile_metrics`.
    assert sorted(theirs[0][0].history) == ["loss", "mae"]
    assert theirs[0][1] == ["loss", "compile_metrics"] and theirs[1][1] == ["loss", "mae"]
    for index in (0, 1, 3):
        assert_history_close(ours[index][0], theirs[index][0], rtol=1e-5, atol=1e-6)
        assert ours[index][1] == theirs[index][1]
        assert_same(ours[index][2], theirs[index][2], rtol=1e-5, atol=1e-6)
    # sample weights change the numbers (the third program is not the first again)
    assert abs(theirs[3][0].history["loss"][0] - theirs[0][0].history["loss"][0]) > 1e-2
    # evaluate() through the overridden test_step: [loss, mae] and the dict
    assert ours[2][0] == pytest.approx(theirs[2][0], rel=1e-6)
    assert ours[2][1] == pytest.approx(theirs[2][1], rel=1e-6)
    np.testing.assert_allclose(theirs[2][0], [theirs[2][1]["loss"], theirs[2][1]["mae"]])


# ------------------------------------------------------------ 54. Reptile
_REPTILE_SIZE, _REPTILE_CLASSES = 12, 3  # (28, 5)


def _reptile_model(keras):
    layers = keras.layers
    keras.utils.clear_session()

    def conv_bn(x):
        x = layers.Conv2D(filters=8, kernel_size=3, strides=2, padding="same")(x)  # (64)
        x = layers.BatchNormalization()(x)
        return layers.ReLU()(x)

    inputs = layers.Input(shape=(_REPTILE_SIZE, _REPTILE_SIZE, 1))
    x = conv_bn(inputs)
    x = conv_bn(x)
    x = conv_bn(x)
    x = conv_bn(x)
    x = layers.Flatten()(x)
    outputs = layers.Dense(_REPTILE_CLASSES, activation="softmax")(x)
    return keras.Model(inputs=inputs, outputs=outputs)


class _FewShotDataset:
    """The example's `Dataset` over a dict label -> images (Omniglot through tfds in the example), its
    `random.choices` from a seeded `random.Random`, and `tf.data`'s shuffle(100).batch().repeat()
    as a seeded permutation per repetition."""

    def __init__(self, data, seed):
        self.data = data
        self.labels = list(self.data.keys())
        self.random = random.Random(seed)
        self.rng = np.random.default_rng(seed)

    def get_mini_dataset(self, batch_size, repetitions, shots, num_classes, split=False):
        size = _REPTILE_SIZE
        temp_labels = np.zeros(shape=(num_classes * shots))
        temp_images = np.zeros(shape=(num_classes * shots, size, size, 1))
        if split:
            test_labels = np.zeros(shape=(num_classes))
            test_images = np.zeros(shape=(num_classes, size, size, 1))
        label_subset = self.random.choices(self.labels, k=num_classes)
        for class_idx, class_obj in enumerate(label_subset):
            temp_labels[class_idx * shots:(class_idx + 1) * shots] = class_idx
            if split:
                test_labels[class_idx] = class_idx
                images_to_split = self.random.choices(self.data[label_subset[class_idx]], k=shots + 1)
                test_images[class_idx] = images_to_split[-1]
                temp_images[class_idx * shots:(class_idx + 1) * shots] = images_to_split[:-1]
            else:
                temp_images[class_idx * shots:(class_idx + 1) * shots] = self.random.choices(
                    self.data[label_subset[class_idx]], k=shots)
        dataset = []
        for _ in range(repetitions):
            order = self.rng.permutation(len(temp_labels))
            for start in range(0, len(order), batch_size):
                idx = order[start:start + batch_size]
                dataset.append((torch.from_numpy(temp_images[idx].astype(np.float32)),
                                torch.from_numpy(temp_labels[idx].astype(np.int32))))
        if split:
            return dataset, test_images, test_labels
        return dataset


def _reptile_run(keras, initial, data, meta_iters=3):
    """The example's loop, shrunk: meta_iters 2000 -> 3, inner/eval batch 25 -> 10, inner_iters 4 -> 2,
    eval_iters 5 -> 2, train_shots 20 -> 4, shots 5 -> 2, classes 5 -> 3."""
    learning_rate, meta_step_size = 0.003, 0.25
    inner_batch_size = eval_batch_size = 10
    eval_iters, inner_iters, eval_interval, train_shots, shots = 2, 2, 1, 4, 2
    classes = _REPTILE_CLASSES
    train_dataset, test_dataset = _FewShotDataset(data[0], 1), _FewShotDataset(data[1], 2)
    model = _reptile_model(keras)
    model.set_weights(initial)
    model.compile()
    optimizer = keras.optimizers.SGD(learning_rate=learning_rate)

    def inner_step(images, labels):
        preds = model(images)
        loss = keras.losses.sparse_categorical_crossentropy(labels, preds)
        # (tape.gradient of a per-sample loss differentiates its sum)
        grads = torch.autograd.grad(keras.ops.sum(loss), [v.value for v in model.trainable_weights])
        optimizer.apply_gradients(zip(grads, model.trainable_weights))

    training, testing, predictions = [], [], []
    for meta_iter in range(meta_iters):
        frac_done = meta_iter / meta_iters
        cur_meta_step_size = (1 - frac_done) * meta_step_size
        old_vars = model.get_weights()
        mini_dataset = train_dataset.get_mini_dataset(inner_batch_size, inner_iters, train_shots, classes)
        for images, labels in mini_dataset:
            inner_step(images, labels)
        new_vars = model.get_weights()
        for var in range(len(new_vars)):
            new_vars[var] = old_vars[var] + ((new_vars[var] - old_vars[var]) * cur_meta_step_size)
        model.set_weights(new_vars)
        if meta_iter % eval_interval == 0:
            accuracies = []
            for dataset in (train_dataset, test_dataset):
                train_set, test_images, test_labels = dataset.get_mini_dataset(
                    eval_batch_size, eval_iters, shots, classes, split=True)
                old_vars = model.get_weights()
                for images, labels in train_set:
                    inner_step(images, labels)
                test_preds = model.predict(test_images, verbose=0)
                predictions.append(test_preds)
                test_preds = np.argmax(test_preds, axis=0)  # (tf.argmax's default axis 0, as written)
                num_correct = (test_preds == test_labels).sum()
                model.set_weights(old_vars)
                accuracies.append(num_correct / classes)
            training.append(accuracies[0])
            testing.append(accuracies[1])
    return training, testing, predictions, _weights_by_path(keras, model)


def test_reptile_few_shot(keras_ref):
    rng = np.random.default_rng(54)
    images = rng.random((10, 5, _REPTILE_SIZE, _REPTILE_SIZE, 1)).astype("float32")
    data = ({str(i): list(images[i]) for i in range(6)}, {str(i): list(images[i]) for i in range(6, 10)})
    initial = _reptile_model(keras_ref).get_weights()
    theirs = _reptile_run(keras_ref, initial, data)
    ours = _reptile_run(kerasish, initial, data)
    assert ours[0] == theirs[0] and ours[1] == theirs[1]  # accuracies
    assert_same(ours[2], theirs[2], rtol=1e-5, atol=1e-6)  # every predict() of the evaluations
    _assert_weights_by_path(ours[3], theirs[3])
    # the meta steps moved the kernels; the moving statistics never moved (model(x) is inference)
    assert not np.allclose(ours[3]["dense/kernel"], initial[-2])
    for path, value in theirs[3].items():
        if "moving_mean" in path:
            np.testing.assert_array_equal(ours[3][path], 0.0)
