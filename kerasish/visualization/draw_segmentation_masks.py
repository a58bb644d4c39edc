"""`keras.visualization.draw_segmentation_masks` (Keras 3.15), in torch."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from kerasish.visualization._images import check_batched
from kerasish.visualization._images import data_format_or_default
from kerasish.visualization._images import to_channels_last

# Keras's default palette: class i gets (i * PALETTE) % 255 as its RGB colour
_PALETTE = np.array([2**25 - 1, 2**15 - 1, 2**21 - 1])


def _as_tensor(x, dtype=None, device=None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x.to(dtype) if dtype is not None else x
    return torch.as_tensor(np.asarray(x), dtype=dtype, device=device)


def _palette(num_classes: int) -> list:
    return [((i * _PALETTE) % 255).tolist() for i in range(num_classes)]


def draw_segmentation_masks(
    images,
    segmentation_masks,
    num_classes: int | None = None,
    color_mapping: dict | None = None,
    alpha: float = 0.8,
    blend: bool = True,
    ignore_index: int = -1,
    data_format: str | None = None,
):
    """Overlays segmentation masks on a batch of images.

    Each pixel of class `c` (`0 <= c < num_classes`) takes colour `c`; with
    `blend=True` the result is `images * (1 - alpha) + colours * alpha`
    (pixels equal to `ignore_index` keep the image), cast to uint8.

    Args:
        images: Images, `(batch, height, width, channels)` (channels_first:
            `(batch, channels, height, width)`), a tensor or an array.
        segmentation_masks: Integer class maps, `(batch, height, width, 1)`
            (channels_first: `(batch, 1, height, width)`) or
            `(batch, height, width)`.
        num_classes: Number of colours (class indices `0 .. num_classes-1`).
            Defaults to `None`: the largest class in the masks plus one.
        color_mapping: A dict from class index (0 to `num_classes - 1`) to an
            RGB colour. Defaults to `None`: Keras's generated palette (class 0
            is black).
        alpha: Opacity of the masks when blending. Defaults to `0.8`.
        blend: Whether to blend the masks with the images. Defaults to `True`.
        ignore_index: A class value left undrawn. Defaults to `-1`.
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.

    Returns:
        A uint8 NumPy array `(batch, height, width, channels)` (channels last
        in both data formats, as Keras); with `blend=False`, a float32 torch
        tensor of the images with the class colours painted in (what Keras
        returns on its torch backend).

    Raises:
        ValueError: If `images` is not 4D, or a mask value is
            `>= num_classes`.
        TypeError: If the masks are not integers.
        KeyError: If `color_mapping` lacks a class index.

    Differences from Keras 3.15 (torch backend), on purpose: masks of shape
    `(batch, height, width)` work (Keras's docstring allows them; its code
    fails); `num_classes=None` means the largest class plus one (Keras takes
    the largest class itself, which raises a torch `RuntimeError` on its torch
    backend and leaves that class undrawn on TensorFlow and JAX); a class
    `>= num_classes` raises `ValueError` instead of torch's `RuntimeError`.
    Everything else is bit for bit Keras's result.

    Example:
        >>> images = np.zeros((1, 4, 4, 3), "float32")
        >>> masks = np.array([[[0, 1, 1, 2]] * 4])[..., None]
        >>> keras.visualization.draw_segmentation_masks(images, masks, num_classes=3).shape
        (1, 4, 4, 3)
    """
    data_format = data_format_or_default(data_format)
    check_batched(images)
    masks = _as_tensor(segmentation_masks)
    if masks.dtype == torch.bool or masks.is_floating_point() or masks.is_complex():
        from kerasish.backend.dtypes import standardize_dtype

        raise TypeError(
            "`segmentation_masks` must be in integer dtype. "
            f"Received: segmentation_masks.dtype={standardize_dtype(masks.dtype)}"
        )
    if masks.ndim == 3:  # (batch, height, width): add the channel axis
        masks = masks.unsqueeze(1 if data_format == "channels_first" else -1)
    if masks.ndim != 4:
        raise ValueError(
            "`segmentation_masks` must have shape (batch, height, width) or (batch, height, width, 1). "
            f"Received: segmentation_masks.shape={tuple(masks.shape)}"
        )
    if data_format == "channels_first":
        images = to_channels_last(images)
        masks = to_channels_last(masks)
    images = _as_tensor(images, torch.float32, device=masks.device if isinstance(images, np.ndarray) else None)
    masks = masks.to(images.device)

    largest = int(masks.max()) if masks.numel() else -1
    if num_classes is None:
        num_classes = largest + 1
    elif largest >= num_classes:
        raise ValueError(
            f"`segmentation_masks` holds class {largest}, but there are only `num_classes={num_classes}` colours "
            "(classes 0 to num_classes - 1). Pass a larger `num_classes`."
        )
    colors = _palette(num_classes) if color_mapping is None else [color_mapping[i] for i in range(num_classes)]

    valid = (masks != ignore_index)[..., 0]
    labels = masks[..., 0].long()
    # negative classes (ignore_index among them) get no colour, as Keras's one_hot
    one_hot = F.one_hot(labels.clamp_min(0), num_classes).bool() & (labels >= 0)[..., None]

    painted = images.clone()
    for c, color in enumerate(colors):
        painted[one_hot[..., c]] = torch.tensor(color, dtype=torch.float32, device=images.device)
    if not blend:
        return painted
    outputs = images * (1 - alpha) + painted * alpha
    outputs = torch.where(valid[..., None], outputs, images)
    return outputs.to(torch.uint8).cpu().numpy()
