"""Files move between kerasish and real Keras 3 (torch backend): `.weights.h5`
and `.keras`, both directions, identical outputs."""

import numpy as np
import pytest
import torch

import kerasish
from kerasish.models import Model
from kerasish.models import Sequential

pytest.importorskip("h5py")

RNG = np.random.default_rng(0)
X_DENSE = RNG.normal(size=(4, 6)).astype("float32")
X_IMG = RNG.normal(size=(2, 8, 8, 3)).astype("float32")
X_TOK = RNG.integers(1, 20, size=(3, 7))


def _api(k):
    """(layers, Input, Sequential, Model) of real Keras or kerasish."""
    if k is kerasish:
        return kerasish.layers, kerasish.layers.Input, Sequential, Model
    return k.layers, k.Input, k.Sequential, k.Model


def _dense_bn(k):
    L, Input, _, M = _api(k)
    inp = Input((6,))
    x = L.Dense(5, activation="relu")(inp)
    x = L.BatchNormalization()(x)
    return M(inp, L.Dense(2)(x))


def _conv(k):
    L, Input, S, _ = _api(k)
    return S(
        [
            Input((8, 8, 3)),
            L.Conv2D(4, 3, padding="same"),
            L.BatchNormalization(),
            L.MaxPooling2D(),
            L.Conv2D(2, 3),
            L.Flatten(),
            L.Dense(3),
        ]
    )


def _rnn(k):
    L, Input, S, _ = _api(k)
    return S(
        [
            Input((7,), dtype="int32"),
            L.Embedding(20, 5),
            L.LSTM(4, return_sequences=True),
            L.Bidirectional(L.GRU(3)),
            L.Dense(2),
        ]
    )


CASES = {"dense_bn": (_dense_bn, X_DENSE), "conv_bn": (_conv, X_IMG), "embedding_lstm": (_rnn, X_TOK)}


def _randomize(model, seed=3):
    rng = np.random.default_rng(seed)
    model.set_weights([rng.uniform(0.2, 1.2, w.shape).astype(w.dtype) for w in model.get_weights()])


def _k_out(model, x):
    return np.asarray(model.predict(x, verbose=0))


def _q_out(model, x):
    with torch.no_grad():
        return model(torch.as_tensor(x)).numpy()


