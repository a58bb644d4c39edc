"""`keras.ops.image.scale_and_translate` (JAX's kernel resampling) and
`elastic_transform` (random smooth displacement fields).

`scale_and_translate` builds, for each spatial axis, a dense weight matrix
`(in, out)`: output sample `j` sits at input position `(j + 0.5) / scale -
translation / scale - 0.5`; its weight for input pixel `i` is the kernel of
the distance (widened by `1 / scale` when downsampling with `antialias`),
normalised to sum to one, and zero for samples outside the input.
"""

from __future__ import annotations

import math

import torch

from kerasish.ops.image import _fmt
from kerasish.ops.image import gaussian_blur
from kerasish.ops.image_sampling import map_coordinates
from kerasish.ops.operation import keras_op
from kerasish.backend.promotion import result_type
from kerasish.backend.promotion import to_tensor


def _triangle(x):
    return torch.clamp(1.0 - torch.abs(x), min=0.0)


def _keys_cubic(x, a=-0.5):
    x = torch.abs(x)
    near = ((a + 2) * x - (a + 3)) * x * x + 1
    far = ((a * x - 5 * a) * x + 8 * a) * x - 4 * a
    return torch.where(x < 1, near, torch.where(x < 2, far, torch.zeros_like(x)))


def _lanczos(radius):
    # sinc(x) sinc(x / r) written out as r sin(pi x) sin(pi x / r) / (pi x)**2, evaluated in
    # that order (as JAX and Keras do: bit-equal to them; torch.sinc's product is up to
    # ~100 ulp away), 1 near 0 and 0 beyond the radius
    def kernel(x):
        x = torch.abs(x)
        num = radius * torch.sin(math.pi * x) * torch.sin(math.pi * x / radius)
        safe = torch.where(x != 0, math.pi**2 * x**2, torch.ones_like(x))
        out = torch.where(x > 1e-3, num / safe, torch.ones_like(x))
        return torch.where(x > radius, torch.zeros_like(x), out)

    return kernel


_KERNELS = {"linear": _triangle, "bilinear": _triangle, "trilinear": _triangle, "triangle": _triangle,
            "cubic": _keys_cubic, "bicubic": _keys_cubic, "tricubic": _keys_cubic,
            "lanczos3": _lanczos(3.0), "lanczos5": _lanczos(5.0)}


def _weights(in_size, out_size, scale, translation, kernel, antialias, dtype, device):
    inv = 1.0 / scale
    widen = torch.clamp(inv, min=1.0) if antialias else torch.ones_like(inv)
    sample = (torch.arange(out_size, dtype=dtype, device=device) + 0.5) * inv - translation * inv - 0.5
    dist = torch.abs(sample[None, :] - torch.arange(in_size, dtype=dtype, device=device)[:, None]) / widen
    w = kernel(dist)
    total = w.sum(dim=0, keepdim=True)
    w = torch.where(torch.abs(total) > 1000.0 * torch.finfo(torch.float32).eps,
                    w / torch.where(total != 0, total, torch.ones_like(total)), torch.zeros_like(w))
    inside = (sample >= -0.5) & (sample <= in_size - 0.5)
    return torch.where(inside[None, :], w, torch.zeros_like(w))


@keras_op(name="image.scale_and_translate")
def scale_and_translate(images, output_shape, scale, translation, spatial_dims, method, antialias=True):
    """Resamples `images` to `output_shape` with per-axis `scale` and
    `translation` over `spatial_dims` (JAX's `scale_and_translate`)."""
    if method not in _KERNELS:
        raise ValueError(f"Invalid value for argument `method`. Expected of one {set(_KERNELS)}. "
                         f"Received: method={method}")
    x = to_tensor(images)
    scale, translation = to_tensor(scale), to_tensor(translation)
    dt = result_type(scale.dtype, translation.dtype)
    compute = torch.float64 if dt == "float64" else torch.float32
    scale, translation = scale.to(compute).to(x.device), translation.to(compute).to(x.device)
    rounding = not x.is_floating_point()
    out = x.to(torch.float32) if rounding else x.clone()
    for i, d in enumerate(spatial_dims):
        d = d % x.ndim
        w = _weights(x.shape[d], int(output_shape[d]), scale[i], translation[i], _KERNELS[method], antialias,
                     compute, x.device).to(out.dtype)
        out = torch.movedim(torch.tensordot(out, w, dims=([d], [0])), -1, d)
    if rounding:
        out = torch.clamp(torch.round(out), x.min().to(out.dtype), x.max().to(out.dtype)).to(x.dtype)
    return out


