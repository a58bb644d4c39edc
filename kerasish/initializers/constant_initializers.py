"""Deterministic initializers: Zeros, Ones, Constant, Identity, STFT."""

from __future__ import annotations

import math

import numpy as np
import torch

from kerasish.initializers.initializer import Initializer, _dtype, _shape


class Constant(Initializer):
    """Fills the tensor with a constant value.

    Args:
        value: A Python scalar (or anything broadcastable to the shape).
            Defaults to `0.0`.
    """

    def __init__(self, value=0.0):
        self.value = value

    def __call__(self, shape, dtype=None) -> torch.Tensor:
        shape, dtype = _shape(shape), _dtype(dtype)
        if isinstance(self.value, (bool, int, float)):
            return torch.full(shape, self.value, dtype=dtype)
        value = torch.as_tensor(np.asarray(self.value) if not torch.is_tensor(self.value) else self.value)
        ones = torch.ones(shape, dtype=dtype)  # on the default device (the weight's, in add_weight)
        return value.to(device=ones.device, dtype=dtype) * ones

    def get_config(self) -> dict:
        value = self.value
        if torch.is_tensor(value) or isinstance(value, (np.ndarray, np.generic)):
            value = value.tolist() if getattr(value, "ndim", 0) else value.item()
        return {"value": value}

    @classmethod
    def from_config(cls, config: dict) -> Constant:
        return cls(config.get("value", 0.0))


class Zeros(Initializer):
    """Fills the tensor with 0."""

    def __call__(self, shape, dtype=None) -> torch.Tensor:
        return torch.zeros(_shape(shape), dtype=_dtype(dtype))


class Ones(Initializer):
    """Fills the tensor with 1."""

    def __call__(self, shape, dtype=None) -> torch.Tensor:
        return torch.ones(_shape(shape), dtype=_dtype(dtype))


class Identity(Initializer):
    """Generates `gain` times the identity matrix (2D shapes only).

    Args:
        gain: Multiplicative factor applied to the identity matrix.
            Defaults to `1.0`.
    """

    def __init__(self, gain: float = 1.0):
        self.gain = gain

    def __call__(self, shape, dtype=None) -> torch.Tensor:
        if len(shape) != 2:
            raise ValueError(
                "Identity matrix initializer can only be used for 2D matrices. "
                f"Received: shape={shape} of rank {len(shape)}."
            )
        rows, cols = _shape(shape)
        return self.gain * torch.eye(rows, cols, dtype=_dtype(dtype))

    def get_config(self) -> dict:
        return {"gain": self.gain}


class STFT(Initializer):
    """Conv kernel computing the real or imaginary part of an STFT.

    The shape is `(frame_length, 1, fft_length // 2 + 1)`.

    Args:
        side: `"real"` or `"imag"`. Defaults to `"real"`.
        window: Name of a `scipy.signal.windows` window, an array of
            `frame_length` values, or `None`. Defaults to `"hann"`.
        scaling: `"density"` (L2), `"spectrum"` (L1) or `None`.
            Defaults to `"density"`.
        periodic: Whether the window is periodic. Defaults to `False`.
    """

    def __init__(self, side: str = "real", window="hann", scaling: str | None = "density", periodic: bool = False):
        if side not in ["real", "imag"]:
            raise ValueError(f"side should be 'real' or 'imag', not {side}")
        if isinstance(window, str):
            _get_window(window, 1, periodic)  # raises for unknown windows
        if scaling is not None and scaling not in ["density", "spectrum"]:
            raise ValueError(
                "Scaling is invalid, it must be `None`, 'density' "
                f"or 'spectrum'. Received scaling={scaling}"
            )
        self.side = side
        self.window = window
        self.scaling = scaling
        self.periodic = periodic

    def __call__(self, shape, dtype=None) -> torch.Tensor:
        dtype = _dtype(dtype)
        frame_length, _, fft_length = _shape(shape)
        win = None
        scale = 1.0
        if self.window is not None:
            win = self.window
            if isinstance(win, str):
                win = _get_window(win, frame_length, self.periodic)
            win = torch.as_tensor(np.asarray(win), dtype=dtype)
            if win.ndim != 1 or win.shape[-1] != frame_length:
                raise ValueError(
                    "The shape of `window` must be equal to [frame_length]."
                    f"Received: window shape={tuple(win.shape)}"
                )
            win = win.reshape(frame_length, 1, 1)
            if self.scaling == "density":
                scale = torch.sqrt(torch.sum(win * win))
            elif self.scaling == "spectrum":
                scale = torch.sum(torch.abs(win))
        freq = torch.arange(fft_length, dtype=dtype).reshape(1, 1, fft_length) / ((fft_length - 1) * 2)
        time = torch.arange(frame_length, dtype=dtype).reshape(frame_length, 1, 1)
        args = -2 * time * freq * math.pi
        kernel = torch.cos(args) if self.side == "real" else torch.sin(args)
        if win is not None:
            kernel = kernel * win / scale
        return kernel.to(dtype)

    def get_config(self) -> dict:
        window = self.window
        if isinstance(window, (np.ndarray, torch.Tensor)):
            window = window.tolist()
        return {"side": self.side, "window": window, "periodic": self.periodic, "scaling": self.scaling}


# torch implements the common windows with scipy.signal.get_window's
# definitions (`periodic=True` is scipy's `fftbins=True`); other names need
# SciPy, an optional dependency.
_TORCH_WINDOWS = {
    "hann": torch.hann_window,
    "hanning": torch.hann_window,
    "hamming": torch.hamming_window,
    "blackman": torch.blackman_window,
    "bartlett": torch.bartlett_window,
}


def _get_window(name: str, length: int, periodic: bool):
    fn = _TORCH_WINDOWS.get(name)
    if fn is not None:
        return fn(length, periodic=periodic, dtype=torch.float64).numpy()
    try:
        import scipy.signal
    except ImportError:
        raise ImportError(
            f"The STFT window {name!r} needs SciPy (`pip install scipy`); without it the windows "
            f"{sorted(_TORCH_WINDOWS)} are available."
        ) from None
    return scipy.signal.get_window(name, length, periodic)


__all__ = ["STFT", "Constant", "Identity", "Ones", "Zeros"]
