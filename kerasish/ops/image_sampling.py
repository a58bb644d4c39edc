"""`keras.ops.image` ops that resample images at computed coordinates
(`map_coordinates`, `affine_transform`), measure them (`ssim`,
`sobel_edges`) or cut 3-D patches (`extract_patches_3d`).

`map_coordinates` follows `scipy.ndimage.map_coordinates` / JAX (order 0 or
1): each output value mixes the input at the neighbouring integer taps;
outside the input, "constant" uses `fill_value` for each missing tap and the
other modes fold the tap index back ("nearest" clamps, "wrap" is periodic,
"mirror" reflects about the edge pixels, "reflect" about the edges).
"""

from __future__ import annotations

import itertools

import torch
import torch.nn.functional as F

from kerasish.layers.convolutional.conv_utils import same_padding
from kerasish.ops.image import _batched
from kerasish.ops.image import _fmt
from kerasish.ops.operation import keras_op
from kerasish.backend.promotion import to_tensor


def _fold_mirror(index, size):
    period = 2 * (size - 1)
    if period == 0:
        return torch.zeros_like(index)
    return (size - 1) - torch.abs(torch.remainder(index, period) - (size - 1))


def _fold_reflect(index, size):
    period = 2 * size
    i = torch.remainder(index, period)
    return torch.where(i < size, i, period - 1 - i)


_FOLD = {
    "constant": lambda i, n: torch.clamp(i, 0, n - 1),
    "nearest": lambda i, n: torch.clamp(i, 0, n - 1),
    "wrap": lambda i, n: torch.remainder(i, n),
    "mirror": _fold_mirror,
    "reflect": _fold_reflect,
}


def _taps(coordinate, order):
    if order == 0:
        c = coordinate if not coordinate.is_floating_point() else torch.round(coordinate)
        return [(c.to(torch.int64), None)]
    low = torch.floor(coordinate)
    frac = coordinate - low
    low = low.to(torch.int64)
    return [(low, 1 - frac), (low + 1, frac)]


@keras_op(name="image.map_coordinates")
def map_coordinates(inputs, coordinates, order, fill_mode="constant", fill_value=0):
    """Samples `inputs` at `coordinates` (one coordinate array per input
    axis) with nearest (`order=0`) or linear (`order=1`) interpolation."""
    x = to_tensor(inputs)
    coords = [to_tensor(c) for c in coordinates]
    if len(coords) != x.ndim:
        raise ValueError(
            "First dim of `coordinates` must be the same as the rank of `inputs`. "
            f"Received inputs with shape: {tuple(x.shape)} and coordinate leading dim of {len(coords)}"
        )
    if fill_mode not in _FOLD:
        raise ValueError(f"Invalid value for argument `fill_mode`. Expected one of {set(_FOLD)}. "
                         f"Received: fill_mode={fill_mode}")
    if order not in (0, 1):
        raise NotImplementedError(f"map_coordinates currently requires order<=1. Received: order={order}")
    per_axis = []
    for c, n in zip(coords, x.shape):
        axis_taps = []
        for index, weight in _taps(c, order):
            valid = (index >= 0) & (index < n) if fill_mode == "constant" else None
            axis_taps.append((_FOLD[fill_mode](index, n), valid, weight))
        per_axis.append(axis_taps)
    compute = x.dtype if x.is_floating_point() else torch.float32
    out = None
    for combo in itertools.product(*per_axis):
        value = x[tuple(t[0] for t in combo)].to(compute)
        valids = [t[1] for t in combo if t[1] is not None]
        if valids:
            ok = valids[0]
            for v in valids[1:]:
                ok = ok & v
            value = torch.where(ok, value, torch.as_tensor(fill_value, dtype=compute))
        # the weights' product first, then times the value (Keras's order: bit-equal to it)
        weight = None
        for t in combo:
            if t[2] is not None:
                weight = t[2].to(compute) if weight is None else weight * t[2].to(compute)
        if weight is not None:
            value = weight * value
        out = value if out is None else out + value
    if not x.is_floating_point():
        out = torch.round(out)
    return out.to(x.dtype)


