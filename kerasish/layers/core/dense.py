"""`Dense`: the regular densely-connected layer, on `F.linear`."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kerasish import activations
from kerasish import constraints
from kerasish import initializers
from kerasish import regularizers
from kerasish.layers.core.dense_quantization import DenseQuantization
from kerasish.layers.core.stored_weights import stored_weight
from kerasish.layers.input_spec import InputSpec
from kerasish.layers.layer import Layer
from kerasish.saving.serialization_lib import serialize_keras_object
from kerasish.utils.argument_validation import as_int

# the identity activation: a layer skips it (read at call time: `layer.activation` may be set after
# construction, as in Keras)
_LINEAR = activations.linear


class Dense(DenseQuantization, Layer):
    """Just your regular densely-connected NN layer.

    `output = activation(dot(input, kernel) + bias)`, applied on the last axis
    of an input of any rank >= 2.

    Args:
        units: Positive integer, dimensionality of the output space.
        activation: Activation function (name or callable). Defaults to
            `None` (linear).
        use_bias: Whether the layer uses a bias vector. Defaults to `True`.
        kernel_initializer: Initializer for the kernel. Defaults to
            `"glorot_uniform"`.
        bias_initializer: Initializer for the bias. Defaults to `"zeros"`.
        kernel_regularizer: Regularizer for the kernel. Defaults to `None`.
        bias_regularizer: Regularizer for the bias. Defaults to `None`.
        activity_regularizer: Regularizer for the output. Defaults to `None`.
        kernel_constraint: Constraint for the kernel. Defaults to `None`.
        bias_constraint: Constraint for the bias. Defaults to `None`.
        lora_rank: If set, the layer is built with LoRA enabled at this rank
            (`enable_lora`): the kernel is frozen and a trainable low-rank
            update `lora_kernel_a @ lora_kernel_b` is added. Defaults to
            `None`.
        lora_alpha: LoRA scale numerator (the update is scaled by
            `lora_alpha / lora_rank`). Defaults to `lora_rank`.
        quantization_config: A `keras.quantizers.QuantizationConfig` a
            quantized layer is built with (set by `quantize`). Defaults to
            `None`.

    Input shape:
        `(batch_size, ..., input_dim)`.

    Output shape:
        `(batch_size, ..., units)`.

    Unlike `torch.nn.Linear`, the kernel has Keras's layout `(input_dim,
    units)` (so `get_weights()` matches Keras); the forward pass is one
    `F.linear` over a transposed *view* of it (no copy per call).

    As in Keras 3, `layer.kernel` is computed: the variable itself for a
    plain layer, the base plus the LoRA update with LoRA enabled, the
    unpacked values of an int4 layer. The stored variable is `layer._kernel`
    (state_dict key `kernel`); see `kerasish.layers.core.stored_weights`.

    Example:
        >>> layer = keras.layers.Dense(4, activation="relu")
        >>> layer(torch.ones(2, 3)).shape
        torch.Size([2, 4])
    """

    _float_inputs = True  # integer inputs are cast to the compute dtype

    def __init__(
        self,
        units,
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
        quantization_config=None,
        **kwargs,
    ):
        units = as_int(units)
        if not isinstance(units, int) or isinstance(units, bool) or units <= 0:
            raise ValueError(
                "Received an invalid value for `units`, expected a positive integer. "
                f"Received: units={units}"
            )
        super().__init__(activity_regularizer=activity_regularizer, **kwargs)
        self.units = units
        self.activation = activations.get(activation)
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
        self.quantization_config = quantization_config
        self.__dict__["_is_quantized"] = False
        self._input_dim = None
        self.input_spec = InputSpec(min_ndim=2)
        self.supports_masking = True

    def _lazy_trainable_weights(self):
        """Trainable weights `build` creates (uninitialized parameters until then)."""
        if self.quantization_mode in ("int8", "int4", "gptq", "awq"):  # the kernel is an integer buffer
            return ("bias",) if self.use_bias else ()
        return ("kernel", "bias") if self.use_bias else ("kernel",)

    def build(self, input_shape):
        input_dim = input_shape[-1]
        mode = self.quantization_mode
        if mode:  # a quantized layer being loaded: its quantized variables
            self._quantized_build((input_dim, self.units), mode, self.quantization_config)
        if mode not in ("int8", "int4", "gptq", "awq"):
            self._kernel = self.add_weight(
                name="kernel",
                shape=(input_dim, self.units),
                initializer=self.kernel_initializer,
                regularizer=self.kernel_regularizer,
                constraint=self.kernel_constraint,
            )
        if self.use_bias:
            self.bias = self.add_weight(
                name="bias",
                shape=(self.units,),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        else:
            self.bias = None
        self._input_dim = input_dim
        self.input_spec = InputSpec(min_ndim=2, axes={-1: input_dim})
        if self.lora_rank:
            self.built = True
            self.enable_lora(self.lora_rank)  # (as Keras: lora_alpha becomes the rank)

    def _infer_build_shape(self, weight_shapes):
        kernel = weight_shapes.get("kernel")
        if kernel is None or len(kernel) != 2:
            return None
        if kernel[1] != self.units:
            # checked before building: a layer built from a wrong kernel's input width would refuse the
            # corrected state dict too
            raise ValueError(
                f"Layer '{self.name}' (Dense, units={self.units}) cannot load a 'kernel' of shape "
                f"{tuple(kernel)}: its kernel has shape (input_dim, {self.units}) (Keras's (in, out) layout; "
                "a torch nn.Linear weight is (out, in): pass its transpose). The layer was left unbuilt."
            )
        return (None, kernel[0])

    def _call_uses_training(self):
        # `training` reaches only the quantized branch (float8's scale updates); a subclass's or an
        # instance's own `call` gets it always
        return (self.__dict__.get("_is_quantized", False) or type(self).call is not Dense.call
                or "call" in self.__dict__)

    def call(self, inputs, training=None):
        d = self.__dict__
        if d["lora_enabled"] or d["_is_quantized"]:
            if d["_is_quantized"]:
                return self._quantized_call(inputs, training)
            kernel = self._merged_kernel()
        else:
            # the stored kernel, read without the `kernel` property (the hot path)
            kernel = d["_parameters"].get("kernel")
            if kernel is None or d["_mixed"]:
                kernel = stored_weight(self, "kernel")
        bias = self.bias
        if inputs.dim() == 2 and bias is not None:
            # one fused op on the Keras (in, out) kernel, no transpose view
            x = torch.addmm(bias, inputs, kernel)
        else:
            # kernel.T is a view: F.linear runs on the (in, out) kernel
            # directly, without materializing the transpose.
            x = F.linear(inputs, kernel.T, bias)
        act = self.activation
        if act is not _LINEAR and act is not None:
            x = act(x)
        return x

    def compute_output_shape(self, input_shape):
        return (*tuple(input_shape)[:-1], self.units)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "activation": activations.serialize(self.activation),
                "use_bias": self.use_bias,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "kernel_constraint": constraints.serialize(self.kernel_constraint),
                "bias_constraint": constraints.serialize(self.bias_constraint),
                "quantization_config": serialize_keras_object(self.quantization_config),
            }
        )
        if self.lora_rank:
            config["lora_rank"] = self.lora_rank
            config["lora_alpha"] = self.lora_alpha
        return config

    @classmethod
    def from_config(cls, config):
        config = deserialize_quantization_config(config)
        return super().from_config(config)


def deserialize_quantization_config(config: dict) -> dict:
    """A layer config with its `quantization_config` dict turned back into
    a `QuantizationConfig` (as Keras's `from_config`)."""
    if isinstance(config.get("quantization_config"), dict):
        from kerasish import quantizers

        config = dict(config, quantization_config=quantizers.deserialize(config["quantization_config"]))
    return config
