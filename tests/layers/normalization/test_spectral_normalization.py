"""SpectralNormalization (and the Wrapper base): harness, Keras parity of the
power iteration (weights copied from Keras, several training calls, the
updated kernel and vector_u compared too), a NumPy reference, config round
trip, bad input."""

import numpy as np
import pytest
import torch

import kerasish as keras
from layer_harness import run_layer_test
from parity import assert_close

L = keras.layers


def _sn_dense(dtype=None):
    return L.SpectralNormalization(L.Dense(3, dtype=dtype), dtype=dtype)


def test_spectral_normalization_harness():
    for training in (False, True):
        run_layer_test(_sn_dense, {}, input_shape=(2, 4), expected_output_shape=(2, 3),
                       expected_num_trainable_weights=2, expected_num_non_trainable_weights=1,
                       check_config=False, training=training)


CASES = [
    (lambda m: m.layers.Dense(3), (2, 4), 1),
    (lambda m: m.layers.Dense(5, use_bias=False), (3, 2, 6), 3),
    (lambda m: m.layers.Conv2D(4, 3), (1, 6, 6, 2), 2),
    (lambda m: m.layers.Conv1D(3, 2, data_format="channels_first"), (2, 4, 5), 1),
]


@pytest.mark.parametrize("make,shape,iterations", CASES)
def test_spectral_normalization_parity(keras_ref, make, shape, iterations):
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    theirs = keras_ref.layers.SpectralNormalization(make(keras_ref), power_iterations=iterations)
    ours = L.SpectralNormalization(make(keras), power_iterations=iterations)
    theirs(x), ours(torch.as_tensor(x))
    assert [w.path.rsplit("/", 1)[1] for w in ours.weights] == [w.path.rsplit("/", 1)[1] for w in theirs.weights]
    ours.set_weights(theirs.get_weights())
    for training in (True, True, False):
        assert_close(ours(torch.as_tensor(x), training=training), theirs(x, training=training))
        assert_close(ours.get_weights(), theirs.get_weights())  # kernel and vector_u updated alike
    got, want = ours.get_config(), theirs.get_config()
    got.pop("name"), want.pop("name")
    got["layer"]["config"].pop("name"), want["layer"]["config"].pop("name")
    assert got["power_iterations"] == want["power_iterations"] == iterations
    assert got["layer"]["class_name"] == want["layer"]["class_name"]
    clone = L.SpectralNormalization.from_config(ours.get_config())
    clone(torch.as_tensor(x))
    clone.set_weights(ours.get_weights())
    assert_close(clone(torch.as_tensor(x)), ours(torch.as_tensor(x)))


def test_spectral_normalization_numpy_reference():
    """One power iteration from the maths: the normalized kernel's top
    singular value approaches 1 as the iterations go on."""
    layer = L.SpectralNormalization(L.Dense(4), power_iterations=1)
    x = torch.randn(3, 5)
    layer(x)
    kernel = layer.layer.kernel.detach().numpy().copy()
    u = layer.vector_u.detach().numpy().copy()
    v = u @ kernel.T
    v = v / np.sqrt((v ** 2).sum())
    u2 = v @ kernel
    u2 = u2 / np.sqrt((u2 ** 2).sum())
    sigma = (v @ kernel) @ u2.T
    layer(x, training=True)
    np.testing.assert_allclose(layer.layer.kernel.detach().numpy(), kernel / sigma, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(layer.vector_u.detach().numpy(), u2, rtol=1e-5, atol=1e-6)
    for _ in range(30):
        layer(x, training=True)
    assert abs(np.linalg.svd(layer.layer.kernel.detach().numpy(), compute_uv=False)[0] - 1.0) < 1e-3


def test_spectral_normalization_zero_kernel_and_gradients():
    layer = L.SpectralNormalization(L.Dense(2, kernel_initializer="zeros"))
    x = torch.randn(2, 3)
    layer(x)
    u = layer.vector_u.detach().clone()
    layer(x, training=True)
    assert torch.equal(layer.vector_u, u) and torch.count_nonzero(layer.layer.kernel) == 0
    layer = L.SpectralNormalization(L.Dense(2))
    layer(x, training=True).sum().backward()
    assert layer.layer.kernel.grad is not None and layer.vector_u.grad is None


def test_spectral_normalization_embedding_and_errors():
    layer = L.SpectralNormalization(L.Embedding(10, 4))
    ids = torch.randint(0, 10, (2, 3))
    out = layer(ids, training=True)
    assert out.shape == (2, 3, 4) and out.dtype == torch.float32  # Keras casts this to the ids' int dtype
    with pytest.raises(ValueError, match="power_iterations"):
        L.SpectralNormalization(L.Dense(2), power_iterations=0)
    with pytest.raises(ValueError, match="kernel"):
        L.SpectralNormalization(L.Flatten())(torch.rand(2, 3))
    with pytest.raises(ValueError, match="Wrapper"):
        L.SpectralNormalization(torch.nn.Linear(2, 2))


def test_wrapper_base(keras_ref):
    class Doubled(L.Wrapper):
        def call(self, x):
            return 2 * self.layer(x)

    layer = Doubled(L.Dense(3))
    x = torch.randn(2, 4)
    np.testing.assert_allclose(layer(x).detach(), 2 * layer.layer(x).detach())
    assert [w.path for w in layer.weights] == ["doubled/dense/kernel", "doubled/dense/bias"]
    assert "layer.kernel" in layer.state_dict()
    config = layer.get_config()
    assert config["layer"]["class_name"] == "Dense"
    clone = Doubled.from_config(config)
    assert clone.layer.units == 3 and clone.compute_output_shape((None, 4)) == (None, 3)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_mixed_precision_training_call_updates_vector_u_and_kernel(policy):
    """Under a mixed policy the weights read inside the call are cast copies: the power iteration must
    update the float32 variables themselves (it updated a copy of `vector_u`, silently, raised on the
    wrapped kernel under mixed_bfloat16, and overflowed float16 under mixed_float16). Reference: the
    power iteration in float32 NumPy from the same weights. (Real Keras 3.15 is not the reference here:
    under mixed_bfloat16 its `vector_u` after two training calls was not a unit vector, norm ~0.035.)"""
    x = np.random.default_rng(1).normal(size=(2, 4)).astype("float32")
    ours = L.SpectralNormalization(L.Dense(3, dtype=policy), dtype=policy)
    ours(torch.from_numpy(x))
    kernel = ours.layer.kernel.detach().numpy().astype("float64")
    u = np.random.default_rng(2).normal(size=(1, 3)).astype("float32")
    with torch.no_grad():
        ours.vector_u.copy_(torch.from_numpy(u))
    u = u.astype("float64")

    def normalize(a):
        return a / np.sqrt((a ** 2).sum())

    for _ in range(2):
        got = ours(torch.from_numpy(x), training=True)
        v = normalize(u @ kernel.T)
        u = normalize(v @ kernel)
        kernel = kernel / ((v @ kernel) @ u.T)
    assert got.dtype == (torch.bfloat16 if policy == "mixed_bfloat16" else torch.float16)
    assert all(w.dtype == torch.float32 for w in ours.weights)
    np.testing.assert_allclose(ours.vector_u.detach().numpy(), u, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(ours.layer.kernel.detach().numpy(), kernel, rtol=1e-5, atol=1e-6)