@keras_op(name="image.affine_transform")
def affine_transform(images, transform, interpolation="bilinear", fill_mode="constant", fill_value=0,
                     data_format=None):
    """Applies projective transforms `[a0, a1, a2, b0, b1, b2, c0, c1]`: the
    output pixel `(x, y)` is read from input `((a0 x + a1 y + a2) / k,
    (b0 x + b1 y + b2) / k)` with `k = c0 x + c1 y + 1`."""
    return _transform_images(images, transform, interpolation, fill_mode, fill_value, data_format, False)


def _transform_images(images, transform, interpolation, fill_mode, fill_value, data_format, projective):
    """`affine_transform`'s work; `projective` (perspective_transform's call) keeps that op's own
    arithmetic for the source coordinates."""
    if interpolation not in ("nearest", "bilinear"):
        raise ValueError("Invalid value for argument `interpolation`. Expected of one {'nearest', 'bilinear'}. "
                         f"Received: interpolation={interpolation}")
    data_format = _fmt(data_format)
    x, squeeze = _batched(images)
    t = to_tensor(transform)
    if t.ndim not in (1, 2):
        raise ValueError("Invalid transform rank: expected rank 1 (single transform) or rank 2 (batch of "
                         f"transforms). Received input with shape: transform.shape={tuple(t.shape)}")
    if t.ndim == 1:
        t = t.unsqueeze(0)
    if data_format == "channels_first":
        x = x.permute(0, 2, 3, 1)
    t = t.to(torch.float32 if not t.is_floating_point() else t.dtype)
    _, h, w, c = x.shape
    t = t.to(x.device)
    yy, xx, cc = torch.meshgrid(*(torch.arange(n, dtype=t.dtype, device=x.device) for n in (h, w, c)),
                                indexing="ij")
    a0, a1, a2, b0, b1, b2, c0, c1 = t.unbind(-1)
    if not projective:
        # the source coordinates as Keras's torch backend computes them (the same einsum over the
        # (y, x, c) index grid, then the offsets), so that they round alike on every CPU (the composed
        # `a0 * x + a1 * y + a2` rounds differently where the einsum's kernel fuses multiply-adds, and a
        # sample on a pixel boundary then flips)
        zero, one = torch.zeros_like(a0), torch.ones_like(a0)
        matrix = torch.stack([torch.stack([b1, a1, zero], -1), torch.stack([b0, a0, zero], -1),
                              torch.stack([zero, zero, one], -1)], -2)
        grid = torch.stack([yy, xx, cc], -1).expand(x.shape[0], h, w, c, 3)
        coords = torch.einsum("Bhwij, Bjk -> Bhwik", grid, matrix)
        coords = torch.moveaxis(coords, -1, 1) + torch.stack([b2, a2, zero], -1).reshape(-1, 3, 1, 1, 1)
    outs = []
    for i in range(x.shape[0]):
        # TF's projective division by `k` (exactly 1 where c0 = c1 = 0; Keras's torch backend has none)
        k = c0[i] * xx + c1[i] * yy + 1.0
        if projective:  # perspective_transform: its own arithmetic, as Keras's
            src_x = (a0[i] * xx + a1[i] * yy + a2[i]) / k
            src_y = (b0[i] * xx + b1[i] * yy + b2[i]) / k
        else:
            src_y, src_x = coords[i, 0] / k, coords[i, 1] / k
        order = 0 if interpolation == "nearest" else 1
        outs.append(map_coordinates.__wrapped_op__(x[i], [src_y, src_x, cc], order, fill_mode, fill_value))
    y = torch.stack(outs)
    if data_format == "channels_first":
        y = y.permute(0, 3, 1, 2)
    return y.squeeze(0) if squeeze else y


