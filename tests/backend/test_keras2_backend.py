"""Keras 2's backend functions (`K.*`) against a record of what tf.keras 2
returned on the same inputs (tests/fixtures/keras2_backend, written by
tools/fixtures/make_keras2_backend_fixture.py with tf-keras 2.21), plus the
symbolic use inside functional models and the state helpers."""

import importlib.util
import json
import os

import numpy as np
import pytest
import torch

import kerasish as keras
from kerasish import backend as K

HERE = os.path.join(os.path.dirname(__file__), "..", "fixtures", "keras2_backend")
_spec = importlib.util.spec_from_file_location("k2_cases", os.path.join(HERE, "cases.py"))
cases = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(cases)
RECORD = np.load(os.path.join(HERE, "k_functions.npz"))
META = json.load(open(os.path.join(HERE, "k_functions.json")))["cases"]


def _to_torch(v):
    if isinstance(v, np.ndarray):
        return torch.from_numpy(v.copy())
    if isinstance(v, list) and v and isinstance(v[0], np.ndarray):
        return [torch.from_numpy(a.copy()) for a in v]
    return v


@pytest.mark.parametrize("case", cases.CASES, ids=[c[0] for c in cases.CASES])
def test_matches_tf_keras_2(case):
    case_id, name, args, kwargs = case
    meta = META[case_id]
    out = getattr(K, name)(*[_to_torch(a) for a in args], **kwargs)
    if meta.get("missing_in_tf_keras"):
        # not in tf.keras 2.x's backend (multi-backend Keras 2 had it): NumPy reference
        assert name == "logsumexp"
        x = args[0].astype("float64")
        ref = np.log(np.exp(x).sum(axis=kwargs["axis"]))
        np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5)
        return
    if "value" in meta:
        assert (list(out) if isinstance(out, tuple) else out) == meta["value"]
        return
    ref = RECORD[case_id]
    got = out.detach().numpy() if isinstance(out, torch.Tensor) else np.asarray(out)
    assert got.shape == ref.shape
    assert np.dtype(got.dtype).kind == ref.dtype.kind, (got.dtype, ref.dtype)
    if ref.dtype.kind == "f":
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-6)
    else:
        np.testing.assert_array_equal(got, ref)


def test_functions_build_functional_graphs():
    """K functions on KerasTensors (in Lambda layers and directly) record graph steps
    whose results equal the eager ones."""
    inp = keras.Input((6,))
    dense = keras.layers.Dense(4)
    h = dense(inp)
    norm = keras.layers.Lambda(lambda t: K.l2_normalize(t, axis=-1))(h)
    direct = K.sqrt(K.sum(K.square(h), axis=-1, keepdims=True))
    model = keras.Model(inp, [norm, direct])
    assert K.int_shape(norm) == (None, 4)
    assert K.int_shape(direct) == (None, 1)
    x = torch.randn(3, 6)
    got_norm, got_direct = model(x)
    hx = dense(x)
    torch.testing.assert_close(got_norm, K.l2_normalize(hx, axis=-1))
    torch.testing.assert_close(got_direct, torch.linalg.vector_norm(hx, dim=-1, keepdim=True))


def test_vae_sampling_lambda():
    """The classic Keras 2 VAE sampling Lambda: K.shape(z_mean)[0], K.random_normal, K.exp."""
    latent = 2

    def sampling(args):
        z_mean, z_log_var = args
        batch = K.shape(z_mean)[0]
        dim = K.int_shape(z_mean)[1]
        epsilon = K.random_normal(shape=(batch, dim))
        return z_mean + K.exp(0.5 * z_log_var) * epsilon

    inp = keras.Input((8,))
    z_mean = keras.layers.Dense(latent)(inp)
    z_log_var = keras.layers.Dense(latent)(inp)
    z = keras.layers.Lambda(sampling, output_shape=(latent,))([z_mean, z_log_var])
    model = keras.Model(inp, [z_mean, z_log_var, z])
    x = torch.randn(5, 8)
    keras.utils.set_random_seed(3)
    zm, zl, z1 = model(x)
    assert z1.shape == (5, latent)
    keras.utils.set_random_seed(3)
    eps = torch.randn(5, latent)
    torch.testing.assert_close(z1, zm + torch.exp(0.5 * zl) * eps)


