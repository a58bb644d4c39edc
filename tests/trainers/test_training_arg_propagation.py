"""What `fit` / `evaluate` / `predict` pass to a model's `call`, compared with
real Keras 3 (torch backend): Keras 3's trainers call `self(x, training=True)`
only when the model's `call` takes `training`; a subclassed model whose
`call` has no `training` runs its BatchNormalization and Dropout layers in
their default (inference) mode during `fit` (keras.io's gnn_citations example
trains that way)."""

from __future__ import annotations

import numpy as np
import pytest

import kerasish


def _model(keras, with_training_arg):
    layers = keras.layers

    class WithTraining(keras.Model):
        def __init__(self):
            super().__init__()
            self.bn = layers.BatchNormalization()
            self.dense = layers.Dense(2)

        def call(self, x, training=None):
            return self.dense(self.bn(x))

    class WithoutTraining(WithTraining):
        def call(self, x):
            return self.dense(self.bn(x))

    return WithTraining() if with_training_arg else WithoutTraining()


@pytest.mark.parametrize("with_training_arg", [True, False])
def test_fit_training_mode_follows_call_signature(keras_ref, with_training_arg):
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, (16, 3)).astype("float32")
    y = rng.normal(size=(16, 2)).astype("float32")
    ref, ours = _model(keras_ref, with_training_arg), _model(kerasish, with_training_arg)
    ref(x[:2])
    ours(x[:2])
    ours.set_weights(ref.get_weights())
    for m, k in ((ref, keras_ref), (ours, kerasish)):
        m.compile(optimizer=k.optimizers.SGD(0.1), loss="mse")
    h_ref = ref.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    h_ours = ours.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    np.testing.assert_allclose(h_ours.history["loss"], h_ref.history["loss"], rtol=1e-5, atol=1e-6)
    for a, b in zip(ours.get_weights(), ref.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    # the moving statistics move only when fit ran the layer in training mode
    moving_mean = ours.bn.moving_mean.numpy()
    assert np.any(moving_mean != 0) == with_training_arg
    np.testing.assert_allclose(ours.evaluate(x, y, verbose=0), ref.evaluate(x, y, verbose=0), rtol=1e-5)
    np.testing.assert_allclose(ours.predict(x, verbose=0), ref.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_explicit_training_still_propagates_without_training_arg(keras_ref):
    """Called by hand with `training=True`, a model whose `call` takes no
    `training` still hands it to its layers (Keras 3 does too): only the
    trainers leave it out."""
    x = np.random.default_rng(1).normal(2.0, 3.0, (8, 3)).astype("float32")
    ref, ours = _model(keras_ref, False), _model(kerasish, False)
    ref(x)
    ours(x)
    ours.set_weights(ref.get_weights())
    out_ref = keras_ref.ops.convert_to_numpy(ref(x, training=True))
    out_ours = ours(x, training=True).detach().numpy()
    np.testing.assert_allclose(out_ours, out_ref, rtol=1e-5, atol=1e-6)
    # batch statistics, not the (initial) moving ones
    assert not np.allclose(out_ours, ours(x).detach().numpy(), atol=1e-3)
