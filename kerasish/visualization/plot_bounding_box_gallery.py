"""`keras.visualization.plot_bounding_box_gallery` (Keras 3.15)."""

from __future__ import annotations

import numpy as np

from kerasish.visualization._images import check_batched
from kerasish.visualization._images import data_format_or_default
from kerasish.visualization._images import to_channels_last
from kerasish.visualization._images import to_numpy
from kerasish.visualization.draw_bounding_boxes import draw_bounding_boxes
from kerasish.visualization.plot_image_gallery import plot_image_gallery

_NO_MATPLOTLIB = (
    "The `plot_bounding_box_gallery` function requires the  `matplotlib` package. "
    "Please install it with  `pip install matplotlib`."
)


def plot_bounding_box_gallery(
    images,
    bounding_box_format: str,
    y_true=None,
    y_pred=None,
    value_range=(0, 255),
    true_color=(0, 188, 212),
    pred_color=(255, 235, 59),
    line_thickness: int = 2,
    font_scale: float = 1.0,
    text_thickness: int | None = None,
    class_mapping=None,
    ground_truth_mapping=None,
    prediction_mapping=None,
    legend: bool = False,
    legend_handles=None,
    rows: int | None = None,
    cols: int | None = None,
    data_format: str | None = None,
    **kwargs,
) -> None:
    """Plots a gallery of images with ground-truth and predicted boxes.

    Args:
        images: Images, `(batch, height, width, channels)` (channels_first:
            `(batch, channels, height, width)`).
        bounding_box_format: The format of the boxes (see
            `keras.utils.bounding_boxes.convert_format`).
        y_true: Ground-truth boxes, a dict as for `draw_bounding_boxes`.
            Defaults to `None`.
        y_pred: Predicted boxes, the same structure. Defaults to `None`.
        value_range: The images' value range. Defaults to `(0, 255)`.
        true_color: RGB colour of ground-truth boxes. Defaults to `(0, 188, 212)`.
        pred_color: RGB colour of predicted boxes. Defaults to `(255, 235, 59)`.
        line_thickness: Box line thickness. Defaults to `2`.
        font_scale: Label font scale. Defaults to `1.0`.
        text_thickness: Label thickness. Defaults to `None` (`line_thickness`).
        class_mapping: Class id -> name for both kinds of boxes. Defaults to `None`.
        ground_truth_mapping: Class names for ground truth (overrides
            `class_mapping`). Defaults to `None`.
        prediction_mapping: Class names for predictions (overrides
            `class_mapping`). Defaults to `None`.
        legend: Whether to add a "Ground Truth" / "Prediction" legend.
            Defaults to `False`.
        legend_handles: matplotlib handles for the legend instead. Defaults to `None`.
        rows: Grid rows. Defaults to `None`.
        cols: Grid columns. Defaults to `None`.
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.
        **kwargs: Passed on to `plot_image_gallery` (`path`, `show`, `scale`, ...).

    Raises:
        ImportError: If matplotlib is not installed.
        ValueError: If `images` is not 4D, or both `legend` and
            `legend_handles` are given.

    Unlike Keras 3.15, the drawing and the plotting inside read the images as
    channels_last once they are transposed, so a global
    `image_data_format() == "channels_first"` works (Keras transposes twice).

    Example:
        >>> keras.visualization.plot_bounding_box_gallery(
        ...     images, "xyxy", y_true=boxes, class_mapping={0: "cat"}, path="boxes.png")
    """
    try:
        from matplotlib import patches
    except ImportError:
        raise ImportError(_NO_MATPLOTLIB) from None
    prediction_mapping = prediction_mapping or class_mapping
    ground_truth_mapping = ground_truth_mapping or class_mapping
    data_format = data_format_or_default(data_format)
    check_batched(images)
    if data_format == "channels_first":
        images = to_channels_last(images)
    plotted = to_numpy(images)

    def draw(images, boxes, color, mapping):
        # the images are channels_last from here on, whatever the global default
        return draw_bounding_boxes(
            images,
            boxes,
            color=color,
            class_mapping=mapping,
            bounding_box_format=bounding_box_format,
            line_thickness=line_thickness,
            text_thickness=text_thickness,
            font_scale=font_scale,
            data_format="channels_last",
        )

    if y_true is not None:
        plotted = draw(plotted, y_true, true_color, ground_truth_mapping)
    if y_pred is not None:
        plotted = draw(plotted, y_pred, pred_color, prediction_mapping)
    if legend:
        if legend_handles:
            raise ValueError(
                "Only pass `legend` OR `legend_handles` to `keras.visualization.plot_bounding_box_gallery()`."
            )
        legend_handles = [
            patches.Patch(color=np.array(true_color) / 255.0, label="Ground Truth"),
            patches.Patch(color=np.array(pred_color) / 255.0, label="Prediction"),
        ]
    return plot_image_gallery(
        plotted,
        value_range=value_range,
        legend_handles=legend_handles,
        rows=rows,
        cols=cols,
        data_format="channels_last",  # transposed above
        **kwargs,
    )
