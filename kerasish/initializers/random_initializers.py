"""Random initializers: normal/uniform/truncated, variance scaling and its
Glorot/He/Lecun presets, and Orthogonal.

Seeding: an int `seed` makes every call (of this or any new instance with the
same seed) return the same values; the draw uses a `torch.Generator` seeded
like Keras's torch backend does, so values match Keras bit for bit for the
normal and uniform draws. A `keras.random.SeedGenerator` seed gives new
values on each call (its counter advances), as in Keras.

`seed=None` follows Keras 3 once `keras.utils.set_random_seed` was called: the
initializer takes an int seed from Python's `random` when it is constructed
(so a layer's initial weights depend on the program order of layer
constructions, exactly as in Keras, not on when kerasish builds lazily), and
every call of that instance returns the same values. Before any
`set_random_seed`, `seed=None` draws from torch's global RNG (so
`torch.manual_seed` controls it) and gives new values on every call.
"""

from __future__ import annotations

import math

import torch

from kerasish.initializers.initializer import Initializer, _dtype, _shape
from kerasish.random.seed_generator import keras_seeding
from kerasish.random.seed_generator import make_default_seed
from kerasish.random.seed_generator import seeded_generator

# stddev of a unit normal truncated to [-2, 2]; dividing by it keeps the
# requested variance after truncation (same constant as Keras).
_TRUNCATION_STDDEV = 0.87962566103423978


def _generator(seed) -> torch.Generator | None:
    """A seeded generator on the default device: a weight built for CUDA
    (`add_weight` runs its initializer under `torch.device(device)`) is
    drawn there, as Keras's torch backend does, never on the CPU and then
    copied; CPU draws match Keras bit for bit. `seed` is None (global RNG),
    an int or a `SeedGenerator` (whose counter then advances)."""
    if seed is None:
        return None
    device = torch.get_default_device()
    if device.type == "meta":
        return None  # shapes only: no values to seed
    if getattr(seed, "_is_seed_generator", False):
        return seeded_generator(seed.next(), device)
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed) & 0xFFFFFFFF)
    return generator


def _as_float(dtype: torch.dtype) -> torch.dtype:
    if not dtype.is_floating_point:
        raise ValueError(f"Random initializers need a float dtype. Received: dtype={dtype}")
    return dtype


def random_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None) -> torch.Tensor:
    """Normal samples; seeded as Keras's torch backend seeds them."""
    dtype = _as_float(_dtype(dtype))
    return torch.normal(float(mean), float(stddev), size=_shape(shape), generator=_generator(seed), dtype=dtype,
                        device=torch.get_default_device())


def random_uniform(shape, minval=0.0, maxval=1.0, dtype=None, seed=None) -> torch.Tensor:
    """Uniform samples in `[minval, maxval)`; seeded as Keras's torch backend."""
    dtype = _as_float(_dtype(dtype))
    rand = torch.rand(_shape(shape), generator=_generator(seed), dtype=dtype)
    return (maxval - minval) * rand + minval


def truncated_normal(shape, mean=0.0, stddev=1.0, dtype=None, seed=None) -> torch.Tensor:
    """Normal samples with everything beyond 2 stddev from `mean` re-drawn.

    Draws four candidates per element and keeps the first inside (-2, 2), as
    Keras's torch backend does (so seeded values match it); the rare elements
    with no valid candidate (p ~ 4e-6) are drawn by inverse CDF instead of
    being left out of range.
    """
    shape, dtype = _shape(shape), _as_float(_dtype(dtype))
    generator = _generator(seed)
    x = torch.normal(0.0, 1.0, size=shape + (4,), generator=generator, dtype=dtype, device=torch.get_default_device())
    valid = (x > -2) & (x < 2)
    first = valid.to(torch.uint8).argmax(-1, keepdim=True)
    out = x.gather(-1, first).squeeze(-1)
    missing = ~valid.any(-1)
    if x.device.type != "meta" and bool(missing.any()):
        n = int(missing.sum())
        lo, hi = 0.5 * math.erfc(2 / math.sqrt(2)), 0.5 * math.erfc(-2 / math.sqrt(2))
        u = lo + (hi - lo) * torch.rand(n, generator=generator, dtype=torch.float64)
        z = math.sqrt(2) * torch.erfinv(2 * u - 1)
        out[missing] = z.clamp(-2, 2).to(dtype)
    return out * stddev + mean