def _homography(start, end):
    """The 8 projective coefficients mapping each `end` point (output pixel)
    to its `start` point (input pixel): per pair, `sx * (a6 ex + a7 ey + 1)
    = a0 ex + a1 ey + a2` and the same for y, solved as an 8 x 8 system."""
    ex, ey, sx, sy = end[..., 0], end[..., 1], start[..., 0], start[..., 1]
    zero, one = torch.zeros_like(ex), torch.ones_like(ex)
    rows_x = torch.stack([ex, ey, one, zero, zero, zero, -sx * ex, -sx * ey], dim=-1)
    rows_y = torch.stack([zero, zero, zero, ex, ey, one, -sy * ex, -sy * ey], dim=-1)
    system = torch.stack([rows_x, rows_y], dim=-2).reshape(end.shape[0], 8, 8)
    target = torch.stack([sx, sy], dim=-1).reshape(end.shape[0], 8, 1)
    return torch.linalg.solve(system, target).squeeze(-1)


@keras_op(name="image.perspective_transform")
def perspective_transform(images, start_points, end_points, interpolation="bilinear", fill_value=0,
                          data_format=None):
    """Warps images so that the four `start_points` `(x, y)` land on the
    four `end_points` (areas outside the input get `fill_value`)."""
    x = to_tensor(images)
    dt = x.dtype if x.is_floating_point() else torch.float32
    start, end = to_tensor(start_points).to(dt), to_tensor(end_points).to(dt)
    for name, pts in (("start_points", start), ("end_points", end)):
        if pts.shape[-2:] != (4, 2) or pts.ndim not in (2, 3):
            raise ValueError(f"Invalid {name} shape: expected (4,2) for a single image or (N,4,2) for a batch. "
                             f"Received shape: {tuple(pts.shape)}")
    if start.shape != end.shape:
        raise ValueError("start_points and end_points must have the same shape.")
    if start.ndim == 2:
        start, end = start.unsqueeze(0), end.unsqueeze(0)
    compute = torch.float64 if dt == torch.float64 else torch.float32
    coeffs = _homography(start.to(compute), end.to(compute)).to(dt).to(x.device)
    batch = x.shape[0] if x.ndim == 4 else 1
    if coeffs.shape[0] == 1 and batch > 1:
        coeffs = coeffs.expand(batch, 8)
    return _transform_images(images, coeffs if x.ndim == 4 else coeffs[0], interpolation, "constant", fill_value,
                             data_format, True)


@keras_op(name="image.sobel_edges")
def sobel_edges(images, data_format=None):
    """Sobel gradients `(dy, dx)` per channel, stacked on a new last axis
    (zero padding, same size)."""
    data_format = _fmt(data_format)
    x = to_tensor(images)
    x = x.permute(0, 3, 1, 2) if data_format == "channels_last" else x
    c = x.shape[1]
    smooth = torch.tensor([1.0, 2.0, 1.0], dtype=x.dtype, device=x.device)
    diff = torch.tensor([-1.0, 0.0, 1.0], dtype=x.dtype, device=x.device)
    ky, kx = torch.outer(diff, smooth), torch.outer(smooth, diff)
    dy = F.conv2d(x, ky.expand(c, 1, 3, 3), padding=1, groups=c)
    dx = F.conv2d(x, kx.expand(c, 1, 3, 3), padding=1, groups=c)
    edges = torch.stack([dy, dx], dim=-1)
    return edges.permute(0, 2, 3, 1, 4) if data_format == "channels_last" else edges


