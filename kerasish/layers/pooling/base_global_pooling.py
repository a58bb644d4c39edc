"""`BaseGlobalPooling`: max / mean over all spatial dimensions at once."""

from __future__ import annotations

import torch

from kerasish.layers.convolutional.conv_utils import standardize_data_format
from kerasish.layers.input_spec import InputSpec
from kerasish.layers.layer import Layer


class BaseGlobalPooling(Layer):
    """Abstract global pooling layer; see `GlobalAveragePooling2D`.

    Args:
        pool_dimensions: 1, 2 or 3.
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".
        keepdims: Keep the pooled spatial dimensions with size 1. Defaults
            to False.
    """

    _float_inputs = True  # integer/bool inputs are cast to the compute dtype (torch pools floats)

    def __init__(self, pool_dimensions, data_format=None, keepdims=False, **kwargs):
        super().__init__(**kwargs)
        self.data_format = standardize_data_format(data_format)
        self.keepdims = bool(keepdims)
        self.input_spec = InputSpec(ndim=pool_dimensions + 2)
        self._rank = pool_dimensions
        if self.data_format == "channels_last":
            self._axes = tuple(range(1, pool_dimensions + 1))
        else:
            self._axes = tuple(range(2, pool_dimensions + 2))
        self.built = True

    def _reduce(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def call(self, inputs):
        return self._reduce(inputs)

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != self._rank + 2:
            raise ValueError(
                f"Input 0 of layer '{self.name}' is incompatible with the layer: expected "
                f"ndim={self._rank + 2}, found ndim={len(input_shape)}. Full shape received: {input_shape}"
            )
        ones = (1,) * self._rank
        if self.data_format == "channels_last":
            return (input_shape[0], *ones, input_shape[-1]) if self.keepdims else (input_shape[0], input_shape[-1])
        return (input_shape[0], input_shape[1], *ones) if self.keepdims else (input_shape[0], input_shape[1])

    def get_config(self):
        config = super().get_config()
        config.update({"data_format": self.data_format, "keepdims": self.keepdims})
        return config


class GlobalMaxPoolingBase(BaseGlobalPooling):
    """Global max pooling (torch.amax over the spatial axes)."""

    def _reduce(self, x):
        return torch.amax(x, dim=self._axes, keepdim=self.keepdims)


class GlobalAveragePoolingBase(BaseGlobalPooling):
    """Global average pooling (torch.mean over the spatial axes)."""

    def _reduce(self, x):
        return torch.mean(x, dim=self._axes, keepdim=self.keepdims)
