"""`.to()`, `.half()`, `.double()`, `.cuda()` on kerasish layers: the dtype
policy follows the weights' real dtype (a pure device move never resets it),
and an unbuilt layer that was moved builds on the device it was moved to."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

import kerasish as keras

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="device moves need a CUDA device")
# bfloat16 keeps 8 mantissa bits: relative error up to 2**-8 per rounding
BF16_TOL = {"rtol": 2e-2, "atol": 2e-2}
FLOAT64_TOL = {"rtol": 1e-12, "atol": 1e-12}


def _dense_ref(x, layer):
    """NumPy float64 reference for Dense (linear activation): x @ W + b."""
    kernel = layer.kernel.detach().to(torch.float64).numpy()
    bias = layer.bias.detach().to(torch.float64).numpy()
    return np.asarray(x, np.float64) @ kernel + bias


def test_bfloat16_layer_keeps_policy_after_device_move():
    layer = keras.layers.Dense(3, dtype="bfloat16")
    layer.build((None, 4))
    layer.to("cpu")
    assert layer.dtype_policy.name == "bfloat16"
    assert layer.kernel.dtype == torch.bfloat16
    x = np.random.default_rng(0).standard_normal((2, 4)).astype("float32")
    out = layer(torch.from_numpy(x))
    assert out.dtype == torch.bfloat16
    np.testing.assert_allclose(out.detach().float().numpy(), _dense_ref(x.astype("float32"), layer), **BF16_TOL)


@pytest.mark.parametrize("move", ["double_then_to", "to_dtype_then_device", "to_both"])
def test_float64_model_after_double_and_device_move(move):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(5), keras.layers.Dense(2)])
    if move == "double_then_to":
        model.double().to("cpu")
    elif move == "to_dtype_then_device":
        model.to(torch.float64).to(torch.device("cpu"))
    else:
        model.to("cpu", torch.float64)
    for layer in model.layers:
        assert layer.dtype_policy.name == "float64", layer.name
        assert layer.kernel.dtype == torch.float64
    x = np.random.default_rng(1).standard_normal((3, 4))
    out = model(x)
    assert out.dtype == torch.float64
    hidden = _dense_ref(x, model.layers[0])
    np.testing.assert_allclose(out.detach().numpy(), _dense_ref(hidden, model.layers[1]), **FLOAT64_TOL)


def test_half_then_float_returns_to_float32():
    layer = keras.layers.Dense(2)
    layer.build((None, 3))
    layer.bfloat16()
    assert layer.dtype_policy.name == "bfloat16"
    layer.to("cpu")
    assert layer.dtype_policy.name == "bfloat16"
    layer.float()
    assert layer.dtype_policy.name == "float32"
    assert layer(torch.ones(1, 3)).dtype == torch.float32


def test_mixed_policy_survives_device_move_and_follows_a_cast():
    layer = keras.layers.Dense(2, dtype="mixed_bfloat16")
    layer.build((None, 3))
    layer.to("cpu")
    assert layer.dtype_policy.name == "mixed_bfloat16"
    assert layer.kernel.dtype == torch.float32
    layer.bfloat16()  # the weights are bfloat16 now: the policy says so
    assert layer.dtype_policy.name == "bfloat16"
    assert layer(torch.ones(1, 3)).dtype == torch.bfloat16


def test_layer_with_only_buffers_follows_a_cast():
    layer = keras.layers.Normalization()
    layer.build((None, 3))
    assert not list(layer.parameters())  # its weights are all buffers
    layer.double()
    assert layer.dtype_policy.name == "float64"
    layer.to("cpu")
    assert layer.dtype_policy.name == "float64"
    x = np.random.default_rng(2).standard_normal((2, 3))
    out = layer(x)
    assert out.dtype == torch.float64
    mean = layer.adapt_mean.numpy()
    var = layer.adapt_variance.numpy()
    np.testing.assert_allclose(out.detach().numpy(), (x - mean) / np.sqrt(np.maximum(var, 1e-7)), rtol=1e-6, atol=1e-6)


def test_unbuilt_layer_cast_builds_in_that_dtype():
    layer = keras.layers.Dense(2)
    layer.double().to("cpu")
    out = layer(np.ones((1, 3)))
    assert layer.kernel.dtype == torch.float64 and out.dtype == torch.float64


def test_torch_container_of_layers_moves_policy_through():
    net = nn.Sequential(keras.layers.Dense(4, dtype="bfloat16"), keras.layers.Dense(2, dtype="bfloat16"))
    net(torch.ones(1, 3))
    net.to("cpu")
    assert [m.dtype_policy.name for m in net] == ["bfloat16", "bfloat16"]
    assert net(torch.ones(1, 3)).dtype == torch.bfloat16


def test_unbuilt_layer_moved_then_called_on_another_device_is_a_clear_error():
    # (the meta device stands in for an accelerator on a CPU-only machine)
    layer = keras.layers.Dense(3)
    layer.to("meta")
    with pytest.raises(ValueError) as info:
        layer(torch.ones(2, 4))
    message = str(info.value)
    assert "'dense'" in message and "meta" in message and "cpu" in message
    assert not layer.built


def test_dtype_conversion_after_a_move_keeps_the_device():
    layer = keras.layers.Dense(3)
    layer.to("meta")
    layer.double()  # a cast converts on the current device: the move is remembered
    assert layer.dtype_policy.name == "float64"
    with pytest.raises(ValueError, match="moved to device meta.*inputs on device cpu"):
        layer(torch.ones(2, 4, dtype=torch.float64))
    layer.to("cpu")  # moved back: CPU data builds it
    out = layer(np.ones((2, 4)))
    assert layer.kernel.device.type == "cpu" and layer.kernel.dtype == torch.float64
    np.testing.assert_allclose(out.detach().numpy(), _dense_ref(np.ones((2, 4)), layer), **FLOAT64_TOL)


@requires_cuda
def test_unbuilt_layer_moved_to_cuda_builds_there_from_numpy():
    layer = keras.layers.Dense(3)
    layer.cuda()
    out = layer(np.ones((2, 4), "float32"))
    assert out.device.type == "cuda" and layer.kernel.device.type == "cuda"
    np.testing.assert_allclose(out.detach().cpu().numpy(), _dense_ref(np.ones((2, 4)), layer), rtol=1e-4, atol=1e-5)


@requires_cuda
def test_unbuilt_layer_moved_to_cuda_rejects_cpu_tensor():
    layer = keras.layers.Dense(3)
    layer.to("cuda")
    with pytest.raises(ValueError, match="cuda.*cpu"):
        layer(torch.ones(2, 4))


@requires_cuda
def test_bfloat16_then_cuda_keeps_policy():
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    model.bfloat16().cuda()
    assert model.layers[0].dtype_policy.name == "bfloat16"
    assert model(torch.ones(2, 4, device="cuda")).dtype == torch.bfloat16
