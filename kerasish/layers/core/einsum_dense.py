"""`EinsumDense`: a dense layer of any rank, written as an einsum equation."""

from __future__ import annotations

import re

import torch

from kerasish import activations
from kerasish import constraints
from kerasish import initializers
from kerasish import regularizers
from kerasish.initializers.random_initializers import with_fan_axes
from kerasish.layers.core.dense import deserialize_quantization_config
from kerasish.layers.core.einsum_dense_quantization import EinsumDenseQuantization
from kerasish.layers.input_spec import InputSpec
from kerasish.layers.layer import Layer
from kerasish.saving.serialization_lib import serialize_keras_object

# the identity activation: a layer skips it (read at call time: `layer.activation` may be set after
# construction, as in Keras)
_LINEAR = activations.linear

# The three equation forms Keras accepts ("..." is rewritten to "0" first):
# "ab,bc->ac", "...b,bc->...c" (left-elided), "ab...,bc->ac..." (right-elided).
_FORMS = (
    (re.compile(r"([a-zA-Z]+),([a-zA-Z]+)->([a-zA-Z]+)"), False),
    (re.compile(r"0([a-zA-Z]+),([a-zA-Z]+)->0([a-zA-Z]+)"), True),
    (re.compile(r"([a-zA-Z]{2,})0,([a-zA-Z]+)->([a-zA-Z]+)0"), False),
)


def _parse_equation(equation: str):
    dotted = equation.replace("...", "0")
    for pattern, left_elided in _FORMS:
        match = pattern.match(dotted)
        if match:
            return match.group(1), match.group(2), match.group(3), left_elided
    raise ValueError(
        f"Invalid einsum equation '{equation}'. Equations must be in the form "
        "[X],[Y]->[Z], ...[X],[Y]->...[Z], or [X]...,[Y]->[Z]...."
    )


def analyze_einsum(equation, bias_axes, input_shape, partial_output_shape):
    """Keras's shape analysis of an EinsumDense equation.

    Returns `(kernel_shape, bias_shape or None, full_output_shape,
    input_axes, output_axes)`; the axes index the kernel dims that come from
    the input / the output (used for the initializer's fans).
    """
    in_spec, w_spec, out_spec, left_elided = _parse_equation(equation)
    input_shape = tuple(input_shape)
    elided = len(input_shape) - len(in_spec)
    output_shape = [input_shape[0], *partial_output_shape]
    if elided > 0 and left_elided:
        output_shape[1:1] = input_shape[1:elided]
    elif elided > 0:
        output_shape.extend(input_shape[len(input_shape) - elided:])
    if left_elided:
        in_index = {d: i + elided - len(input_shape) for i, d in enumerate(in_spec)}
        out_index = {d: i + elided for i, d in enumerate(out_spec)}
    else:
        in_index = {d: i for i, d in enumerate(in_spec)}
        out_index = {d: i for i, d in enumerate(out_spec)}
    for d in in_spec:
        if d in out_index:
            want, have = output_shape[out_index[d]], input_shape[in_index[d]]
            if want is not None and want != have:
                raise ValueError(
                    f"Input shape and output shape do not match at shared dimension '{d}'. "
                    f"Input shape is {have}, and output shape is {want}."
                )
            # unlike Keras, a None output dim shared with the input is filled in
            output_shape[out_index[d]] = have
    for d in out_spec:
        if d not in in_spec and d not in w_spec:
            raise ValueError(
                f"Dimension '{d}' was specified in the output '{out_spec}' but has no corresponding "
                f"dim in the input spec '{in_spec}' or weight spec '{out_spec}'"
            )
    kernel_shape, input_axes, output_axes = [], [], []
    for i, d in enumerate(w_spec):
        if d in out_index:
            kernel_shape.append(output_shape[out_index[d]])
            output_axes.append(i)
        elif d in in_index:
            kernel_shape.append(input_shape[in_index[d]])
            input_axes.append(i)
        else:
            raise ValueError(
                f"Weight dimension '{d}' did not have a match in either the input spec '{in_spec}' "
                f"or the output spec '{out_spec}'. For this layer, the weight must be fully specified."
            )
    bias_shape = None
    if bias_axes is not None:
        for c in bias_axes:
            if c not in out_spec:
                raise ValueError(f"Bias dimension '{c}' was requested, but is not part of the output spec '{out_spec}'")
        offset = elided if left_elided else 0
        first = min(out_spec.find(c) for c in bias_axes)
        bias_shape = [output_shape[first + i + offset] if c in bias_axes else 1 for i, c in enumerate(out_spec[first:])]
        if not left_elided:
            bias_shape.extend([1] * max(elided, 0))
    return kernel_shape, bias_shape, output_shape, input_axes, output_axes