def elastic_warp(x, noise_x, noise_y, alpha, sigma, interpolation, fill_mode, fill_value):
    """The elastic transform of a channels-last batch `x` (b, h, w, c) with
    the given standard-normal fields `noise_x`, `noise_y` (b, h, w): each
    times `sigma`, blurred with a Gaussian of `sigma` (kernel
    `int(6 sigma) | 1`), scaled by `alpha`; then `map_coordinates`."""
    b, h, w, c = x.shape
    dt = noise_x.dtype
    size = int(6 * float(sigma)) | 1
    dx, dy = (gaussian_blur.__wrapped_op__((n * sigma).unsqueeze(-1), (size, size), (sigma, sigma),
                                           "channels_last")[..., 0] for n in (noise_x, noise_y))
    yy, xx = torch.meshgrid(torch.arange(h, dtype=dt, device=x.device), torch.arange(w, dtype=dt, device=x.device),
                            indexing="ij")
    order = 0 if interpolation == "nearest" else 1
    return torch.stack([
        torch.stack([map_coordinates.__wrapped_op__(x[i, ..., ch], [yy + alpha * dy[i], xx + alpha * dx[i]], order,
                                                    fill_mode, fill_value) for ch in range(c)], dim=-1)
        for i in range(b)
    ])


@keras_op(name="image.elastic_transform")
def elastic_transform(images, alpha=20.0, sigma=5.0, interpolation="bilinear", fill_mode="reflect", fill_value=0.0,
                      seed=None, data_format=None):
    """Displaces every pixel by a smooth random field: normal noise times
    `sigma`, blurred with a Gaussian of `sigma` (kernel `int(6 sigma) | 1`),
    scaled by `alpha`; then resamples with `map_coordinates`.

    Unlike Keras 3.15 on torch (which ignores `seed` there), an int seed or
    `SeedGenerator` makes the field reproducible.
    """
    from kerasish.random.random import normal

    if interpolation not in ("nearest", "bilinear"):
        raise ValueError("Invalid value for argument `interpolation`. Expected of one {'nearest', 'bilinear'}. "
                         f"Received: interpolation={interpolation}")
    data_format = _fmt(data_format)
    x = to_tensor(images)
    if x.ndim not in (3, 4):
        raise ValueError("Invalid images rank: expected rank 3 (single image) or rank 4 (batch of images). "
                         f"Received input with shape: images.shape={tuple(x.shape)}")
    squeeze = x.ndim == 3
    if squeeze:
        x = x.unsqueeze(0)
    if data_format == "channels_first":
        x = x.permute(0, 2, 3, 1)
    b, h, w, c = x.shape
    dt = x.dtype if x.is_floating_point() else torch.float32
    from kerasish.random.seed_generator import SeedGenerator

    gen_seed = SeedGenerator(seed) if isinstance(seed, int) and not isinstance(seed, bool) else seed
    noise = [normal((b, h, w), dtype=dt, seed=gen_seed) for _ in range(2)]
    out = elastic_warp(x, noise[0], noise[1], alpha, sigma, interpolation, fill_mode, fill_value)
    if data_format == "channels_first":
        out = out.permute(0, 3, 1, 2)
    return out.squeeze(0) if squeeze else out

