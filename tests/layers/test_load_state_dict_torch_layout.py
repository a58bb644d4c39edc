"""A torch user's first `load_state_dict` into a never-called kerasish layer
often hands it torch's weight layout (nn.Linear's (out, in), nn.Conv2d's
(out, in, kh, kw)). The layer infers its input width from the kernel before
loading; a wrong-layout kernel gave it a wrong width, torch's size-mismatch
error followed, and the layer stayed built for that width, so the corrected
state dict was refused too. Now the wrong layout is refused before building,
with a ValueError naming the layer, the argument, the expected and received
shapes; the corrected state dict then loads and computes what the torch
module holding the same weights computes."""

import numpy as np
import pytest
import torch

import kerasish as keras


def test_dense_refuses_a_torch_layout_kernel_then_loads_the_transpose():
    linear = torch.nn.Linear(5, 3)
    dense = keras.layers.Dense(3)
    with pytest.raises(ValueError, match=r"Layer 'dense.*'kernel' of shape \(3, 5\).*\(input_dim, 3\).*transpose"):
        dense.load_state_dict(linear.state_dict() | {"kernel": linear.weight.detach()})
    assert not dense.built
    dense.load_state_dict({"kernel": linear.weight.detach().T, "bias": linear.bias.detach()})
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(0))
    np.testing.assert_allclose(dense(x).detach().numpy(), linear(x).detach().numpy(), rtol=1e-6, atol=1e-6)


def test_conv2d_refuses_a_torch_layout_kernel_then_loads_the_permuted_one():
    torch_conv = torch.nn.Conv2d(2, 4, 3)
    conv = keras.layers.Conv2D(4, 3)
    with pytest.raises(ValueError, match=r"Conv2D.*'kernel' of shape \(4, 2, 3, 3\).*permute"):
        conv.load_state_dict({"kernel": torch_conv.weight.detach(), "bias": torch_conv.bias.detach()})
    assert not conv.built
    conv.load_state_dict({"kernel": torch_conv.weight.detach().permute(2, 3, 1, 0),
                          "bias": torch_conv.bias.detach()})
    x = torch.randn(2, 2, 6, 6, generator=torch.Generator().manual_seed(1))
    ours = conv(x.permute(0, 2, 3, 1)).permute(0, 3, 1, 2)
    np.testing.assert_allclose(ours.detach().numpy(), torch_conv(x).detach().numpy(), rtol=1e-5, atol=1e-6)


def test_a_right_layout_kernel_of_another_input_width_still_builds_that_width():
    dense = keras.layers.Dense(3)
    dense.load_state_dict({"kernel": torch.ones(7, 3), "bias": torch.zeros(3)})
    assert dense.built and tuple(dense.kernel.shape) == (7, 3)
    np.testing.assert_allclose(dense(torch.ones(1, 7)).detach().numpy(), np.full((1, 3), 7.0))
