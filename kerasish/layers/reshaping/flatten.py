"""`Flatten`."""

from __future__ import annotations

import math

import torch

from kerasish.layers.input_spec import InputSpec
from kerasish.layers.layer import Layer
from kerasish.layers.reshaping.base_utils import standardize_data_format


class Flatten(Layer):
    """Flattens all non-batch dimensions (`keras.layers.Flatten`).

    Args:
        data_format: "channels_last" or "channels_first". With
            "channels_first" the channel axis is first moved last, so that
            the flattened order matches a channels_last model (Keras's
            behaviour). Defaults to the global image data format
            ("channels_last").

    Input shape: `(batch, ...)`, rank >= 1. Output shape:
    `(batch, prod(...))`; a rank-1 input gives `(batch, 1)`. Masks are not
    propagated (as in Keras).

    Example:
        >>> keras.layers.Flatten()(torch.ones(2, 3, 4)).shape
        torch.Size([2, 12])
    """

    def __init__(self, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format)
        self.input_spec = InputSpec(min_ndim=1)
        self._channels_first = self.data_format == "channels_first"

    def call(self, inputs):
        ndim = inputs.ndim
        if ndim == 1:
            return inputs.reshape(inputs.shape[0], 1)
        if self._channels_first and ndim > 2:
            inputs = inputs.permute(0, *range(2, ndim), 1)
        return torch.flatten(inputs, 1)

    def compute_output_shape(self, input_shape):
        rest = tuple(input_shape)[1:]
        if not rest:
            return (input_shape[0], 1)
        if any(d is None for d in rest):
            return (input_shape[0], None)
        return (input_shape[0], math.prod(rest))

    def get_config(self):
        config = super().get_config()
        config["data_format"] = self.data_format
        return config
