"""kerasish.activations: every Keras 3 activation against Keras on the same
inputs, plus `get` / `serialize` / `deserialize`."""

import numpy as np
import pytest
import torch

from kerasish import activations
from kerasish.saving.object_registration import CustomObjectScope

RTOL, ATOL = 1e-5, 1e-6

# (name, kwargs) pairs; several parameter edges per function
CASES = [
    ("relu", {}),
    ("relu", {"negative_slope": 0.1}),
    ("relu", {"max_value": 6}),
    ("relu", {"max_value": 2.5}),
    ("relu", {"threshold": 1.5}),
    ("relu", {"negative_slope": 0.3, "max_value": 4.0}),
    ("relu", {"negative_slope": 0.3, "threshold": -1.0}),
    ("relu", {"negative_slope": 0.2, "max_value": 6, "threshold": 0.5}),
    ("leaky_relu", {}),
    ("leaky_relu", {"negative_slope": 0.01}),
    ("relu6", {}),
    ("elu", {}),
    ("elu", {"alpha": 0.5}),
    ("selu", {}),
    ("celu", {}),
    ("celu", {"alpha": 2.0}),
    ("softplus", {}),
    ("softsign", {}),
    ("soft_shrink", {}),
    ("soft_shrink", {"threshold": 1.0}),
    ("hard_shrink", {}),
    ("hard_shrink", {"threshold": 2.0}),
    ("sparse_plus", {}),
    ("silu", {}),
    ("swish", {}),
    ("squareplus", {}),
    ("squareplus", {"b": 0.5}),
    ("gelu", {}),
    ("gelu", {"approximate": True}),
    ("glu", {}),
    ("glu", {"axis": 0}),
    ("tanh", {}),
    ("tanh_shrink", {}),
    ("hard_tanh", {}),
    ("threshold", {"threshold": 0.5, "default_value": -3.0}),
    ("sigmoid", {}),
    ("sparse_sigmoid", {}),
    ("exponential", {}),
    ("hard_sigmoid", {}),
    ("hard_silu", {}),
    ("hard_swish", {}),
    ("linear", {}),
    ("mish", {}),
    ("log_sigmoid", {}),
    ("softmax", {}),
    ("softmax", {"axis": 0}),
    ("softmax", {"axis": (0, 1)}),
    ("softmax", {"axis": None}),
    ("log_softmax", {}),
    ("log_softmax", {"axis": 1}),
    ("log_softmax", {"axis": (1, 2)}),
]


@pytest.fixture(scope="module")
def inputs():
    g = np.random.default_rng(7)
    x = g.normal(size=(4, 6, 8)).astype("float32") * 4
    x.flat[:12] = [-50.0, -20.0, -6.0, -3.0, -1.0, -0.5, 0.0, 0.5, 1.0, 3.0, 6.0, 40.0]
    return x


def test_every_keras_activation_exists(keras_ref):
    names = {n for n in dir(keras_ref.activations) if not n.startswith("_")}
    for name in names:
        assert callable(getattr(activations, name)), name
    assert {c[0] for c in CASES} | {"get", "serialize", "deserialize", "sparsemax"} == names


def test_matches_keras(keras_ref, inputs):
    for name, kwargs in CASES:
        x = inputs
        if name == "exponential":
            x = np.clip(x, -50, 20)
        ours = getattr(activations, name)(torch.from_numpy(x), **kwargs)
        ref = keras_ref.ops.convert_to_numpy(getattr(keras_ref.activations, name)(torch.from_numpy(x), **kwargs))
        assert isinstance(ours, torch.Tensor) and ours.dtype == torch.float32 and ours.shape == ref.shape
        np.testing.assert_allclose(ours.numpy(), ref, rtol=RTOL, atol=ATOL, err_msg=f"{name} {kwargs}")