@keras_op(name="image.ssim")
def ssim(image1, image2, max_val=1.0, filter_size=11, filter_sigma=1.5, k1=0.01, k2=0.03, data_format=None):
    """Structural similarity per image (Gaussian-weighted local statistics
    over valid windows, averaged over space and channels)."""
    data_format = _fmt(data_format)
    a, b = to_tensor(image1), to_tensor(image2)
    out_dtype = a.dtype
    for name, t in (("image1", a), ("image2", b)):
        if t.ndim not in (3, 4):
            raise ValueError(f"Invalid {name} rank: expected rank 3 (single image) or rank 4 (batch of images). "
                             f"Received input with shape: {name}.shape={tuple(t.shape)}")
    compute = a.dtype if a.is_floating_point() else torch.float32
    a, b = a.to(compute), b.to(compute)
    unbatched = a.ndim == 3
    if unbatched:
        a, b = a.unsqueeze(0), b.unsqueeze(0)
    if data_format == "channels_last":
        a, b = a.permute(0, 3, 1, 2), b.permute(0, 3, 1, 2)
    n, c = a.shape[:2]
    g = torch.arange(filter_size, dtype=compute, device=a.device) - (filter_size - 1) / 2.0
    g = torch.exp(-(g**2) / (2.0 * filter_sigma**2))
    g = g / g.sum()
    kernel = torch.outer(g, g).expand(c, 1, filter_size, filter_size)

    def blur(t):
        return F.conv2d(t, kernel, groups=c)

    mu1, mu2 = blur(a), blur(b)
    var1 = blur(a * a) - mu1 * mu1
    var2 = blur(b * b) - mu2 * mu2
    cov = blur(a * b) - mu1 * mu2
    c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2
    ssim_map = ((2 * mu1 * mu2 + c1) * (2 * cov + c2)) / ((mu1 * mu1 + mu2 * mu2 + c1) * (var1 + var2 + c2))
    out = ssim_map.mean(dim=(1, 2, 3))
    return (out[0] if unbatched else out).to(out_dtype)


@keras_op(name="image.extract_patches_3d")
def extract_patches_3d(volumes, size, strides=None, dilation_rate=1, padding="valid", data_format=None):
    """3-D patches of `size` every `strides` (default: `size`), flattened in
    `(depth, row, col, channel)` order as the last axis."""
    size = (size,) * 3 if isinstance(size, int) else tuple(size)
    strides = size if strides is None else ((strides,) * 3 if isinstance(strides, int) else tuple(strides))
    dil = (dilation_rate,) * 3 if isinstance(dilation_rate, int) else tuple(dilation_rate)
    padding = padding.lower()
    if padding not in ("valid", "same"):
        raise ValueError(f"`padding` must be either 'valid' or 'same'. Received: padding={padding}")
    data_format = _fmt(data_format)
    x = to_tensor(volumes)
    if x.ndim not in (4, 5):
        raise ValueError("Invalid volumes rank: expected rank 4 (single volume) or rank 5 (batch of volumes). "
                         f"Received input with shape: volumes.shape={tuple(x.shape)}")
    squeeze = x.ndim == 4
    if squeeze:
        x = x.unsqueeze(0)
    if data_format == "channels_last":
        x = x.permute(0, 4, 1, 2, 3)
    if padding == "same":
        pads = [same_padding(int(n), (k - 1) * d + 1, s) for n, k, s, d in zip(x.shape[2:], size, strides, dil)]
        x = F.pad(x, [v for pair in reversed(pads) for v in pair])
    c = x.shape[1]
    # one-hot kernels pick each (kd, kh, kw, c) tap into its own channel
    taps = size[0] * size[1] * size[2] * c
    eye = torch.eye(taps, dtype=x.dtype if x.is_floating_point() else torch.float32, device=x.device)
    kernel = eye.reshape(taps, size[0], size[1], size[2], c).permute(0, 4, 1, 2, 3)
    y = F.conv3d(x.to(kernel.dtype), kernel, stride=strides, dilation=dil).to(x.dtype)
    y = y.permute(0, 2, 3, 4, 1) if data_format == "channels_last" else y
    return y.squeeze(0) if squeeze else y