class RandomInitializer(Initializer):
    """Base of the seeded initializers.

    Args:
        seed: Python int, or `None` to draw from torch's global RNG.
            Defaults to `None`.
    """

    def __init__(self, seed: int | None = None):
        self._init_seed = seed
        if seed is None:
            if keras_seeding():
                seed = make_default_seed()  # Keras's draw, at construction (module doc)
        elif isinstance(seed, dict):
            from kerasish.random.seed_generator import SeedGenerator
            from kerasish.saving import deserialize_keras_object

            seed = deserialize_keras_object(seed, module_objects={"SeedGenerator": SeedGenerator})
        if seed is not None and not (isinstance(seed, int) or getattr(seed, "_is_seed_generator", False)):
            raise ValueError(
                "`seed` argument should be an instance of "
                "`keras.random.SeedGenerator()` or an integer. "
                f"Received: seed={seed}"
            )
        self.seed = seed

    def get_config(self) -> dict:
        seed = self._init_seed
        if getattr(seed, "_is_seed_generator", False):
            from kerasish.saving import serialize_keras_object

            seed = serialize_keras_object(seed)
        return {"seed": seed}


class RandomNormal(RandomInitializer):
    """Samples from a normal distribution.

    Args:
        mean: Mean of the distribution. Defaults to `0.0`.
        stddev: Standard deviation. Defaults to `0.05`.
        seed: Python int or `None`. Defaults to `None`.
    """

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        self.mean = mean
        self.stddev = stddev
        super().__init__(seed=seed)

    def __call__(self, shape, dtype=None) -> torch.Tensor:
        return random_normal(shape, self.mean, self.stddev, dtype=dtype, seed=self.seed)

    def get_config(self) -> dict:
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


class TruncatedNormal(RandomInitializer):
    """Samples from a normal distribution truncated to `mean ± 2 * stddev`.

    Args:
        mean: Mean of the (untruncated) distribution. Defaults to `0.0`.
        stddev: Standard deviation before truncation. Defaults to `0.05`.
        seed: Python int or `None`. Defaults to `None`.
    """

    def __init__(self, mean: float = 0.0, stddev: float = 0.05, seed: int | None = None):
        self.mean = mean
        self.stddev = stddev
        super().__init__(seed=seed)

    def __call__(self, shape, dtype=None) -> torch.Tensor:
        return truncated_normal(shape, self.mean, self.stddev, dtype=dtype, seed=self.seed)

    def get_config(self) -> dict:
        return {**super().get_config(), "mean": self.mean, "stddev": self.stddev}


class RandomUniform(RandomInitializer):
    """Samples from a uniform distribution in `[minval, maxval)`.

    Args:
        minval: Lower bound. Defaults to `-0.05`.
        maxval: Upper bound. Defaults to `0.05`.
        seed: Python int or `None`. Defaults to `None`.
    """

    def __init__(self, minval: float = -0.05, maxval: float = 0.05, seed: int | None = None):
        self.minval = minval
        self.maxval = maxval
        super().__init__(seed=seed)

    def __call__(self, shape, dtype=None) -> torch.Tensor:
        return random_uniform(shape, self.minval, self.maxval, dtype=dtype, seed=self.seed)

    def get_config(self) -> dict:
        return {**super().get_config(), "minval": self.minval, "maxval": self.maxval}


def compute_fans(shape, input_axes=None, output_axes=None) -> tuple[int, int]:
    """Returns `(fan_in, fan_out)` for a weight shape, as Keras computes them.

    Conv kernels `(*spatial, in, out)` use receptive field `prod(spatial)`.

    Args:
        shape: Integer shape tuple.
        input_axes: Axes whose product is `fan_in` (with `output_axes`).
            Defaults to `None`.
        output_axes: Axes whose product is `fan_out`. Defaults to `None`.
    """
    shape = tuple(shape)
    if input_axes is not None and output_axes is not None:
        return int(math.prod(shape[a] for a in input_axes)), int(math.prod(shape[a] for a in output_axes))
    if len(shape) < 1:
        return 1, 1
    if len(shape) == 1:
        return int(shape[0]), int(shape[0])
    if len(shape) == 2:
        return int(shape[0]), int(shape[1])
    receptive_field = math.prod(shape[:-2])
    return int(shape[-2] * receptive_field), int(shape[-1] * receptive_field)


