"""`BaseConv`: the N-D convolution shared by `Conv1D`, `Conv2D` and `Conv3D`,
and `ConvSetupMixin`, the argument handling shared with the transposed,
depthwise and separable convolutions.

Keras keeps a conv kernel as `(*kernel_size, in_channels // groups, filters)`;
torch's `F.conv*d` wants `(filters, in_channels // groups, *kernel_size)`. The
kernel keeps Keras's shape (so `get_weights()`, `state_dict()`, saved files and
`parameters()` all show Keras's layout) but is stored in torch's memory order
(`kerasish.layers.weight_layout`): on channels_last data (NHWC memory) torch's
channels_last weight `(filters, *kernel_size, in)`, else `(filters, in,
*kernel_size)`. The `permute` view handed to torch on each call is then
contiguous in the format torch's conv wants, and nothing is copied. Before,
the permuted view of a contiguous Keras-layout kernel was copied every call
(by torch, or by the layer to get torch's CPU mkldnn path): ResNet50 at batch
2, 96x96, was 2.8x a hand-written torch one in inference, now ~1.2x
(tools/bench_applications.py --ab). Where the layout was lost (FSDP2 shards,
`contiguous_kernels`), channels_last 1-D/2-D calls still make the kernel
channels_last-contiguous, a copy per call.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kerasish import activations
from kerasish import constraints
from kerasish import initializers
from kerasish import regularizers
from kerasish.layers.convolutional.conv_lora import ConvLoRA
from kerasish.layers.convolutional.conv_utils import SpatialLayout
from kerasish.layers.convolutional.conv_utils import check_output_shape
from kerasish.layers.convolutional.conv_utils import conv_output_length
from kerasish.layers.convolutional.conv_utils import pad_same_dynamic
from kerasish.layers.convolutional.conv_utils import standardize_data_format
from kerasish.layers.convolutional.conv_utils import standardize_padding
from kerasish.layers.convolutional.conv_utils import standardize_tuple
from kerasish.layers.convolutional.conv_utils import static_padding
from kerasish.layers.input_spec import InputSpec
from kerasish.layers.layer import Layer
from kerasish.layers.weight_layout import store_in_order

# the identity activation: a layer skips it (read at call time: `layer.activation` may be set after
# construction, as in Keras)
_LINEAR = activations.linear

# torch conv ops by the rank they run at (rank 1 runs lifted to 2-D)
CONV_OPS = {2: F.conv2d, 3: F.conv3d}
CONV_TRANSPOSE_OPS = {2: F.conv_transpose2d, 3: F.conv_transpose3d}


def check_positive(value, name: str, what: str) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise ValueError(
            f"Invalid value for argument `{name}`. Expected a strictly positive {what}. "
            f"Received {name}={value}."
        )


class ConvSetupMixin:
    """Argument standardization, padding plans and the call helpers shared by
    every convolution family (see module docstring)."""

    _float_inputs = True  # integer inputs are cast to the compute dtype
    _transposed_conv = False

    def _setup_conv(self, rank, kernel_size, strides, padding, data_format, dilation_rate, activation, allow_causal=False):
        self.rank = rank
        self.kernel_size = standardize_tuple(kernel_size, rank, "kernel_size")
        self.strides = standardize_tuple(strides, rank, "strides")
        self.dilation_rate = standardize_tuple(dilation_rate, rank, "dilation_rate")
        self.padding = standardize_padding(padding, allow_causal=allow_causal)
        self.data_format = standardize_data_format(data_format)
        self.activation = activations.get(activation)
        self._layout = SpatialLayout(rank, self.data_format)
        # Keras 3's torch rank-1 and transposed convolutions return channels-first memory for channels_last
        # data (a permuted view): an unseeded Dropout after one draws its mask in that order (see `Dropout`)
        self._keras_channels_first_output = self._layout.channels_last and (rank == 1 or self._transposed_conv)
        self._channel_axis = -1 if self.data_format == "channels_last" else 1
        layout = self._layout
        self._op_rank = 2 if layout.lift else rank
        # plain 1-D/2-D convolutions on channels_last data hand torch a channels_last weight (`_torch_kernel`)
        self._channels_last_weight = layout.channels_last and self._op_rank == 2 and isinstance(self, BaseConv)
        self._op_strides = layout.op_tuple(self.strides)
        self._op_dilation = layout.op_tuple(self.dilation_rate)
        self._op_kernel_size = layout.op_tuple(self.kernel_size)
        dilated = tuple((k - 1) * d + 1 for k, d in zip(self._op_kernel_size, self._op_dilation))
        self._op_dilated_kernel = dilated
        self._pre_pad, self._op_padding, self._dynamic_same = static_padding(
            self.padding, dilated, self._op_strides, causal_dim=self._op_rank - 1
        )
        self.input_spec = InputSpec(min_ndim=rank + 2)

    def _raise_if_too_small(self, inputs):
        """After a torch error: Keras's "computed output size would be zero or
        negative" ValueError when the input is smaller than the kernel."""
        self._spatial_output_shape(tuple(inputs.shape), None)

    def _check_strides_dilation(self):
        if max(self.strides) > 1 and max(self.dilation_rate) > 1:
            raise ValueError(
                "`strides > 1` not supported in conjunction with `dilation_rate > 1`. "
                f"Received: strides={self.strides} and dilation_rate={self.dilation_rate}"
            )

    def _input_channels(self, input_shape) -> int:
        input_shape = tuple(input_shape)
        if len(input_shape) != self.rank + 2:
            raise ValueError(
                f"Input 0 of layer '{self.name}' is incompatible with the layer: expected "
                f"ndim={self.rank + 2}, found ndim={len(input_shape)}. Full shape received: {input_shape}"
            )
        channels = input_shape[self._channel_axis]
        if channels is None:
            raise ValueError(
                f"Layer '{self.name}': the channel dimension of the inputs should be defined. "
                f"Received: input_shape={input_shape}"
            )
        self.input_spec = InputSpec(ndim=self.rank + 2, axes={self._channel_axis: channels})
        return int(channels)

    def _torch_input(self, inputs):
        """The input as an N-C-spatial view, padded when the padding plan
        asks for it, and the `padding=` to give torch."""
        x = self._layout.to_torch(inputs)
        if self._dynamic_same:
            return pad_same_dynamic(x, self._op_dilated_kernel, self._op_strides)
        if self._pre_pad is not None:
            x = F.pad(x, self._pre_pad)
        return x, self._op_padding

    def _fused_bias(self):
        """The bias for torch's op to add, or None when it is added after it.

        A bias that needs a gradient is added to the Keras-layout output, as
        Keras adds it: torch's fused bias has its own gradient kernel, which
        sums in another order (Keras's gradients bit for bit; fwd+bwd time
        unchanged). Without a gradient the fused bias gives the same values
        and a ~10-20% faster forward, so inference keeps it.

        Under `torch.jit.trace` the bias is always fused, as `nn.Conv2d`'s is:
        the trace's sanity check re-traces under `no_grad`, and a graph that
        changed with the grad mode failed it ("Graphs differed across
        invocations"), so `jit.trace` and TensorBoard's `add_graph` refused
        every convnet."""
        bias = self.bias
        if bias is not None and bias.requires_grad and torch.is_grad_enabled() and not torch.jit.is_tracing():
            return None
        return bias

    def _add_bias_unless_fused(self, y: torch.Tensor, fused_bias) -> torch.Tensor:
        bias = self.bias
        if bias is None or fused_bias is not None:
            return y
        if bias.dtype != y.dtype:  # a lower-precision output under torch.autocast: the bias follows it, as fused
            bias = bias.to(y.dtype)
        return y + (bias if self._channel_axis == -1 else bias.view(-1, *(1,) * self.rank))

    def _torch_kernel(self, kernel: torch.Tensor) -> torch.Tensor:
        """Keras `(*k, a, b)` -> torch `(b, a, *k)` as a view (unit height when lifted)."""
        w = kernel.permute(self._kernel_perm)
        w = w.unsqueeze(2) if self._layout.lift else w
        if self._channels_last_weight:
            # channels_last inputs (NHWC memory): a channels_last weight lets torch's CPU conv take its
            # mkldnn path; the permuted view of the Keras layout made it copy and fall back
            w = w.contiguous(memory_format=torch.channels_last)
        return w

    def _kernel_memory_order(self):
        """The storage order of a kernel that `_torch_kernel` permutes (its
        dimensions, outermost first): the one in which the permuted view is
        contiguous in the memory format torch's conv wants, so no call copies
        it (see `kerasish.layers.weight_layout`). On channels_last data,
        torch's channels_last weight (`(filters, *kernel_size, in)` for a
        conv), else torch's contiguous one (`(filters, in, *kernel_size)`)."""
        perm = self._kernel_perm
        if self._layout.channels_last:
            return (perm[0], *perm[2:], perm[1])
        return perm

    def _spatial_output_shape(self, input_shape, channels_out):
        input_shape = tuple(input_shape)
        spatial = input_shape[1:-1] if self.data_format == "channels_last" else input_shape[2:]
        out = tuple(
            conv_output_length(n, k, s, self.padding, d)
            for n, k, s, d in zip(spatial, self.kernel_size, self.strides, self.dilation_rate)
        )
        check_output_shape(self, input_shape, out, self.kernel_size)
        if self.data_format == "channels_last":
            return (input_shape[0], *out, channels_out)
        return (input_shape[0], channels_out, *out)

    def _build_shape_for(self, channels: int):
        """A build shape with `channels` input channels (for `load_state_dict`)."""
        if self.data_format == "channels_last":
            return (None,) * (self.rank + 1) + (channels,)
        return (None, channels) + (None,) * self.rank

    def _common_config(self) -> dict:
        return {
            "kernel_size": self.kernel_size,
            "strides": self.strides,
            "padding": self.padding,
            "data_format": self.data_format,
            "dilation_rate": self.dilation_rate,
        }