@pytest.mark.parametrize("case", list(CASES))
def test_weights_h5_kerasish_to_keras(keras_ref, tmp_path, case):
    build, x = CASES[case]
    q, k = build(kerasish), build(keras_ref)
    _randomize(q)
    path = str(tmp_path / "q.weights.h5")
    kerasish.saving.save_weights(q, path)
    k.load_weights(path)
    np.testing.assert_allclose(_k_out(k, x), _q_out(q, x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", list(CASES))
def test_weights_h5_keras_to_kerasish(keras_ref, tmp_path, case):
    build, x = CASES[case]
    q, k = build(kerasish), build(keras_ref)
    _randomize(k)
    path = str(tmp_path / "k.weights.h5")
    k.save_weights(path)
    q.load_weights(path)  # Model.load_weights
    np.testing.assert_allclose(_q_out(q, x), _k_out(k, x), rtol=1e-5, atol=1e-6)


def _subclassed(k):
    L = k.layers

    class Net(k.Model if k is not kerasish else Model):
        def __init__(self):
            super().__init__()
            self.proj = L.Dense(4)
            self.blocks = [L.Dense(4, activation="tanh"), L.LayerNormalization()]
            self._head = L.Dense(2)

        def call(self, x):
            x = self.proj(x)
            for layer in self.blocks:
                x = layer(x)
            return self._head(x)

    return Net()


def test_subclassed_model_with_attribute_list_and_private_sublayers(keras_ref, tmp_path):
    q, k = _subclassed(kerasish), _subclassed(keras_ref)
    q(torch.as_tensor(X_DENSE)), k(X_DENSE)
    for src, seed, name in ((q, 1, "q.weights.h5"), (k, 2, "k.weights.h5")):
        _randomize(src, seed=seed)
        path = str(tmp_path / name)
        if src is q:
            kerasish.saving.save_weights(q, path)
            k.load_weights(path)
        else:
            k.save_weights(path)
            kerasish.saving.load_weights(q, path)
        np.testing.assert_allclose(_q_out(q, X_DENSE), _k_out(k, X_DENSE), rtol=1e-5, atol=1e-6)


def _train(model, x, y, fit):
    model.compile(optimizer="adam", loss="mse", metrics=["mae"])
    fit(model, x, y)


@pytest.mark.parametrize("case", ["dense_bn", "embedding_lstm"])
def test_keras_archive_kerasish_to_keras(keras_ref, tmp_path, case):
    build, x = CASES[case]
    q = build(kerasish)
    y = np.ones((len(x), 2), "float32")
    _train(q, x, y, lambda m, a, b: m.fit(a, b, epochs=2, verbose=0))
    path = str(tmp_path / "q.keras")
    kerasish.saving.save_model(q, path)
    k = keras_ref.saving.load_model(path)
    np.testing.assert_allclose(_k_out(k, x), _q_out(q, x), rtol=1e-5, atol=1e-6)
    assert type(k.optimizer).__name__ == "Adam" and int(k.optimizer.iterations) == int(q.optimizer.iterations)
    for kv, qv in zip(k.optimizer.variables, q.optimizer.variables):
        np.testing.assert_allclose(np.asarray(kv), np.asarray(qv), rtol=1e-6)


@pytest.mark.parametrize("case", ["dense_bn", "conv_bn", "embedding_lstm"])
def test_keras_archive_keras_to_kerasish(keras_ref, tmp_path, case):
    build, x = CASES[case]
    k = build(keras_ref)
    y = np.ones((len(x), 2 if case != "conv_bn" else 3), "float32")
    _train(k, x, y, lambda m, a, b: m.fit(a, b, epochs=2, verbose=0))
    path = str(tmp_path / "k.keras")
    k.save(path)
    q = kerasish.saving.load_model(path)
    np.testing.assert_allclose(_q_out(q, x), _k_out(k, x), rtol=1e-5, atol=1e-6)
    assert q.compiled and int(q.optimizer.iterations) == int(k.optimizer.iterations)
    for kv, qv in zip(k.optimizer.variables, q.optimizer.variables):
        np.testing.assert_allclose(np.asarray(qv), np.asarray(kv), rtol=1e-6)
    # and back again: kerasish re-saves what Keras wrote, Keras reads it
    kerasish.saving.save_model(q, str(tmp_path / "again.keras"))
    k2 = keras_ref.saving.load_model(str(tmp_path / "again.keras"))
    np.testing.assert_allclose(_k_out(k2, x), _k_out(k, x), rtol=1e-5, atol=1e-6)


def test_bfloat16_weights_both_ways(keras_ref, tmp_path):
    def build(k):
        L, Input, S, _ = _api(k)
        return S([Input((4,)), L.Dense(3, dtype="bfloat16")])

    k, q = build(keras_ref), build(kerasish)
    _randomize(k)
    k.save_weights(str(tmp_path / "k.weights.h5"))
    kerasish.saving.load_weights(q, str(tmp_path / "k.weights.h5"))
    assert q.weights[0].dtype == torch.bfloat16
    expected = [np.asarray(w.numpy(), "float32") for w in k.weights]
    np.testing.assert_array_equal([w.float().detach().numpy() for w in q.weights][0], expected[0])
    kerasish.saving.save_weights(q, str(tmp_path / "q.weights.h5"))
    k2 = build(keras_ref)
    k2.load_weights(str(tmp_path / "q.weights.h5"))
    for w, e in zip(k2.weights, expected):
        np.testing.assert_array_equal(np.asarray(w.numpy(), "float32"), e)


def test_keras_archive_with_mask_zero_functional_loads(keras_ref, tmp_path):
    # Keras records the Embedding mask as a `keras.src.ops.numpy.NotEqual`
    # graph operation feeding the LSTM's `mask=`; it loads as torch.not_equal
    def build(k):
        L, Input, _, M = _api(k)
        inp = Input((None,), dtype="int64")
        h = L.Embedding(20, 5, mask_zero=True)(inp)
        h = L.Bidirectional(L.LSTM(4, return_sequences=True))(h)
        return M(inp, L.Dense(2)(L.LSTM(3)(h)))

    k = build(keras_ref)
    x = X_TOK.copy()
    x[:, 5:] = 0
    x[0, 2:] = 0
    path = str(tmp_path / "k.keras")
    k.save(path)
    q = kerasish.saving.load_model(path)
    np.testing.assert_allclose(_q_out(q, x), _k_out(k, x), rtol=1e-5, atol=1e-6)
    # re-saved by kerasish, the op is written back as Keras's NotEqual
    kerasish.saving.save_model(q, str(tmp_path / "again.keras"))
    k2 = keras_ref.saving.load_model(str(tmp_path / "again.keras"))
    np.testing.assert_allclose(_k_out(k2, x), _k_out(k, x), rtol=1e-5, atol=1e-6)


def test_torch_ops_in_graph_save_as_keras_ops(keras_ref, tmp_path):
    a, b = kerasish.layers.Input((3,)), kerasish.layers.Input((3,))
    h = torch.exp(torch.add(kerasish.layers.Dense(3)(a), b)) + 1
    q = Model([a, b], torch.multiply(h, 2.0))
    assert [c["class_name"] for c in q.get_config()["layers"]][3:] == ["Add", "Exp", "Add", "Multiply"]
    x = [X_DENSE[:, :3], X_DENSE[:, 3:]]
    path = str(tmp_path / "q.keras")
    kerasish.saving.save_model(q, path)
    np.testing.assert_allclose(_k_out(keras_ref.saving.load_model(path), x), q.predict(x, verbose=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(kerasish.saving.load_model(path).predict(x, verbose=0), q.predict(x, verbose=0))