class VarianceScaling(RandomInitializer):
    """Samples with a variance scaled to the weight's fans.

    `stddev = sqrt(scale / n)` for the normal distributions (after
    truncation for `"truncated_normal"`), `limit = sqrt(3 * scale / n)` for
    `"uniform"`, where `n` is fan_in, fan_out or their mean per `mode`.

    Args:
        scale: Positive scaling factor. Defaults to `1.0`.
        mode: `"fan_in"`, `"fan_out"` or `"fan_avg"`. Defaults to `"fan_in"`.
        distribution: `"truncated_normal"` (alias `"normal"`),
            `"untruncated_normal"` or `"uniform"`.
            Defaults to `"truncated_normal"`.
        seed: Python int or `None`. Defaults to `None`.
        input_axes: Axes counted as inputs for the fans. Defaults to `None`.
        output_axes: Axes counted as outputs for the fans. Defaults to `None`.
    """

    def __init__(
        self,
        scale: float = 1.0,
        mode: str = "fan_in",
        distribution: str = "truncated_normal",
        seed: int | None = None,
        input_axes: list[int] | None = None,
        output_axes: list[int] | None = None,
    ):
        if scale <= 0.0:
            raise ValueError(f"Argument `scale` must be positive float. Received: scale={scale}")
        allowed_modes = {"fan_in", "fan_out", "fan_avg"}
        if mode not in allowed_modes:
            raise ValueError(f"Invalid `mode` argument: {mode}. Please use one of {allowed_modes}")
        distribution = distribution.lower()
        if distribution == "normal":
            distribution = "truncated_normal"
        allowed_distributions = {"uniform", "truncated_normal", "untruncated_normal"}
        if distribution not in allowed_distributions:
            raise ValueError(
                f"Invalid `distribution` argument: {distribution}."
                f"Please use one of {allowed_distributions}"
            )
        self.scale = scale
        self.mode = mode
        self.distribution = distribution
        self.input_axes = input_axes
        self.output_axes = output_axes
        super().__init__(seed=seed)

    def __call__(self, shape, dtype=None) -> torch.Tensor:
        fan_in, fan_out = compute_fans(_shape(shape), self.input_axes, self.output_axes)
        if self.mode == "fan_in":
            scale = self.scale / max(1.0, fan_in)
        elif self.mode == "fan_out":
            scale = self.scale / max(1.0, fan_out)
        else:
            scale = self.scale / max(1.0, (fan_in + fan_out) / 2.0)
        if self.distribution == "truncated_normal":
            stddev = math.sqrt(scale) / _TRUNCATION_STDDEV
            return truncated_normal(shape, 0.0, stddev, dtype=dtype, seed=self.seed)
        if self.distribution == "untruncated_normal":
            return random_normal(shape, 0.0, math.sqrt(scale), dtype=dtype, seed=self.seed)
        limit = math.sqrt(3.0 * scale)
        return random_uniform(shape, -limit, limit, dtype=dtype, seed=self.seed)

    def get_config(self) -> dict:
        return {
            **super().get_config(),
            "scale": self.scale,
            "mode": self.mode,
            "distribution": self.distribution,
            "input_axes": self.input_axes,
            "output_axes": self.output_axes,
        }


def with_fan_axes(init, input_axes, output_axes):
    """Keras's `EinsumDense._update_kernel_initializer`: a VarianceScaling
    initializer without fan axes, cloned with them and with its concrete
    seed (so the clone draws what the original would, consuming no new
    default seed); any other initializer is returned unchanged."""
    if not isinstance(init, VarianceScaling) or (init.input_axes is not None and init.output_axes is not None):
        return init
    config = dict(init.get_config(), input_axes=list(input_axes), output_axes=list(output_axes))
    config["seed"] = init.seed  # (a SeedGenerator object passes through as is)
    return type(init).from_config(config)


class _Preset(VarianceScaling):
    _preset: tuple[float, str, str] = (1.0, "fan_in", "truncated_normal")

    def __init__(self, seed: int | None = None, input_axes: list[int] | None = None, output_axes: list[int] | None = None):
        scale, mode, distribution = self._preset
        super().__init__(scale, mode, distribution, seed=seed, input_axes=input_axes, output_axes=output_axes)

    def get_config(self) -> dict:
        return {**RandomInitializer.get_config(self), "input_axes": self.input_axes, "output_axes": self.output_axes}


