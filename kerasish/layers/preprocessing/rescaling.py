"""`Rescaling`."""

from __future__ import annotations

import numpy as np
import torch

from kerasish.layers.layer import Layer
from kerasish.layers.reshaping.base_utils import image_data_format


def _serialize(value):
    """Keras's serialization of a scale/offset: numbers and lists as they
    are, arrays and tensors as Keras's `__numpy__` / `__tensor__` dicts."""
    if isinstance(value, torch.Tensor):
        array = value.detach().cpu().numpy()
        return {"class_name": "__tensor__", "config": {"value": array.tolist(), "dtype": str(array.dtype)}}
    if isinstance(value, np.ndarray):
        return {"class_name": "__numpy__", "config": {"value": value.tolist(), "dtype": str(value.dtype)}}
    if isinstance(value, np.generic):
        return value.item()
    return value


def _deserialize(value):
    if isinstance(value, dict) and value.get("class_name") in ("__numpy__", "__tensor__"):
        array = np.asarray(value["config"]["value"], dtype=value["config"]["dtype"])
        return array if value["class_name"] == "__numpy__" else torch.as_tensor(array)
    return value


class Rescaling(Layer):
    """Rescales inputs: `inputs * scale + offset` (`keras.layers.Rescaling`).

    Args:
        scale: Float, or a per-channel list / array broadcast against the
            last axis (for a channels_first global image data format it is
            broadcast against axis -3, as Keras does).
        offset: Float or per-channel list / array. Defaults to 0.0.

    Inputs of any dtype are cast to the layer's compute dtype first (so
    uint8 images come out as float32). Input shape: any. Output shape:
    same. Masks pass through.

    Example:
        >>> layer = keras.layers.Rescaling(1 / 127.5, offset=-1)
        >>> y = layer(torch.full((1, 2, 2, 3), 255, dtype=torch.uint8))  # all 1.0
    """

    def __init__(self, scale, offset=0.0, **kwargs):
        super().__init__(**kwargs)
        self.scale = scale
        self.offset = offset
        self.supports_masking = True
        self.register_buffer("_scale", self._as_tensor(scale), persistent=False)
        self.register_buffer("_offset", self._as_tensor(offset), persistent=False)

    def _as_tensor(self, value):
        t = torch.as_tensor(np.asarray(value.detach().cpu() if isinstance(value, torch.Tensor) else value))
        t = t.to(self._compute_torch_dtype)
        if t.ndim > 0 and image_data_format() == "channels_first":
            t = t.reshape(tuple(t.shape) + (1,) * (3 - t.ndim))
        return t

    def _constant_buffer_value(self, name):
        return self._as_tensor(self.scale if name == "_scale" else self.offset)

    def call(self, inputs):
        dtype = self._compute_torch_dtype
        scale = self._scale.to(dtype)
        offset = self._offset.to(dtype)
        return inputs.to(dtype) * scale + offset

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def get_config(self):
        config = super().get_config()
        config.update({"scale": _serialize(self.scale), "offset": _serialize(self.offset)})
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["scale"] = _deserialize(config["scale"])
        config["offset"] = _deserialize(config["offset"])
        return super().from_config(config)
