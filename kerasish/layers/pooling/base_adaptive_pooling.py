"""`BaseAdaptivePooling`: pooling to a fixed output size, whatever the input size.

Keras 3's torch backend runs `F.adaptive_{avg,max}_pool{1,2,3}d` on a
channels_first copy of the data; here channels_last data is handed to the
same kernels as a permuted view (no copy), so the numbers are torch's and
Keras's alike: output cell `i` covers input indices
`[floor(i * L / n), ceil((i + 1) * L / n))`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kerasish.layers.convolutional.conv_utils import standardize_data_format
from kerasish.layers.input_spec import InputSpec
from kerasish.layers.layer import Layer

_KERNELS = {
    ("average", 1): F.adaptive_avg_pool1d,
    ("average", 2): F.adaptive_avg_pool2d,
    ("average", 3): F.adaptive_avg_pool3d,
    ("max", 1): F.adaptive_max_pool1d,
    ("max", 2): F.adaptive_max_pool2d,
    ("max", 3): F.adaptive_max_pool3d,
}
_AXES_NAMES = {1: "length", 2: "(height, width)", 3: "(depth, height, width)"}


def standardize_output_size(output_size, rank: int, layer: str) -> tuple:
    """An int or a `rank`-tuple of positive ints -> a `rank`-tuple (Keras raises
    TypeError for the wrong kind of value)."""
    if isinstance(output_size, int) and not isinstance(output_size, bool):
        size = (output_size,) * rank
    elif isinstance(output_size, (tuple, list)) and len(output_size) == rank:
        size = tuple(output_size)
    else:
        raise TypeError(
            f"`output_size` of {layer} must be an integer or {_AXES_NAMES[rank]} tuple. "
            f"Received: output_size={output_size} of type {type(output_size)}"
        )
    for dim in size:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
            raise ValueError(
                f"`output_size` of {layer} must contain positive integers. Received: output_size={output_size}"
            )
    return size


class BaseAdaptivePooling(Layer):
    """Abstract adaptive pooling layer; see `AdaptiveAveragePooling2D`.

    Args:
        output_size: Integer or tuple of `rank` integers, the spatial output size.
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".
    """

    _mode = "average"
    _rank = 2

    def __init__(self, output_size, data_format=None, **kwargs):
        super().__init__(**kwargs)
        self.output_size = standardize_output_size(output_size, self._rank, type(self).__name__)
        self.data_format = standardize_data_format(data_format)
        self.input_spec = InputSpec(ndim=self._rank + 2)
        self._channels_last = self.data_format == "channels_last"
        # Keras 3's torch adaptive pooling returns channels-first memory for channels_last data: an unseeded
        # Dropout after it draws its mask in that order (see `Dropout`)
        self._keras_channels_first_output = self._channels_last
        # channels_last (N, *spatial, C) -> channels_first view (N, C, *spatial) and back
        self._to_first = (0, self._rank + 1, *range(1, self._rank + 1))
        self._to_last = (0, *range(2, self._rank + 2), 1)
        self.built = True

    def call(self, inputs):
        size = self.output_size if self._rank > 1 else self.output_size[0]
        kernel = _KERNELS[(self._mode, self._rank)]  # looked up, not stored: layers stay picklable
        if self._channels_last:
            return kernel(inputs.permute(self._to_first), size).permute(self._to_last)
        return kernel(inputs, size)

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != self._rank + 2:
            raise ValueError(
                f"Input 0 of layer '{self.name}' is incompatible with the layer: expected "
                f"ndim={self._rank + 2}, found ndim={len(input_shape)}. Full shape received: {input_shape}"
            )
        if self._channels_last:
            return (input_shape[0], *self.output_size, input_shape[-1])
        return (input_shape[0], input_shape[1], *self.output_size)

    def get_config(self):
        config = super().get_config()
        config.update({"output_size": self.output_size, "data_format": self.data_format})
        return config
