"""Per-output loss trackers get unique names when two outputs share one (both
outputs of a nested model, as in a GAN's `combined` model): tf.keras 2 names
them "model", "model_1"; Keras 3 logs the second output's loss under both."""

import numpy as np

import kerasish as keras


def _discriminator():
    inp = keras.Input((3,))
    return keras.Model(inp, [keras.layers.Dense(1, activation="sigmoid", name="generation")(inp),
                             keras.layers.Dense(4, activation="softmax", name="auxiliary")(inp)])


def test_two_outputs_of_one_nested_model_log_their_own_losses():
    disc = _discriminator()
    z = keras.Input((3,))
    combined = keras.Model(z, disc(z))
    combined.compile("sgd", loss=["binary_crossentropy", "sparse_categorical_crossentropy"])
    x = np.random.default_rng(0).random((6, 3)).astype("float32")
    y1, y2 = np.array([1.0, 0, 1, 0, 1, 0]), np.array([0, 1, 2, 3, 0, 1])
    total, first, second = combined.evaluate(x, [y1, y2], verbose=0)
    assert combined.metrics_names == ["loss", "functional_loss", "functional_1_loss"]
    bce = keras.losses.BinaryCrossentropy()(y1[:, None], disc.predict(x, verbose=0)[0])
    scce = keras.losses.SparseCategoricalCrossentropy()(y2, disc.predict(x, verbose=0)[1])
    np.testing.assert_allclose([first, second, total], [float(bce), float(scce), float(bce + scce)], rtol=1e-5)


def test_distinct_names_unchanged():
    model = _discriminator()
    model.compile("sgd", loss=["binary_crossentropy", "sparse_categorical_crossentropy"])
    model.evaluate(np.zeros((2, 3), "float32"), [np.zeros(2), np.zeros(2)], verbose=0)
    assert model.metrics_names == ["loss", "generation_loss", "auxiliary_loss"]
