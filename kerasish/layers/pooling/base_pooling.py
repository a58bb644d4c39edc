"""`BasePooling`: max and average pooling over 1, 2 or 3 spatial dimensions.

"same" padding follows TF/Keras: the total padding of a dimension is
`max(0, (ceil(n / s) - 1) * s + k - n)`, split with the extra pixel at the
end; padded positions never win a max and are EXCLUDED from an average (the
mean is over the valid elements of each window, as TF and Keras 2 define it;
Keras 3's torch backend counts them, a known bug that kerasish does not copy).

Both run on torch's pooling kernels with no extra copy of the input: torch's
symmetric `padding=` is set to the *leading* pad, and `ceil_mode=True` adds
the trailing window that TF's extra end pixel makes (torch then averages over
the valid elements only, with `count_include_pad=False`). A stride-1
dimension with an even window pads one pixel more at the end than at the
start: there torch pads the larger amount on both sides and the first output
(whose window starts one pixel too early) is dropped with a slice view.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kerasish.layers.convolutional.conv_utils import SpatialLayout
from kerasish.layers.convolutional.conv_utils import check_output_shape
from kerasish.layers.convolutional.conv_utils import same_padding
from kerasish.layers.convolutional.conv_utils import standardize_data_format
from kerasish.layers.convolutional.conv_utils import standardize_padding
from kerasish.layers.convolutional.conv_utils import standardize_tuple
from kerasish.layers.convolutional.conv_utils import traced_same_pads
from kerasish.layers.input_spec import InputSpec
from kerasish.layers.layer import Layer

# torch has no CPU float16/bfloat16 kernel for avg_pool3d: such inputs are
# pooled in float32 there and cast back
_CPU_UPCAST = frozenset({torch.float16, torch.bfloat16})

_POOL_OPS = {
    ("max", 2): F.max_pool2d,
    ("max", 3): F.max_pool3d,
    ("average", 2): F.avg_pool2d,
    ("average", 3): F.avg_pool3d,
}


class BasePooling(Layer):
    """Abstract N-D pooling layer; see `MaxPooling2D` / `AveragePooling2D`.

    Args:
        pool_size: Int or tuple of `pool_dimensions` ints.
        strides: Int, tuple or None (= `pool_size`).
        pool_dimensions: 1, 2 or 3.
        pool_mode: "max" or "average".
        padding: "valid" or "same". Defaults to "valid".
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".
    """

    _float_inputs = True  # integer/bool inputs are cast to the compute dtype (torch pools floats)

    def __init__(self, pool_size, strides, pool_dimensions, pool_mode="max", padding="valid", data_format=None, name=None, **kwargs):
        super().__init__(name=name, **kwargs)
        rank = pool_dimensions
        self.pool_size = standardize_tuple(pool_size, rank, "pool_size")
        self.strides = standardize_tuple(pool_size if strides is None else strides, rank, "strides")
        if pool_mode not in ("max", "average"):
            raise ValueError(f"`pool_mode` must be either 'max' or 'average'. Received: {pool_mode}.")
        self.pool_mode = pool_mode
        self.padding = standardize_padding(padding)
        self.data_format = standardize_data_format(data_format)
        self.input_spec = InputSpec(ndim=rank + 2)
        self._rank = rank
        layout = self._layout = SpatialLayout(rank, self.data_format)
        # Keras 3's torch pooling copies channels_last data to channels-first and returns a permuted view: an
        # unseeded Dropout after it draws its mask in that order (see `Dropout`); kerasish pools without the copy
        self._keras_channels_first_output = layout.channels_last
        op_rank = 2 if layout.lift else rank
        self._pool = (pool_mode, op_rank)
        self._op_pool = layout.op_tuple(self.pool_size)
        self._op_strides = layout.op_tuple(self.strides)
        self._same = self.padding == "same"
        self._is_avg = pool_mode == "average"
        self._cpu_upcast = self._pool == ("average", 3)
        # stride-1 dimensions with an even window: pad the larger (trailing)
        # amount on both sides, then drop the first output
        self._s1_pad = tuple(
            (k // 2) if s == 1 else None for k, s in zip(self._op_pool, self._op_strides)
        )
        drop = [s == 1 and k % 2 == 0 for k, s in zip(self._op_pool, self._op_strides)]
        self._drop_first = None
        if self._same and any(drop):
            self._drop_first = (slice(None), slice(None)) + tuple(slice(1, None) if d else slice(None) for d in drop)
        self.built = True

    def _same_padding(self, x):
        """torch's padding for TF "same": the leading pad (the trailing one
        for stride-1 dimensions; see module docstring)."""
        return tuple(
            fixed if fixed is not None else same_padding(int(n), k, s)[0]
            for n, k, s, fixed in zip(x.shape[2:], self._op_pool, self._op_strides, self._s1_pad)
        )

    def call(self, inputs):
        if self._cpu_upcast and inputs.dtype in _CPU_UPCAST and inputs.device.type == "cpu":
            return self._pool_call(inputs.float()).to(inputs.dtype)
        try:
            return self._pool_call(inputs)
        except RuntimeError:
            # a torch size error, explained: Keras's "output size would be zero or negative"
            self.compute_output_shape(tuple(inputs.shape))
            raise

    def _pool_call(self, inputs):
        x = self._layout.to_torch(inputs)
        op = _POOL_OPS[self._pool]
        if self._same:
            if torch.jit.is_tracing():
                return self._layout.from_torch(self._same_pool_traced(x, op))
            if self._is_avg and self._rank == 3 and any(int(n) < k for n, k in zip(x.shape[2:], self._op_pool)):
                return self._layout.from_torch(self._avg_pool3d_window_over_input(x))
            padding = self._same_padding(x)
            if self._is_avg:
                y = op(x, self._op_pool, self._op_strides, padding, True, False)
            else:
                y = op(x, self._op_pool, self._op_strides, padding, 1, True)
            if self._drop_first is not None:
                y = y[self._drop_first]
        else:
            y = op(x, self._op_pool, self._op_strides)
        return self._layout.from_torch(y)

    def _same_pool_traced(self, x, op):
        """"same" pooling under `torch.jit.trace`: TF's pad split computed from
        the traced sizes (tensors there), the input padded explicitly (-inf
        for max; for average, each window's sum over its number of valid
        elements), then a "valid" pool. With Python ints the trace kept the
        example's split, and an input of the other parity came out one step
        short, silently."""
        flat = traced_same_pads(x, self._op_pool, self._op_strides)
        if not self._is_avg:
            return op(F.pad(x, flat, value=float("-inf")), self._op_pool, self._op_strides)
        ones = torch.ones_like(x[:1, :1])
        return op(F.pad(x, flat), self._op_pool, self._op_strides) / op(F.pad(ones, flat), self._op_pool, self._op_strides)

    def _avg_pool3d_window_over_input(self, x):
        """"same" 3-D average pooling with a window larger than the input:
        torch's `avg_pool3d` refuses such a window even where its padding
        covers it (its 1-D/2-D kernels and `max_pool3d` take it). The input is
        padded explicitly and each window's sum is divided by its number of
        valid elements (TF's "same" average)."""
        pads = [same_padding(int(n), k, s) for n, k, s in zip(x.shape[2:], self._op_pool, self._op_strides)]
        flat = [p for lead, trail in reversed(pads) for p in (lead, trail)]
        ones = torch.ones((1, 1, *x.shape[2:]), dtype=x.dtype, device=x.device)

        def window_sums(t):
            return F.avg_pool3d(F.pad(t, flat), self._op_pool, self._op_strides, 0, False, True, 1)

        return window_sums(x) / window_sums(ones)

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) != self._rank + 2:
            raise ValueError(
                f"Input 0 of layer '{self.name}' is incompatible with the layer: expected "
                f"ndim={self._rank + 2}, found ndim={len(input_shape)}. Full shape received: {input_shape}"
            )
        channels_last = self.data_format == "channels_last"
        spatial = input_shape[1:-1] if channels_last else input_shape[2:]
        out = []
        for n, k, s in zip(spatial, self.pool_size, self.strides):
            if n is None:
                out.append(None)
            elif self.padding == "valid":
                out.append((n - k) // s + 1)
            else:
                out.append((n - 1) // s + 1)
        check_output_shape(self, input_shape, out, self.pool_size)
        if channels_last:
            return (input_shape[0], *out, input_shape[-1])
        return (input_shape[0], input_shape[1], *out)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "pool_size": self.pool_size,
                "padding": self.padding,
                "strides": self.strides,
                "data_format": self.data_format,
            }
        )
        return config