def test_variables_values_and_learning_phase():
    v = K.variable(np.array([[1.0, 2.0]]), name="v")
    assert isinstance(v, torch.nn.Parameter) and v.dtype == torch.float32
    K.set_value(v, np.array([[3.0, 4.0]]))
    np.testing.assert_array_equal(K.get_value(v), [[3.0, 4.0]])
    with pytest.raises(ValueError, match="shape"):
        K.set_value(v, np.zeros(3))
    K.update_add(v, np.ones((1, 2), "float32"))
    np.testing.assert_array_equal(K.eval(v), [[4.0, 5.0]])
    assert K.count_params(v) == 2
    assert K.dtype(v) == "float32"

    seen = []

    class Probe(keras.layers.Layer):
        def call(self, x, training=None):
            seen.append(K.learning_phase())
            return K.in_train_phase(x * 0, x)

    layer = Probe()
    x = torch.ones(2)
    assert torch.equal(layer(x, training=True), torch.zeros(2))
    assert torch.equal(layer(x, training=False), x)
    assert seen == [1, 0]


def test_set_value_on_optimizer_learning_rate():
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1), loss="mse")
    K.set_value(model.optimizer.learning_rate, 0.01)
    assert K.get_value(model.optimizer.learning_rate) == pytest.approx(0.01)
    x, y = np.ones((4, 3), "float32"), np.zeros((4, 1), "float32")
    w0 = model.layers[0].kernel.detach().clone()
    model.train_on_batch(x, y)
    # an SGD step at lr 0.01 moves the kernel by 0.01 * dL/dW (NumPy reference)
    b0 = 0.0
    pred = x @ w0.numpy() + b0
    g = 2 * (x.T @ (pred - y)) / (4 * 1)
    np.testing.assert_allclose(model.layers[0].kernel.detach().numpy(), w0.numpy() - 0.01 * g, rtol=1e-5, atol=1e-6)


def test_keras3_backend_names(keras_ref):
    answers = []
    for lib in (keras_ref, keras):  # real Keras 3's keras.backend answers the same
        B = lib.backend
        first = B.get_uid("probe_prefix")
        answers.append([
            B.backend(), B.is_int_dtype("uint8"), B.is_int_dtype("float16"), B.is_keras_tensor(lib.Input((2,))),
            B.is_keras_tensor(torch.ones(1)), B.get_uid("probe_prefix") - first, B.floatx(), B.epsilon(),
        ])
    assert answers[1] == answers[0] == ["torch", True, False, True, False, 1, "float32", 1e-7]


def test_k_function_runs_a_sub_model(keras_ref):
    inp = keras.Input((4,))
    hidden = keras.layers.Dense(3, activation="relu")(inp)
    out = keras.layers.Dense(2)(hidden)
    model = keras.Model(inp, out)
    get_hidden = K.function([model.input], [hidden])
    x = np.random.default_rng(0).normal(size=(5, 4)).astype("float32")
    (h,) = get_hidden([x])
    ref = model.layers[1](torch.from_numpy(x)).detach().numpy()
    np.testing.assert_allclose(h, ref, rtol=1e-6)
    # real Keras 3 (no K.function): the same sub-model as a Model, same weights
    rin = keras_ref.Input((4,))
    sub = keras_ref.Model(rin, keras_ref.layers.Dense(3, activation="relu")(rin))
    sub.set_weights(model.layers[1].get_weights())
    np.testing.assert_allclose(h, sub.predict(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_unsupported_graph_functions_say_what_to_do():
    with pytest.raises(NotImplementedError, match="torch.autograd.grad"):
        K.gradients(torch.ones(1), [])
    with pytest.raises(NotImplementedError, match="training="):
        K.set_learning_phase(1)


def test_name_scope_prefixes_weight_paths():
    """`K.name_scope` (Keras 2's tf.name_scope), opened in `build` by layer libraries (keras-tcn):
    the weights created inside get the scope on their path; "a/b" opens two levels."""
    with K.name_scope("block"):
        v = keras.Variable(1.0, name="w")
    assert v.path == "block/w"
    with K.name_scope("outer/inner/"):
        layer = keras.layers.Dense(2, name="d")
        layer.build((None, 3))
    assert layer.kernel.path == "outer/inner/d/kernel"
    assert keras.Variable(1.0, name="after").path == "after"
    with pytest.raises(TypeError, match="name_scope"):
        K.name_scope(3)
