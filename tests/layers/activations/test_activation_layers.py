"""Activation layers: ReLU, LeakyReLU, PReLU, ELU, Softmax."""

import numpy as np
import pytest
import torch

import kerasish as keras
from layer_harness import run_layer_test
from parity import assert_close
from parity import assert_keras_parity
from parity import build_pair

L = keras.layers


def _x(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 3


def _config_matches(ours, theirs):
    a, b = ours.get_config(), theirs.get_config()
    a.pop("name"), b.pop("name")
    assert a == b or {k: v for k, v in a.items()} == {k: (list(v) if isinstance(v, tuple) else v) for k, v in b.items()}


CASES = [
    ("ReLU", {}),
    ("ReLU", {"max_value": 2.0}),
    ("ReLU", {"negative_slope": 0.1, "threshold": 0.5}),
    ("ReLU", {"max_value": 6.0, "negative_slope": 0.2, "threshold": 1.0}),
    ("LeakyReLU", {}),
    ("LeakyReLU", {"negative_slope": 0.05}),
    ("ELU", {}),
    ("ELU", {"alpha": 0.5}),
    ("Softmax", {}),
    ("Softmax", {"axis": 1}),
    ("Softmax", {"axis": [1, 2]}),
    ("PReLU", {}),
    ("PReLU", {"shared_axes": [1, 2], "alpha_initializer": "random_uniform"}),
]


@pytest.mark.parametrize("name, kwargs", CASES)
def test_harness_and_parity(keras_ref, name, kwargs):
    cls = getattr(L, name)
    n = 1 if name == "PReLU" else 0
    run_layer_test(cls, kwargs, input_shape=(2, 3, 4), expected_output_shape=(2, 3, 4), expected_num_trainable_weights=n)
    ours, theirs = assert_keras_parity(keras_ref, name, kwargs, _x(2, 3, 4))
    _config_matches(ours, theirs)


def test_prelu_weight_shape_and_state_dict():
    layer = L.PReLU(shared_axes=1)
    layer(torch.ones(2, 3, 4))
    assert tuple(layer.alpha.shape) == (1, 4)
    other = L.PReLU(shared_axes=1)
    other.load_state_dict(layer.state_dict())  # builds from the alpha shape
    assert other.built and tuple(other.alpha.shape) == (1, 4)
    with pytest.raises(ValueError, match="expected axis 2 of input shape to have value 4"):
        layer(torch.ones(2, 3, 5))


def test_leaky_relu_keras2_alpha():
    with pytest.warns(UserWarning, match="`alpha` is deprecated"):
        layer = L.LeakyReLU(alpha=0.1)
    assert layer.negative_slope == 0.1
    torch.testing.assert_close(layer(torch.tensor([-10.0])), torch.tensor([-1.0]))


@pytest.mark.parametrize("mask_dtype", ["bool", "float32"])
def test_softmax_mask_parity(keras_ref, mask_dtype):
    x = _x(2, 3, 5)
    mask = torch.tensor([[[1, 1, 0, 1, 0]], [[0, 0, 0, 0, 0]]]).to(getattr(torch, mask_dtype))
    ours, theirs, our_out, their_out = build_pair(keras_ref, "Softmax", {}, x, call_kwargs={"mask": mask})
    assert_close(our_out, their_out)
    assert float(our_out[1].abs().max()) == 0.0  # fully masked rows give zeros
    # a mask attached to the input (Keras's `_keras_mask`) is picked up automatically
    logits = _x(1, 3)
    logits._keras_mask = L.Embedding(10, 4, mask_zero=True).compute_mask(torch.tensor([[3, 0, 2]]))
    probs = L.Softmax()(logits)
    assert probs[0, 1] == 0.0 and np.isclose(float(probs.sum()), 1.0)


def test_softmax_float16_uses_minus_3e4(keras_ref):
    from kerasish.layers.activations.softmax import large_negative_number

    assert large_negative_number(torch.float16) == -3e4
    assert large_negative_number(torch.float32) == -1e9
    # masked float16 softmax: real Keras 3 (which adds -3e4 to masked logits in float16)
    x = torch.tensor(np.random.default_rng(3).normal(size=(3, 5)) * 4, dtype=torch.float16)
    mask = torch.tensor([[1, 1, 0, 1, 0], [1, 0, 0, 0, 0], [0, 0, 0, 0, 1]], dtype=torch.bool)
    for dtype in ("float16", "float32"):
        xi = x.to(getattr(torch, dtype))
        ours = L.Softmax(dtype=dtype)(xi, mask=mask)
        theirs = keras_ref.layers.Softmax(dtype=dtype)(xi, mask=mask)
        assert ours.dtype == theirs.dtype == xi.dtype
        np.testing.assert_allclose(ours.float().numpy(), theirs.float().numpy(), rtol=1e-3, atol=1e-4)


def test_errors():
    with pytest.raises(ValueError, match=r"max_value of a ReLU layer cannot be a negative value. Received: max_value=-1"):
        L.ReLU(max_value=-1)
    with pytest.raises(ValueError, match=r"Received: negative_slope=-0.1"):
        L.ReLU(negative_slope=-0.1)
    with pytest.raises(ValueError, match=r"Received: threshold=None"):
        L.ReLU(threshold=None)
    with pytest.raises(ValueError, match=r"Leaky ReLU.*Received: negative_slope=-1"):
        L.LeakyReLU(negative_slope=-1)
    with pytest.raises(ValueError, match="must be broadcastable"):
        L.Softmax()(torch.ones(2, 3), mask=torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="must not have more dimensions"):
        L.Softmax()(torch.ones(3), mask=torch.ones(1, 3, dtype=torch.bool))
