"""More programs users bring from Keras and PyTorch (issue #7, round 2):
sample weights on masked sequence outputs, torch schedulers and gradient
clipping on kerasish parameters and optimizers. References: real Keras 3
(same weights), real torch, NumPy."""

import numpy as np
import pytest
import torch

import kerasish


def _masked_tagger(K):
    inp = K.Input((6,))
    x = K.layers.Embedding(10, 4, mask_zero=True)(inp)
    x = K.layers.LSTM(5, return_sequences=True)(x)
    out = K.layers.Dense(3, activation="softmax")(x)
    model = K.Model(inp, out)
    model.compile("sgd", "sparse_categorical_crossentropy")
    return model


def _tagger_pair(keras_ref):
    ref, ours = _masked_tagger(keras_ref), _masked_tagger(kerasish)
    ours.set_weights(ref.get_weights())
    rng = np.random.default_rng(0)
    x = rng.integers(1, 10, (8, 6))
    x[:, 4:] = 0  # padded tail: masked
    x[0, 2:] = 0
    y = rng.integers(0, 3, (8, 6))
    return ref, ours, x, y


@pytest.mark.parametrize("shape", [(8, 6), (8, 6, 1)])
def test_per_step_sample_weight_on_masked_sequence_matches_keras(keras_ref, shape):
    ref, ours, x, y = _tagger_pair(keras_ref)
    sw = np.random.default_rng(1).uniform(0.2, 2.0, shape).astype("float32")
    want = ref.evaluate(x, y, sample_weight=sw, verbose=0, batch_size=8)
    got = ours.evaluate(x, y, sample_weight=sw, verbose=0, batch_size=8)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    h_ref = ref.fit(x, y, sample_weight=sw, verbose=0, batch_size=4, epochs=2, shuffle=False)
    h_ours = ours.fit(x, y, sample_weight=sw, verbose=0, batch_size=4, epochs=2, shuffle=False)
    np.testing.assert_allclose(h_ours.history["loss"], h_ref.history["loss"], rtol=1e-4, atol=1e-6)


def test_per_sample_column_weight_on_masked_sequence_equals_broadcast_weight(keras_ref):
    # Keras 3 on torch crashes here (an in-place `*=` of (8, 1) weights by the
    # (8, 6) mask); the weight means one value per sample, which Keras gives
    # for the same weights spelled out per step.
    ref, ours, x, y = _tagger_pair(keras_ref)
    col = np.linspace(0.5, 2.0, 8, dtype="float32")[:, None]
    want = ref.evaluate(x, y, sample_weight=np.broadcast_to(col, (8, 6)).copy(), verbose=0, batch_size=8)
    got = ours.evaluate(x, y, sample_weight=col, verbose=0, batch_size=8)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, given",
    [
        ({"sample_weight": np.linspace(0.5, 2.0, 8)}, "(8,)"),
        ({"sample_weight": np.ones((8, 5))}, "(8, 5)"),
        ({"class_weight": {0: 1.0, 1: 2.0, 2: 0.5}}, "(8,)"),
    ],
)
def test_sample_weight_that_does_not_fit_sequence_losses_raises_clearly(keras_ref, kwargs, given):
    # Keras 3 raises torch's RuntimeError from inside its loss here
    ref, ours, x, y = _tagger_pair(keras_ref)
    with pytest.raises(RuntimeError):
        ref.fit(x, y, verbose=0, batch_size=8, **kwargs)
    before = [w.copy() for w in ours.get_weights()]
    with pytest.raises(ValueError, match=r"sparse_categorical_crossentropy.*sample_weight.*" + given.replace("(", r"\(").replace(")", r"\)") + r".*\(8, 6\)"):
        ours.fit(x, y, verbose=0, batch_size=8, **kwargs)
    for a, b in zip(before, ours.get_weights()):
        np.testing.assert_array_equal(a, b)


def test_per_sample_weight_when_batch_equals_timesteps_is_refused_not_misread():
    # batch == timesteps: the (6,) weights broadcast over time steps in Keras
    # 3 (a number, weighing the wrong axis); kerasish refuses the ambiguity.
    loss = kerasish.losses.SparseCategoricalCrossentropy()
    y = torch.randint(0, 3, (6, 6))
    p = torch.softmax(torch.randn(6, 6, 3), -1)
    with pytest.raises(ValueError, match=r"shape \(6,\).*\(6, 6\).*\(6, 1\)"):
        loss(y, p, sample_weight=torch.linspace(0.5, 2.0, 6))
    # one sample: a (1,) weight is unambiguous and broadcasts as in Keras
    w = torch.tensor([0.5])
    per = kerasish.losses.SparseCategoricalCrossentropy(reduction="none")(y[:1], p[:1])
    np.testing.assert_allclose(float(loss(y[:1], p[:1], sample_weight=w)), float((per * 0.5).mean()), rtol=1e-6)
