"""Image resizing as Keras's torch backend does it (`ops.image.resize`),
shared by `Resizing`, `CenterCrop` and `UpSampling2D`.

Keras's torch backend resizes with `F.interpolate` on NCHW float32/float64
data: "bilinear" and "bicubic" with `align_corners=False`, "nearest" as
torch's "nearest-exact" (half-pixel centres, like TF), antialiasing off by
default. Other dtypes are computed in float32 and cast back (integers
rounded first). These helpers reproduce exactly that; channels_last data is
handed to `F.interpolate` as a channels_last-strided NCHW view, so no
transposing copy is made.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

# Keras interpolation name -> F.interpolate mode. "area" is not supported by
# Keras's torch backend; here it is torch's "area" (adaptive average pooling).
INTERPOLATION_MODES = {"bilinear": "bilinear", "nearest": "nearest-exact", "bicubic": "bicubic", "area": "area"}
_ALIGN = {"bilinear": False, "bicubic": False}
_INT_DTYPES = (torch.uint8, torch.int8, torch.int16, torch.int32, torch.int64)


def check_interpolation(interpolation: str, allowed=tuple(INTERPOLATION_MODES)) -> str:
    if not isinstance(interpolation, str) or interpolation.lower() not in allowed:
        raise ValueError(
            f"Invalid value for argument `interpolation`. Expected of one {list(allowed)}. "
            f"Received: interpolation={interpolation}"
        )
    return interpolation.lower()


def aspect_crop_box(height: int, width: int, target_height: int, target_width: int) -> tuple:
    """Keras's largest centred crop with the target's aspect ratio:
    (h_start, w_start, crop_height, crop_width)."""
    crop_height = max(min(height, int(float(width * target_height) / target_width)), 1)
    crop_width = max(min(width, int(float(height * target_width) / target_height)), 1)
    return int(float(height - crop_height) / 2), int(float(width - crop_width) / 2), crop_height, crop_width


def resize_nchw(
    images: torch.Tensor,
    size: tuple,
    interpolation: str = "bilinear",
    antialias: bool = False,
    crop_to_aspect_ratio: bool = False,
    pad_to_aspect_ratio: bool = False,
    fill_value: float = 0.0,
) -> torch.Tensor:
    """Resizes a 4D NCHW float32/float64 tensor (Keras's torch `resize`)."""
    height, width = images.shape[-2], images.shape[-1]
    target_height, target_width = size
    if crop_to_aspect_ratio:
        h0, w0, ch, cw = aspect_crop_box(height, width, target_height, target_width)
        images = images[:, :, h0 : h0 + ch, w0 : w0 + cw]
    elif pad_to_aspect_ratio:
        pad_height = max(height, int(float(width * target_height) / target_width))
        pad_width = max(width, int(float(height * target_width) / target_height))
        h0 = int(float(pad_height - height) / 2)
        w0 = int(float(pad_width - width) / 2)
        if h0 > 0 or w0 > 0:
            # Keras pads h0 (resp. w0) on both sides
            images = F.pad(images, (w0, w0, h0, h0), value=float(fill_value))
    if antialias and interpolation not in ("bilinear", "bicubic"):
        antialias = False
    if not (torch.jit.is_tracing() and isinstance(target_height, torch.Tensor)):
        # (under `torch.jit.trace` a size computed from the input's traced shape stays traced:
        # `UpSampling2D(interpolation="bilinear")`'s trace kept the example's output size)
        target_height, target_width = int(target_height), int(target_width)
    return F.interpolate(
        images,
        size=(target_height, target_width),
        mode=INTERPOLATION_MODES[interpolation],
        align_corners=_ALIGN.get(interpolation),
        antialias=antialias,
    )


def resize(images: torch.Tensor, size: tuple, data_format: str, **kwargs) -> torch.Tensor:
    """Resizes a 3D (single image) or 4D image tensor in `data_format`,
    keeping its dtype (Keras's cast / round / cast-back rules)."""
    squeeze = images.ndim == 3
    if squeeze:
        images = images.unsqueeze(0)
    out_dtype = images.dtype
    cast = out_dtype not in (torch.float32, torch.float64)
    if cast:
        images = images.to(torch.float32)
    if data_format == "channels_last":
        images = images.permute(0, 3, 1, 2)
    resized = resize_nchw(images, size, **kwargs)
    if kwargs.get("interpolation") == "bicubic" and out_dtype == torch.uint8:
        resized = resized.clamp(0, 255)
    if data_format == "channels_last":
        resized = resized.permute(0, 2, 3, 1)
    if squeeze:
        resized = resized.squeeze(0)
    if cast:
        if out_dtype in _INT_DTYPES:
            resized = torch.round(resized)
        resized = resized.to(out_dtype)
    return resized
