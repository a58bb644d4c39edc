"""`BaseConvTranspose`: the N-D transposed convolution shared by
`Conv1DTranspose`, `Conv2DTranspose` and `Conv3DTranspose`.

Keras's kernel layout is `(*kernel_size, filters, in_channels)`; torch's
`F.conv_transpose*d` wants `(in_channels, filters, *kernel_size)`: the same
`permute` view as for `Conv*D`, of a kernel stored in torch's memory order
(channels_last `(in_channels, *kernel_size, filters)` on channels_last data;
see `kerasish.layers.weight_layout`), so the view is contiguous.

Output size and placement follow Keras/TF (`(in - 1) * stride + kernel`
cropped by TF's "same"/"valid" padding, with `output_padding` added at the
end). torch only crops symmetrically and extends at the end, so each spatial
dimension gets a plan, computed once in `__init__` (it does not depend on the
input size): torch's `padding` / `output_padding` where they express it, then a
slice (a view) for the rest.
"""

from __future__ import annotations

import torch.nn.functional as F

from kerasish import activations
from kerasish import constraints
from kerasish import initializers
from kerasish import regularizers
from kerasish.layers.convolutional.base_conv import CONV_TRANSPOSE_OPS
from kerasish.layers.convolutional.base_conv import ConvSetupMixin
from kerasish.layers.convolutional.base_conv import check_positive
from kerasish.layers.convolutional.conv_utils import check_output_shape
from kerasish.layers.convolutional.conv_utils import standardize_tuple
from kerasish.layers.layer import Layer
from kerasish.layers.weight_layout import store_in_order

# the identity activation: a layer skips it (read at call time: `layer.activation` may be set after
# construction, as in Keras)
_LINEAR = activations.linear


def transpose_output_length(length, kernel, stride, padding, output_padding, dilation):
    """Keras's `conv_transpose` output length (None stays None)."""
    if length is None:
        return None
    dk = (kernel - 1) * dilation + 1
    if padding == "valid":
        extra = max(dk, stride) - dk if output_padding is None else output_padding
        return (length - 1) * stride + dk + extra
    if output_padding is None:
        return length * stride
    return (length - 1) * stride + dk % 2 + output_padding


