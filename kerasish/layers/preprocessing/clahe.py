"""`ContrastLimitedAdaptiveHistogramEqualization` (CLAHE)."""

from __future__ import annotations

import torch

from kerasish.layers.preprocessing.base_transform import BaseTransformAugmentation
from kerasish.layers.preprocessing.base_transform import transform_value_range


def _edge_pad_end(x: torch.Tensor, pad: int, dim: int) -> torch.Tensor:
    """Pads the end of `dim` by repeating the last slice. Keras asks for
    NumPy's "symmetric" padding, which its torch backend runs as
    "replicate"; kerasish reproduces what Keras on torch computes."""
    if pad == 0:
        return x
    last = x.narrow(dim, x.shape[dim] - 1, 1)
    return torch.cat([x, last.expand(*[pad if d == dim else -1 for d in range(x.ndim)])], dim=dim)


def clahe(images: torch.Tensor, clip_limit: float, grid: tuple) -> torch.Tensor:
    """Keras 3.15's CLAHE of a `(B, H, W, C)` batch in `[0, 255]`.

    The image is padded (last row / column repeated, as Keras on torch
    does) to a whole number of tiles; each tile's
    256-bin histogram is clipped at `int(clip_limit * tile_area / 256)` (excess
    spread evenly) and turned into a normalised cdf; every pixel reads the
    cdfs of the four nearest tile centres (edge tiles repeated) and blends
    them bilinearly.
    """
    batch, height, width, channels = images.shape
    grid_h, grid_w = grid
    tile_h, tile_w = -(-height // grid_h), -(-width // grid_w)
    padded = _edge_pad_end(images, tile_h * grid_h - height, 1)
    padded = _edge_pad_end(padded, tile_w * grid_w - width, 2)
    pixels = padded.to(torch.int32).clamp(0, 255).to(torch.int64)  # truncation, as Keras's int cast

    # histograms per (image, tile row, tile column, channel)
    tiles = pixels.reshape(batch, grid_h, tile_h, grid_w, tile_w, channels).permute(0, 1, 3, 5, 2, 4)
    n_hist = batch * grid_h * grid_w * channels
    keys = tiles.reshape(n_hist, -1) + torch.arange(n_hist, device=images.device).unsqueeze(1) * 256
    keys = keys.reshape(-1)  # a fixed-size scatter rather than bincount: static shapes under torch.compile
    hists = torch.zeros(n_hist * 256, dtype=torch.int64, device=images.device)
    hists = hists.scatter_add(0, keys, torch.ones_like(keys))
    hists = hists.reshape(batch, grid_h, grid_w, channels, 256)
    area = tile_h * tile_w
    if clip_limit > 0:
        # Keras on torch counts in int64 and casts the limit to it: the limit
        # is truncated to an integer (see the class note)
        clipped = hists.clamp(0, int(clip_limit * area / 256.0))
        hists = clipped + (hists - clipped).sum(-1, keepdim=True) / 256.0
    hists = hists.to(torch.float32)
    cdf = hists.cumsum(-1)
    cdf_min = cdf.amin(-1, keepdim=True)
    denominator = area - cdf_min
    denominator = torch.where(denominator == 0, torch.ones_like(denominator), denominator)
    cdf = ((cdf - cdf_min) * 255.0 / denominator).clamp(0, 255)
    cdf = torch.cat([cdf[:, :1], cdf, cdf[:, -1:]], dim=1)  # edge tiles repeated
    cdf = torch.cat([cdf[:, :, :1], cdf, cdf[:, :, -1:]], dim=2)

    def axis_taps(size, tile, n):
        pos = (torch.arange(size, dtype=torch.float32, device=images.device) - tile / 2.0) / tile + 1.0
        low = torch.floor(pos)
        return low.clamp(0, n + 1).long(), (low + 1).clamp(0, n + 1).long(), pos - low

    y0, y1, wy = axis_taps(tile_h * grid_h, tile_h, grid_h)
    x0, x1, wx = axis_taps(tile_w * grid_w, tile_w, grid_w)
    b = torch.arange(batch, device=images.device).view(-1, 1, 1, 1)
    c = torch.arange(channels, device=images.device).view(1, 1, 1, -1)
    ys0, ys1 = y0.view(1, -1, 1, 1), y1.view(1, -1, 1, 1)
    xs0, xs1 = x0.view(1, 1, -1, 1), x1.view(1, 1, -1, 1)
    wy, wx = wy.view(1, -1, 1, 1), wx.view(1, 1, -1, 1)
    top = cdf[b, ys0, xs0, c, pixels] * (1.0 - wx) + cdf[b, ys0, xs1, c, pixels] * wx
    bottom = cdf[b, ys1, xs0, c, pixels] * (1.0 - wx) + cdf[b, ys1, xs1, c, pixels] * wx
    result = top * (1.0 - wy) + bottom * wy
    return result[:, :height, :width, :]


class ContrastLimitedAdaptiveHistogramEqualization(BaseTransformAugmentation):
    """Contrast-limited adaptive histogram equalization
    (`keras.layers.ContrastLimitedAdaptiveHistogramEqualization`).

    The image is split into `tile_grid_size` tiles; each tile is equalized
    with a histogram clipped at `clip_limit` times the mean bin count, and
    the per-tile mappings are blended bilinearly between tile centres (see
    `clahe`). Active in training *and* inference, as in Keras.

    Note (Keras 3.15 on its torch backend, kept for parity): the histograms
    are integer counts, so the clip limit `clip_limit * tile_area / 256` is
    truncated to an integer (Keras on TensorFlow/JAX keeps the fraction);
    tiles of fewer than `256 / clip_limit` pixels are flattened completely.

    Args:
        value_range: `(low, high)` of the pixel values. Defaults to `(0, 255)`.
        clip_limit: Contrast limit (a multiple of the mean bin count); `<= 0`
            disables clipping. Defaults to 4.0.
        tile_grid_size: `(rows, columns)` of tiles. Defaults to `(8, 8)`.
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".

    Input: a 4-D image batch or a 3-D image. Output: same shape.

    Example:
        >>> layer = keras.layers.ContrastLimitedAdaptiveHistogramEqualization(tile_grid_size=(2, 2))
        >>> y = layer(torch.rand(1, 16, 16, 3) * 100)
    """

    _ALWAYS_ACTIVE = True

    def __init__(self, value_range=(0, 255), clip_limit=4.0, tile_grid_size=(8, 8), data_format=None, **kwargs):
        super().__init__(data_format=data_format, **kwargs)
        self.value_range = value_range
        self.clip_limit = clip_limit
        self.tile_grid_size = tile_grid_size

    def transform_images(self, images, transformation=None, training=True):
        x = images if self._channels_last else images.permute(0, 2, 3, 1)
        x = transform_value_range(x.to(torch.float32), self.value_range, (0, 255))
        x = clahe(x, self.clip_limit, tuple(self.tile_grid_size))
        x = transform_value_range(x, (0, 255), self.value_range).to(images.dtype)
        return x if self._channels_last else x.permute(0, 3, 1, 2)

    def get_config(self):
        config = super().get_config()
        config.update({"value_range": self.value_range, "clip_limit": self.clip_limit,
                       "tile_grid_size": self.tile_grid_size})
        return config
