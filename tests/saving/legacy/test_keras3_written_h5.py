"""Legacy HDF5 written by real Keras 3 (it still writes `model.save("m.h5")`,
with Keras 3 meanings): kerasish loads it, predicts and trains as Keras 3 does."""

import warnings

import numpy as np

import kerasish


def test_keras3_legacy_h5_predicts_and_trains_like_keras3(keras_ref, tmp_path):
    keras = keras_ref
    keras.utils.set_random_seed(0)
    a = keras.Input((4,))
    b = keras.Input((3,))
    shared = keras.layers.Dense(5, activation="hard_sigmoid")  # Keras 3's hard_sigmoid here
    h = keras.layers.Concatenate()([shared(keras.layers.Dense(5)(a)), shared(keras.layers.Dense(5)(b))])
    inner = keras.Sequential([keras.Input((10,)), keras.layers.Dense(4, activation="tanh")])
    model = keras.Model([a, b], keras.layers.Dense(2)(inner(h)))
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="mse")
    rng = np.random.default_rng(0)
    x = [rng.normal(size=(6, 4)).astype("float32"), rng.normal(size=(6, 3)).astype("float32")]
    y = rng.normal(size=(6, 2)).astype("float32")
    model.train_on_batch(x, y)
    target = tmp_path / "k3.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.save(target)
    ours = kerasish.models.load_model(target)
    np.testing.assert_allclose(ours.predict(x, verbose=0), model.predict(x, verbose=0), rtol=1e-5, atol=1e-5)
    assert int(ours.optimizer.iterations) == 1
    model.train_on_batch(x, y)
    ours.train_on_batch(x, y)
    for w_ref, w, var in zip(model.get_weights(), ours.get_weights(), ours.weights):
        np.testing.assert_allclose(w, w_ref, rtol=1e-5, atol=1e-5, err_msg=var.path)
