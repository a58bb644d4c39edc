"""`keras.utils.bounding_boxes`: bounding-box format conversions, clipping,
cropping, padding, affine transforms, IoU/CIoU and anchor deltas on torch
tensors (NumPy arrays and lists are converted; results are torch tensors, on
the input's device).

Formats (case-insensitive), as in Keras 3:
    "xyxy" [left, top, right, bottom], "yxyx" [top, left, bottom, right],
    "xywh" [left, top, width, height], "center_xywh" [cx, cy, w, h],
    "center_yxhw" [cy, cx, h, w], and the relative "rel_xyxy", "rel_yxyx",
    "rel_xywh", "rel_center_xywh" (coordinates divided by the image `width`
    and `height`).

Every conversion goes through "xyxy", as Keras's does, so rounding matches.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from kerasish.backend import dtypes
from kerasish.backend.config import epsilon

SUPPORTED_FORMATS = ("xyxy", "yxyx", "xywh", "center_xywh", "center_yxhw", "rel_xyxy", "rel_yxyx", "rel_xywh",
                     "rel_center_xywh")

__all__ = ["affine_transform", "clip_to_image_size", "compute_ciou", "compute_iou", "convert_format", "crop",
           "decode_deltas_to_boxes", "encode_box_to_deltas", "pad"]


def _tensor(x, dtype=None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x if dtype is None else x.to(dtypes.to_torch_dtype(dtype))
    arr = np.asarray(x)
    if dtype is None and arr.dtype == np.float64:
        arr = arr.astype(np.float32)  # as Keras converts float64 NumPy data to floatx
    t = torch.from_numpy(np.ascontiguousarray(arr))
    return t if dtype is None else t.to(dtypes.to_torch_dtype(dtype))


def _split(boxes):
    return torch.unbind(boxes[..., :4].unsqueeze(-1), dim=-2)  # four (..., 1) columns


def _cat(*cols):
    return torch.cat(cols, dim=-1)


# ---------------------------------------------------------- conversions
# each format <-> "xyxy"; `h`, `w` are the image height and width
_TO_XYXY = {
    "xyxy": lambda x1, y1, x2, y2, h, w: (x1, y1, x2, y2),
    "yxyx": lambda y1, x1, y2, x2, h, w: (x1, y1, x2, y2),
    "xywh": lambda x1, y1, bw, bh, h, w: (x1, y1, x1 + bw, y1 + bh),
    "center_xywh": lambda cx, cy, bw, bh, h, w: (cx - bw / 2.0, cy - bh / 2.0, cx + bw / 2.0, cy + bh / 2.0),
    "center_yxhw": lambda cy, cx, bh, bw, h, w: (cx - bw / 2.0, cy - bh / 2.0, cx + bw / 2.0, cy + bh / 2.0),
    "rel_xyxy": lambda x1, y1, x2, y2, h, w: (x1 * w, y1 * h, x2 * w, y2 * h),
    "rel_yxyx": lambda y1, x1, y2, x2, h, w: (x1 * w, y1 * h, x2 * w, y2 * h),
    "rel_xywh": lambda x1, y1, bw, bh, h, w: (x1 * w, y1 * h, (x1 + bw) * w, (y1 + bh) * h),
    "rel_center_xywh": lambda cx, cy, bw, bh, h, w: ((cx - bw / 2.0) * w, (cy - bh / 2.0) * h,
                                                     (cx + bw / 2.0) * w, (cy + bh / 2.0) * h),
}
_FROM_XYXY = {
    "xyxy": lambda x1, y1, x2, y2, h, w: (x1, y1, x2, y2),
    "yxyx": lambda x1, y1, x2, y2, h, w: (y1, x1, y2, x2),
    "xywh": lambda x1, y1, x2, y2, h, w: (x1, y1, x2 - x1, y2 - y1),
    "center_xywh": lambda x1, y1, x2, y2, h, w: (x1 + (x2 - x1) / 2.0, y1 + (y2 - y1) / 2.0, x2 - x1, y2 - y1),
    "center_yxhw": lambda x1, y1, x2, y2, h, w: (y1 + (y2 - y1) / 2.0, x1 + (x2 - x1) / 2.0, y2 - y1, x2 - x1),
    "rel_xyxy": lambda x1, y1, x2, y2, h, w: (x1 / w, y1 / h, x2 / w, y2 / h),
    "rel_yxyx": lambda x1, y1, x2, y2, h, w: (y1 / h, x1 / w, y2 / h, x2 / w),
    "rel_xywh": lambda x1, y1, x2, y2, h, w: (x1 / w, y1 / h, (x2 - x1) / w, (y2 - y1) / h),
    "rel_center_xywh": lambda x1, y1, x2, y2, h, w: ((x1 + (x2 - x1) / 2.0) / w, (y1 + (y2 - y1) / 2.0) / h,
                                                     (x2 - x1) / w, (y2 - y1) / h),
}


def convert_format(boxes, source, target, height=None, width=None, dtype="float32"):
    """Converts bounding boxes from format `source` to format `target`.

    Args:
        boxes: Boxes of shape `(..., 4)` (tensor, array or list), or a dict
            with a "boxes" entry (converted in place and returned, as Keras).
        source: Format of `boxes` (see the module docstring).
        target: Format to convert to.
        height: Image height, required when either format is relative.
        width: Image width, required when either format is relative.
        dtype: Dtype of the result. Defaults to "float32".

    Returns:
        The converted boxes as a torch tensor of `dtype` (or the dict).

    Example:
        >>> convert_format(np.array([[10, 20, 30, 40]]), "xyxy", "xywh")
        tensor([[10., 20., 20., 20.]])
    """
    if isinstance(boxes, dict):
        boxes["boxes"] = convert_format(boxes["boxes"], source, target, height=height, width=width, dtype=dtype)
        return boxes
    boxes = _tensor(boxes)
    if boxes.ndim == 0 or boxes.shape[-1] != 4:
        raise ValueError(
            f"`boxes` must be a tensor with the last dimension of 4. Received: boxes.shape={tuple(boxes.shape)}"
        )
    if not isinstance(source, str) or not isinstance(target, str):
        raise ValueError(f"Invalid source or target format. Supported formats: {SUPPORTED_FORMATS}")
    source, target = source.lower(), target.lower()
    if source not in SUPPORTED_FORMATS or target not in SUPPORTED_FORMATS:
        raise ValueError(f"Invalid source or target format. Supported formats: {SUPPORTED_FORMATS}")
    if (source.startswith("rel_") or target.startswith("rel_")) and (width is None or height is None):
        raise ValueError(
            "convert_format() must receive `height` and `width` transforming between relative and absolute "
            f"formats.convert_format() received source=`{source}`, target=`{target}, but height={height} and "
            f"width={width}."
        )
    boxes = boxes.to(dtypes.to_torch_dtype(dtype))
    if source == target:
        return boxes
    if source.startswith("rel_") and target.startswith("rel_"):
        source, target = source[4:], target[4:]  # a relative-to-relative conversion needs no image size
    h = None if height is None else _tensor(height, dtype).to(boxes.device)
    w = None if width is None else _tensor(width, dtype).to(boxes.device)
    xyxy = _TO_XYXY[source](*_split(boxes), h, w)
    return _cat(*_FROM_XYXY[target](*xyxy, h, w))


def clip_to_image_size(bounding_boxes, height=None, width=None, bounding_box_format="xyxy"):
    """Clips boxes to the image; boxes left with no area get label -1.

    Args:
        bounding_boxes: Dict with "boxes" `(N, 4)` or `(batch, N, 4)` and
            optionally "labels" `(N,)` or `(batch, N)`.
        height: Image height (required for "xyxy").
        width: Image width (required for "xyxy").
        bounding_box_format: "xyxy" (default) or "rel_xyxy" (clipped to
            [0, 1]); Keras supports no other format here either.

    Returns:
        A new dict with the clipped "boxes" and the updated "labels".
    """
    if bounding_box_format not in ("xyxy", "rel_xyxy"):
        raise NotImplementedError(
            "clip_to_image_size() supports bounding_box_format='xyxy' or 'rel_xyxy' only (as Keras). "
            f"Received: bounding_box_format={bounding_box_format!r}"
        )
    if bounding_box_format == "xyxy" and (height is None or width is None):
        raise ValueError("`height` and `width` must be set if `format='xyxy'`.")
    boxes = _tensor(bounding_boxes["boxes"])
    labels = bounding_boxes.get("labels")
    if bounding_box_format == "xyxy":
        hi_x, hi_y = float(width), float(height)
    else:
        hi_x = hi_y = 1.0
    x1, y1, x2, y2 = _split(boxes)
    boxes = _cat(x1.clamp(0, hi_x), y1.clamp(0, hi_y), x2.clamp(0, hi_x), y2.clamp(0, hi_y)).to(boxes.dtype)
    result = dict(bounding_boxes)
    result["boxes"] = boxes
    if labels is not None:
        x1, y1, x2, y2 = _split(boxes)
        areas = ((x2 - x1) * (y2 - y1)).squeeze(-1)
        labels = _tensor(labels).to(boxes.device)
        result["labels"] = torch.where(areas > 0, labels, torch.full_like(labels, -1))
    return result


def crop(boxes, top, left, height, width, bounding_box_format="xyxy"):
    """Shifts "xyxy" boxes by `(-left, -top)` and clips them to the crop
    `[0, width] x [0, height]` (a None size leaves that side unclipped)."""
    if bounding_box_format != "xyxy":
        raise NotImplementedError(f"crop() supports bounding_box_format='xyxy' only (as Keras). "
                                  f"Received: bounding_box_format={bounding_box_format!r}")
    boxes = _tensor(boxes)
    x1, y1, x2, y2 = _split(boxes)
    return _cat((x1 - left).clamp(0, width), (y1 - top).clamp(0, height), (x2 - left).clamp(0, width),
                (y2 - top).clamp(0, height))


def pad(boxes, top, left, height=None, width=None, bounding_box_format="xyxy"):
    """Shifts "xyxy" boxes by `(left, top)` (the image was padded on the top
    and left). `height` and `width` are accepted and unused, as in Keras."""
    if bounding_box_format != "xyxy":
        raise NotImplementedError(f"pad() supports bounding_box_format='xyxy' only (as Keras). "
                                  f"Received: bounding_box_format={bounding_box_format!r}")
    boxes = _tensor(boxes)
    x1, y1, x2, y2 = _split(boxes)
    return _cat(x1 + left, y1 + top, x2 + left, y2 + top)


def _inverse_affine_matrix(center_x, center_y, angle, translate_x, translate_y, scale, shear_x, shear_y, height,
                           width):
    """`(batch, 3, 3)` matrices mapping output pixels to input pixels (the
    inverse of rotate/translate/scale/shear about the center), the matrix
    Keras's affine augmentation layers use."""
    rot = -angle * (math.pi / 180.0)
    sx = -shear_x * (math.pi / 180.0)
    sy = -shear_y * (math.pi / 180.0)
    cx = center_x * (width - 1)
    cy = center_y * (height - 1)
    tx = -translate_x * (width - 1)
    ty = -translate_y * (height - 1)
    cos_sy, tan_sx = torch.cos(sy), torch.tan(sx)
    a = torch.cos(rot - sy) / cos_sy
    b = a * tan_sx + torch.sin(rot)
    c = -torch.sin(rot - sy) / cos_sy
    d = torch.cos(rot) - c * tan_sx
    a0, a1, b0, b1 = d * scale, -b * scale, -c * scale, a * scale
    a2 = cx - a0 * (cx + tx) - a1 * (cy + ty)
    b2 = cy - b0 * (cx + tx) - b1 * (cy + ty)
    zeros, ones = torch.zeros_like(a0), torch.ones_like(a0)
    return torch.stack([a0, a1, a2, b0, b1, b2, zeros, zeros, ones], dim=-1).reshape(-1, 3, 3)


