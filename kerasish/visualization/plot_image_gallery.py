"""`keras.visualization.plot_image_gallery` (Keras 3.15), with matplotlib."""

from __future__ import annotations

import math

import numpy as np
import torch

from kerasish.visualization._images import data_format_or_default
from kerasish.visualization._images import shape_of
from kerasish.visualization._images import to_channels_last
from kerasish.visualization._images import to_numpy

_NO_MATPLOTLIB = (
    "The `plot_image_gallery` function requires the `matplotlib` package. "
    "Please install it with `pip install matplotlib`."
)


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def _to_0_255(images, value_range) -> np.ndarray:
    """Keras's `_transform_value_range(images, value_range, (0, 255))` in
    float32 (the identity for `(0, 255)`), as a NumPy array."""
    if value_range[0] == 0 and value_range[1] == 255:
        return to_numpy(images)
    x = torch.as_tensor(to_numpy(images)).to(torch.float32)
    low, high = (torch.tensor(v, dtype=torch.float32) for v in value_range)
    unit = (x - low) / (high - low)
    return (unit * (torch.tensor(255.0) - torch.tensor(0.0)) + torch.tensor(0.0)).numpy()


def plot_image_gallery(
    images,
    y_true=None,
    y_pred=None,
    label_map: dict | None = None,
    rows: int | None = None,
    cols: int | None = None,
    value_range=(0, 255),
    scale: float = 2,
    path=None,
    show: bool | None = None,
    transparent: bool = True,
    dpi: int = 60,
    legend_handles=None,
    data_format: str | None = None,
) -> None:
    """Shows (or saves) a grid of images, optionally titled with labels.

    Args:
        images: Images, `(batch, height, width, channels)` (channels_first:
            `(batch, channels, height, width)`), a tensor or an array.
        y_true: Class indices of the images, titled "Label: <name>".
            Defaults to `None`.
        y_pred: Predicted class indices, titled "Pred: <name>". Defaults to `None`.
        label_map: A dict from class index to name; required with `y_true`
            or `y_pred`. Defaults to `None`.
        rows: Grid rows. Defaults to `None`: `ceil(sqrt(batch))`.
        cols: Grid columns. Defaults to `None`: `batch // rows` (Keras's rule,
            so a batch that does not fill the grid loses its last images).
        value_range: The images' value range, mapped to [0, 255] for display.
            Defaults to `(0, 255)`.
        scale: Inches per grid cell. Defaults to `2`.
        path: A file to save the figure to (then closed). Defaults to `None`.
        show: Whether to call `plt.show()`. Defaults to `None`: True when
            `path` is None.
        transparent: Transparent background when saving. Defaults to `True`.
        dpi: Resolution when saving. Defaults to `60`.
        legend_handles: matplotlib handles for a figure legend. Defaults to `None`.
        data_format: `"channels_last"` or `"channels_first"`. Defaults to
            `keras.config.image_data_format()`.

    Raises:
        ImportError: If matplotlib is not installed.
        ValueError: If `path` is given with `show=True`, labels without
            `label_map`, or images that are not 4D.

    Differences from Keras 3.15, on purpose: channels_first images are
    transposed once (Keras transposes them twice and fails), and grid cells
    beyond the batch (`rows * cols > batch`) stay blank instead of raising
    `IndexError`.

    Example:
        >>> keras.visualization.plot_image_gallery(images, path="gallery.png")
    """
    plt = _pyplot()
    if plt is None:
        raise ImportError(_NO_MATPLOTLIB)
    if path is not None and show:
        raise ValueError("plot_gallery() expects either `path` to be set, or `show` to be true.")
    if (y_true is not None or y_pred is not None) and label_map is None:
        raise ValueError("If `y_true` or `y_pred` are provided, a `label_map` must also be provided.")
    show = show if show is not None else path is None
    data_format = data_format_or_default(data_format)

    shape = shape_of(images)
    batch_size = shape[0] if len(shape) == 4 else 1
    rows = rows or int(math.ceil(math.sqrt(batch_size)))
    cols = cols or int(math.ceil(batch_size // rows))
    if len(shape) != 4:
        raise ValueError("`plot_images_gallery()` requires you to batch your `np.array` samples together.")
    images = images[: min(rows * cols, batch_size), ...]
    if data_format == "channels_first":
        images = to_channels_last(images)

    fig, axes = plt.subplots(
        nrows=rows,
        ncols=cols,
        figsize=(cols * scale, rows * scale),
        frameon=False,
        layout="tight",
        squeeze=True,
        sharex="row",
        sharey="col",
    )
    fig.subplots_adjust(wspace=0, hspace=0)
    if isinstance(axes, np.ndarray) and axes.ndim == 1:
        axes = np.expand_dims(axes, 0 if rows == 1 else -1)
    if legend_handles is not None:
        fig.legend(handles=legend_handles, loc="lower center")

    images = _to_0_255(images, value_range)
    y_true = None if y_true is None else to_numpy(y_true)
    y_pred = None if y_pred is None else to_numpy(y_pred)
    for row in range(rows):
        for col in range(cols):
            index = row * cols + col
            axis = axes[row, col] if isinstance(axes, np.ndarray) else axes
            if index < len(images):
                axis.imshow(images[index].astype("uint8"))
            axis.margins(x=0, y=0)
            axis.axis("off")
            title = []
            if y_true is not None and index < len(y_true):
                title.append(f"Label: {label_map.get(y_true[index], 'Unknown')}")
            if y_pred is not None and index < len(y_pred):
                title.append(f"Pred: {label_map.get(y_pred[index], 'Unknown')}")
            if title:
                axis.set_title("  ".join(title), fontsize=8)

    if path is not None:
        plt.savefig(fname=path, pad_inches=0, bbox_inches="tight", transparent=transparent, dpi=dpi)
        plt.close()
    elif show:
        plt.show()
        plt.close()
