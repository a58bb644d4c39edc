"""keras.io developer guide "Writing a training loop from scratch in PyTorch"
(guides/writing_a_custom_training_loop_in_torch.py), shrunk: the same
functional model (Keras 3 on torch and kerasish, same initial weights) trained
by a hand-written loop over a torch DataLoader, (1) with a torch optimizer and
`torch.nn.CrossEntropyLoss`, (2) with a Keras optimizer's `apply` on the
`.value.grad`s, with train/val metrics `update_state` / `result` /
`reset_state`, and (3) with `model.losses` from an `add_loss` layer added to the
loss. Losses per step, metric results and final weights must agree.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kerasish as keras
from tests.ports.test_port_programs import assert_same

N, BATCH = 48, 16
RNG = np.random.default_rng(0)
X = RNG.random((N, 20)).astype("float32")
LABELS = RNG.integers(0, 10, N)
Y_ONE_HOT = np.eye(10, dtype="float32")[LABELS]


@pytest.fixture(autouse=True)
def _fresh_keras_names(keras_ref):
    keras_ref.utils.clear_session()


def _get_model(K, with_activity_reg=False):
    inputs = K.Input(shape=(20,), name="digits")
    x = K.layers.Dense(16, activation="relu")(inputs)
    if with_activity_reg:

        class ActivityRegularizationLayer(K.layers.Layer):
            def call(self, inputs):
                self.add_loss(1e-2 * torch.sum(inputs))
                return inputs

        x = ActivityRegularizationLayer()(x)
    x = K.layers.Dense(16, activation="relu")(x)
    outputs = K.layers.Dense(10, name="predictions")(x)
    model = K.Model(inputs=inputs, outputs=outputs)
    model.set_weights(
        [np.random.default_rng(i).normal(0, 0.3, w.shape).astype("float32") for i, w in enumerate(model.get_weights())]
    )
    return model


def _loader(targets):
    dataset = torch.utils.data.TensorDataset(torch.from_numpy(X), torch.from_numpy(targets))
    return torch.utils.data.DataLoader(dataset, batch_size=BATCH, shuffle=False)


def _torch_optimizer_loop(K):
    model = _get_model(K)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loss_fn = torch.nn.CrossEntropyLoss()
    losses = []
    for _ in range(2):
        for inputs, targets in _loader(LABELS):
            logits = model(inputs)
            loss = loss_fn(logits, targets)
            model.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(float(loss.detach()))
    return losses, model.get_weights()


def test_loop_with_a_torch_optimizer(keras_ref):
    ref, ours = _torch_optimizer_loop(keras_ref), _torch_optimizer_loop(keras)
    assert_same(ours, ref)


def _keras_optimizer_loop(K, with_activity_reg=False):
    model = _get_model(K, with_activity_reg)
    optimizer = K.optimizers.Adam(learning_rate=1e-3)
    loss_fn = K.losses.CategoricalCrossentropy(from_logits=True)
    train_acc_metric = K.metrics.CategoricalAccuracy()
    val_acc_metric = K.metrics.CategoricalAccuracy()
    losses, accuracies, n_model_losses = [], [], []
    for _ in range(2):
        for inputs, targets in _loader(Y_ONE_HOT):
            logits = model(inputs, training=True)
            loss = loss_fn(targets, logits)
            n_model_losses.append(len(model.losses))
            if model.losses:
                loss = loss + torch.sum(*model.losses)
            model.zero_grad()
            loss.backward()
            trainable_weights = [v for v in model.trainable_weights]
            gradients = [v.value.grad for v in trainable_weights]
            with torch.no_grad():
                optimizer.apply(gradients, trainable_weights)
            train_acc_metric.update_state(targets, logits)
            losses.append(float(loss.detach()))
        accuracies.append(float(train_acc_metric.result()))
        train_acc_metric.reset_state()
        for inputs, targets in _loader(Y_ONE_HOT):
            val_acc_metric.update_state(targets, model(inputs, training=False))
        accuracies.append(float(val_acc_metric.result()))
        val_acc_metric.reset_state()
    return {
        "losses": losses,
        "accuracies": accuracies,
        "n_model_losses": n_model_losses,
        "weights": model.get_weights(),
        "iterations": int(optimizer.iterations),
        "variables": [tuple(v.shape) for v in optimizer.variables],
    }


@pytest.mark.parametrize("with_activity_reg", [False, True], ids=["plain", "add_loss"])
def test_loop_with_a_keras_optimizer_and_metrics(keras_ref, with_activity_reg):
    ref = _keras_optimizer_loop(keras_ref, with_activity_reg)
    ours = _keras_optimizer_loop(keras, with_activity_reg)
    assert ours["n_model_losses"] == ref["n_model_losses"] == [int(with_activity_reg)] * 6
    assert ours["iterations"] == ref["iterations"] == 6
    assert ours["variables"] == ref["variables"]
    assert_same(ours["losses"], ref["losses"])
    assert_same(ours["accuracies"], ref["accuracies"])
    assert_same(ours["weights"], ref["weights"])