def affine_transform(boxes, angle, translate_x, translate_y, scale, shear_x, shear_y, height, width,
                     center_x=None, center_y=None, bounding_box_format="xyxy"):
    """Applies the affine transform of Keras's RandomRotation /
    RandomTranslation / RandomZoom / RandomShear to "xyxy" boxes: the four
    corners are mapped and the axis-aligned box around them is returned.

    Args:
        boxes: `(batch, N, 4)` boxes. (kerasish also takes `(N, 4)` with
            scalar parameters, treated as a batch of one; Keras does not.)
        angle: Rotation in degrees, shape `(batch,)`.
        translate_x: Horizontal translation as a fraction of the width.
        translate_y: Vertical translation as a fraction of the height.
        scale: Scale factor.
        shear_x: Shear angle in x (degrees).
        shear_y: Shear angle in y (degrees).
        height: Image height.
        width: Image width.
        center_x: Center of the transform as a fraction of the width.
            Defaults to 0.5.
        center_y: Center as a fraction of the height. Defaults to 0.5.
        bounding_box_format: Only "xyxy" (as Keras).

    Returns:
        Transformed boxes, the shape of `boxes`.
    """
    if bounding_box_format != "xyxy":
        raise NotImplementedError(f"affine_transform() supports bounding_box_format='xyxy' only (as Keras). "
                                  f"Received: bounding_box_format={bounding_box_format!r}")
    params = [_tensor(p) for p in (angle, translate_x, translate_y, scale, shear_x, shear_y)]
    dtype = params[0].dtype if params[0].is_floating_point() else torch.float32
    params = [p.to(dtype).reshape(-1) for p in params]
    boxes = _tensor(boxes)
    unbatched = boxes.ndim == 2
    if unbatched:
        boxes = boxes.unsqueeze(0)
    if boxes.ndim != 3 or boxes.shape[-1] != 4:
        raise ValueError(f"affine_transform() expects boxes of shape (batch, N, 4) or (N, 4). "
                         f"Received: boxes.shape={tuple(boxes.shape)}")
    matrix = _inverse_affine_matrix(0.5 if center_x is None else center_x, 0.5 if center_y is None else center_y,
                                    *params, height, width).to(boxes.device)
    boxes = boxes.to(matrix.dtype)
    x1, y1, x2, y2 = boxes.unbind(-1)
    corners = torch.stack([x1, y1, x2, y1, x2, y2, x1, y2], dim=-1).reshape(*boxes.shape[:2], 4, 2)
    corners = torch.cat([corners, torch.ones_like(corners[..., :1])], dim=-1)
    mapped = torch.einsum("bnkc,bdc->bnkd", corners, matrix[:, :2, :])
    out = torch.cat([mapped.amin(dim=2), mapped.amax(dim=2)], dim=-1)
    return out[0] if unbatched else out


