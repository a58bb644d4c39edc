"""`BaseDepthwiseConv`: the depthwise convolution shared by `DepthwiseConv1D`
and `DepthwiseConv2D`.

Keras's depthwise kernel is `(*kernel_size, in_channels, depth_multiplier)`
and output channel `c * depth_multiplier + m` is input channel `c` convolved
with `kernel[..., c, m]`. That is torch's grouped convolution with
`groups=in_channels` and weight `(in_channels * depth_multiplier, 1, *k)`:
a reshape + permute view of the Keras kernel, which is stored in the order
`(in_channels, depth_multiplier, *k)` (`kerasish.layers.weight_layout`) so
that the view is contiguous and no call copies it.
"""

from __future__ import annotations

import torch

from kerasish import activations
from kerasish import constraints
from kerasish import initializers
from kerasish import regularizers
from kerasish.layers.convolutional.base_conv import CONV_OPS
from kerasish.layers.convolutional.base_conv import ConvSetupMixin
from kerasish.layers.convolutional.base_conv import check_positive
from kerasish.layers.layer import Layer
from kerasish.layers.weight_layout import store_in_order

# the identity activation: a layer skips it (read at call time: `layer.activation` may be set after
# construction, as in Keras)
_LINEAR = activations.linear


class DepthwiseKernelMixin:
    """The depthwise part shared with the separable convolutions."""

    def _setup_depthwise(self, depth_multiplier):
        check_positive(depth_multiplier, "depth_multiplier", "value")
        self.depth_multiplier = depth_multiplier
        self._dw_perm = (self.rank, *range(self.rank))
        self._dw_flat_shape = None

    def _set_depthwise_channels(self, channels: int):
        self._in_channels = channels
        self._dw_flat_shape = (*self.kernel_size, channels * self.depth_multiplier)

    def _depthwise_memory_order(self):
        """The depthwise kernel's storage order: `(in, dm, *k)`, in which
        `_torch_depthwise_kernel`'s reshape and permute are a contiguous view
        (see `kerasish.layers.weight_layout`)."""
        return (self.rank, self.rank + 1, *range(self.rank))

    def _torch_depthwise_kernel(self, kernel: torch.Tensor) -> torch.Tensor:
        """Keras `(*k, in, dm)` -> torch `(in * dm, 1, *k)` as a view."""
        w = kernel.reshape(self._dw_flat_shape).permute(self._dw_perm).unsqueeze(1)
        return w.unsqueeze(2) if self._layout.lift else w

    def _depthwise(self, x, kernel, bias, padding):
        return CONV_OPS[self._op_rank](
            x, self._torch_depthwise_kernel(kernel), bias, self._op_strides, padding, self._op_dilation, self._in_channels
        )


class BaseDepthwiseConv(DepthwiseKernelMixin, ConvSetupMixin, Layer):
    """Abstract N-D depthwise convolution layer; see `DepthwiseConv2D`."""

    def __init__(
        self,
        rank,
        depth_multiplier,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
        activation=None,
        use_bias=True,
        depthwise_initializer="glorot_uniform",
        bias_initializer="zeros",
        depthwise_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        depthwise_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self._setup_conv(rank, kernel_size, strides, padding, data_format, dilation_rate, activation)
        self._setup_depthwise(depth_multiplier)
        self.use_bias = bool(use_bias)
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.depthwise_regularizer = regularizers.get(depthwise_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.depthwise_constraint = constraints.get(depthwise_constraint)
        self.bias_constraint = constraints.get(bias_constraint)

    def _lazy_trainable_weights(self):
        """Trainable weights `build` creates (uninitialized parameters until then)."""
        return ("kernel", "bias") if self.use_bias else ("kernel",)

    def build(self, input_shape):
        channels = self._input_channels(input_shape)
        self.compute_output_shape(input_shape)
        self._set_depthwise_channels(channels)
        self.kernel = self.add_weight(
            name="kernel",
            shape=self.kernel_size + (channels, self.depth_multiplier),
            initializer=self.depthwise_initializer,
            regularizer=self.depthwise_regularizer,
            constraint=self.depthwise_constraint,
            trainable=True,
        )
        store_in_order(self, "kernel", self._depthwise_memory_order())
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.depth_multiplier * channels,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
                trainable=True,
            )
        else:
            self.bias = None

    def call(self, inputs):
        x, padding = self._torch_input(inputs)
        try:
            fused_bias = self._fused_bias()
            y = self._layout.from_torch(self._depthwise(x, self.kernel, fused_bias, padding))
        except RuntimeError:
            self._raise_if_too_small(inputs)  # a torch size error, explained
            raise
        y = self._add_bias_unless_fused(y, fused_bias)
        act = self.activation
        return act(y) if act is not _LINEAR and act is not None else y

    def compute_output_shape(self, input_shape):
        channels = tuple(input_shape)[self._channel_axis]
        return self._spatial_output_shape(input_shape, None if channels is None else channels * self.depth_multiplier)

    def _infer_build_shape(self, weight_shapes):
        kernel = weight_shapes.get("kernel")
        if kernel is None or len(kernel) != self.rank + 2:
            return None
        return self._build_shape_for(kernel[-2])

    def get_config(self):
        config = super().get_config()
        common = self._common_config()
        config.update(
            {
                "depth_multiplier": self.depth_multiplier,
                **common,
                "activation": activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "depthwise_initializer": initializers.serialize(self.depthwise_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "depthwise_regularizer": regularizers.serialize(self.depthwise_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "depthwise_constraint": constraints.serialize(self.depthwise_constraint),
                "bias_constraint": constraints.serialize(self.bias_constraint),
            }
        )
        return config
