"""`Dense.quantize("int8" | "int4" | "float8")`, the quantized forward
passes and LoRA, as in Keras 3.15.

The quantized variables have Keras's names, dtypes, shapes and file order:

- int8: `kernel` int8 `(in, units)`, `kernel_scale` `(units,)`.
- int4: `kernel` int8 `(in, ceil(units / 2))` (two int4 values per byte
  along the units axis), `kernel_scale` `(units,)` per-channel or
  `(ceil(in / block_size), units)` with `kernel_zero` (int8, same shape)
  and `g_idx` (float32 `(in,)`, each row's group) for sub-channel.
- float8: the float `kernel`, plus scalar `inputs_scale`, `kernel_scale`,
  `outputs_grad_scale` and `(amax_history_length,)` amax histories.
"""

from __future__ import annotations

import math

import torch

from kerasish import activations
from kerasish import initializers
from kerasish import quantizers
from kerasish.layers.core.stored_weights import computed_variable
from kerasish.layers.core.stored_weights import lora_merged
from kerasish.layers.core.stored_weights import plain_attribute
from kerasish.layers.core.stored_weights import stored_property
from kerasish.layers.core.stored_weights import stored_weight
from kerasish.layers.core.stored_weights import variable
from kerasish.quantizers import quantized_ops
from kerasish.quantizers.quantization_config import QuantizationConfig
from kerasish.quantizers.quantization_config import get_block_size_for_layer

# Keras's save order of each mode's variables (`variable_serialization_spec`)
SERIALIZATION_SPEC = {
    None: ("kernel", "bias"),
    "int8": ("kernel", "bias", "kernel_scale"),
    "int4": ("kernel", "bias", "kernel_scale", "kernel_zero", "g_idx"),
    "gptq": ("bias", "quantized_kernel", "kernel_scale", "kernel_zero", "g_idx"),
    "awq": ("bias", "quantized_kernel", "kernel_scale", "kernel_zero", "awq_scales", "g_idx"),
    "float8": (
        "kernel", "bias", "inputs_scale", "inputs_amax_history", "kernel_scale", "kernel_amax_history",
        "outputs_grad_scale", "outputs_grad_amax_history",
    ),
}


def float8_build(layer) -> None:
    """The float8 scale and amax-history variables (trainable float32, never
    autocast; training overwrites them with their updates)."""
    from kerasish.dtype_policies import QuantizedFloat8DTypePolicy

    length = getattr(layer.dtype_policy, "amax_history_length", QuantizedFloat8DTypePolicy.default_amax_history_length)
    common = {"dtype": "float32", "trainable": True, "autocast": False, "overwrite_with_gradient": True}
    for prefix in ("inputs", "kernel", "outputs_grad"):
        setattr(layer, f"{prefix}_scale", layer.add_weight(name=f"{prefix}_scale", shape=(), initializer="ones", **common))
        setattr(layer, f"{prefix}_amax_history", layer.add_weight(
            name=f"{prefix}_amax_history", shape=(length,), initializer="zeros", **common))


def float8_bias(layer, bias):
    # Keras: a float32 bias goes through bfloat16 first (for XLA's bias-add fusion)
    if layer.compute_dtype == "float32":
        return bias.to(torch.bfloat16).to(bias.dtype)
    return bias


def apply_activation(layer, x):
    """`layer.activation(x)`, the identity skipped; read at call time (as Keras: `layer.activation`
    may be set after construction)."""
    act = layer.activation
    return x if act is None or act is activations.linear else act(x)