# ------------------------------------------------------------------ IoU
def _yxyx_area(boxes):
    y1, x1, y2, x2 = _split(boxes)
    return ((y2 - y1) * (x2 - x1)).squeeze(-1)


def _image_hw(image_shape):
    if image_shape is None:
        return None, None
    height, width, _ = image_shape
    return height, width


def compute_iou(boxes1, boxes2, bounding_box_format, use_masking=False, mask_val=-1, image_shape=None):
    """Pairwise IoU of `boxes1` `(M, 4)` / `(batch, M, 4)` and `boxes2`
    `(N, 4)` / `(batch, N, 4)`: an `(M, N)` or `(batch, M, N)` table.

    Args:
        boxes1: First boxes.
        boxes2: Second boxes.
        bounding_box_format: Format of both (see the module docstring).
        use_masking: Whether boxes whose coordinates are all negative
            (padding) get `mask_val` instead of an IoU. Defaults to False.
        mask_val: The masked value. Defaults to -1.
        image_shape: `(height, width, channels)`, required for relative formats.
    """
    boxes1, boxes2 = _tensor(boxes1), _tensor(boxes2)
    rank1, rank2 = boxes1.ndim, boxes2.ndim
    for name, rank in (("boxes1", rank1), ("boxes2", rank2)):
        if rank not in (2, 3):
            raise ValueError(
                f"compute_iou() expects {name} to be batched, or to be unbatched. Received "
                f"len(boxes1.shape)={rank1}, len(boxes2.shape)={rank2}. Expected either len({name}.shape)=2 "
                f"AND or len({name}.shape)=3."
            )
    if "rel" in bounding_box_format and image_shape is None:
        raise ValueError(
            "When using relative bounding box formats (e.g. `rel_yxyx`) the `image_shape` argument must be "
            f"provided.Received `image_shape`: {image_shape}"
        )
    height, width = _image_hw(image_shape)
    boxes1 = convert_format(boxes1, bounding_box_format, "yxyx", height=height, width=width)
    boxes2 = convert_format(boxes2, bounding_box_format, "yxyx", height=height, width=width)
    # (.., M, 1) against (.., 1, N)
    t1, l1, b1, r1 = _split(boxes1)
    t2, l2, b2, r2 = (c.transpose(-1, -2) for c in _split(boxes2))
    inter_h = (torch.minimum(b1, b2) - torch.maximum(t1, t2)).clamp(min=0)
    inter_w = (torch.minimum(r1, r2) - torch.maximum(l1, l2)).clamp(min=0)
    intersection = inter_h * inter_w
    union = _yxyx_area(boxes1).unsqueeze(-1) + _yxyx_area(boxes2).unsqueeze(-2) - intersection
    iou = intersection / (union + epsilon())
    if not use_masking:
        return iou
    mask1 = boxes1.amax(dim=-1, keepdim=True) < 0
    mask2 = (boxes2.amax(dim=-1, keepdim=True) < 0).transpose(-1, -2)
    return torch.where(mask1 | mask2, torch.full_like(iou, float(mask_val)), iou)


