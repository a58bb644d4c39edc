"""A loss list with `None` entries (`compile(loss=[fn, None])`) takes targets
for the outputs that have a loss only, in order, as Keras 3 does: keras.io's
miniature GPT fits a `Model(inputs, [logits, embeddings])` on one `y`. The
loss, history and weights are Keras's for the same weights and data."""

import numpy as np
import pytest

import kerasish as keras


def _model(lib, second_loss_first=False):
    inp = lib.Input((4,))
    hidden = lib.layers.Dense(3, name="hidden")(inp)
    logits = lib.layers.Dense(5, name="logits")(hidden)
    model = lib.Model(inp, [hidden, logits] if second_loss_first else [logits, hidden])
    fn = lib.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile("sgd", loss=[None, fn] if second_loss_first else [fn, None])
    return model


@pytest.mark.parametrize("second_loss_first", [False, True])
@pytest.mark.parametrize("as_list", [False, True])
def test_targets_for_the_outputs_with_a_loss_only(keras_ref, second_loss_first, as_list):
    rng = np.random.default_rng(0)
    x = rng.random((12, 4)).astype("float32")
    y = rng.integers(0, 5, 12)
    ref, ours = _model(keras_ref, second_loss_first), _model(keras, second_loss_first)
    ours.set_weights(ref.get_weights())
    target = [y] if as_list else y
    histories = [m.fit(x, target, batch_size=4, epochs=2, shuffle=False, verbose=0) for m in (ref, ours)]
    assert list(histories[1].history) == list(histories[0].history) == ["loss"]
    np.testing.assert_allclose(histories[1].history["loss"], histories[0].history["loss"], rtol=1e-6)
    for a, b in zip(ours.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(ours.evaluate(x, target, verbose=0), ref.evaluate(x, target, verbose=0), rtol=1e-6)


def test_targets_that_fit_no_pattern_still_raise():
    model = _model(keras)
    x = np.zeros((4, 4), "float32")
    y = np.zeros((4,), "int64")
    with pytest.raises(ValueError, match="different structures"):
        model.fit(x, [y, y, y], epochs=1, verbose=0)
