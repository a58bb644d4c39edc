"""Weights are drawn on the device they are built for (no large CPU draw
then copy): `add_weight` runs the initializer under `torch.device(device)`
and the initializers create their tensors (and seeded generators) on the
default device. Checked on the CPU with the meta device and with a build
device of "cuda" that never allocates."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kerasish as keras
from kerasish import initializers

ALL = ["glorot_uniform", "glorot_normal", "he_normal", "lecun_uniform", "random_normal", "random_uniform",
       "truncated_normal", "orthogonal", "zeros", "ones", "identity"]


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("seeded", [False, True])
def test_initializers_create_on_the_default_device(name, seeded):
    init = initializers.get(name)
    if seeded and hasattr(init, "seed"):
        init = type(init).from_config({**init.get_config(), "seed": 3})
    with torch.device("meta"):
        value = init((512, 512), dtype="float32")
    assert value.device.type == "meta"


def test_constant_and_direct_values_follow_the_default_device():
    with torch.device("meta"):
        assert initializers.Constant([1.0, 2.0])((3, 2), dtype="float32").device.type == "meta"
        assert initializers.get(np.ones((2, 2), np.float32))((2, 2), dtype="float32").device.type == "meta"


def test_seeded_cpu_draws_are_unchanged():
    a = initializers.GlorotUniform(seed=7)((4, 5), dtype="float32")
    g = torch.Generator(device="cpu").manual_seed(7)
    limit = np.sqrt(6 / 9)
    expected = (2 * limit) * torch.rand((4, 5), generator=g) - limit
    torch.testing.assert_close(a, expected)


class _Stop(Exception):
    pass


def _context_device():
    """The device of the innermost `with torch.device(...)` (without
    resolving "cuda" to an index, which would initialize CUDA)."""
    from torch.overrides import _get_current_function_mode_stack
    from torch.utils._device import DeviceContext

    modes = [m for m in _get_current_function_mode_stack() if isinstance(m, DeviceContext)]
    return modes[-1].device if modes else torch.device("cpu")


def test_add_weight_runs_the_initializer_on_the_build_device():
    seen = []

    def init(shape, dtype=None):
        seen.append(_context_device())
        raise _Stop

    layer = keras.layers.Dense(3, kernel_initializer=init)
    layer.__dict__["_device_hint"] = torch.device("cuda")  # as after `layer.to("cuda")` (no allocation here)
    with pytest.raises(_Stop):
        layer.build((2, 4))
    assert seen == [torch.device("cuda")]


def test_add_weight_on_cpu_is_unchanged():
    seen = []

    def init(shape, dtype=None):
        seen.append(_context_device())
        return torch.zeros(shape)

    layer = keras.layers.Dense(3, kernel_initializer=init)
    layer.build((2, 4))
    assert seen == [torch.device("cpu")] and layer.kernel.device.type == "cpu"


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (none on this machine)")
def test_cuda_build_draws_on_the_gpu(monkeypatch):
    copies = []
    real = torch.Tensor.to

    def spy(self, *args, **kwargs):
        if self.device.type == "cpu" and self.numel() >= 1024 * 1024:
            copies.append(tuple(self.shape))
        return real(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", spy)
    layer = keras.layers.Dense(2048).to("cuda")
    layer(torch.ones(2, 2048, device="cuda"))
    assert layer.kernel.device.type == "cuda" and copies == []