class DenseQuantization:
    """Quantization and LoRA for `Dense` (mixed into the layer)."""

    _quantizes_in_call = True  # `call` branches on the quantization mode itself (see LayerQuantizationMixin)

    # Keras's per-mode hooks, for a user subclass that overrides one and calls `super()`:
    # `_quantized_call` branches on the mode (float8 through `_float8_call`)
    def _int8_call(self, inputs, training=None):
        return self._quantized_call(inputs, training)

    _int4_call = _gptq_call = _awq_call = _int8_call

    # ------------------------------------------------- the computed `kernel`
    _computed_weights = frozenset({"kernel"})
    _kernel = stored_property("kernel")

    def _get_kernel(self):
        d = self.__dict__
        if not (d.get("lora_enabled") or d.get("_is_quantized")):
            return computed_variable(self, "kernel")  # the variable itself
        mode = self.quantization_mode
        if mode in ("gptq", "awq") and not d.get("_calibration_pending", True):
            kernel = self._gptq_values()  # calibrated: not dequantized
        else:
            kernel = stored_weight(self, "kernel")
            if mode == "int4":
                kernel = self._unpacked_kernel()
        return lora_merged(self, kernel, "lora_kernel")

    kernel = property(_get_kernel, *plain_attribute("kernel"))
    kernel.__doc__ = """The kernel `(input_dim, units)`, as Keras 3 reads it.

        The stored variable itself when the layer is neither LoRA-enabled nor
        quantized (and for int8 / float8 without LoRA); an int4 layer's
        unpacked int8 values; a calibrated GPTQ/AWQ layer's uint8
        `quantized_kernel` (unpacked when 4-bit); plus the LoRA update
        `(lora_alpha / lora_rank) * lora_kernel_a @ lora_kernel_b` in the
        compute dtype when LoRA is enabled. The stored variable is
        `layer._kernel` (state_dict key `kernel`). Assigning it stores the variable (see `stored_weights`)."""

    # --------------------------------------------------------------- building
    def _quantized_build(self, kernel_shape, mode, config=None):
        if mode == "int8":
            self._int8_build(kernel_shape, config)
        elif mode == "int4":
            self._int4_build(kernel_shape, config)
        elif mode == "float8":
            float8_build(self)
        elif mode == "gptq":
            self._gptq_build(kernel_shape, config)
        elif mode == "awq":
            self._awq_build(kernel_shape, config)
        else:
            raise self._quantization_mode_error(mode)
        self.__dict__["_is_quantized"] = True

    def _gptq_build(self, kernel_shape, config):
        """GPTQ variables (Keras's layout): the `(units, in)` uint8 kernel
        (`(ceil(units / 2), in)` packed for 4 bits), `(units, n_groups)`
        scales and uint8 zero points, and `g_idx`. Until calibration
        (`model.quantize("gptq", ...)`) the layer computes with its float kernel."""
        from kerasish.quantizers import gptq_core

        bits = gptq_core.get_weight_bits_for_layer(self, config)
        group_size = gptq_core.get_group_size_for_layer(self, config)
        in_dim = kernel_shape[0]
        rows = (kernel_shape[1] + 1) // 2 if bits == 4 else kernel_shape[1]
        n_groups = 1 if group_size == -1 else math.ceil(in_dim / group_size)
        self.__dict__.update(_gptq_bits=bits, _calibration_pending=True)
        self.quantized_kernel = self.add_weight(name="kernel", shape=(rows, in_dim), initializer="zeros",
                                                dtype="uint8", trainable=False)
        self.kernel_scale = self.add_weight(name="kernel_scale", shape=(self.units, n_groups), initializer="ones",
                                            trainable=False)
        self.kernel_zero = self.add_weight(name="kernel_zero", shape=(self.units, n_groups), initializer="zeros",
                                           dtype="uint8", trainable=False)
        self.g_idx = self.add_weight(name="g_idx", shape=(in_dim,), initializer="zeros", dtype="float32",
                                     trainable=False)

    def _awq_build(self, kernel_shape, config):
        """AWQ variables (Keras's layout): as GPTQ's with 4-bit packing, plus
        the per-input-channel `awq_scales` the kernel is divided by."""
        from kerasish.quantizers import gptq_core

        group_size = gptq_core.get_group_size_for_layer(self, config, mode="awq")
        in_dim = kernel_shape[0]
        n_groups = 1 if group_size == -1 else math.ceil(in_dim / group_size)
        self.__dict__.update(_gptq_bits=4, _calibration_pending=True)
        self.quantized_kernel = self.add_weight(name="kernel", shape=((kernel_shape[1] + 1) // 2, in_dim),
                                                initializer="zeros", dtype="uint8", trainable=False)
        self.kernel_scale = self.add_weight(name="kernel_scale", shape=(self.units, n_groups), initializer="ones",
                                            trainable=False)
        self.kernel_zero = self.add_weight(name="kernel_zero", shape=(self.units, n_groups), initializer="zeros",
                                           dtype="uint8", trainable=False)
        self.awq_scales = self.add_weight(name="awq_scales", shape=(in_dim,), initializer="ones", trainable=False)
        self.g_idx = self.add_weight(name="g_idx", shape=(in_dim,), initializer="zeros", dtype="float32",
                                     trainable=False)

    def _finish_calibration(self, quantized, scale, zero, g_idx, awq_scales=None):
        """Stores GPTQ's / AWQ's result and drops the float kernel."""
        with torch.no_grad():
            self.quantized_kernel.copy_(quantized)
            self.kernel_scale.copy_(scale)
            self.kernel_zero.copy_(zero)
            self.g_idx.copy_(g_idx)
            if awq_scales is not None:
                self.awq_scales.copy_(awq_scales)
        if "kernel" in self._parameters or "kernel" in self._buffers:
            del self._kernel
        self.__dict__["_calibration_pending"] = False
        self.__dict__["_plain"] = None

    def _gptq_values(self):
        """A calibrated GPTQ/AWQ layer's stored uint8 `(units, in)` values, unpacked when 4-bit."""
        kernel = self.quantized_kernel
        if self.__dict__.get("_gptq_bits") == 4:
            kernel = quantizers.unpack_int4(kernel, self.units, axis=0, dtype="uint8")
        return kernel

    def _gptq_kernel(self):
        """The dequantized `(in, units)` kernel of a calibrated GPTQ layer."""
        kernel = self._gptq_values()
        scale = self.kernel_scale.to(self._compute_torch_dtype)
        kernel = quantizers.quantizers.dequantize_with_sz_map(kernel, scale, self.kernel_zero, self.g_idx).T
        if self.quantization_mode == "awq":
            kernel = kernel / self.awq_scales.to(self._compute_torch_dtype)[:, None]
        return kernel

    def _int8_build(self, kernel_shape, config=None):
        self.inputs_quantizer = QuantizationConfig.activation_quantizer_or_default(config, quantizers.AbsMaxQuantizer())
        self._kernel = self.add_weight(name="kernel", shape=kernel_shape, initializer="zeros", dtype="int8",
                                       trainable=False)
        self.kernel_scale = self.add_weight(name="kernel_scale", shape=(self.units,), initializer="ones",
                                            trainable=False)

    def _int4_build(self, kernel_shape, config=None):
        self.inputs_quantizer = QuantizationConfig.activation_quantizer_or_default(config, None)
        input_dim, output_dim = kernel_shape
        self._kernel = self.add_weight(name="kernel", shape=(input_dim, (output_dim + 1) // 2), initializer="zeros",
                                       dtype="int8", trainable=False)
        block_size = get_block_size_for_layer(self, config)
        self.__dict__["_int4_block_size"] = block_size
        sub_channel = block_size is not None and block_size > 0
        scale_shape = (math.ceil(input_dim / block_size), self.units) if sub_channel else (self.units,)
        self.kernel_scale = self.add_weight(name="kernel_scale", shape=scale_shape, initializer="ones", trainable=False)
        if sub_channel:
            self.kernel_zero = self.add_weight(name="kernel_zero", shape=scale_shape, initializer="zeros",
                                               dtype="int8", trainable=False)
            self.g_idx = self.add_weight(
                name="g_idx", shape=(input_dim,), dtype="float32", trainable=False,
                initializer=lambda shape, dtype=None: torch.div(
                    torch.arange(input_dim, dtype=torch.float32), block_size, rounding_mode="floor"),
            )
        self.__dict__["_orig_input_dim"] = input_dim
        self.__dict__["_orig_output_dim"] = output_dim

    # ------------------------------------------------------------- quantize()
    def quantize(self, mode=None, config=None, type_check=True):
        """Quantizes the built layer's kernel in place ("int8", "int4" or
        "float8"; or pass a `QuantizationConfig` as `config`) and switches
        its dtype policy to `"<mode>_from_<policy>"`, as Keras does."""
        from kerasish import dtype_policies
        from kerasish.layers.core.dense import Dense
        from kerasish.quantizers.quantization_config import Int4QuantizationConfig
        from kerasish.quantizers.quantization_config import validate_and_resolve_config

        config = validate_and_resolve_config(mode, config)
        mode = config.mode
        self._check_quantize_args(mode, self.compute_dtype)
        if type_check and type(self) is not Dense:
            raise self._not_implemented_error(self.quantize)
        self.quantization_config = config
        kernel = self._kernel.detach()  # the stored float kernel (without the LoRA update, as Keras)
        kernel_shape = tuple(kernel.shape)
        if mode == "int8":
            quantizer = QuantizationConfig.weight_quantizer_or_default(config, quantizers.AbsMaxQuantizer(axis=0))
            values, scale = quantizer(kernel, to_numpy=True)
            del self._kernel
            self._quantized_build(kernel_shape, mode, config)
            self._assign_quantized(values, scale.squeeze(0))
        elif mode == "int4":
            block_size = config.block_size if isinstance(config, Int4QuantizationConfig) else None
            zero = None
            if block_size is None or block_size == -1:
                quantizer = QuantizationConfig.weight_quantizer_or_default(
                    config, quantizers.AbsMaxQuantizer(axis=0, value_range=(-8, 7), output_dtype="int8"))
                values, scale = quantizer(kernel, to_numpy=True)
                scale = scale.squeeze(0)
            else:
                values, scale, zero = quantizers.abs_max_quantize_grouped_with_zero_point(
                    kernel, block_size=block_size, to_numpy=True)
            packed, _, _ = quantizers.pack_int4(values, axis=-1)
            del self._kernel
            self._quantized_build(kernel_shape, mode, config)
            self._assign_quantized(packed, scale, zero)
        elif mode == "float8":
            self._quantized_build(kernel_shape, mode)
        elif mode in ("gptq", "awq"):
            if self.lora_enabled:
                raise NotImplementedError(f"lora is not currently supported with {mode.upper()} quantization.")
            self._quantized_build(kernel_shape, mode, config)
        else:
            raise self._quantization_mode_error(mode)
        if self.dtype_policy.quantization_mode is None:
            name = config.dtype_policy_string() if mode in ("gptq", "awq") else mode
            if mode == "int4":
                block = get_block_size_for_layer(self, config)
                name = f"int4/{-1 if block is None else block}"
            self.__dict__["_dtype_policy"] = dtype_policies.get(f"{name}_from_{self.dtype_policy.name}")
            self._set_dtype_fast_path()
        self.__dict__["_plain"] = None

    def _assign_quantized(self, kernel, scale, zero=None):
        with torch.no_grad():
            self._kernel.copy_(kernel.to(self._kernel.device))
            self.kernel_scale.copy_(scale.to(self.kernel_scale.device))
            if zero is not None:
                self.kernel_zero.copy_(zero.to(self.kernel_zero.device))

    # ----------------------------------------------------------------- calls
    def _unpacked_kernel(self):
        return quantizers.unpack_int4(self._kernel, self._orig_output_dim, axis=-1)

    def _quantized_call(self, inputs, training=None):
        mode = self.quantization_mode
        compute = self.compute_dtype
        if mode == "float8":
            return self._float8_call(inputs, training)
        if mode in ("gptq", "awq"):
            # the float kernel until calibration (a layer loaded from a file has none)
            kernel = self._parameters.get("kernel")
            kernel = self._gptq_kernel() if kernel is None else kernel
            x = torch.matmul(inputs, kernel)
            if self.bias is not None:
                x = x + self.bias
            return apply_activation(self, x)
        # float variables are autocast to the compute dtype, as Keras does
        scale = self.kernel_scale.to(self._compute_torch_dtype)
        if mode == "int8":
            x = quantized_ops.quantized_matmul(inputs, self._kernel, scale, self.inputs_quantizer, compute)
        elif mode == "int4":
            unpacked = self._unpacked_kernel()
            if self._int4_block_size is None or self._int4_block_size == -1:
                x = quantized_ops.quantized_matmul(inputs, unpacked, scale, self.inputs_quantizer, compute)
            else:
                float_kernel = quantizers.quantizers.dequantize_with_sz_map(
                    unpacked, scale, self.kernel_zero, self.g_idx, group_axis=0).to(self._compute_torch_dtype)
                x = torch.matmul(inputs, float_kernel)
        else:
            raise self._quantization_mode_error(mode)
        if self.lora_enabled:
            lora_x = torch.matmul(torch.matmul(inputs, self.lora_kernel_a), self.lora_kernel_b)
            x = (x + (self.lora_alpha / self.lora_rank) * lora_x).to(self._compute_torch_dtype)
        if self.bias is not None:
            x = x + self.bias
        x = apply_activation(self, x)
        return x

    def _float8_call(self, inputs, training=None):
        if self.lora_enabled:
            raise NotImplementedError("Currently, `_float8_call` doesn't support LoRA")
        compute = self.compute_dtype
        training = bool(training) and self.trainable
        x = torch.matmul(
            quantized_ops.float8_qdq_inputs(inputs, self.inputs_scale, self.inputs_amax_history, compute, training),
            quantized_ops.float8_qdq_inputs(self._kernel, self.kernel_scale, self.kernel_amax_history, compute,
                                            training),
        )
        x = quantized_ops.float8_qdq_outputs_grad(x, self.outputs_grad_scale, self.outputs_grad_amax_history, compute,
                                                  training)
        if self.bias is not None:
            x = x + float8_bias(self, self.bias)
        x = apply_activation(self, x)
        return x

    # ------------------------------------------------------------------ LoRA
    def enable_lora(self, rank, lora_alpha=None, a_initializer="he_uniform", b_initializer="zeros"):
        """Freezes the kernel and adds the trainable low-rank update
        `(lora_alpha / rank) * lora_kernel_a @ lora_kernel_b` (float32)."""
        check_lora_allowed(self, self.kernel_constraint, "kernel")
        if self.quantization_mode == "gptq":
            raise NotImplementedError("lora is not currently supported with GPTQ quantization.")
        input_dim = getattr(self, "_orig_input_dim", None) if self.quantization_mode == "int4" else None
        if input_dim is None:
            input_dim = self._kernel.shape[0]
        add_lora(self, "kernel", "lora_kernel", (input_dim, rank), (rank, self.units), rank, lora_alpha,
                 a_initializer, b_initializer, self.kernel_regularizer)

    def _merged_kernel(self):
        """The float kernel with the LoRA update merged (the float path)."""
        return lora_merged(self, self._kernel, "lora_kernel")

    def _kernel_for_saving(self):
        """`(kernel, scale, zero)` as Keras saves them: with LoRA enabled, the
        update merged in and the result requantized."""
        mode = self.quantization_mode
        if mode in (None, "float8"):
            return self._merged_kernel().detach(), None, None
        zero = getattr(self, "kernel_zero", None)
        if not self.lora_enabled:
            return self._kernel, self.kernel_scale, zero
        compute = self._compute_torch_dtype
        block = getattr(self, "_int4_block_size", None)
        sub_channel = mode == "int4" and block is not None and block != -1
        with torch.no_grad():
            if mode == "int4":
                unpacked = self._unpacked_kernel()
                if sub_channel:
                    float_kernel = quantizers.quantizers.dequantize_with_sz_map(
                        unpacked, self.kernel_scale, self.kernel_zero, self.g_idx, group_axis=0).to(compute)
                else:
                    float_kernel = unpacked.to(compute) / self.kernel_scale
            else:
                float_kernel = self._kernel.to(compute) / self.kernel_scale
            merged = float_kernel + (self.lora_alpha / self.lora_rank) * torch.matmul(
                self.lora_kernel_a, self.lora_kernel_b)
            if sub_channel:
                values, scale, zero = quantizers.abs_max_quantize_grouped_with_zero_point(
                    merged, block_size=block, to_numpy=True)
            else:
                value_range = (-8, 7) if mode == "int4" else (-127, 127)
                values, scale = quantizers.abs_max_quantize(merged, axis=0, value_range=value_range, to_numpy=True)
                scale, zero = scale.squeeze(0), None
            if mode == "int4":
                values = quantizers.pack_int4(values, axis=-1)[0]
        return values, scale, zero

    # ------------------------------------------------------ Keras file order
    def _keras_saved_variables(self):
        """`{index: tensor}` for the weights file, in Keras's order; None
        when the layer is not built."""
        if not self.built or (self.quantization_mode is None and not self.lora_enabled):
            return None  # the plain order (kernel, bias)
        if self.quantization_mode in ("gptq", "awq"):
            return self._keras_loaded_variables()
        kernel, scale, zero = self._kernel_for_saving()
        values = {"kernel": kernel, "kernel_scale": scale, "kernel_zero": zero}
        out = []
        for name in SERIALIZATION_SPEC[self.quantization_mode]:
            value = values.get(name) if name in values and (name != "kernel_scale" or scale is not None) \
                else variable(self, name)
            if value is not None:
                out.append(value)
        return out

    def _keras_loaded_variables(self):
        """The variables a Keras weights file assigns, in its order."""
        if not self.built or (self.quantization_mode is None and not self.lora_enabled):
            return None
        return [v for v in (variable(self, n) for n in SERIALIZATION_SPEC[self.quantization_mode]) if v is not None]

    def _after_keras_load(self):
        if self.quantization_mode in ("gptq", "awq"):  # a saved GPTQ/AWQ layer is calibrated
            self._finish_calibration(self.quantized_kernel, self.kernel_scale, self.kernel_zero, self.g_idx)
        if self.lora_enabled:  # the file holds the merged kernel, as Keras
            with torch.no_grad():
                self.lora_kernel_a.zero_()
                self.lora_kernel_b.zero_()


def check_lora_allowed(layer, constraint, what):
    """Keras's refusals for `enable_lora`: a constrained `what`, an unbuilt
    layer, LoRA already on."""
    if constraint:
        raise ValueError(
            f"Lora is incompatible with {what} constraints. In order to enable lora on this layer, remove the "
            f"`{'kernel' if what == 'kernel' else 'embeddings'}_constraint` argument."
        )
    if not layer.built:
        raise ValueError("Cannot enable lora on a layer that isn't yet built.")
    if layer.lora_enabled:
        raise ValueError("lora is already enabled. This can only be done once per layer.")


def add_lora(layer, base, prefix, a_shape, b_shape, rank, lora_alpha, a_initializer, b_initializer, regularizer):
    """Freezes `layer.<base>` and adds the float32 factors `<prefix>_a` /
    `<prefix>_b` of the update `(lora_alpha / rank) * a @ b`, as Keras."""
    for suffix, shape, init in (("a", a_shape, a_initializer), ("b", b_shape, b_initializer)):
        setattr(layer, f"{prefix}_{suffix}", layer.add_weight(
            name=f"{prefix}_{suffix}", shape=shape, initializer=initializers.get(init), dtype="float32",
            regularizer=regularizer))
    getattr(layer, base).trainable = False
    layer.lora_enabled = True
    layer.lora_rank = rank
    layer.lora_alpha = lora_alpha if lora_alpha is not None else rank
    layer.__dict__["_plain"] = None

