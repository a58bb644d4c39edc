"""`keras.device`: the device new weights, variables and tensors go on."""

from __future__ import annotations

import torch

from kerasish.layers import call_context as ctx


def parse_device(device_name) -> torch.device:
    """Keras's device strings ("cpu", "gpu:0", "cuda:1", "mps") as a
    `torch.device` ("gpu" means "cuda")."""
    if isinstance(device_name, torch.device):
        return device_name
    if not isinstance(device_name, str):
        raise ValueError(
            "Invalid value for argument `device_name`. Expected a string like 'gpu:0' or 'cpu'. "
            f"Received: device_name='{device_name}'"
        )
    name = device_name.lower().replace("gpu", "cuda")
    try:
        return torch.device(name)
    except RuntimeError:
        raise ValueError(
            "Invalid value for argument `device_name`. Expected a string like 'gpu:0' or 'cpu'. "
            f"Received: device_name='{device_name}'"
        ) from None


def current_device():
    """The device of the innermost `keras.device` scope, or None."""
    return ctx.state().device


class device:  # noqa: N801 (Keras's name)
    """Context manager placing what is created inside on a device.

    Inside `with keras.device("gpu:0"):` (Keras spelling; "cuda:0",
    "cpu", a `torch.device` work too):

    - layers built (`build()`, their first call) create their weights there,
      whatever the device of the inputs that built them;
    - `keras.Variable(...)` is created there;
    - NumPy inputs a layer converts, and torch factory functions
      (`torch.zeros`, `keras.ops.ones`, ...), go there: the scope also enters
      `torch.device(...)` as torch's default-device context.

    Scopes nest; leaving one restores the previous device. The setting is
    per thread, like Keras's.

    Args:
        device_name: "cpu", "gpu", "gpu:1", "cuda:0", "mps", or a
            `torch.device`.
    """

    def __init__(self, device_name):
        self.device = parse_device(device_name)
        self._previous = None
        self._torch_ctx = None

    def __enter__(self):
        state = ctx.state()
        self._previous = state.device
        state.device = self.device
        self._torch_ctx = torch.device(self.device)
        self._torch_ctx.__enter__()
        return self.device

    def __exit__(self, *exc):
        try:
            self._torch_ctx.__exit__(*exc)
        finally:
            ctx.state().device = self._previous
        return False