def compute_ciou(boxes1, boxes2, bounding_box_format, image_shape=None):
    """Complete IoU of matching boxes (`(..., 4)` each, broadcast): the IoU
    minus the normalised center distance and the aspect-ratio term.

    Relative formats raise `ValueError`, as in Keras 3.15 (whose check
    ignores `image_shape`).
    """
    if "rel" in bounding_box_format:
        raise ValueError(
            "When using relative bounding box formats (e.g. `rel_yxyx`) the `image_shape` argument must be "
            f"provided.Received `image_shape`: {image_shape}"
        )
    height, width = _image_hw(image_shape)
    boxes1 = convert_format(boxes1, bounding_box_format, "xyxy", height=height, width=width)
    boxes2 = convert_format(boxes2, bounding_box_format, "xyxy", height=height, width=width)
    eps = epsilon()
    x11, y11, x12, y12 = _split(boxes1)
    x21, y21, x22, y22 = _split(boxes2)
    w1, h1 = x12 - x11, y12 - y11 + eps
    w2, h2 = x22 - x21, y22 - y21 + eps
    intersection = (torch.minimum(x12, x22) - torch.maximum(x11, x21)).clamp(min=0) * (
        torch.minimum(y12, y22) - torch.maximum(y11, y21)).clamp(min=0)
    union = w1 * h1 + w2 * h2 - intersection + eps
    iou = (intersection / (union + eps)).squeeze(-1)
    hull_w = torch.maximum(x12, x22) - torch.minimum(x11, x21)
    hull_h = torch.maximum(y12, y22) - torch.minimum(y11, y21)
    diagonal2 = (hull_w**2 + hull_h**2 + eps).squeeze(-1)
    center2 = (((x11 + x12) / 2 - (x21 + x22) / 2) ** 2 + ((y11 + y12) / 2 - (y21 + y22) / 2) ** 2).squeeze(-1)
    v = ((4 / math.pi**2) * (torch.atan(w2 / h2) - torch.atan(w1 / h1)) ** 2).squeeze(-1)
    alpha = v / (v - iou + (1 + eps))
    return iou - (center2 / diagonal2 + v * alpha)


