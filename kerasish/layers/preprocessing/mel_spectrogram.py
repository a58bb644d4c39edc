"""`MelSpectrogram`: raw audio to (log-)mel spectrograms, on `torch.stft`."""

from __future__ import annotations

import math

import torch

from kerasish.backend import dtypes
from kerasish.layers.layer import Layer

# The HTK mel scale Keras uses: mel(f) = 1127 * ln(1 + f / 700).
_MEL_BREAK_FREQUENCY_HERTZ = 700.0
_MEL_HIGH_FREQUENCY_Q = 1127.0


def hertz_to_mel(frequencies: torch.Tensor) -> torch.Tensor:
    # log(1 + f / 700), not log1p: Keras's formula, so the band edges round as Keras's do
    return _MEL_HIGH_FREQUENCY_Q * torch.log(1.0 + frequencies / _MEL_BREAK_FREQUENCY_HERTZ)



def linear_to_mel_weight_matrix(
    num_mel_bins=20,
    num_spectrogram_bins=129,
    sampling_rate=8000,
    lower_edge_hertz=125.0,
    upper_edge_hertz=3800.0,
    dtype=torch.float32,
    device=None,
) -> torch.Tensor:
    """`(num_spectrogram_bins, num_mel_bins)` matrix of triangular mel
    filters (peak 1.0) over the linear bins `[0, sampling_rate / 2]`; the
    DC bin gets no weight. Same construction as Keras (and TensorFlow)."""
    from kerasish.ops.numpy_array import spaced_grid  # (here: the ops package imports the layers)

    kw = {"dtype": dtype, "device": device}
    nyquist = float(sampling_rate) / 2.0
    linear = spaced_grid(torch.tensor(0.0, **kw), torch.tensor(nyquist, **kw), num_spectrogram_bins)[1:]
    bins_mel = hertz_to_mel(linear).unsqueeze(1)
    # the edges' mel values in the matrix's dtype (float32 by default), as Keras computes them:
    # float64 edges moved the filters' weights by up to ~2e-5 and the dB output by up to ~1e-3
    lower_mel, upper_mel = hertz_to_mel(torch.tensor([float(lower_edge_hertz), float(upper_edge_hertz)], **kw))
    edges = spaced_grid(lower_mel, upper_mel, num_mel_bins + 2)
    lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
    lower_slopes = (bins_mel - lower) / (center - lower)
    upper_slopes = (upper - bins_mel) / (upper - center)
    weights = torch.clamp(torch.minimum(lower_slopes, upper_slopes), min=0.0)
    return torch.nn.functional.pad(weights, (0, 0, 1, 0))


def _window(window, length, dtype, device):
    if window is None:
        return torch.ones(length, dtype=dtype, device=device)
    if isinstance(window, str):
        make = torch.hann_window if window == "hann" else torch.hamming_window
        return make(length, periodic=True, dtype=dtype, device=device)
    win = torch.as_tensor(window, dtype=dtype, device=device)
    if win.ndim != 1 or win.shape[-1] != length:
        raise ValueError(
            f"The shape of `window` must be equal to [sequence_length]. Received: window shape={tuple(win.shape)}"
        )
    return win