def test_float64_and_array_inputs(keras_ref, inputs):
    for name in ['relu', 'gelu', 'softmax', 'sigmoid', 'elu', 'mish', 'hard_silu', 'sparsemax']:
        x = inputs.astype("float64")
        ours = getattr(activations, name)(x)  # NumPy input is accepted
        assert ours.dtype == torch.float64
        if name != "sparsemax":
            ref = keras_ref.ops.convert_to_numpy(getattr(keras_ref.activations, name)(torch.from_numpy(x)))
            np.testing.assert_allclose(ours.numpy(), ref, rtol=1e-12, atol=1e-12)


def test_float16_softmax_upcasts_on_cpu():
    x = torch.randn(3, 5).half()
    y = activations.softmax(x)
    assert y.dtype == torch.float16
    torch.testing.assert_close(y.float(), torch.softmax(x.float(), -1), atol=1e-3, rtol=1e-3)


def _sparsemax_reference(z):
    """Martins & Astudillo (2016), one row at a time in NumPy."""
    z_sorted = np.sort(z)[::-1]
    cumsum = np.cumsum(z_sorted)
    k = np.arange(1, len(z) + 1)
    support = 1 + k * z_sorted > cumsum
    k_z = k[support][-1]
    tau = (cumsum[k_z - 1] - 1) / k_z
    return np.maximum(z - tau, 0)


def test_sparsemax_is_the_simplex_projection(inputs):
    for axis in [-1, 0, 1]:
        x = inputs / 4
        out = activations.sparsemax(torch.from_numpy(x), axis=axis).numpy()
        ref = np.apply_along_axis(_sparsemax_reference, axis, x)
        np.testing.assert_allclose(out, ref, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(out.sum(axis=axis), 1.0, rtol=1e-5)
        assert (out >= 0).all() and (out == 0).any()


def test_sparsemax_agrees_with_keras_where_keras_is_right(keras_ref):
    # Keras 3.15 sums every partial sum inside the support, which is only the
    # right threshold when the support is a single element.
    x = np.array([[5.0, 0.1, -1.0, 0.3], [0.0, 0.0, 9.0, 1.0]], dtype="float32")
    ref = keras_ref.ops.convert_to_numpy(keras_ref.activations.sparsemax(torch.from_numpy(x)))
    np.testing.assert_allclose(activations.sparsemax(torch.from_numpy(x)).numpy(), ref, rtol=RTOL, atol=ATOL)
    y = activations.sparsemax(torch.tensor([0.5, 0.4, 0.3, -1.0]))
    torch.testing.assert_close(y[:3], torch.tensor([0.5, 0.4, 0.3]) - (1.2 - 1) / 3)
    assert y[3] == 0 and y.sum().item() == pytest.approx(1.0)


def test_formulas():
    x = torch.linspace(-8, 8, 101)
    torch.testing.assert_close(activations.hard_sigmoid(x), torch.clamp(x + 3, 0, 6) / 6)
    torch.testing.assert_close(activations.hard_silu(x), x * torch.clamp(x + 3, 0, 6) / 6)
    torch.testing.assert_close(activations.relu(x, max_value=6), torch.clamp(x, 0, 6))
    torch.testing.assert_close(
        activations.relu(x, negative_slope=0.5, threshold=1.0), torch.where(x > 1, x, 0.5 * (x - 1))
    )
    torch.testing.assert_close(activations.threshold(x, 1.0, 7.0), torch.where(x > 1, x, torch.tensor(7.0)))
    assert activations.linear(x) is x
    assert activations.swish is activations.silu and activations.hard_swish is activations.hard_silu


# Keras 3.15's sparsemax threshold is wrong beyond a one-element support
# (see test_sparsemax_agrees_with_keras_where_keras_is_right): its gradient is
# checked against the NumPy simplex projection's instead
_GRAD_NOT_KERAS = {"sparsemax"}


def test_gradients_match_keras(keras_ref):
    """Every activation's gradient equals Keras's (its torch backend runs on
    the same autograd), on inputs away from kinks."""
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(4, 6, generator=g) * 2
    x0 = torch.where(x0.abs() < 0.05, x0 + 0.1, x0)  # (relu-like kinks at 0)
    for fn in activations.ALL_OBJECTS:
        name = fn.__name__
        kwargs = {"threshold": 0.1, "default_value": 0.0} if fn is activations.threshold else {}
        x = x0.clone().requires_grad_(True)
        fn(x, **kwargs).square().sum().backward()
        assert x.grad is not None and torch.isfinite(x.grad).all(), name
        if name in _GRAD_NOT_KERAS:
            continue
        xr = x0.clone().requires_grad_(True)
        keras_ref.activations.get(name)(xr, **kwargs).square().sum().backward()
        torch.testing.assert_close(x.grad, xr.grad, rtol=1e-4, atol=1e-5, msg=name)


def test_sparsemax_gradient_matches_finite_differences():
    x = torch.tensor([[0.5, 0.4, 0.3, -1.0], [2.0, 0.1, 0.15, 0.0]], dtype=torch.float64, requires_grad=True)
    w = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda t: (activations.sparsemax(t) * w).sum(), (x,))