class GlorotUniform(_Preset):
    """Glorot (Xavier) uniform: `U(-limit, limit)`, `limit = sqrt(6 / (fan_in + fan_out))`.

    Args:
        seed: Python int or `None`. Defaults to `None`.
        input_axes: Axes counted as inputs. Defaults to `None`.
        output_axes: Axes counted as outputs. Defaults to `None`.
    """

    _preset = (1.0, "fan_avg", "uniform")


class GlorotNormal(_Preset):
    """Glorot (Xavier) normal: truncated normal, `stddev = sqrt(2 / (fan_in + fan_out))`.

    Args:
        seed: Python int or `None`. Defaults to `None`.
        input_axes: Axes counted as inputs. Defaults to `None`.
        output_axes: Axes counted as outputs. Defaults to `None`.
    """

    _preset = (1.0, "fan_avg", "truncated_normal")


class LecunNormal(_Preset):
    """Lecun normal: truncated normal, `stddev = sqrt(1 / fan_in)`.

    Args:
        seed: Python int or `None`. Defaults to `None`.
        input_axes: Axes counted as inputs. Defaults to `None`.
        output_axes: Axes counted as outputs. Defaults to `None`.
    """

    _preset = (1.0, "fan_in", "truncated_normal")


class LecunUniform(_Preset):
    """Lecun uniform: `U(-limit, limit)`, `limit = sqrt(3 / fan_in)`.

    Args:
        seed: Python int or `None`. Defaults to `None`.
        input_axes: Axes counted as inputs. Defaults to `None`.
        output_axes: Axes counted as outputs. Defaults to `None`.
    """

    _preset = (1.0, "fan_in", "uniform")


class HeNormal(_Preset):
    """He normal: truncated normal, `stddev = sqrt(2 / fan_in)`.

    Args:
        seed: Python int or `None`. Defaults to `None`.
        input_axes: Axes counted as inputs. Defaults to `None`.
        output_axes: Axes counted as outputs. Defaults to `None`.
    """

    _preset = (2.0, "fan_in", "truncated_normal")


class HeUniform(_Preset):
    """He uniform: `U(-limit, limit)`, `limit = sqrt(6 / fan_in)`.

    Args:
        seed: Python int or `None`. Defaults to `None`.
        input_axes: Axes counted as inputs. Defaults to `None`.
        output_axes: Axes counted as outputs. Defaults to `None`.
    """

    _preset = (2.0, "fan_in", "uniform")


class Orthogonal(RandomInitializer):
    """Generates a (semi-)orthogonal matrix times `gain`.

    Shapes of rank > 2 are treated as `(prod(shape[:-1]), shape[-1])`. The
    matrix comes from the QR decomposition of a normal sample; rows are
    orthonormal when there are fewer rows than columns, else columns are.

    Args:
        gain: Multiplicative factor. Defaults to `1.0`.
        seed: Python int or `None`. Defaults to `None`.
    """

    def __init__(self, gain: float = 1.0, seed: int | None = None):
        self.gain = gain
        super().__init__(seed=seed)

    def __call__(self, shape, dtype=None) -> torch.Tensor:
        if len(shape) < 2:
            raise ValueError(
                "The tensor to initialize must be at least two-dimensional. "
                f"Received: shape={shape} of rank {len(shape)}."
            )
        shape, dtype = _shape(shape), _as_float(_dtype(dtype))
        num_rows, num_cols = math.prod(shape[:-1]), shape[-1]
        flat_shape = (max(num_rows, num_cols), min(num_rows, num_cols))
        # QR has no half-precision kernels: sample and factor in float32 at least
        work = dtype if dtype in (torch.float32, torch.float64) else torch.float32
        a = random_normal(flat_shape, dtype=work, seed=self.seed)
        q, r = torch.linalg.qr(a)
        q = q * torch.sign(torch.diagonal(r))
        if num_rows < num_cols:
            q = q.T
        return (self.gain * q.reshape(shape)).to(dtype).contiguous()  # q.T is a strided view

    def get_config(self) -> dict:
        return {**super().get_config(), "gain": self.gain}
