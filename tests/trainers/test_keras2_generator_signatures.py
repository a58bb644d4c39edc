"""`fit_generator` / `evaluate_generator` / `predict_generator` take Keras 2's
signatures: positional `steps_per_epoch, epochs`, and `max_queue_size`,
`workers`, `use_multiprocessing` (cifar10_cnn.py calls
`fit_generator(datagen.flow(...), epochs=..., validation_data=..., workers=4)`)."""

import warnings

import numpy as np

import kerasish as keras


def _setup():
    rng = np.random.default_rng(0)
    x = rng.random((24, 3)).astype("float32")
    y = rng.random((24, 2)).astype("float32")

    def model():
        keras.utils.set_random_seed(1)
        m = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2)])
        m.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse")
        return m

    def gen():
        while True:
            for i in range(0, 24, 8):
                yield x[i:i + 8], y[i:i + 8]

    return x, y, model, gen


def test_positional_keras2_arguments_and_worker_options():
    x, y, model, gen = _setup()
    ref, ours = model(), model()
    h_ref = ref.fit(gen(), steps_per_epoch=3, epochs=2, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        h = ours.fit_generator(gen(), 3, 2, 0, max_queue_size=4, workers=4, use_multiprocessing=False)
        loss = ours.evaluate_generator(gen(), 3, None, 10, 4, False)
        pred = ours.predict_generator(gen(), 3, workers=2)
    assert len(h.history["loss"]) == 2
    np.testing.assert_allclose(h.history["loss"], h_ref.history["loss"], rtol=1e-6)
    np.testing.assert_allclose(loss, ref.evaluate(x, y, batch_size=8, verbose=0), rtol=1e-6)
    np.testing.assert_allclose(pred, ref.predict(x, verbose=0), rtol=1e-6, atol=1e-7)


def test_py_dataset_with_workers_through_fit_generator():
    x, y, model, _ = _setup()

    class Batches(keras.utils.Sequence):
        def __len__(self):
            return 3

        def __getitem__(self, i):
            return x[i * 8:(i + 1) * 8], y[i * 8:(i + 1) * 8]

    ref, ours = model(), model()
    h_ref = ref.fit(Batches(), epochs=2, shuffle=False, verbose=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        h = ours.fit_generator(Batches(), epochs=2, workers=4, shuffle=False, verbose=0)
    np.testing.assert_allclose(h.history["loss"], h_ref.history["loss"], rtol=1e-6)
