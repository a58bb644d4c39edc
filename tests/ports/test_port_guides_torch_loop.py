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


def _gan_program(K, real_images):
    latent_dim, batch_size = 4, len(real_images)
    discriminator = K.Sequential([
        K.Input(shape=(8, 8, 1)),
        K.layers.Conv2D(4, (3, 3), strides=(2, 2), padding="same"),
        K.layers.LeakyReLU(negative_slope=0.2),
        K.layers.GlobalMaxPooling2D(),
        K.layers.Dense(1),
    ], name="discriminator")
    generator = K.Sequential([
        K.Input(shape=(latent_dim,)),
        K.layers.Dense(4 * 4 * 3),
        K.layers.LeakyReLU(negative_slope=0.2),
        K.layers.Reshape((4, 4, 3)),
        K.layers.Conv2DTranspose(3, (4, 4), strides=(2, 2), padding="same"),
        K.layers.LeakyReLU(negative_slope=0.2),
        K.layers.Conv2D(1, (3, 3), padding="same", activation="sigmoid"),
    ], name="generator")
    for model in (discriminator, generator):
        model.set_weights([np.random.default_rng(i).normal(0, 0.3, w.shape).astype("float32")
                           for i, w in enumerate(model.get_weights())])
    d_optimizer = K.optimizers.Adam(learning_rate=0.0003)
    g_optimizer = K.optimizers.Adam(learning_rate=0.0004)
    loss_fn = K.losses.BinaryCrossentropy(from_logits=True)
    seed_generator = K.random.SeedGenerator(1337)
    losses = []
    for _ in range(2):
        random_latent_vectors = K.random.normal(shape=(batch_size, latent_dim), seed=seed_generator)
        generated_images = generator(random_latent_vectors)
        combined_images = torch.cat([generated_images, real_images])
        labels = torch.cat([torch.ones((batch_size, 1)), torch.zeros((real_images.shape[0], 1))], dim=0)
        labels += 0.05 * K.random.uniform(labels.shape, seed=seed_generator)
        predictions = discriminator(combined_images)
        d_loss = loss_fn(labels, predictions)
        discriminator.zero_grad()
        d_loss.backward()
        grads = [v.value.grad for v in discriminator.trainable_weights]
        with torch.no_grad():
            d_optimizer.apply(grads, discriminator.trainable_weights)

        random_latent_vectors = K.random.normal(shape=(batch_size, latent_dim), seed=seed_generator)
        misleading_labels = torch.zeros((batch_size, 1))
        predictions = discriminator(generator(random_latent_vectors))
        g_loss = loss_fn(misleading_labels, predictions)
        generator.zero_grad()
        g_loss.backward()
        grads = [v.value.grad for v in generator.trainable_weights]
        with torch.no_grad():
            g_optimizer.apply(grads, generator.trainable_weights)
        losses.append((float(d_loss.detach()), float(g_loss.detach())))
    return losses, discriminator.get_weights(), generator.get_weights()


def test_gan_training_step(keras_ref):
    """The guide's end-to-end GAN step: two Keras optimizers, `keras.random`
    draws from one SeedGenerator (equal in both frameworks), torch ops on the
    generated images, `zero_grad` per model."""
    real_images = torch.from_numpy(np.random.default_rng(5).random((3, 8, 8, 1)).astype("float32"))
    ref, ours = _gan_program(keras_ref, real_images), _gan_program(keras, real_images)
    assert_same(ours, ref)