def test_errors():
    with pytest.raises(ValueError, match="divisible by 2"):
        activations.glu(torch.ones(3, 5))
    with pytest.warns(UserWarning, match="has size 1"):
        activations.softmax(torch.ones(3, 1))


# ------------------------------------------------------- get / serialize


def test_get_accepts_every_name_keras_accepts(keras_ref):
    from keras.src.activations import ALL_OBJECTS_DICT as REF

    assert set(REF) == set(activations.ALL_OBJECTS_DICT)
    for name, ref_fn in REF.items():
        ours = activations.get(name)
        assert ours.__name__ == ref_fn.__name__
        assert ours is getattr(activations, ref_fn.__name__)


def test_get_forms_and_errors(keras_ref):
    assert activations.get(None) is activations.linear
    assert activations.get(torch.tanh) is torch.tanh
    assert activations.get(activations.relu) is activations.relu
    ref_dict = keras_ref.saving.serialize_keras_object(keras_ref.activations.gelu)
    assert activations.get(ref_dict) is activations.gelu
    assert activations.get({"class_name": "function", "config": "elu", "module": "keras.activations"}) is activations.elu
    with pytest.raises(ValueError, match="Could not interpret activation function identifier"):
        activations.get({"class_name": "function", "config": "nope"})  # Keras raises TypeError here
    for bad in ("nope", "Relu", 3):
        with pytest.raises(ValueError) as ref_err:
            keras_ref.activations.get(bad)
        with pytest.raises(ValueError) as our_err:
            activations.get(bad)
        assert str(our_err.value) == str(ref_err.value)
        assert str(our_err.value).startswith("Could not interpret activation function identifier: ")


def test_serialize_deserialize(keras_ref):
    for name, fn in activations.ALL_OBJECTS_DICT.items():
        ref_name = keras_ref.activations.serialize(keras_ref.activations.get(name))
        assert activations.serialize(fn) == ref_name
        assert activations.deserialize(ref_name) is fn
        assert keras_ref.activations.deserialize(activations.serialize(fn)).__name__ == fn.__name__
    with pytest.raises(ValueError, match="cannot be serialized"):
        activations.serialize(lambda x: x)
    with pytest.raises(ValueError, match="Unknown activation function"):
        activations.deserialize("nope")


def test_custom_activations_round_trip():
    def doubled(x):
        return 2 * x

    config = activations.serialize(doubled)
    assert config["class_name"] == "function" and config["config"] == "doubled"
    with pytest.raises(ValueError):
        activations.get(config)
    with CustomObjectScope({"doubled": doubled}):
        assert activations.get(config) is doubled
        assert activations.get("doubled") is doubled
        assert activations.deserialize("doubled") is doubled
    assert activations.deserialize(config, custom_objects={"doubled": doubled}) is doubled
