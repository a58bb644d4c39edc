"""`keras.visualization.draw_bounding_boxes` (Keras 3.15), drawn with OpenCV."""

from __future__ import annotations

import numpy as np

from kerasish.visualization._images import check_batched
from kerasish.visualization._images import data_format_or_default
from kerasish.visualization._images import to_numpy

_NO_CV2 = (
    "The `draw_bounding_boxes` function requires the `cv2` package  (OpenCV). "
    "Please install it with `pip install opencv-python`."
)


def _cv2():
    try:
        import cv2
    except ImportError:
        return None
    return cv2


def _text_origin(x, y, font_scale, thickness):
    """Where a box's label goes: above its top-left corner when there is room
    for two text lines there, else inside the box (Keras's rule)."""
    font_height = int(font_scale * 12)
    if y - 8 - 2 * font_height > 0:
        return x, y - 8
    return x + 3, y + 2 * font_height + thickness + 3


def _as_uint8(images: np.ndarray) -> np.ndarray:
    """Float images in [0, 1] are scaled to [0, 255], other floats clipped to
    it; then cast to uint8 (a copy: the caller's images are not drawn on)."""
    if images.dtype.kind == "f" and images.size > 0:
        images = np.clip(images, 0, 1) * 255 if images.max() <= 1.0 else np.clip(images, 0, 255)
    return images.astype("uint8")


def draw_bounding_boxes(
    images,
    bounding_boxes: dict,
    bounding_box_format: str,
    class_mapping: dict | None = None,
    color=(128, 128, 128),
    line_thickness: int = 2,
    text_thickness: int | None = 1,
    font_scale: float = 1.0,
    data_format: str | None = None,
) -> np.ndarray:
    """Draws bounding boxes (and class labels) on a batch of images.

    Args:
        images: Images, `(batch, height, width, channels)` (channels_first:
            `(batch, channels, height, width)`), a tensor or an array. Float
            images with a maximum `<= 1` are taken as [0, 1] and scaled to
            [0, 255]; others are clipped to [0, 255].
        bounding_boxes: A dict with `"boxes"` `(batch, num_boxes, 4)` and
            `"labels"` `(batch, num_boxes)` (label -1 marks padding, not
            drawn), optionally `"confidences"` `(batch, num_boxes)`.
        bounding_box_format: The format of the boxes ("xyxy", "yxyx", "xywh",
            "center_xywh", "center_yxhw", "rel_*", ...; see
            `keras.utils.bounding_boxes.convert_format`).
        class_mapping: A dict from class id to the label written next to
            the box (with ` | 0.93` when confidences are given). Defaults to
            `None` (no labels).
        color: RGB colour of boxes and labels. Defaults to `(128, 128, 128)`.
        line_thickness: Box line thickness. Defaults to `2`.
        text_thickness: Label stroke thickness; a falsy value means
            `line_thickness`. Defaults to `1`.
        font_scale: Label font scale. Defaults to `1.0`.
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.

    Returns:
        A uint8 NumPy array of the images with the boxes drawn, the shape of
        `images`.

    Raises:
        ImportError: If OpenCV (`cv2`) is not installed.
        ValueError: If `images` is not 4D or `bounding_boxes` lacks "boxes" or
            "labels".
        TypeError: If `bounding_boxes` is not a dict.

    Pixels equal Keras 3.15's for channels_last images. For channels_first
    images kerasish draws on the (height, width) planes and returns
    channels_first images; Keras 3.15 hands the (channels, height) planes to
    OpenCV.

    Example:
        >>> boxes = {"boxes": [[[2, 2, 12, 10]]], "labels": [[0]]}
        >>> out = keras.visualization.draw_bounding_boxes(
        ...     np.zeros((1, 16, 16, 3)), boxes, "xyxy", class_mapping={0: "cat"})
    """
    cv2 = _cv2()
    if cv2 is None:
        raise ImportError(_NO_CV2)
    class_mapping = class_mapping or {}
    text_thickness = text_thickness or line_thickness
    data_format = data_format_or_default(data_format)
    shape = check_batched(images)
    if not isinstance(bounding_boxes, dict):
        raise TypeError(
            f"`bounding_boxes` should be a dict. Received: bounding_boxes={bounding_boxes} of type "
            f"{type(bounding_boxes)}"
        )
    if "boxes" not in bounding_boxes or "labels" not in bounding_boxes:
        raise ValueError(
            "`bounding_boxes` should be a dict containing 'boxes' and 'labels' keys. "
            f"Received: bounding_boxes={bounding_boxes}"
        )
    channels_last = data_format == "channels_last"
    height, width = (shape[1], shape[2]) if channels_last else (shape[2], shape[3])
    from kerasish.utils.bounding_boxes import convert_format

    converted = convert_format(dict(bounding_boxes), bounding_box_format, "xyxy", height, width)

    images = _as_uint8(to_numpy(images))
    if not channels_last:
        images = np.ascontiguousarray(images.transpose(0, 2, 3, 1))
    boxes = to_numpy(converted["boxes"])
    labels = to_numpy(converted["labels"])
    confidences = to_numpy(converted["confidences"]) if "confidences" in converted else None

    for i in range(images.shape[0]):
        image = images[i]  # a view: OpenCV draws into `images`
        for j in range(boxes[i].shape[0]):
            x1, y1, x2, y2 = (int(v) for v in boxes[i][j].astype("int32"))
            c = int(labels[i][j].astype("int32"))
            if c == -1:
                continue
            cv2.rectangle(image, (x1, y1), (x2, y2), color, line_thickness)
            if c in class_mapping:
                label = class_mapping[c]
                if confidences is not None:
                    label = f"{label} | {confidences[i][j]:.2f}"
                cv2.putText(
                    img=image,
                    text=label,
                    org=_text_origin(x1, y1, font_scale, text_thickness),
                    fontFace=cv2.FONT_HERSHEY_SIMPLEX,
                    fontScale=font_scale,
                    color=color,
                    thickness=text_thickness,
                )
    if not channels_last:
        images = np.ascontiguousarray(images.transpose(0, 3, 1, 2))
    return images