def transpose_plan(kernel, stride, dilation, padding, output_padding):
    """One dimension's plan `(torch_padding, torch_output_padding, crop_left,
    crop_right)`; a negative `crop_right` means zeros to append.

    Keras (as JAX/TF) pads the stride-dilated input by (left, right); torch
    computes the full `(in - 1) * stride + dk` output and crops `padding` from
    both ends, then extends `output_padding` (< max(stride, dilation)) at the end.
    """
    dk = (kernel - 1) * dilation + 1
    if padding == "valid":
        extra = max(dk, stride) - dk if output_padding is None else output_padding
        left, right = dk - 1, dk - 1 + extra
    else:
        if output_padding is None:
            pad_len = stride + dk - 2
        else:
            pad_len = dk + dk % 2 - 2 + output_padding
        left = min(pad_len // 2 + pad_len % 2, dk - 1)
        right = pad_len - left
    crop_left, crop_right = dk - 1 - left, dk - 1 - right
    torch_pad = max(min(crop_left, crop_right), 0)
    rest_left, rest_right = crop_left - torch_pad, crop_right - torch_pad
    limit = max(stride, dilation)
    torch_out_pad = 0
    if rest_right < 0 and -rest_right < limit:
        torch_out_pad, rest_right = -rest_right, 0
    elif rest_right == 0 and 0 < rest_left < limit:
        torch_pad, torch_out_pad, rest_left = torch_pad + rest_left, rest_left, 0
    return torch_pad, torch_out_pad, rest_left, rest_right


class BaseConvTranspose(ConvSetupMixin, Layer):
    """Abstract N-D transposed convolution layer; see `Conv2DTranspose`."""

    _transposed_conv = True

    def __init__(
        self,
        rank,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        output_padding=None,
        data_format=None,
        dilation_rate=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self._setup_conv(rank, kernel_size, strides, padding, data_format, dilation_rate, activation)
        self.filters = filters
        if output_padding is None:
            self.output_padding = None
        else:
            self.output_padding = standardize_tuple(output_padding, rank, "output_padding", allow_zero=True)
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        check_positive(filters, "filters", "value")
        if self.output_padding is not None:
            for i, (op, s) in enumerate(zip(self.output_padding, self.strides)):
                if op >= s:
                    raise ValueError(
                        "`output_padding` must be strictly less than `strides` for all dimensions. "
                        f"At dimension {i}, `output_padding` is {op} but `strides` is {s}. "
                        f"Received: output_padding={self.output_padding}, strides={self.strides}"
                    )
        self._check_strides_dilation()
        self._kernel_perm = (rank + 1, rank, *range(rank))
        # the per-dimension plan, in the op's dimensions (unit height first when lifted)
        ops = self._layout.op_tuple(self.output_padding, fill=0) if self.output_padding else None
        plans = [
            transpose_plan(k, s, d, self.padding, None if ops is None else ops[i])
            for i, (k, s, d) in enumerate(zip(self._op_kernel_size, self._op_strides, self._op_dilation))
        ]
        self._t_padding = tuple(p[0] for p in plans)
        self._t_output_padding = tuple(p[1] for p in plans)
        crops = [(p[2], p[3]) for p in plans]
        self._t_slices = None
        if any(a or b > 0 for a, b in crops):
            self._t_slices = (slice(None), slice(None)) + tuple(
                slice(a, -b if b > 0 else None) for a, b in crops
            )
        self._t_tail_pad = None
        if any(b < 0 for _, b in crops):
            flat = []
            for _, b in reversed(crops):
                flat.extend((0, max(-b, 0)))
            self._t_tail_pad = flat

    def _lazy_trainable_weights(self):
        """Trainable weights `build` creates (uninitialized parameters until then)."""
        return ("kernel", "bias") if self.use_bias else ("kernel",)

    def build(self, input_shape):
        channels = self._input_channels(input_shape)
        self.compute_output_shape(input_shape)
        self.kernel = self.add_weight(
            name="kernel",
            shape=self.kernel_size + (self.filters, channels),
            initializer=self.kernel_initializer,
            regularizer=self.kernel_regularizer,
            constraint=self.kernel_constraint,
            trainable=True,
        )
        store_in_order(self, "kernel", self._kernel_memory_order())
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.filters,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
                trainable=True,
            )
        else:
            self.bias = None

    def call(self, inputs):
        x = self._layout.to_torch(inputs)
        tail = self._t_tail_pad
        bias = self.bias
        fused_bias = self._fused_bias()  # None when a gradient is wanted: added after, as Keras does
        y = CONV_TRANSPOSE_OPS[self._op_rank](
            x,
            self._torch_kernel(self.kernel),
            fused_bias if tail is None else None,
            self._op_strides,
            self._t_padding,
            self._t_output_padding,
            1,
            self._op_dilation,
        )
        if self._t_slices is not None:
            y = y[self._t_slices]
        if tail is not None:
            y = F.pad(y, tail)
            if fused_bias is not None:
                y = y + bias.reshape((-1,) + (1,) * self._op_rank)
        y = self._add_bias_unless_fused(self._layout.from_torch(y), fused_bias)
        act = self.activation
        return act(y) if act is not _LINEAR and act is not None else y

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        spatial = input_shape[1:-1] if self.data_format == "channels_last" else input_shape[2:]
        ops = self.output_padding or (None,) * self.rank
        out = tuple(
            transpose_output_length(n, k, s, self.padding, op, d)
            for n, k, s, op, d in zip(spatial, self.kernel_size, self.strides, ops, self.dilation_rate)
        )
        check_output_shape(self, input_shape, out, self.kernel_size)
        if self.data_format == "channels_last":
            return (input_shape[0], *out, self.filters)
        return (input_shape[0], self.filters, *out)

    def _infer_build_shape(self, weight_shapes):
        kernel = weight_shapes.get("kernel")
        if kernel is None or len(kernel) != self.rank + 2:
            return None
        return self._build_shape_for(kernel[-1])

    def get_config(self):
        config = super().get_config()
        common = self._common_config()
        config.update(
            {
                "filters": self.filters,
                "kernel_size": common["kernel_size"],
                "strides": common["strides"],
                "padding": common["padding"],
                "output_padding": self.output_padding,
                "data_format": common["data_format"],
                "dilation_rate": common["dilation_rate"],
                "activation": activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "kernel_constraint": constraints.serialize(self.kernel_constraint),
                "bias_constraint": constraints.serialize(self.bias_constraint),
            }
        )
        return config
