"""`BaseSeparableConv`: depthwise then pointwise convolution, shared by
`SeparableConv1D` and `SeparableConv2D`.

Weights, in Keras's order: `depthwise_kernel` `(*kernel_size, in,
depth_multiplier)`, `pointwise_kernel` `(*ones, in * depth_multiplier,
filters)`, `bias` `(filters,)`. Both convolutions run on torch's `F.conv*d`
with views of the Keras-layout kernels; strides, padding and dilation apply to
the depthwise step, the pointwise step is a 1x1 convolution carrying the bias.
"""

from __future__ import annotations

from kerasish import activations
from kerasish import constraints
from kerasish import initializers
from kerasish import regularizers
from kerasish.layers.convolutional.base_conv import CONV_OPS
from kerasish.layers.convolutional.base_conv import ConvSetupMixin
from kerasish.layers.convolutional.base_conv import check_positive
from kerasish.layers.convolutional.base_depthwise_conv import DepthwiseKernelMixin
from kerasish.layers.layer import Layer
from kerasish.layers.weight_layout import store_in_order

# the identity activation: a layer skips it (read at call time: `layer.activation` may be set after
# construction, as in Keras)
_LINEAR = activations.linear


class BaseSeparableConv(DepthwiseKernelMixin, ConvSetupMixin, Layer):
    """Abstract N-D separable convolution layer; see `SeparableConv2D`."""

    def __init__(
        self,
        rank,
        depth_multiplier,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
        activation=None,
        use_bias=True,
        depthwise_initializer="glorot_uniform",
        pointwise_initializer="glorot_uniform",
        bias_initializer="zeros",
        depthwise_regularizer=None,
        pointwise_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        depthwise_constraint=None,
        pointwise_constraint=None,
        bias_constraint=None,
        **kwargs,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self._setup_conv(rank, kernel_size, strides, padding, data_format, dilation_rate, activation)
        self._setup_depthwise(depth_multiplier)
        check_positive(filters, "filters", "value")
        self.filters = filters
        self.use_bias = bool(use_bias)
        self.depthwise_initializer = initializers.get(depthwise_initializer)
        self.pointwise_initializer = initializers.get(pointwise_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.depthwise_regularizer = regularizers.get(depthwise_regularizer)
        self.pointwise_regularizer = regularizers.get(pointwise_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.depthwise_constraint = constraints.get(depthwise_constraint)
        self.pointwise_constraint = constraints.get(pointwise_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        # pointwise: Keras (*ones, in * dm, filters) -> torch (filters, in * dm, *ones)
        self._kernel_perm = (rank + 1, rank, *range(rank))
        self._unit = (1,) * self._op_rank

    def _lazy_trainable_weights(self):
        """Trainable weights `build` creates (uninitialized parameters until then)."""
        names = ("depthwise_kernel", "pointwise_kernel")
        return (*names, "bias") if self.use_bias else names

    def build(self, input_shape):
        channels = self._input_channels(input_shape)
        self.compute_output_shape(input_shape)
        self._set_depthwise_channels(channels)
        self.depthwise_kernel = self.add_weight(
            name="depthwise_kernel",
            shape=self.kernel_size + (channels, self.depth_multiplier),
            initializer=self.depthwise_initializer,
            regularizer=self.depthwise_regularizer,
            constraint=self.depthwise_constraint,
            trainable=True,
        )
        self.pointwise_kernel = self.add_weight(
            name="pointwise_kernel",
            shape=(1,) * self.rank + (self.depth_multiplier * channels, self.filters),
            initializer=self.pointwise_initializer,
            regularizer=self.pointwise_regularizer,
            constraint=self.pointwise_constraint,
            trainable=True,
        )
        store_in_order(self, "depthwise_kernel", self._depthwise_memory_order())
        store_in_order(self, "pointwise_kernel", self._kernel_memory_order())
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
        x, padding = self._torch_input(inputs)
        try:
            y = self._depthwise(x, self.depthwise_kernel, None, padding)
        except RuntimeError:
            self._raise_if_too_small(inputs)  # a torch size error, explained
            raise
        unit = self._unit
        fused_bias = self._fused_bias()
        y = CONV_OPS[self._op_rank](y, self._torch_kernel(self.pointwise_kernel), fused_bias, unit, 0, unit, 1)
        y = self._add_bias_unless_fused(self._layout.from_torch(y), fused_bias)
        act = self.activation
        return act(y) if act is not _LINEAR and act is not None else y

    def compute_output_shape(self, input_shape):
        return self._spatial_output_shape(input_shape, self.filters)

    def _infer_build_shape(self, weight_shapes):
        kernel = weight_shapes.get("depthwise_kernel")
        if kernel is None or len(kernel) != self.rank + 2:
            return None
        return self._build_shape_for(kernel[-2])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "depth_multiplier": self.depth_multiplier,
                "filters": self.filters,
                **self._common_config(),
                "activation": activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "depthwise_initializer": initializers.serialize(self.depthwise_initializer),
                "pointwise_initializer": initializers.serialize(self.pointwise_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "depthwise_regularizer": regularizers.serialize(self.depthwise_regularizer),
                "pointwise_regularizer": regularizers.serialize(self.pointwise_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "depthwise_constraint": constraints.serialize(self.depthwise_constraint),
                "pointwise_constraint": constraints.serialize(self.pointwise_constraint),
                "bias_constraint": constraints.serialize(self.bias_constraint),
            }
        )
        return config
