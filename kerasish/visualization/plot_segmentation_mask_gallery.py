"""`keras.visualization.plot_segmentation_mask_gallery` (Keras 3.15)."""

from __future__ import annotations

import numpy as np

from kerasish.visualization._images import check_batched
from kerasish.visualization._images import data_format_or_default
from kerasish.visualization._images import to_channels_last
from kerasish.visualization._images import to_numpy
from kerasish.visualization.draw_segmentation_masks import draw_segmentation_masks
from kerasish.visualization.plot_image_gallery import plot_image_gallery


def _int32(masks):
    import torch

    if isinstance(masks, torch.Tensor):
        return masks.to(torch.int32)
    return np.asarray(masks).astype("int32")


def plot_segmentation_mask_gallery(
    images,
    num_classes: int,
    value_range=(0, 255),
    y_true=None,
    y_pred=None,
    color_mapping=None,
    blend: bool = True,
    alpha: float = 0.8,
    ignore_index: int = -1,
    data_format: str | None = None,
    **kwargs,
) -> None:
    """Plots each image next to its ground-truth and/or predicted masks.

    One row per image: the image, then `y_true` drawn on it, then `y_pred`
    drawn on it (see `draw_segmentation_masks`).

    Args:
        images: Images, `(batch, height, width, channels)` (channels_first:
            `(batch, channels, height, width)`).
        num_classes: Number of mask colours (classes 0 to num_classes - 1).
        value_range: The images' value range. Defaults to `(0, 255)`.
        y_true: Ground-truth masks, `(batch, height, width, 1)` or
            `(batch, height, width)`; cast to int32. Defaults to `None`.
        y_pred: Predicted masks, the same shape. Defaults to `None`.
        color_mapping: Class index -> RGB colour. Defaults to `None` (Keras's palette).
        blend: Whether to blend masks with the images. Defaults to `True`.
        alpha: Mask opacity. Defaults to `0.8`.
        ignore_index: A class value left undrawn. Defaults to `-1`.
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.
        **kwargs: Passed on to `plot_image_gallery` (`path`, `show`, `scale`, ...).

    Raises:
        ValueError: If `images` is not 4D.
        ImportError: If matplotlib is not installed.

    Unlike Keras 3.15, the drawing and the plotting inside read the images as
    channels_last once they are transposed, so a global
    `image_data_format() == "channels_first"` works (Keras transposes twice).

    Example:
        >>> keras.visualization.plot_segmentation_mask_gallery(
        ...     images, num_classes=3, y_true=masks, path="masks.png")
    """
    data_format = data_format_or_default(data_format)
    shape = check_batched(images)
    if data_format == "channels_first":
        images = to_channels_last(images)
    batch_size = shape[0]
    cols = 1 + (y_true is not None) + (y_pred is not None)
    images_np = to_numpy(images)

    def draw(masks):
        if data_format == "channels_first" and len(np.shape(masks)) == 4:
            masks = to_channels_last(masks)
        drawn = draw_segmentation_masks(
            images_np,
            _int32(masks),
            num_classes=num_classes,
            color_mapping=color_mapping,
            alpha=alpha,
            ignore_index=ignore_index,
            blend=blend,
            data_format="channels_last",
        )
        return to_numpy(drawn)

    true_drawn = None if y_true is None else draw(y_true)
    pred_drawn = None if y_pred is None else draw(y_pred)
    gallery = []
    for i in range(batch_size):
        gallery.append(images_np[i])
        if true_drawn is not None:
            gallery.append(true_drawn[i])
        if pred_drawn is not None:
            gallery.append(pred_drawn[i])
    return plot_image_gallery(
        np.stack(gallery, axis=0),
        value_range=value_range,
        rows=batch_size,
        cols=cols,
        data_format="channels_last",  # transposed above
        **kwargs,
    )
