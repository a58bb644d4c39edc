"""Affine resampling of images, as Keras 3's `ops.image.affine_transform`.

A transform is Keras's flat 8-vector `[a0, a1, a2, b0, b1, b2, c0, c1]`
mapping each *output* pixel `(x, y)` to the *input* point
`x_in = a0*x + a1*y + a2`, `y_in = b0*x + b1*y + b2` (the projective terms
`c0, c1` are zero for every layer here, and ignored as Keras's torch backend
ignores them). The input is sampled there with "nearest" (round half to
even) or "bilinear" interpolation; points outside the image follow
`fill_mode`:

- "reflect": `d c b a | a b c d | d c b a` (edge repeated);
- "wrap": `a b c d | a b c d | a b c d`;
- "nearest": `a a a a | a b c d | d d d d`;
- "constant": `k k k k | a b c d | k k k k` with `k = fill_value`.

Unlike Keras's torch backend (one `map_coordinates` per image, in a Python
loop) the whole batch is gathered at once; the four bilinear taps are summed
in Keras's order, so results agree to float rounding.
"""

from __future__ import annotations

import math

import torch

FILL_MODES = ("reflect", "wrap", "constant", "nearest")
INTERPOLATIONS = ("nearest", "bilinear")


def _fix_index(index: torch.Tensor, size: int, fill_mode: str) -> torch.Tensor:
    """Maps out-of-range integer indices back into `[0, size)`."""
    if fill_mode == "wrap":
        return torch.remainder(index, size)
    if fill_mode == "reflect":
        # reflect about the pixel edges: period 2*size, mirrored second half
        period = torch.remainder(index, 2 * size)
        return torch.where(period < size, period, 2 * size - 1 - period)
    return index.clamp(0, size - 1)  # "nearest"; "constant" masks these out


def _taps(coordinate: torch.Tensor, interpolation: str):
    """[(integer index, weight)] of the 1-D interpolation at `coordinate`."""
    if interpolation == "nearest":
        return [(torch.round(coordinate).to(torch.int64), None)]
    lower = torch.floor(coordinate)
    upper_weight = coordinate - lower
    index = lower.to(torch.int64)
    return [(index, 1 - upper_weight), (index + 1, upper_weight)]


def affine_transform(
    images: torch.Tensor,
    transforms: torch.Tensor,
    interpolation: str = "bilinear",
    fill_mode: str = "constant",
    fill_value: float = 0.0,
    channels_last: bool = True,
) -> torch.Tensor:
    """Resamples a 4-D image batch through per-image affine `transforms` (B, 8).

    Args:
        images: `(B, H, W, C)` if `channels_last` else `(B, C, H, W)`.
        transforms: `(B, 8)` output-to-input transforms (see module doc), or `(8,)`.
        interpolation: "nearest" or "bilinear".
        fill_mode: "reflect", "wrap", "constant" or "nearest".
        fill_value: value outside the image for "constant".
        channels_last: data layout of `images`.

    Returns:
        The resampled images, same shape and dtype as `images`.
    """
    if not channels_last:
        images = images.permute(0, 2, 3, 1)
    batch, height, width, channels = images.shape
    transforms = transforms.to(device=images.device).reshape(-1, 8)
    if transforms.shape[0] == 1 and batch != 1:
        transforms = transforms.expand(batch, 8)
    t = transforms.to(torch.float32 if images.dtype in (torch.float16, torch.bfloat16) else images.dtype)
    x_in, y_in = _source_points(t, height, width, channels)  # (B, H, W) each
    flat = images.reshape(batch, height * width, channels)
    base = None
    out = None
    for yi, wy in _taps(y_in, interpolation):
        for xi, wx in _taps(x_in, interpolation):
            index = _fix_index(yi, height, fill_mode) * width + _fix_index(xi, width, fill_mode)
            value = torch.gather(flat, 1, index.reshape(batch, -1, 1).expand(-1, -1, channels))
            value = value.reshape(batch, height, width, channels)
            if fill_mode == "constant":
                valid = (yi >= 0) & (yi < height) & (xi >= 0) & (xi < width)
                if base is None:
                    base = torch.full((), fill_value, dtype=images.dtype, device=images.device)
                value = torch.where(valid.unsqueeze(-1), value, base)
            if wy is not None:
                value = (wy * wx).unsqueeze(-1).to(value.dtype) * value
            out = value if out is None else out + value
    if not channels_last:
        out = out.permute(0, 3, 1, 2)
    return out


def _source_points(t: torch.Tensor, height: int, width: int, channels: int):
    """`(x_in, y_in)` of every output pixel, computed as Keras's torch backend computes them: one einsum
    of the `(y, x, c)` index grid of the whole image with the transform's 3x3 matrix, then the offsets.
    The same kernel on the same shapes rounds alike on every CPU; the composed `a0 * x + a1 * y + a2`
    rounded differently where the einsum's kernel fuses multiply-adds (1 ulp in the bilinear weights,
    or a sample on a pixel boundary taking the neighbouring pixel)."""
    a0, a1, a2, b0, b1, b2 = t[:, :6].unbind(-1)
    zero, one = torch.zeros_like(a0), torch.ones_like(a0)
    matrix = torch.stack([torch.stack([b1, a1, zero], -1), torch.stack([b0, a0, zero], -1),
                          torch.stack([zero, zero, one], -1)], -2)
    grid = torch.stack(torch.meshgrid(*(torch.arange(n, dtype=t.dtype, device=t.device)
                                        for n in (height, width, channels)), indexing="ij"), -1)
    coords = torch.einsum("Bhwij, Bjk -> Bhwik", grid.expand(t.shape[0], *grid.shape), matrix)[:, :, :, 0]
    return coords[..., 1] + a2.view(-1, 1, 1), coords[..., 0] + b2.view(-1, 1, 1)


def affine_matrix(angle_deg, translate_x, translate_y, scale, height: int, width: int) -> torch.Tensor:
    """Keras's `_compute_affine_matrix` without shear: rotation by `angle_deg`
    about the image centre `((W-1)/2, (H-1)/2)`, then scale and translation
    (all `(B,)` tensors); returns the `(B, 8)` output-to-input transforms."""
    angle = angle_deg * (math.pi / 180.0)
    cx = 0.5 * (width - 1)
    cy = 0.5 * (height - 1)
    cos, sin = torch.cos(angle), torch.sin(angle)
    a0 = scale * cos
    a1 = scale * -sin
    a2 = translate_x + cx - cx * a0 - cy * a1
    b0 = scale * sin
    b1 = scale * cos
    b2 = translate_y + cy - cx * b0 - cy * b1
    zeros = torch.zeros_like(angle)
    return torch.stack([a0, a1, a2, b0, b1, b2, zeros, zeros], dim=1)
