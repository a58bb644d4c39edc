"""`MaxNumBoundingBoxes`: pads or truncates the bounding boxes of a batch to
a fixed count, so that detection targets stack into dense tensors."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from kerasish.layers.layer import Layer
from kerasish.utils.argument_validation import standardize_data_format

_BOX_KEYS = ("boxes", "labels")


def _dense(value, fill_value, inner_shape):
    """A tensor from an array, a tensor, or a list of per-image arrays of
    different lengths (padded with `fill_value`, as Keras densifies them)."""
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (list, tuple)) and value and not np.isscalar(value[0]):
        rows = [torch.as_tensor(np.asarray(v)).reshape(-1, *inner_shape) for v in value]
        longest = max(r.shape[0] for r in rows)
        if any(r.shape[0] != longest for r in rows):
            rows = [torch.cat([r, r.new_full((longest - r.shape[0], *inner_shape), fill_value)]) for r in rows]
        return torch.stack(rows)
    return torch.as_tensor(np.asarray(value))


class MaxNumBoundingBoxes(Layer):
    """Ensures a fixed number of bounding boxes per image.

    Called on Keras's preprocessing dict `{"images", "bounding_boxes":
    {"boxes", "labels"}, "labels", "segmentation_masks"}`, it keeps the
    first `max_number` boxes (and box labels) of every image and pads
    images with fewer boxes with `fill_value`. Images, image labels and
    segmentation masks pass through unchanged; a plain image tensor is
    returned as it is.

    Args:
        max_number: Number of boxes per image in the output.
        fill_value: Value of the padding boxes and labels. Defaults to -1.
        bounding_box_format: The boxes' format (`"xyxy"`, `"yxyx"`,
            `"xywh"`, `"center_xywh"`, `"rel_xyxy"`, ...). Required when the
            input has `bounding_boxes`, as in Keras (the layer does not
            change coordinates, only the count). Defaults to `None`.
        data_format: Image data format. Defaults to the global setting.

    `get_config` also records `fill_value` (Keras 3.15 leaves it out, so a
    Keras round trip resets it to -1; Keras accepts the key when loading).

    Example:
        >>> layer = keras.layers.MaxNumBoundingBoxes(10, bounding_box_format="xyxy")
        >>> out = layer({"images": images, "bounding_boxes": {"boxes": boxes, "labels": labels}})
        >>> out["bounding_boxes"]["boxes"].shape
        torch.Size([batch, 10, 4])
    """

    def __init__(self, max_number, fill_value=-1, bounding_box_format=None, data_format=None, **kwargs):
        if isinstance(max_number, bool) or not isinstance(max_number, (int, np.integer)) or max_number < 1:
            raise ValueError(
                f"`max_number` must be a positive integer. Received: max_number={max_number!r}"
            )
        super().__init__(autocast=False, **kwargs)
        self.max_number = int(max_number)
        self.fill_value = int(fill_value)
        self.bounding_box_format = bounding_box_format
        self.data_format = standardize_data_format(data_format)
        self.supports_jit = False
        self.built = True

    def _fit(self, x, batched):
        """Truncates or pads axis 1 (axis 0 when unbatched) to `max_number`."""
        axis = 1 if batched else 0
        x = x.narrow(axis, 0, min(self.max_number, x.shape[axis]))
        missing = self.max_number - x.shape[axis]
        if missing:
            pad = [0, 0] * (x.ndim - axis - 1) + [0, missing]
            x = F.pad(x, pad, value=self.fill_value)
        return x

    def call(self, data, training=True):
        if not isinstance(data, dict):
            return data
        if "images" not in data:
            raise ValueError(
                f"Layer '{self.name}' expects a dict with an 'images' key (and optionally 'bounding_boxes', "
                f"'labels', 'segmentation_masks'). Received keys: {sorted(data)}"
            )
        data = dict(data)
        images = data["images"]
        if not isinstance(images, torch.Tensor):
            images = torch.as_tensor(np.asarray(images))
        data["images"] = images
        if "bounding_boxes" not in data:
            return data
        if not self.bounding_box_format:
            raise ValueError(
                "You passed an input with a 'bounding_boxes' key, but you didn't specify a bounding box "
                f"format. Pass a `bounding_box_format` argument to your {type(self).__name__} layer, e.g. "
                "`bounding_box_format='xyxy'`."
            )
        boxes_in = data["bounding_boxes"]
        extra = set(boxes_in) - set(_BOX_KEYS)
        if not isinstance(boxes_in, dict) or extra or not set(_BOX_KEYS) <= set(boxes_in):
            raise ValueError(
                f"Layer '{self.name}': `bounding_boxes` must be a dict with keys 'boxes' and 'labels'. "
                f"Received keys: {sorted(boxes_in) if isinstance(boxes_in, dict) else type(boxes_in).__name__}"
            )
        batched = images.ndim == 4
        boxes = _dense(boxes_in["boxes"], self.fill_value, (4,))
        labels = _dense(boxes_in["labels"], self.fill_value, ())
        if boxes.ndim != (3 if batched else 2) or boxes.shape[-1] != 4:
            raise ValueError(
                f"Layer '{self.name}': `boxes` must have shape {'(batch, num_boxes, 4)' if batched else '(num_boxes, 4)'}"
                f" for images of rank {images.ndim}. Received: boxes.shape={tuple(boxes.shape)}"
            )
        data["bounding_boxes"] = {**boxes_in, "boxes": self._fit(boxes, batched), "labels": self._fit(labels, batched)}
        if "labels" in data and not isinstance(data["labels"], torch.Tensor):
            data["labels"] = torch.as_tensor(np.asarray(data["labels"]))
        return data

    def compute_output_shape(self, input_shape):
        if isinstance(input_shape, dict) and "bounding_boxes" in input_shape:
            extra = set(input_shape["bounding_boxes"]) - set(_BOX_KEYS)
            if extra:
                raise KeyError(
                    f"There are unsupported keys in `bounding_boxes`: {sorted(extra)}. "
                    "Only `boxes` and `labels` are supported."
                )
            boxes = list(input_shape["bounding_boxes"]["boxes"])
            labels = list(input_shape["bounding_boxes"]["labels"])
            boxes[1] = labels[1] = self.max_number
            return {**input_shape, "bounding_boxes": {"boxes": boxes, "labels": labels}}
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["data_format"] = self.data_format
        if self.bounding_box_format is not None:
            config["bounding_box_format"] = self.bounding_box_format
        config.update({"max_number": self.max_number, "fill_value": self.fill_value})
        return config