# --------------------------------------------------------------- deltas
def _check_variance(variance):
    if variance is None:
        return None
    variance = _tensor(variance, "float32")
    if variance.shape[-1] != 4:
        raise ValueError(f"`variance` must be length 4, got {variance}")
    return variance


def encode_box_to_deltas(anchors, boxes, anchor_format, box_format, encoding_format="center_yxhw", variance=None,
                         image_shape=None):
    """Deltas of `boxes` relative to `anchors` in `encoding_format`
    ("center_yxhw" or "center_xywh"): center offsets divided by the anchor
    size, then log size ratios; divided by `variance` when given."""
    variance = _check_variance(variance)
    if encoding_format not in ("center_xywh", "center_yxhw"):
        raise ValueError(f"`encoding_format` should be one of 'center_xywh' or 'center_yxhw', got {encoding_format}")
    height, width = _image_hw(image_shape)
    anchors = convert_format(anchors, anchor_format, encoding_format, height=height, width=width)
    boxes = convert_format(boxes, box_format, encoding_format, height=height, width=width)
    anchor_size = anchors[..., 2:].clamp(min=epsilon())
    box_size = boxes[..., 2:].clamp(min=epsilon())
    deltas = torch.cat([(boxes[..., :2] - anchors[..., :2]) / anchor_size, torch.log(box_size / anchor_size)],
                       dim=-1)
    if variance is not None:
        deltas = deltas / variance.to(deltas.device)
    return deltas


def decode_deltas_to_boxes(anchors, boxes_delta, anchor_format, box_format, encoded_format="center_yxhw",
                           variance=None, image_shape=None):
    """Inverse of `encode_box_to_deltas`: boxes in `box_format` from anchors
    and deltas (dicts `{level: tensor}` of both decode level by level)."""
    variance = _check_variance(variance)
    if encoded_format not in ("center_xywh", "center_yxhw"):
        raise ValueError(f"`encoded_format` should be 'center_xywh' or 'center_yxhw', but got '{encoded_format}'.")
    height, width = _image_hw(image_shape)

    def decode(anchor, delta):
        anchor = convert_format(anchor, anchor_format, encoded_format, height=height, width=width)
        delta = _tensor(delta)
        if variance is not None:
            delta = delta * variance.to(delta.device)
        center = delta[..., :2] * anchor[..., 2:] + anchor[..., :2]
        box = torch.cat([center, torch.exp(delta[..., 2:]) * anchor[..., 2:]], dim=-1)
        return convert_format(box, encoded_format, box_format, height=height, width=width)

    if isinstance(anchors, dict) and isinstance(boxes_delta, dict):
        return {level: decode(anchor, boxes_delta[level]) for level, anchor in anchors.items()}
    return decode(anchors, boxes_delta)
