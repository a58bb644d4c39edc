"""Keras 2 training API kept for ported programs: `compiled_loss` /
`compiled_metrics` in custom `train_step`s, the `*_generator` aliases,
`compile(sample_weight_mode=...)` and `Model.reset_states`."""

import numpy as np
import pytest
import torch

import kerasish as keras


def _data():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(24, 4)).astype("float32")
    return x, (x @ rng.normal(size=(4, 2))).astype("float32")


def _model(cls=keras.Model):
    inp = keras.Input((4,))
    hidden = keras.layers.Dense(3, kernel_regularizer=keras.regularizers.L2(0.01))(inp)
    return cls(inp, keras.layers.Dense(2)(hidden))


class Keras2Step(keras.Model):
    def train_step(self, data):
        x, y = data
        y_pred = self(x, training=True)
        loss = self.compiled_loss(y, y_pred, regularization_losses=self.losses)
        self.zero_grad()
        loss.backward()
        self.optimizer.apply([w.grad for w in self.trainable_weights], self.trainable_weights)
        self.compiled_metrics.update_state(y, y_pred)
        return {m.name: m.result() for m in self.metrics}


def test_keras2_custom_train_step_equals_the_default_step():
    x, y = _data()
    ref, custom = _model(), _model(Keras2Step)
    custom.set_weights(ref.get_weights())
    for m in (ref, custom):
        m.compile(optimizer=keras.optimizers.SGD(0.05), loss="mse", metrics=["mae"])
    h_ref = ref.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    h_custom = custom.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0)
    for a, b in zip(ref.get_weights(), custom.get_weights()):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    for key in ("loss", "mae"):
        np.testing.assert_allclose(h_custom.history[key], h_ref.history[key], rtol=1e-5, err_msg=key)
    assert custom.metrics_names == ref.metrics_names