class EinsumDense(EinsumDenseQuantization, Layer):
    """A layer that uses `einsum` as the backing computation.

    Computes `activation(einsum(equation, inputs, kernel) + bias)`.

    Args:
        equation: Einsum equation `"[input],[kernel]->[output]"`, optionally
            with `...` on the left of input and output, or on their right.
        output_shape: Expected output shape without the batch dim (an int or
            a tuple; `None` for dims inferred from the input).
        activation: Activation function. Defaults to `None` (linear).
        bias_axes: Letters of the output axes that get a bias. Defaults to
            `None` (no bias).
        kernel_initializer: Defaults to `"glorot_uniform"` (its fans are
            taken from the kernel axes that match the input/output, as Keras).
        bias_initializer: Defaults to `"zeros"`.
        kernel_regularizer, bias_regularizer, kernel_constraint,
            bias_constraint: Defaults to `None`.
        lora_rank: If set, the layer is built with LoRA enabled at this rank
            (`enable_lora`). Defaults to `None`.
        lora_alpha: LoRA scale numerator. Defaults to `lora_rank`.
        quantization_config: The `QuantizationConfig` of a quantized layer
            (set by `quantize`). Defaults to `None`.
        gptq_unpacked_column_size: Accepted and kept in the config (GPTQ is
            not implemented in kerasish).

    Example:
        >>> layer = keras.layers.EinsumDense("abc,cd->abd", output_shape=(None, 64), bias_axes="d")
        >>> layer(torch.ones(2, 32, 128)).shape
        torch.Size([2, 32, 64])
    """

    _float_inputs = True  # integer inputs are cast to the compute dtype

    def __init__(
        self,
        equation,
        output_shape,
        activation=None,
        bias_axes=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        lora_rank=None,
        lora_alpha=None,
        gptq_unpacked_column_size=None,
        quantization_config=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _parse_equation(equation)  # fail early on a malformed equation
        self.equation = equation
        if isinstance(output_shape, int):
            self.partial_output_shape = (output_shape,)
        else:
            self.partial_output_shape = tuple(output_shape)
        self.bias_axes = bias_axes
        self.activation = activations.get(activation)
        self.kernel_initializer = initializers.get(kernel_initializer)
        self.bias_initializer = initializers.get(bias_initializer)
        self.kernel_regularizer = regularizers.get(kernel_regularizer)
        self.bias_regularizer = regularizers.get(bias_regularizer)
        self.kernel_constraint = constraints.get(kernel_constraint)
        self.bias_constraint = constraints.get(bias_constraint)
        self.lora_rank = lora_rank
        self.lora_alpha = lora_alpha if lora_alpha is not None else lora_rank
        self.lora_enabled = False
        self.gptq_unpacked_column_size = gptq_unpacked_column_size
        self.quantization_config = quantization_config
        self.__dict__["_is_quantized"] = False

    def _lazy_trainable_weights(self):
        """Trainable weights `build` creates (uninitialized parameters until then)."""
        if self.quantization_mode in ("int8", "int4"):  # the kernel is an int8 buffer
            return ("bias",) if self.bias_axes is not None else ()
        return ("kernel", "bias") if self.bias_axes is not None else ("kernel",)

    def build(self, input_shape):
        kernel_shape, bias_shape, _, input_axes, output_axes = analyze_einsum(
            self.equation, self.bias_axes, input_shape, self.partial_output_shape
        )
        self.input_spec = InputSpec(ndim=len(input_shape), axes=_kernel_input_axes(self.equation, input_shape))
        # Keras: the fans come from the kernel axes matched to input/output
        init = with_fan_axes(self.kernel_initializer, input_axes, output_axes)
        mode = self.quantization_mode
        if mode:  # a quantized layer being loaded: its quantized variables
            self._quantized_build(kernel_shape, mode, self.quantization_config)
        if mode not in ("int8", "int4"):
            self._kernel = self.add_weight(
                name="kernel",
                shape=tuple(kernel_shape),
                initializer=init,
                regularizer=self.kernel_regularizer,
                constraint=self.kernel_constraint,
            )
        if bias_shape is not None:
            self.bias = self.add_weight(
                name="bias",
                shape=tuple(bias_shape),
                initializer=self.bias_initializer,
                regularizer=self.bias_regularizer,
                constraint=self.bias_constraint,
            )
        else:
            self.bias = None
        if self.lora_rank:
            self.built = True
            self.enable_lora(self.lora_rank, lora_alpha=self.lora_alpha)

    def _infer_build_shape(self, weight_shapes):
        kernel = weight_shapes.get("kernel")
        if kernel is None or "..." in self.equation:
            return None  # (the elided rank is not in the weights)
        in_spec, w_spec, _, _ = _parse_equation(self.equation)
        if len(kernel) != len(w_spec):
            return None
        # input dims the kernel shares; the others (batch, ...) stay unknown
        return tuple(kernel[w_spec.index(d)] if d in w_spec else None for d in in_spec)

    def _call_uses_training(self):
        # `training` reaches only the quantized branch (float8's scale updates); a subclass's or an
        # instance's own `call` gets it always
        return (self.__dict__.get("_is_quantized", False) or type(self).call is not EinsumDense.call
                or "call" in self.__dict__)

    def call(self, inputs, training=None):
        if self._is_quantized:
            return self._quantized_call(inputs, training)
        x = torch.einsum(self.equation, inputs, self._merged_kernel() if self.lora_enabled else self._kernel)
        if self.bias is not None:
            x = x + self.bias
        act = self.activation
        if act is not _LINEAR and act is not None:
            x = act(x)
        return x

    def compute_output_shape(self, input_shape):
        return tuple(analyze_einsum(self.equation, self.bias_axes, input_shape, self.partial_output_shape)[2])

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "output_shape": self.partial_output_shape,
                "equation": self.equation,
                "activation": activations.serialize(self.activation),
                "bias_axes": self.bias_axes,
                "kernel_initializer": initializers.serialize(self.kernel_initializer),
                "bias_initializer": initializers.serialize(self.bias_initializer),
                "kernel_regularizer": regularizers.serialize(self.kernel_regularizer),
                "bias_regularizer": regularizers.serialize(self.bias_regularizer),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "kernel_constraint": constraints.serialize(self.kernel_constraint),
                "bias_constraint": constraints.serialize(self.bias_constraint),
                "quantization_config": serialize_keras_object(self.quantization_config),
            }
        )
        if self.lora_rank:
            config["lora_rank"] = self.lora_rank
            config["lora_alpha"] = self.lora_alpha
        if self.gptq_unpacked_column_size:
            config["gptq_unpacked_column_size"] = self.gptq_unpacked_column_size
        return config

    @classmethod
    def from_config(cls, config):
        return super().from_config(deserialize_quantization_config(config))


def _kernel_input_axes(equation, input_shape) -> dict:
    """{axis: size} of the input axes contracted with (or shared by) the kernel."""
    in_sub, kernel_sub = equation.split("->")[0].split(",")
    rank = len(input_shape)
    head, _, tail = in_sub.partition("...")
    positions = {c: i for i, c in enumerate(head)}
    if "..." in in_sub:
        positions.update({c: rank - len(tail) + j for j, c in enumerate(tail)})
    return {i: input_shape[i] for c, i in positions.items() if c in kernel_sub and input_shape[i] is not None}
