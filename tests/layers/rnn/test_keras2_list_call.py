"""Keras 2's RNN calling convention `layer([sequences, *initial_state])`, and
the tf.keras 2 configs that record `lstm(x, initial_state=[h, c])` that way
(lstm_seq2seq.py's decoder, saved to s2s.h5)."""

import os

import numpy as np
import pytest
import torch

import kerasish as keras

S2S = os.path.join(os.path.dirname(__file__), "..", "..", "fixtures", "keras2_programs", "s2s.h5")


@pytest.mark.parametrize("name, n_states", [("LSTM", 2), ("GRU", 1), ("SimpleRNN", 1)])
def test_list_input_is_sequences_then_initial_state(name, n_states, keras_ref):
    layer = getattr(keras.layers, name)(3, return_state=True)
    x = torch.rand(2, 4, 5)
    states = [torch.rand(2, 3) for _ in range(n_states)]
    expected = layer(x, initial_state=states)
    got = layer([x, *states])
    for a, b in zip(got, expected):
        torch.testing.assert_close(a, b)
    torch.testing.assert_close(layer([x])[0], layer(x)[0])
    # real Keras 3 (which has only the `initial_state=` spelling), same weights
    ref = getattr(keras_ref.layers, name)(3, return_state=True)
    ref(x)
    ref.set_weights(layer.get_weights())
    for a, b in zip(got, ref(x, initial_state=states)):
        np.testing.assert_allclose(a.detach().numpy(), b.detach().numpy(), rtol=1e-5, atol=1e-6)


def test_list_call_in_a_functional_model(keras_ref):
    x, h, c = keras.Input((None, 5)), keras.Input((3,)), keras.Input((3,))
    lstm = keras.layers.LSTM(3)
    model = keras.Model([x, h, c], lstm([x, h, c]))
    reference = keras.Model([x, h, c], lstm(x, initial_state=[h, c]))
    data = [np.random.default_rng(0).random(s).astype("float32") for s in ((2, 4, 5), (2, 3), (2, 3))]
    np.testing.assert_allclose(model.predict(data, verbose=0), reference.predict(data, verbose=0), rtol=1e-6)
    rx, rh, rc = keras_ref.Input((None, 5)), keras_ref.Input((3,)), keras_ref.Input((3,))
    ref = keras_ref.Model([rx, rh, rc], keras_ref.layers.LSTM(3)(rx, initial_state=[rh, rc]))
    ref.set_weights(model.get_weights())
    np.testing.assert_allclose(model.predict(data, verbose=0), ref.predict(data, verbose=0), rtol=1e-5, atol=1e-6)
    clone = keras.Model.from_config(model.get_config())
    clone.set_weights(model.get_weights())
    np.testing.assert_allclose(clone.predict(data, verbose=0), model.predict(data, verbose=0), rtol=1e-6)


def test_tf_keras_h5_with_initial_state_loads():
    model = keras.models.load_model(S2S)
    assert [layer.name for layer in model.layers] == ["input_1", "input_2", "lstm", "lstm_1", "dense"]
    enc = np.zeros((1, 5, 6), "float32")
    dec = np.zeros((1, 7, 8), "float32")
    enc[0, :, 0] = dec[0, :, 0] = 1
    out = model.predict([enc, dec], verbose=0)
    assert out.shape == (1, 7, 8)
    np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-5)
