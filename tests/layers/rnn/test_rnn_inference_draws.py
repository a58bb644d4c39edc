"""Keras 3's `RNN.call` draws its cell's dropout masks on every eager call,
training or not (`_maybe_config_dropout_masks`), so with unseeded dropout
(torch's global RNG) a `predict`, `evaluate` or validation pass moves the
random state that the next training masks come from. kerasish drew nothing
in inference: a `fit` with `validation_split` trained on other dropout masks
than Keras from the second epoch on (found porting keras.io's "Timeseries
Classification with LSTM and CNN Models"). Checked against real Keras 3.
"""

import numpy as np
import pytest
import torch

import kerasish


@pytest.mark.parametrize("layer,kwargs", [("LSTM", {}), ("LSTM", {"implementation": 1}), ("GRU", {}),
                                          ("SimpleRNN", {})])
def test_inference_calls_draw_the_masks_keras_draws(keras_ref, layer, kwargs):
    x = torch.from_numpy(np.random.default_rng(0).normal(size=(8, 6, 3)).astype("float32"))
    states = []
    for framework in (keras_ref, kerasish):
        framework.utils.set_random_seed(3)
        cls = getattr(framework.layers, layer)
        model = framework.Sequential([framework.Input((6, 3)),
                                      cls(4, return_sequences=True, dropout=0.3, recurrent_dropout=0.2, **kwargs),
                                      cls(2, dropout=0.3, **kwargs)])
        model.compile(loss="mse")
        after = []
        for run in (lambda: model(x, training=False), lambda: model.predict(x, batch_size=4, verbose=0),
                    lambda: model.evaluate(x, np.zeros((8, 2)), batch_size=4, verbose=0)):
            framework.utils.set_random_seed(3)
            run()
            after.append(torch.rand(4))
        states.append(after)
    for ours, theirs in zip(states[1], states[0]):
        torch.testing.assert_close(ours, theirs, rtol=0, atol=0)


def test_fit_with_validation_trains_on_keras_masks(keras_ref):
    rng = np.random.default_rng(59)
    x = rng.normal(size=(40, 12, 1)).astype("float32")
    y = rng.integers(0, 2, 40)
    histories = []
    initial = None
    for framework in (keras_ref, kerasish):
        framework.utils.set_random_seed(5)
        model = framework.Sequential([framework.Input((12, 1)),
                                      framework.layers.LSTM(4, dropout=0.3, recurrent_dropout=0.3),
                                      framework.layers.Dense(2, activation="softmax")])
        if initial is None:
            initial = model.get_weights()
        model.set_weights(initial)
        model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
        framework.utils.set_random_seed(59)
        history = model.fit(x, y, epochs=3, batch_size=8, validation_split=0.2, shuffle=False, verbose=0)
        histories.append(history.history)
    for key, values in histories[0].items():
        np.testing.assert_allclose(histories[1][key], values, rtol=1e-5, atol=1e-6, err_msg=key)


def test_without_set_random_seed_inference_calls_draw_nothing():
    """The emulated draws follow Keras's stream only after `set_random_seed` (as the other Keras-draw
    emulations); without it an inference call leaves torch's global RNG alone (no wasted mask draws)."""
    from kerasish.random import seed_generator

    assert not seed_generator.keras_seeding()  # (conftest resets it after each test)
    layer = kerasish.layers.LSTM(4, dropout=0.3, recurrent_dropout=0.2)
    x = torch.randn(8, 6, 3)
    layer(x)
    before = torch.get_rng_state()
    layer(x, training=False)
    assert torch.equal(torch.get_rng_state(), before)
    layer(x, training=True)  # (training draws its masks)
    assert not torch.equal(torch.get_rng_state(), before)