class BaseConv(ConvLoRA, ConvSetupMixin, Layer):
    """Abstract N-D convolution (cross-correlation) layer; see `Conv2D`.

    Args:
        rank: The number of spatial dimensions (1, 2 or 3).
        filters: Number of output channels.
        kernel_size: Int or tuple of `rank` ints, the window size.
        strides: Int or tuple of `rank` ints. Defaults to 1.
        padding: "valid", "same" (TF's split: the extra pixel goes at the end)
            or, for rank 1, "causal". Defaults to "valid".
        data_format: "channels_last" or "channels_first". Defaults to
            "channels_last".
        dilation_rate: Int or tuple of `rank` ints. Defaults to 1.
        groups: Number of channel groups; input channels and `filters` must be
            divisible by it. Defaults to 1.
        activation: Activation applied to the output. Defaults to None.
        use_bias: Whether to add a bias. Defaults to True.
        kernel_initializer: Defaults to "glorot_uniform".
        bias_initializer: Defaults to "zeros".
        kernel_regularizer, bias_regularizer, activity_regularizer,
        kernel_constraint, bias_constraint: Defaults to None.
        lora_rank: If set, the layer is built with LoRA enabled at this rank
            (`enable_lora`, see `conv_lora.py`): the kernel is frozen and a
            trainable low-rank update `lora_kernel_a @ lora_kernel_b` is
            added. Defaults to None.
        lora_alpha: LoRA scale numerator (the update is scaled by
            `lora_alpha / lora_rank`). Defaults to `lora_rank`.
    """

    def __init__(
        self,
        rank,
        filters,
        kernel_size,
        strides=1,
        padding="valid",
        data_format=None,
        dilation_rate=1,
        groups=1,
        activation=None,
        use_bias=True,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        lora_rank=None,
        lora_alpha=None,
        **kwargs,
    ):
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self._setup_conv(rank, kernel_size, strides, padding, data_format, dilation_rate, activation, allow_causal=rank == 1)
        self.filters = filters
        self.groups = groups
        self.use_bias = bool(use_bias)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.lora_rank = lora_rank
        self.lora_alpha = lora_alpha if lora_alpha is not None else lora_rank
        self.lora_enabled = False
        check_positive(filters, "filters", "value")
        if isinstance(groups, bool) or not isinstance(groups, int) or groups <= 0:
            raise ValueError(f"The number of groups must be a positive integer. Received: groups={groups}.")
        if filters is not None and filters % groups != 0:
            raise ValueError(
                "The number of filters must be evenly divisible by the number of groups. "
                f"Received: groups={groups}, filters={filters}."
            )
        self._check_strides_dilation()
        # Keras (*k, in // groups, filters) -> torch (filters, in // groups, *k)
        self._kernel_perm = (rank + 1, rank, *range(rank))

    def _lazy_trainable_weights(self):
        """Trainable weights `build` creates (uninitialized parameters until then)."""
        return ("kernel", "bias") if self.use_bias else ("kernel",)

    def build(self, input_shape):
        channels = self._input_channels(input_shape)
        if channels % self.groups != 0:
            raise ValueError(
                "The number of input channels must be evenly divisible by the number of groups. "
                f"Received groups={self.groups}, but the input has {channels} channels "
                f"(full input shape is {tuple(input_shape)})."
            )
        self.compute_output_shape(input_shape)
        self._kernel = self.add_weight(
            name="kernel",
            shape=self.kernel_size + (channels // self.groups, self.filters),
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
        if self.lora_rank:
            self.built = True
            self.enable_lora(self.lora_rank, lora_alpha=self.lora_alpha)

    def call(self, inputs):
        if type(self).convolution_op is not BaseConv.convolution_op:
            return self._call_custom_convolution_op(inputs)
        x, padding = self._torch_input(inputs)
        fused_bias = self._fused_bias()
        # the stored kernel read straight from the registry (the hot path); the
        # `kernel` property when it computes (LoRA merged, mixed precision cast)
        d = self.__dict__
        kernel = d["_parameters"].get("kernel")
        if kernel is None or d["_mixed"] or d["lora_enabled"]:
            kernel = self.kernel
        try:
            y = CONV_OPS[self._op_rank](
                x, self._torch_kernel(kernel), fused_bias, self._op_strides, padding, self._op_dilation, self.groups
            )
        except RuntimeError:
            self._raise_if_too_small(inputs)  # a torch size error, explained
            raise
        y = self._add_bias_unless_fused(self._layout.from_torch(y), fused_bias)
        act = self.activation
        return act(y) if act is not _LINEAR and act is not None else y

    def convolution_op(self, inputs, kernel):
        """Keras 3's hook: `inputs` convolved with a Keras-layout `kernel`
        `(*kernel_size, in_channels // groups, filters)` with the layer's
        strides, padding, dilation and data format; no bias, no activation.
        A subclass may override it (e.g. to standardize the kernel): `call`
        then runs `convolution_op(inputs, self.kernel)`, adds the bias and
        applies the activation, as Keras's does."""
        x, padding = self._torch_input(inputs)
        try:
            y = CONV_OPS[self._op_rank](x, self._torch_kernel(kernel), None, self._op_strides, padding, self._op_dilation, self.groups)
        except RuntimeError:
            self._raise_if_too_small(inputs)
            raise
        return self._layout.from_torch(y)

    def _call_custom_convolution_op(self, inputs):
        y = self.convolution_op(inputs, self.kernel)
        if self.use_bias:
            shape = [1] * y.ndim
            shape[self._channel_axis] = self.filters
            y = y + self.bias.reshape(shape)
        return self.activation(y) if self.activation is not None else y

    def compute_output_shape(self, input_shape):
        return self._spatial_output_shape(input_shape, self.filters)

    def _infer_build_shape(self, weight_shapes):
        kernel = weight_shapes.get("kernel")
        if kernel is None or len(kernel) != self.rank + 2:
            return None
        if tuple(kernel[:-2]) != tuple(self.kernel_size) or kernel[-1] != self.filters:
            # checked before building (see Dense): a torch Conv weight is (out, in, *kernel_size)
            raise ValueError(
                f"Layer '{self.name}' ({type(self).__name__}, filters={self.filters}, "
                f"kernel_size={tuple(self.kernel_size)}) cannot load a 'kernel' of shape {tuple(kernel)}: its "
                f"kernel has shape {(*self.kernel_size, 'in_channels', self.filters)} (Keras's layout; a torch "
                f"Conv{self.rank}d weight is (out, in, *kernel_size): permute it). The layer was left unbuilt."
            )
        return self._build_shape_for(kernel[-2] * self.groups)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "filters": self.filters,
                **self._common_config(),
                "groups": self.groups,
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
        if self.lora_rank:
            config["lora_rank"] = self.lora_rank
            config["lora_alpha"] = self.lora_alpha
        return config
