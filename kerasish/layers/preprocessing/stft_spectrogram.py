"""`STFTSpectrogram`: a short-time Fourier transform as a strided 1-D
convolution with trainable kernels (the `STFT` initializer), on `F.conv1d`."""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F

from kerasish import initializers
from kerasish.backend import config as backend_config
from kerasish.layers.convolutional.conv_utils import conv_output_length
from kerasish.layers.convolutional.conv_utils import same_padding
from kerasish.layers.input_spec import InputSpec
from kerasish.layers.layer import Layer
from kerasish.layers.lazy_weights import is_lazy
from kerasish.utils.argument_validation import standardize_data_format

_MODES = ("log", "magnitude", "psd", "real", "imag", "angle", "stft")
# Keras accepts float16/32/64; bfloat16 is accepted too (a torch dtype Keras's
# check predates), computed as is by F.conv1d
_FLOAT_TYPES = (torch.float16, torch.bfloat16, torch.float32, torch.float64)


class STFTSpectrogram(Layer):
    """Computes the spectrogram of 1-D signals with trainable STFT kernels.

    The real and imaginary DFT kernels (`real_kernel`, `imag_kernel`, shape
    `(frame_length, 1, fft_length // 2 + 1)`, Keras's Conv1D layout) start
    as the windowed Fourier basis and may be fine-tuned. Each channel of the
    input is transformed on its own.

    Args:
        mode: One of `"log"` (log magnitude), `"magnitude"`, `"psd"` (power
            spectral density), `"real"`, `"imag"`, `"angle"`, `"stft"` (real
            and imaginary parts concatenated on the frequency axis).
            Defaults to `"log"`.
        frame_length: Samples per frame (the window length). Defaults to 256.
        frame_step: Hop between frames. Defaults to `frame_length // 2`.
        fft_length: FFT size (>= `frame_length`). Defaults to the smallest
            power of two >= `frame_length`.
        window: Window name (`"hann"`, `"hamming"`, ...), an array of
            `frame_length` values, or `None`. Defaults to `"hann"`.
        periodic: Whether the named window is periodic. Defaults to `False`.
        scaling: `"density"`, `"spectrum"` or `None`. Defaults to `"density"`.
        padding: `"valid"` or `"same"`. Defaults to `"valid"`.
        expand_dims: Whether to keep frequency and channels as separate axes.
            Defaults to `False`.
        data_format: `"channels_last"` (`(batch, time, channels)`) or
            `"channels_first"`. Defaults to the global image data format.

    Input shape: `(batch, time, channels)` (channels_last) or
        `(batch, channels, time)`, float16/32/64.
    Output shape: `(batch, frames, channels * freq)` (channels_last), or
        `(batch, frames, freq, channels)` with `expand_dims`; channels_first
        gives `(batch, channels * freq, frames)` / `(batch, channels, frames,
        freq)`. `freq` is `fft_length // 2 + 1` (twice that for `"stft"`).
    """

    def __init__(
        self,
        mode="log",
        frame_length=256,
        frame_step=None,
        fft_length=None,
        window="hann",
        periodic=False,
        scaling="density",
        padding="valid",
        expand_dims=False,
        data_format=None,
        **kwargs,
    ):
        if not isinstance(frame_length, int) or isinstance(frame_length, bool) or frame_length < 1:
            raise ValueError(f"`frame_length` must be a positive integer. Received: frame_length={frame_length!r}")
        if frame_step is not None and (frame_step > frame_length or frame_step < 1):
            raise ValueError(
                "`frame_step` should be a positive integer not greater than `frame_length`. "
                f"Received frame_step={frame_step}, frame_length={frame_length}"
            )
        if fft_length is not None and fft_length < frame_length:
            raise ValueError(
                "`fft_length` should be not less than `frame_length`. "
                f"Received fft_length={fft_length}, frame_length={frame_length}"
            )
        if fft_length is not None and (fft_length & -fft_length) != fft_length:
            warnings.warn(f"`fft_length` is recommended to be a power of two. Received fft_length={fft_length}")
        if mode not in _MODES:
            raise ValueError(f"Output mode is invalid, it must be one of {', '.join(_MODES)}. Received: mode={mode}")
        if padding not in ("valid", "same"):
            raise ValueError(f"Padding is invalid, it should be 'valid', 'same'. Received: padding={padding}")
        # validates `window` and `scaling` the way the kernels will use them
        initializers.STFT("real", window, scaling, periodic)
        self.mode = mode
        super().__init__(**kwargs)
        self.frame_length = frame_length
        self.frame_step = frame_step
        self._frame_step = frame_step or frame_length // 2
        self.fft_length = fft_length
        self._fft_length = fft_length or 2 ** int(math.ceil(math.log2(frame_length)))
        self.window = window
        self.periodic = periodic
        self.scaling = scaling
        self.padding = padding
        self.expand_dims = expand_dims
        self.data_format = standardize_data_format(data_format)
        self.input_spec = InputSpec(ndim=3)

    def _lazy_trainable_weights(self):
        names = []
        if self.mode != "imag":
            names.append("real_kernel")
        if self.mode != "real":
            names.append("imag_kernel")
        return tuple(names)

    def _infer_build_shape(self, weight_shapes):
        return (None, None, None)

    def build(self, input_shape=None):
        if all(self._parameters.get(n) is not None and not is_lazy(self._parameters[n])
               for n in self._lazy_trainable_weights()):
            return
        shape = (self.frame_length, 1, self._fft_length // 2 + 1)
        for side in ("real", "imag"):
            if f"{side}_kernel" in self._lazy_trainable_weights():
                setattr(self, f"{side}_kernel", self.add_weight(
                    name=f"{side}_kernel",
                    shape=shape,
                    initializer=initializers.STFT(side, self.window, self.scaling, self.periodic),
                ))

    def _conv(self, signal, kernel):
        """`signal` `(batch * channels, 1, time)` -> `(batch * channels, freq, frames)`."""
        weight = kernel.to(signal.dtype).permute(2, 1, 0)  # Keras (k, in, out) -> torch (out, in, k)
        if self.padding == "same":
            signal = F.pad(signal, same_padding(signal.shape[-1], self.frame_length, self._frame_step))
        return F.conv1d(signal, weight, stride=self._frame_step)

    def _arrange(self, x, batch, channels):
        """`(batch * channels, freq, frames)` -> the output layout."""
        freq, frames = x.shape[-2], x.shape[-1]
        x = x.reshape(batch, channels, freq, frames)
        if self.data_format == "channels_last":
            if self.expand_dims:
                return x.permute(0, 3, 2, 1)
            return x.reshape(batch, channels * freq, frames).transpose(1, 2)
        if self.expand_dims:
            return x.permute(0, 1, 3, 2)
        return x.reshape(batch, channels * freq, frames)

    def call(self, inputs):
        if inputs.dtype not in _FLOAT_TYPES:
            raise TypeError(
                f"Layer '{self.name}': invalid input type. Expected `float16`, `bfloat16`, `float32` or `float64`. "
                f"Received: input type={inputs.dtype}"
            )
        if self.data_format == "channels_last":
            batch, _, channels = inputs.shape
            signal = inputs.transpose(1, 2)
        else:
            batch, channels, _ = inputs.shape
            signal = inputs
        signal = signal.reshape(batch * channels, 1, signal.shape[-1])
        real = self._conv(signal, self.real_kernel) if self.mode != "imag" else None
        imag = self._conv(signal, self.imag_kernel) if self.mode != "real" else None
        if self.mode == "real":
            return self._arrange(real, batch, channels)
        if self.mode == "imag":
            return self._arrange(imag, batch, channels)
        if self.mode == "angle":
            return self._arrange(torch.atan2(imag, real), batch, channels)
        if self.mode == "stft":
            return self._arrange(torch.cat([real, imag], dim=1), batch, channels)
        power = real * real + imag * imag
        if self.mode == "psd":
            # one-sided density: the interior bins count twice
            return self._arrange(power + F.pad(power[:, 1:-1], (0, 0, 1, 1)), batch, channels)
        eps = backend_config.epsilon()
        magnitude = self._arrange(torch.sqrt(torch.clamp(power, min=eps)), batch, channels)
        if self.mode == "magnitude":
            return magnitude
        return torch.log(torch.clamp(magnitude, min=eps))

    def compute_output_spec(self, inputs):
        # As Keras (its Layer.compute_output_spec uses an overridden compute_output_shape): probing
        # an unknown time axis at two lengths gives the same frame count when `frame_step` is large
        # (83 and 89 samples are both 6 frames of 15 with padding="same"), read as a known length.
        from kerasish.backend.keras_tensor import KerasTensor

        if not isinstance(inputs, KerasTensor):
            return super().compute_output_spec(inputs)
        return KerasTensor(self.compute_output_shape(tuple(inputs.shape)), dtype=self.compute_dtype)

    def compute_output_shape(self, input_shape):
        channels_last = self.data_format == "channels_last"
        channels = input_shape[-1] if channels_last else input_shape[1]
        time = input_shape[1] if channels_last else input_shape[-1]
        freq = (self._fft_length // 2 + 1) * (2 if self.mode == "stft" else 1)
        frames = conv_output_length(time, self.frame_length, self._frame_step, self.padding)
        batch = input_shape[0]
        if self.expand_dims:
            return (batch, frames, freq, channels) if channels_last else (batch, channels, frames, freq)
        flat = None if channels is None else freq * channels
        return (batch, frames, flat) if channels_last else (batch, flat, frames)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "mode": self.mode,
                "frame_length": self.frame_length,
                "frame_step": self.frame_step,
                "fft_length": self.fft_length,
                "window": self.window,
                "periodic": self.periodic,
                "scaling": self.scaling,
                "padding": self.padding,
                "data_format": self.data_format,
                "expand_dims": self.expand_dims,
            }
        )
        return config
