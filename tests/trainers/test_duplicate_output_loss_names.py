"""Per-output loss trackers get unique names when two outputs share one (both
outputs of a nested model, as in a GAN's `combined` model): tf.keras 2 names
them "model", "model_1"; Keras 3 logs the second output's loss under both."""

import numpy as np

import kerasish as keras


def _discriminator(lib=keras):
    inp = lib.Input((3,))
    return lib.Model(inp, [lib.layers.Dense(1, activation="sigmoid", name="generation")(inp),
                           lib.layers.Dense(4, activation="softmax", name="auxiliary")(inp)])


def test_two_outputs_of_one_nested_model_log_their_own_losses(keras_ref):
    disc = _discriminator()
    z = keras.Input((3,))
    combined = keras.Model(z, disc(z))
    combined.compile("sgd", loss=["binary_crossentropy", "sparse_categorical_crossentropy"])
    x = np.random.default_rng(0).random((6, 3)).astype("float32")
    y1, y2 = np.array([1.0, 0, 1, 0, 1, 0]), np.array([0, 1, 2, 3, 0, 1])
    total, first, second = combined.evaluate(x, [y1, y2], verbose=0)
    assert combined.metrics_names == ["loss", "functional_loss", "functional_1_loss"]
    # each output's loss by real Keras 3's loss functions on kerasish's predictions
    bce = keras_ref.losses.BinaryCrossentropy()(y1[:, None], disc.predict(x, verbose=0)[0])
    scce = keras_ref.losses.SparseCategoricalCrossentropy()(y2, disc.predict(x, verbose=0)[1])
    np.testing.assert_allclose([first, second, total], [float(bce), float(scce), float(bce + scce)], rtol=1e-5)
    # real Keras 3's total for the same model and weights (its per-output names collide)
    ref_disc = _discriminator(keras_ref)
    ref_disc.set_weights(disc.get_weights())
    rz = keras_ref.Input((3,))
    ref = keras_ref.Model(rz, ref_disc(rz))
    ref.compile("sgd", loss=["binary_crossentropy", "sparse_categorical_crossentropy"])
    np.testing.assert_allclose(total, ref.evaluate(x, [y1, y2], verbose=0, return_dict=True)["loss"], rtol=1e-5)


def test_distinct_names_unchanged(keras_ref):
    names = []
    for lib in (keras_ref, keras):
        model = _discriminator(lib)
        model.compile("sgd", loss=["binary_crossentropy", "sparse_categorical_crossentropy"])
        model.evaluate(np.zeros((2, 3), "float32"), [np.zeros(2), np.zeros(2)], verbose=0)
        names.append(model.metrics_names)
    assert names[1] == names[0] == ["loss", "generation_loss", "auxiliary_loss"]  # as real Keras 3 names them