class MelSpectrogram(Layer):
    """Converts raw audio to mel spectrograms (`keras.layers.MelSpectrogram`).

    The magnitude STFT (centred frames, reflect padding, periodic window),
    raised to `mag_exp`, is warped onto `num_mel_bins` HTK mel bands between
    `min_freq` and `max_freq`; with `power_to_db` it is converted to
    decibels relative to `ref_power` and floored at `top_db` below the
    largest value of the whole batch (as Keras does).

    Args:
        fft_length: FFT size. Defaults to 2048.
        sequence_stride: Hop between frames. Defaults to 512.
        sequence_length: Window length (<= `fft_length`). Defaults to
            `fft_length`.
        window: `"hann"`, `"hamming"`, an array, or `None`. Defaults to
            `"hann"`.
        sampling_rate: Samples per second. Defaults to 16000.
        num_mel_bins: Mel bands. Defaults to 128.
        min_freq: Lowest band edge in Hz. Defaults to 20.0.
        max_freq: Highest band edge in Hz. Defaults to `sampling_rate / 2`.
        power_to_db: Whether to convert to decibels. Defaults to `True`.
        top_db: Dynamic range kept below the maximum, in dB. Defaults to 80.
        mag_exp: Exponent of the magnitude (2 gives power). Defaults to 2.
        min_power: Floor before taking logs. Defaults to 1e-10.
        ref_power: Reference power of 0 dB. Defaults to 1.0.

    Input shape: `(samples,)` or `(batch, samples)`, float.
    Output shape: `(num_mel_bins, frames)` or `(batch, num_mel_bins,
        frames)`, frames = `1 + samples // sequence_stride`.

    Example:
        >>> layer = keras.layers.MelSpectrogram(num_mel_bins=80, sampling_rate=8000,
        ...                                     sequence_stride=128, fft_length=2048)
        >>> layer(torch.rand(2, 16000)).shape
        torch.Size([2, 80, 126])
    """

    def __init__(
        self,
        fft_length=2048,
        sequence_stride=512,
        sequence_length=None,
        window="hann",
        sampling_rate=16000,
        num_mel_bins=128,
        min_freq=20.0,
        max_freq=None,
        power_to_db=True,
        top_db=80.0,
        mag_exp=2.0,
        min_power=1e-10,
        ref_power=1.0,
        **kwargs,
    ):
        for name, value in (("fft_length", fft_length), ("sequence_stride", sequence_stride),
                            ("num_mel_bins", num_mel_bins)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"`{name}` must be a positive integer. Received: {name}={value!r}")
        sequence_length = sequence_length or fft_length
        if fft_length < sequence_length:
            raise ValueError(
                "`fft_length` must be greater than or equal to `sequence_length`. "
                f"Received: `sequence_length`={sequence_length}, `fft_length`={fft_length}"
            )
        if isinstance(window, str) and window not in ("hann", "hamming"):
            raise ValueError(
                f'If a string is passed to `window`, it must be one of `"hann"`, `"hamming"`. Received: window={window}'
            )
        super().__init__(**kwargs)
        self.fft_length = fft_length
        self.sequence_stride = sequence_stride
        self.sequence_length = sequence_length
        self.window = window
        self.sampling_rate = sampling_rate
        self.num_mel_bins = num_mel_bins
        self.min_freq = min_freq
        self.max_freq = max_freq or int(sampling_rate / 2)
        self.power_to_db = power_to_db
        self.top_db = top_db
        self.mag_exp = mag_exp
        self.min_power = min_power
        self.ref_power = ref_power
        self.built = True

    def call(self, inputs):
        compute = self.compute_dtype
        dtype = dtypes.to_torch_dtype(compute if compute in ("float32", "float64") else "float32")
        x = inputs.to(dtype)
        lead, samples = x.shape[:-1], x.shape[-1]
        spec = torch.stft(
            x.reshape(-1, samples),
            n_fft=self.fft_length,
            hop_length=self.sequence_stride,
            win_length=self.sequence_length,
            window=_window(self.window, self.sequence_length, dtype, x.device),
            center=True,
            return_complex=True,
        )  # (n, freq, frames)
        magnitude = torch.pow(spec.abs(), self.mag_exp)
        matrix = self._mel_matrix(magnitude.shape[-2], dtype, x.device)
        mel = torch.einsum("nft,fm->nmt", magnitude, matrix)
        if self.power_to_db:
            mel = self._to_db(mel)
        mel = mel.reshape(*lead, *mel.shape[-2:])
        return mel.to(self._compute_torch_dtype)

    def _mel_matrix(self, num_freq, dtype, device):
        """The filter bank, made once per layer (and dtype/device), not per call: it depends
        only on the layer's settings. Under torch.compile it is made in the graph (constant-folded)."""
        args = (self.num_mel_bins, num_freq, self.sampling_rate, self.min_freq, self.max_freq)
        if torch.compiler.is_compiling():
            return linear_to_mel_weight_matrix(*args, dtype=dtype, device=device)
        key = (args, dtype, device)
        cached = self.__dict__.get("_mel_matrix_cache")
        if cached is None or cached[0] != key:
            cached = self.__dict__["_mel_matrix_cache"] = (key, linear_to_mel_weight_matrix(*args, dtype=dtype,
                                                                                             device=device))
        return cached[1]

    def _to_db(self, power):
        db = 10.0 * torch.log10(torch.clamp(power, min=self.min_power))
        db = db - 10.0 * math.log10(max(abs(float(self.ref_power)), self.min_power))
        # floored relative to the largest value of the whole batch, as Keras does
        return torch.maximum(db, db.max() - self.top_db)

    def compute_output_shape(self, input_shape):
        time = input_shape[-1]
        frames = None if time is None else 1 + time // self.sequence_stride
        return (*tuple(input_shape[:-1]), self.num_mel_bins, frames)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "fft_length": self.fft_length,
                "sequence_stride": self.sequence_stride,
                "sequence_length": self.sequence_length,
                "window": self.window,
                "sampling_rate": self.sampling_rate,
                "num_mel_bins": self.num_mel_bins,
                "min_freq": self.min_freq,
                "max_freq": self.max_freq,
                "power_to_db": self.power_to_db,
                "top_db": self.top_db,
                "mag_exp": self.mag_exp,
                "min_power": self.min_power,
                "ref_power": self.ref_power,
            }
        )
        return config