def test_generator_aliases_warn_and_delegate():
    x, y = _data()
    model = _model()
    model.compile(optimizer="sgd", loss="mse")

    def gen():
        while True:
            for i in range(0, 24, 8):
                yield x[i:i + 8], y[i:i + 8]

    with pytest.warns(DeprecationWarning, match="fit_generator` is deprecated"):
        history = model.fit_generator(gen(), steps_per_epoch=3, epochs=2, verbose=0)
    assert len(history.history["loss"]) == 2
    with pytest.warns(DeprecationWarning, match="evaluate_generator"):
        loss = model.evaluate_generator(gen(), steps=3, verbose=0)
    np.testing.assert_allclose(loss, model.evaluate(x, y, batch_size=8, verbose=0), rtol=1e-5)
    with pytest.warns(DeprecationWarning, match="predict_generator"):
        pred = model.predict_generator((x[i:i + 8] for i in range(0, 24, 8)), verbose=0)
    np.testing.assert_allclose(pred, model.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_compile_accepts_keras2_sample_weight_mode():
    """tf.keras 2's `compile(sample_weight_mode="temporal")` (accepted and ignored there): per-timestep
    weights come from a 2-D `sample_weight` either way. NumPy reference: Keras's weighted mean squared
    error, `sum(w * mean_f(err**2)) / (batch * steps)` (sum_over_batch_size)."""
    rng = np.random.default_rng(1)
    x = rng.normal(size=(4, 5, 3)).astype("float32")
    y = rng.normal(size=(4, 5, 2)).astype("float32")
    w = (rng.random((4, 5)) > 0.3).astype("float32")
    model = keras.Sequential([keras.Input((5, 3)), keras.layers.TimeDistributed(keras.layers.Dense(2))])
    model.compile(optimizer="sgd", loss="mse", sample_weight_mode="temporal")
    kernel, bias = model.get_weights()
    per_step = (((x @ kernel + bias) - y) ** 2).mean(axis=-1)
    got = model.evaluate(x, y, sample_weight=w, batch_size=4, verbose=0)
    np.testing.assert_allclose(got, (per_step * w).sum() / w.size, rtol=1e-5)
    for mode in (None, ["temporal"], {"time_distributed": None}):
        model.compile(optimizer="sgd", loss="mse", sample_weight_mode=mode)
    with pytest.raises(ValueError, match="sample_weight_mode='samplewise'"):
        model.compile(optimizer="sgd", loss="mse", sample_weight_mode="samplewise")
    with pytest.raises(TypeError, match="target_tensors"):
        model.compile(optimizer="sgd", loss="mse", target_tensors=[y])


def test_reset_states_resets_stateful_rnns(keras_ref):
    inp = keras.Input((3, 2), batch_size=4)
    model = keras.Model(inp, keras.layers.SimpleRNN(5, stateful=True)(inp))
    x = torch.ones(4, 3, 2)
    first = model(x).detach().clone()
    second = model(x).detach().clone()
    assert not torch.allclose(first, second)  # the state carried over
    model.reset_states()
    np.testing.assert_allclose(model(x).detach().numpy(), first.numpy(), rtol=1e-6)
    # real Keras 3's stateful SimpleRNN, same weights: the same two steps, and reset_state()
    rin = keras_ref.Input((3, 2), batch_size=4)
    rnn = keras_ref.layers.SimpleRNN(5, stateful=True)
    ref = keras_ref.Model(rin, rnn(rin))
    ref.set_weights(model.get_weights())
    rnn.reset_state()
    for ours in (first, second):
        np.testing.assert_allclose(ours.numpy(), ref(x).detach().numpy(), rtol=1e-5, atol=1e-6)
    rnn.reset_state()
    np.testing.assert_allclose(first.numpy(), ref(x).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_test_on_batch_reset_metrics_false_accumulates_as_keras2():
    """Keras 2's `reset_metrics=False` (Keras 3 dropped the argument): the values returned accumulate over
    the batches since the last `reset_metrics()`, against a NumPy crossentropy / accuracy over all of them;
    the default still resets first (Keras 3)."""
    import kerasish as keras

    rng = np.random.RandomState(0)
    x = rng.randn(8, 4).astype("float32")
    y = np.eye(3, dtype="float32")[rng.randint(0, 3, 8)]
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="categorical_crossentropy", metrics=["accuracy"])
    p = np.clip(np.asarray(model.predict(x, verbose=0)), 1e-7, 1 - 1e-7)
    ce = -np.sum(y * np.log(p), axis=1)
    hit = (p.argmax(1) == y.argmax(1)).astype("float64")
    model.test_on_batch(x[:3], y[:3], reset_metrics=False)
    got = model.test_on_batch(x[3:], y[3:], reset_metrics=False)
    np.testing.assert_allclose(got, [ce.mean(), hit.mean()], rtol=1e-5)
    got = model.test_on_batch(x[3:], y[3:])  # resets first
    np.testing.assert_allclose(got, [ce[3:].mean(), hit[3:].mean()], rtol=1e-5)
    model.reset_metrics()
    first = model.train_on_batch(x[:3], y[:3], reset_metrics=False)
    np.testing.assert_allclose(first, [ce[:3].mean(), hit[:3].mean()], rtol=1e-5)  # (before the update)
    with pytest.raises(TypeError):
        model.train_on_batch(x, y, None, None, False, False)  # keyword-only: Keras 3's positional order stays


def test_trainable_changed_since_compile_warns_once():
    """tf.keras 2 trained what was trainable at `compile`; kerasish (as Keras 3) what is trainable now.
    A change after `compile` warns once per compile (naming the layer); compiling again, or setting it
    back before training (the toggled GAN), does not warn."""
    import warnings

    import kerasish as keras

    x, y = np.ones((4, 3), "float32"), np.zeros((4, 1), "float32")
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="body"), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    model.get_layer("body").trainable = False
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model.fit(x, y, verbose=0)
        model.train_on_batch(x, y)
        model.get_layer("body").trainable = True
        model.get_layer("body").trainable = False
        model.train_on_batch(x, y)
    messages = [str(w.message) for w in caught if "changed since `compile()`" in str(w.message)]
    assert len(messages) == 1 and "'body' (frozen)" in messages[0] and "tf.keras 2" in messages[0]
    assert caught[0].filename == __file__  # points at the user's line
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model.compile(optimizer="sgd", loss="mse")  # compiled frozen: nothing to say
        model.fit(x, y, verbose=0)
        model.get_layer("body").trainable = True
        model.get_layer("body").trainable = False  # set back before training
        model.train_on_batch(x, y)
