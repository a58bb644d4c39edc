"""`keras.ops.image`: resizing, patches, cropping/padding, colour spaces,
blurring, on torch kernels.

Images are `(batch, h, w, c)` or a single `(h, w, c)` (channels-first with
`data_format="channels_first"`). `resize` uses `F.interpolate` with
half-pixel centres (`align_corners=False`), as Keras on torch does;
"nearest" is torch's "nearest-exact". Patches are flattened in TF order
`(patch_row, patch_col, channel)`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kerasish.backend import config as _config
from kerasish.layers.convolutional.conv_utils import same_padding
from kerasish.ops.operation import keras_op
from kerasish.backend.promotion import to_tensor

_MODES = {"bilinear": "bilinear", "nearest": "nearest-exact", "bicubic": "bicubic", "area": "area"}


def _fmt(data_format):
    data_format = _config.image_data_format() if data_format is None else data_format
    if data_format not in ("channels_last", "channels_first"):
        raise ValueError(
            "The `data_format` argument must be one of {'channels_first', 'channels_last'}. "
            f"Received: data_format={data_format}"
        )
    return data_format


def _batched(images, name="images"):
    x = to_tensor(images)
    if x.ndim not in (3, 4):
        raise ValueError(
            "Invalid images rank: expected rank 3 (single image) or rank 4 (batch of images). "
            f"Received input with shape: {name}.shape={tuple(x.shape)}"
        )
    return (x.unsqueeze(0), True) if x.ndim == 3 else (x, False)


def _nchw(x, data_format):
    return x.permute(0, 3, 1, 2) if data_format == "channels_last" else x


def _back(x, data_format, squeeze):
    x = x.permute(0, 2, 3, 1) if data_format == "channels_last" else x
    return x.squeeze(0) if squeeze else x


@keras_op(name="image.resize")
def resize(images, size, interpolation="bilinear", antialias=False, crop_to_aspect_ratio=False,
           pad_to_aspect_ratio=False, fill_mode="constant", fill_value=0.0, data_format=None):
    """Resizes images to `size = (height, width)`.

    Integer images are resized in float32 and rounded back (clamped for
    uint8), as Keras does on torch.
    """
    if interpolation not in _MODES:
        raise ValueError(f"Invalid value for argument `interpolation`. Expected of one {tuple(_MODES)}. "
                         f"Received: interpolation={interpolation}")
    if fill_mode != "constant":
        raise ValueError(f"Invalid value for argument `fill_mode`. Only `'constant'` is supported. "
                         f"Received: fill_mode={fill_mode}")
    if crop_to_aspect_ratio and pad_to_aspect_ratio:
        raise ValueError("Only one of `pad_to_aspect_ratio` & `crop_to_aspect_ratio` can be `True`.")
    if len(size) != 2:
        raise ValueError(f"Argument `size` must be a tuple of two elements (height, width). Received: size={size}")
    data_format = _fmt(data_format)
    x, squeeze = _batched(images)
    out_dtype = x.dtype
    if not x.is_floating_point() or x.dtype in (torch.float16, torch.bfloat16):
        x = x.to(torch.float32)
    x = _nchw(x, data_format)
    th, tw = int(size[0]), int(size[1])
    h, w = x.shape[-2], x.shape[-1]
    if crop_to_aspect_ratio:
        ch = max(min(h, int(w * th / tw)), 1)
        cw = max(min(w, int(h * tw / th)), 1)
        top, left = int((h - ch) / 2), int((w - cw) / 2)
        x = x[:, :, top:top + ch, left:left + cw]
    elif pad_to_aspect_ratio:
        ph, pw = max(h, int(w * th / tw)), max(w, int(h * tw / th))
        top, left = int((ph - h) / 2), int((pw - w) / 2)
        x = F.pad(x, (left, left, top, top), value=float(fill_value))
    aa = antialias and interpolation in ("bilinear", "bicubic")
    kwargs = {"align_corners": False} if interpolation in ("bilinear", "bicubic") else {}
    y = F.interpolate(x, size=(th, tw), mode=_MODES[interpolation], antialias=aa, **kwargs)
    if not out_dtype.is_floating_point:
        y = torch.round(y)
        if out_dtype == torch.uint8:
            y = y.clamp(0, 255)
    return _back(y.to(out_dtype), data_format, squeeze)


@keras_op(name="image.extract_patches")
def extract_patches(images, size, strides=None, dilation_rate=1, padding="valid", data_format=None):
    """Patches of `size` (int or `(h, w)`) every `strides` (default: `size`),
    as `(batch, rows, cols, h * w * channels)`."""
    size = (size, size) if isinstance(size, int) else tuple(size)
    strides = size if strides is None else ((strides, strides) if isinstance(strides, int) else tuple(strides))
    dil = (dilation_rate, dilation_rate) if isinstance(dilation_rate, int) else tuple(dilation_rate)
    padding = padding.lower()
    if padding not in ("valid", "same"):
        raise ValueError(f"`padding` must be either 'valid' or 'same'. Received: padding={padding}")
    data_format = _fmt(data_format)
    x, squeeze = _batched(images)
    x = _nchw(x, data_format)
    if padding == "same":
        pads = [same_padding(int(n), (k - 1) * d + 1, s) for n, k, s, d in zip(x.shape[2:], size, strides, dil)]
        x = F.pad(x, (pads[1][0], pads[1][1], pads[0][0], pads[0][1]))
    n, c, h, w = x.shape
    rows = (h - (size[0] - 1) * dil[0] - 1) // strides[0] + 1
    cols = (w - (size[1] - 1) * dil[1] - 1) // strides[1] + 1
    cols_t = F.unfold(x, size, dilation=dil, stride=strides)  # (n, c*kh*kw, L)
    cols_t = cols_t.reshape(n, c, size[0] * size[1], rows, cols).permute(0, 2, 1, 3, 4)
    out = cols_t.reshape(n, size[0] * size[1] * c, rows, cols)
    return _back(out, data_format, squeeze)


@keras_op(name="image.crop_images")
def crop_images(images, top_cropping=None, left_cropping=None, bottom_cropping=None, right_cropping=None,
                target_height=None, target_width=None, data_format=None):
    """Crops images by `top/left` offsets to `target_height/width` (or by
    `bottom/right` amounts)."""
    data_format = _fmt(data_format)
    x, squeeze = _batched(images)
    x = _nchw(x, data_format)
    h, w = x.shape[-2], x.shape[-1]
    top = top_cropping if top_cropping is not None else (
        h - bottom_cropping - target_height if bottom_cropping is not None and target_height is not None else 0)
    left = left_cropping if left_cropping is not None else (
        w - right_cropping - target_width if right_cropping is not None and target_width is not None else 0)
    th = target_height if target_height is not None else h - top - (bottom_cropping or 0)
    tw = target_width if target_width is not None else w - left - (right_cropping or 0)
    if th <= 0 or tw <= 0 or top < 0 or left < 0 or top + th > h or left + tw > w:
        raise ValueError(f"The cropping box does not fit in the images of shape {tuple(images.shape)}. Received: "
                         f"top_cropping={top_cropping}, left_cropping={left_cropping}, "
                         f"target_height={target_height}, target_width={target_width}")
    return _back(x[:, :, top:top + th, left:left + tw], data_format, squeeze)


@keras_op(name="image.pad_images")
def pad_images(images, top_padding=None, left_padding=None, bottom_padding=None, right_padding=None,
               target_height=None, target_width=None, data_format=None):
    """Zero-pads images by `top/left` to `target_height/width` (or by
    `bottom/right` amounts)."""
    data_format = _fmt(data_format)
    x, squeeze = _batched(images)
    x = _nchw(x, data_format)
    h, w = x.shape[-2], x.shape[-1]
    top = top_padding if top_padding is not None else (
        target_height - h - bottom_padding if bottom_padding is not None and target_height is not None else 0)
    left = left_padding if left_padding is not None else (
        target_width - w - right_padding if right_padding is not None and target_width is not None else 0)
    bottom = bottom_padding if bottom_padding is not None else (target_height - h - top if target_height else 0)
    right = right_padding if right_padding is not None else (target_width - w - left if target_width else 0)
    if min(top, left, bottom, right) < 0:
        raise ValueError(f"The padding does not fit: padding must be non-negative. Received: top={top}, "
                         f"left={left}, bottom={bottom}, right={right}")
    return _back(F.pad(x, (left, right, top, bottom)), data_format, squeeze)


def _channel_axis(data_format):
    return -1 if data_format == "channels_last" else -3


@keras_op(name="image.rgb_to_grayscale")
def rgb_to_grayscale(images, data_format=None):
    """Luma `0.2989 R + 0.587 G + 0.114 B`, keeping a channel axis of size 1."""
    data_format = _fmt(data_format)
    x = to_tensor(images)
    axis = _channel_axis(data_format)
    if x.ndim not in (3, 4) or x.shape[axis] not in (1, 3):
        raise ValueError("Invalid channel size: expected 3 (RGB) or 1 (Grayscale). "
                         f"Received input with shape: images.shape={tuple(x.shape)}")
    if x.shape[axis] == 1:
        return x.clone()
    r, g, b = torch.unbind(x, dim=axis)
    return (0.2989 * r + 0.587 * g + 0.114 * b).to(x.dtype).unsqueeze(axis)


def _float_images(images, data_format):
    x = to_tensor(images)
    if x.ndim not in (3, 4):
        raise ValueError("Invalid images rank: expected rank 3 (single image) or rank 4 (batch of images). "
                         f"Received input with shape: images.shape={tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"Invalid images dtype: expected float dtype. Received: images.dtype={x.dtype}")
    return x, _channel_axis(_fmt(data_format))


@keras_op(name="image.rgb_to_hsv")
def rgb_to_hsv(images, data_format=None):
    """RGB in [0, 1] to HSV (hue in [0, 1))."""
    x, axis = _float_images(images, data_format)
    x = torch.where(torch.abs(x) < torch.finfo(x.dtype).eps, torch.zeros_like(x), x)
    r, g, b = torch.unbind(x, dim=axis)
    v = torch.maximum(torch.maximum(r, g), b)
    span = v - torch.minimum(torch.minimum(r, g), b)
    s = torch.where(v > 0, span / torch.where(v > 0, v, torch.ones_like(v)), torch.zeros_like(v))
    inv = 1.0 / (6.0 * torch.where(span > 0, span, torch.ones_like(span)))
    # the sector of the largest channel decides the base hue
    h = torch.where(v == g, (b - r) * inv + 1.0 / 3.0, (r - g) * inv + 2.0 / 3.0)
    h = torch.where(v == r, (g - b) * inv, h)
    h = torch.where(span > 0, h, torch.zeros_like(h))
    h = h + (h < 0).to(h.dtype)
    return torch.stack([h, s, v], dim=axis)


@keras_op(name="image.hsv_to_rgb")
def hsv_to_rgb(images, data_format=None):
    """HSV (hue in [0, 1)) to RGB."""
    x, axis = _float_images(images, data_format)
    h, s, v = torch.unbind(x, dim=axis)
    sector = torch.remainder(h, 1.0) * 6.0
    # each channel is a trapezoid of the hue sector
    weights = [torch.clamp(torch.abs(sector - 3.0) - 1.0, 0.0, 1.0),
               torch.clamp(2.0 - torch.abs(sector - 2.0), 0.0, 1.0),
               torch.clamp(2.0 - torch.abs(sector - 4.0), 0.0, 1.0)]
    return torch.stack([v * (1.0 - s + s * wgt) for wgt in weights], dim=axis)


@keras_op(name="image.gaussian_blur")
def gaussian_blur(images, kernel_size=(3, 3), sigma=(1.0, 1.0), data_format=None):
    """Gaussian blur with zero padding of `kernel_size // 2` ("same" size
    output for odd kernels), as Keras does on torch."""
    data_format = _fmt(data_format)
    x, squeeze = _batched(images)
    dtype = x.dtype
    x = _nchw(x, data_format).to(torch.float32 if not dtype.is_floating_point else dtype)
    ks = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
    sg = (sigma, sigma) if isinstance(sigma, (int, float)) else tuple(sigma)

    def kernel1d(k, s):
        t = torch.arange(k, dtype=x.dtype, device=x.device) - (k - 1) / 2
        g = torch.exp(-(t**2) / (2 * float(s) ** 2))
        return g / g.sum()

    # Keras (torch backend) builds the 2-D kernel as outer(k[1], k[0]): the
    # second entry of `kernel_size`/`sigma` runs along rows
    ky, kx = kernel1d(ks[1], sg[1]), kernel1d(ks[0], sg[0])
    k2 = torch.outer(ky, kx)
    c = x.shape[1]
    y = F.conv2d(x, k2.expand(c, 1, *k2.shape), padding=(ks[1] // 2, ks[0] // 2), groups=c)
    return _back(y.to(dtype), data_format, squeeze)



# resampling, similarity and 3-D patches live in image_sampling.py
from kerasish.ops.image_sampling import affine_transform  # noqa: E402
from kerasish.ops.image_sampling import extract_patches_3d  # noqa: E402
from kerasish.ops.image_sampling import map_coordinates  # noqa: E402
from kerasish.ops.image_sampling import perspective_transform  # noqa: E402
from kerasish.ops.image_sampling import sobel_edges  # noqa: E402
from kerasish.ops.image_sampling import ssim  # noqa: E402
from kerasish.ops.image_resample import elastic_transform  # noqa: E402
from kerasish.ops.image_resample import scale_and_translate  # noqa: E402
