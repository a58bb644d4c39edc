"""Loss functions on a functional model's KerasTensors, as Keras 2 programs
write them for `add_loss` (variational_autoencoder.py:
`binary_crossentropy(inputs, outputs) * original_dim` + a KL term, then
`vae.add_loss(...)`, `compile(optimizer=...)`, `fit(x)` without targets)."""

import numpy as np
import pytest
import torch

import kerasish as keras

NAMES = [
    "mean_squared_error", "mean_absolute_error", "mean_absolute_percentage_error",
    "mean_squared_logarithmic_error", "cosine_similarity", "huber", "log_cosh", "kl_divergence", "poisson",
    "hinge", "squared_hinge", "categorical_hinge", "binary_crossentropy", "binary_focal_crossentropy",
    "categorical_crossentropy", "categorical_focal_crossentropy", "sparse_categorical_crossentropy", "dice",
    "tversky", "mse", "mae",
]


@pytest.mark.parametrize("name", NAMES)
def test_loss_function_on_keras_tensors_matches_eager(name):
    fn = getattr(keras.losses, name)
    inp = keras.Input((4,))
    dense = keras.layers.Dense(4, activation="softmax")
    out = dense(inp)
    sparse = name.startswith("sparse")
    target = torch.argmax(inp, dim=-1) if sparse else inp
    model = keras.Model(inp, fn(target, out))
    x = torch.rand(3, 4)
    eager = fn(x.argmax(-1) if sparse else x, dense(x))
    np.testing.assert_allclose(model(x).detach().numpy(), eager.detach().numpy(), rtol=1e-6, atol=1e-7)


def test_symbolic_add_loss_trains_like_the_eager_loss():
    rng = np.random.default_rng(0)
    x = rng.random((8, 6)).astype("float32")

    def build():
        keras.utils.set_random_seed(3)
        inputs = keras.Input((6,))
        h = keras.layers.Dense(3, activation="relu")(inputs)
        outputs = keras.layers.Dense(6, activation="sigmoid")(h)
        return inputs, outputs, keras.Model(inputs, outputs)

    inputs, outputs, model = build()
    loss = keras.backend.mean(keras.losses.binary_crossentropy(inputs, outputs) * 6)
    model.add_loss(loss)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    history = model.fit(x, batch_size=4, epochs=2, shuffle=False, verbose=0)

    _, _, ref = build()
    ref.compile(optimizer=keras.optimizers.SGD(0.1), loss=lambda y, p: torch.mean(
        keras.losses.binary_crossentropy(y, p) * 6))
    ref_history = ref.fit(x, x, batch_size=4, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(history.history["loss"], ref_history.history["loss"], rtol=1e-5)
    for a, b in zip(model.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7)
