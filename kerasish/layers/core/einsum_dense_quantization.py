"""`EinsumDense.quantize("int8" | "int4" | "float8")` and LoRA, as in Keras 3.15.

int8 quantizes the kernel over its contracted ("reduced") axes; the scale is
stored in the *output's* axis order (Keras's transpose / expand / squeeze
bookkeeping, `quantization_info` below), so it divides the einsum result
directly. int4 flattens the kernel to `(rows, columns)` = (product of the
reduced dims, product of the others) by a plain reshape, as Keras does, and
packs it along the columns.
"""

from __future__ import annotations

import math
import re
import string

import numpy as np
import torch

from kerasish import quantizers
from kerasish.layers.core.dense_quantization import SERIALIZATION_SPEC
from kerasish.layers.core.dense_quantization import add_lora
from kerasish.layers.core.dense_quantization import apply_activation
from kerasish.layers.core.dense_quantization import check_lora_allowed
from kerasish.layers.core.dense_quantization import float8_bias
from kerasish.layers.core.dense_quantization import float8_build
from kerasish.layers.core.stored_weights import computed_variable
from kerasish.layers.core.stored_weights import lora_merged
from kerasish.layers.core.stored_weights import plain_attribute
from kerasish.layers.core.stored_weights import stored_property
from kerasish.layers.core.stored_weights import stored_weight
from kerasish.layers.core.stored_weights import variable
from kerasish.quantizers import quantized_ops
from kerasish.quantizers.quantization_config import QuantizationConfig
from kerasish.quantizers.quantization_config import get_block_size_for_layer
from kerasish.quantizers.quantizers import dequantize_with_sz_map


def _full_specs(equation, ndim):
    """Input, kernel and output subscripts with any `...` given letters."""
    dotted = equation.replace("...", "0")
    match = re.match(r"([a-zA-Z]+),([a-zA-Z]+)->([a-zA-Z]+)$", dotted)
    if match:
        return match.groups()
    for pattern, left in ((r"0([a-zA-Z]+),([a-zA-Z]+)->0([a-zA-Z]+)$", True),
                          (r"([a-zA-Z]{2,})0,([a-zA-Z]+)->([a-zA-Z]+)0$", False)):
        match = re.match(pattern, dotted)
        if match:
            inp, ker, out = match.groups()
            free = sorted(set(string.ascii_letters) - set(inp) - set(ker) - set(out))
            extra = "".join(free[: ndim - len(inp)])
            return (extra + inp, ker, extra + out) if left else (inp + extra, ker, out + extra)
    raise ValueError(
        f"Invalid einsum equation '{equation}'. Equations must be in the form [X],[Y]->[Z], ...[X],[Y]->...[Z], "
        "or [X]...,[Y]->[Z]...."
    )


def quantization_info(equation, ndim) -> dict:
    """Keras's per-axis quantization bookkeeping of an einsum equation: the
    axes each quantizer reduces, and how a reduced scale is moved into the
    output's layout (transpose, then insert size-1 axes, then squeeze)."""
    inp, ker, out = _full_specs(equation, ndim)
    info = {"gradient_equation": f"{out},{ker}->{inp}"}
    for name, spec in (("input", inp), ("kernel", ker)):
        reduced = [i for i, c in enumerate(spec) if c not in out]
        expand = [i for i, c in enumerate(out) if c not in spec]
        transpose = [spec.index(c) for c in out if c in spec]
        squeeze = []
        index = None
        for axis in reduced:  # each reduced axis fills a missing output axis, in order
            if expand:
                index = expand.pop(0)
            else:
                squeeze.append(axis)
            transpose.insert(index, axis)
        info[name] = {"reduced": reduced, "transpose": transpose, "expand": expand, "squeeze": squeeze}
    return info


def scale_for_output(scale, axes):
    """A scale reduced over `axes["reduced"]` moved into the output's layout."""
    if axes["transpose"]:
        scale = scale.permute(axes["transpose"])
    for axis in sorted(axes["expand"]):
        scale = scale.unsqueeze(axis)
    if axes["squeeze"]:
        scale = scale.squeeze(tuple(axes["squeeze"]))
    return scale


def scale_for_kernel(scale, axes):
    """The inverse of `scale_for_output` (to divide the kernel itself)."""
    for axis in sorted(axes["squeeze"]):
        scale = scale.unsqueeze(axis)
    if axes["expand"]:
        scale = scale.squeeze(tuple(axes["expand"]))
    if axes["transpose"]:
        inverse = sorted(range(len(axes["transpose"])), key=axes["transpose"].__getitem__)
        scale = scale.permute(inverse)
    return scale


class _EinsumInt(torch.autograd.Function):
    """The quantized einsum; the gradient reaches the inputs through the
    dequantized kernel (Keras's custom gradient)."""

    @staticmethod
    def forward(ctx, inputs, float_kernel, run):
        ctx.save_for_backward(float_kernel)
        ctx.equation = run["gradient_equation"]
        return run["forward"](inputs)

    @staticmethod
    def backward(ctx, upstream):
        (float_kernel,) = ctx.saved_tensors
        return torch.einsum(ctx.equation, upstream, float_kernel), None, None


def _einsum_int8(equation, a, b):
    """Keras's torch einsum of two int8 tensors: exact in int32 (float32 on CUDA)."""
    if a.dtype == torch.int8 and b.dtype == torch.int8:
        compute = torch.float32 if a.is_cuda else torch.int32
        return torch.einsum(equation, a.to(compute), b.to(compute)).to(torch.int32)
    return torch.einsum(equation, a, b)


class EinsumDenseQuantization:
    """Quantization and LoRA for `EinsumDense` (mixed into the layer)."""

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
        kernel = stored_weight(self, "kernel")
        if self.quantization_mode == "int4":  # unpacked (not dequantized), in the kernel's own shape
            kernel = quantizers.unpack_int4(kernel, self._int4_columns, axis=-1).reshape(self.original_kernel_shape)
        return lora_merged(self, kernel, "lora_kernel")

    kernel = property(_get_kernel, *plain_attribute("kernel"))
    kernel.__doc__ = """The kernel, as Keras 3 reads it.

        The stored variable itself when the layer is neither LoRA-enabled nor
        quantized (and for int8 / float8 without LoRA); an int4 layer's
        unpacked int8 values in the original kernel shape; plus the LoRA
        update `(lora_alpha / lora_rank) * lora_kernel_a @ lora_kernel_b` in
        the compute dtype when LoRA is enabled. The stored variable is
        `layer._kernel` (state_dict key `kernel`). Assigning it stores the variable (see `stored_weights`)."""

    def _quant_info(self):
        info = self.__dict__.get("_qinfo")
        if info is None:
            info = quantization_info(self.equation, self.input_spec.ndim)
            self.__dict__["_qinfo"] = info
        return info

    def _kernel_scale_shape(self, kernel_shape):
        axes = self._quant_info()["kernel"]
        shape = np.array(kernel_shape)
        shape[axes["reduced"]] = 1
        shape = shape[axes["transpose"]].tolist()
        for a in sorted(axes["expand"]):
            shape.insert(a, 1)
        for a in sorted(axes["squeeze"], reverse=True):
            shape.pop(a)
        return tuple(shape)

    def _rows_columns(self, kernel_shape):
        reduced = self._quant_info()["kernel"]["reduced"]
        rows = math.prod(d for i, d in enumerate(kernel_shape) if i in reduced)
        columns = math.prod(d for i, d in enumerate(kernel_shape) if i not in reduced)
        return rows, columns

    def _quantized_build(self, kernel_shape, mode, config=None):
        kernel_shape = tuple(kernel_shape)
        if mode == "int8":
            self.inputs_quantizer = QuantizationConfig.activation_quantizer_or_default(
                config, quantizers.AbsMaxQuantizer())
            self._kernel = self.add_weight(name="kernel", shape=kernel_shape, initializer="zeros", dtype="int8",
                                           trainable=False)
            self.kernel_scale = self.add_weight(name="kernel_scale", shape=self._kernel_scale_shape(kernel_shape),
                                                initializer="ones", trainable=False)
        elif mode == "int4":
            self.inputs_quantizer = QuantizationConfig.activation_quantizer_or_default(config, None)
            rows, columns = self._rows_columns(kernel_shape)
            block = get_block_size_for_layer(self, config)
            grouped = block is not None and block != -1
            self.__dict__.update(_int4_block_size=block if grouped else None, _int4_rows=rows,
                                 _int4_columns=columns, original_kernel_shape=kernel_shape)
            self._kernel = self.add_weight(name="kernel", shape=(rows, (columns + 1) // 2), initializer="zeros",
                                           dtype="int8", trainable=False)
            scale_shape = (math.ceil(rows / block), columns) if grouped else (columns,)
            self.kernel_scale = self.add_weight(name="kernel_scale", shape=scale_shape, initializer="ones",
                                                trainable=False)
            if grouped:
                self.kernel_zero = self.add_weight(name="kernel_zero", shape=scale_shape, initializer="zeros",
                                                   dtype="int8", trainable=False)
                self.g_idx = self.add_weight(
                    name="g_idx", shape=(rows,), dtype="float32", trainable=False,
                    initializer=lambda s, dtype=None: torch.div(
                        torch.arange(rows, dtype=torch.float32), block, rounding_mode="floor"),
                )
        elif mode == "float8":
            float8_build(self)
        else:
            raise self._quantization_mode_error(mode)
        self.__dict__["_is_quantized"] = True

    def quantize(self, mode=None, config=None, type_check=True):
        """Quantizes the built layer's kernel in place ("int8", "int4" or
        "float8") and switches its dtype policy, as Keras does."""
        from kerasish import dtype_policies
        from kerasish.layers.core.einsum_dense import EinsumDense
        from kerasish.quantizers.quantization_config import Int4QuantizationConfig
        from kerasish.quantizers.quantization_config import validate_and_resolve_config

        config = validate_and_resolve_config(mode, config)
        mode = config.mode
        self._check_quantize_args(mode, self.compute_dtype)
        if type_check and type(self) is not EinsumDense:
            raise self._not_implemented_error(self.quantize)
        if mode in ("gptq", "awq"):
            raise NotImplementedError(
                f"Layer '{self.name}': {mode.upper()} quantization of EinsumDense is not implemented in kerasish "
                f"(Dense layers only); `model.quantize('{mode}')` leaves this layer in float with this warning."
            )
        self.quantization_config = config
        kernel = self._kernel.detach()  # the stored float kernel (without the LoRA update, as Keras)
        kernel_shape = tuple(kernel.shape)
        values = scale = zero = None
        if mode == "int8":
            axes = self._quant_info()["kernel"]
            quantizer = QuantizationConfig.weight_quantizer_or_default(
                config, quantizers.AbsMaxQuantizer(axis=axes["reduced"]))
            values, scale = quantizer(kernel, to_numpy=True)
            scale = scale_for_output(scale, axes)
        elif mode == "int4":
            block = config.block_size if isinstance(config, Int4QuantizationConfig) else None
            flat = kernel.reshape(self._rows_columns(kernel_shape))
            if block is None or block == -1:
                values, scale = quantizers.abs_max_quantize(flat, axis=0, value_range=(-8, 7), to_numpy=True)
                scale = scale.squeeze(0)
            else:
                values, scale, zero = quantizers.abs_max_quantize_grouped_with_zero_point(
                    flat, block_size=block, to_numpy=True)
            values = quantizers.pack_int4(values, axis=-1)[0]
        elif mode != "float8":
            raise self._quantization_mode_error(mode)
        if mode != "float8":
            del self._kernel
        self._quantized_build(kernel_shape, mode, config)
        if values is not None:
            with torch.no_grad():
                self._kernel.copy_(values)
                self.kernel_scale.copy_(scale)
                if zero is not None:
                    self.kernel_zero.copy_(zero)
        if self.dtype_policy.quantization_mode is None:
            name = mode
            if mode == "int4":
                block = get_block_size_for_layer(self, config)
                name = f"int4/{-1 if block is None else block}"
            self.__dict__["_dtype_policy"] = dtype_policies.get(f"{name}_from_{self.dtype_policy.name}")
            self._set_dtype_fast_path()
        self.__dict__["_plain"] = None

    # ----------------------------------------------------------------- calls
    def _dequantized_kernel(self):
        compute = self._compute_torch_dtype
        scale = self.kernel_scale.to(compute)  # autocast, as Keras
        if self.quantization_mode == "int8":
            return self._kernel.to(compute) / scale_for_kernel(scale, self._quant_info()["kernel"])
        unpacked = quantizers.unpack_int4(self._kernel, self._int4_columns, axis=-1)
        if self._int4_block_size is None:
            float_kernel = unpacked.to(compute) / scale
        else:
            float_kernel = dequantize_with_sz_map(unpacked, scale, self.kernel_zero, self.g_idx,
                                                  group_axis=0).to(compute)
        return float_kernel.reshape(self.original_kernel_shape)

    def _quantized_call(self, inputs, training=None):
        mode = self.quantization_mode
        if mode == "float8":
            return self._float8_call(inputs, training)
        info = self._quant_info()
        compute = self._compute_torch_dtype
        float_kernel = self._dequantized_kernel().detach()
        quantizer = self.inputs_quantizer
        equation = self.equation

        def forward(x):
            if mode == "int8" and quantizer:
                xq, inputs_scale = quantizer(x, axis=tuple(info["input"]["reduced"]))
                inputs_scale = scale_for_output(inputs_scale, info["input"])
                y = _einsum_int8(equation, xq, self._kernel).to(compute)
                return y / (inputs_scale * self.kernel_scale.to(compute))
            if mode == "int4" and quantizer and self._int4_block_size is None:
                xq, inputs_scale = quantizer(x, axis=tuple(info["input"]["reduced"]))
                inputs_scale = scale_for_output(inputs_scale, info["input"])
                return torch.einsum(equation, xq.to(compute), float_kernel) / inputs_scale
            return torch.einsum(equation, x, float_kernel)  # weight-only: the dequantized kernel

        x = _EinsumInt.apply(inputs, float_kernel, {"forward": forward, "gradient_equation": info["gradient_equation"]})
        if self.lora_enabled:
            lora_x = torch.matmul(torch.einsum(equation, inputs, self.lora_kernel_a), self.lora_kernel_b)
            x = (x + (self.lora_alpha / self.lora_rank) * lora_x).to(compute)
        if self.bias is not None:
            x = x + self.bias
        x = apply_activation(self, x)
        return x

    def _float8_call(self, inputs, training=None):
        if self.lora_enabled:
            raise NotImplementedError("Currently, `_float8_call` doesn't support LoRA")
        compute = self.compute_dtype
        training = bool(training) and self.trainable
        x = torch.einsum(
            self.equation,
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
        """Freezes the kernel and adds `(lora_alpha / rank) * lora_kernel_a @
        lora_kernel_b`, with `lora_kernel_a` of shape `kernel.shape[:-1] +
        (rank,)`."""
        check_lora_allowed(self, self.kernel_constraint, "kernel")
        shape = tuple(self.original_kernel_shape) if self.quantization_mode == "int4" else tuple(self._kernel.shape)
        add_lora(self, "kernel", "lora_kernel", shape[:-1] + (rank,), (rank, shape[-1]), rank, lora_alpha,
                 a_initializer, b_initializer, self.kernel_regularizer)

    def _merged_kernel(self):
        return lora_merged(self, self._kernel, "lora_kernel")

    def _kernel_for_saving(self):
        mode = self.quantization_mode
        if mode in (None, "float8"):
            return self._merged_kernel().detach(), None, None
        zero = getattr(self, "kernel_zero", None)
        if not self.lora_enabled:
            return self._kernel, self.kernel_scale, zero
        with torch.no_grad():
            if mode == "int8":
                float_kernel = self._kernel / scale_for_kernel(self.kernel_scale, self._quant_info()["kernel"])
            else:
                float_kernel = self._dequantized_kernel()
            merged = float_kernel + (self.lora_alpha / self.lora_rank) * torch.matmul(
                self.lora_kernel_a, self.lora_kernel_b)
            if mode == "int8":
                axes = self._quant_info()["kernel"]
                values, scale = quantizers.abs_max_quantize(merged, axis=axes["reduced"], to_numpy=True)
                return values, scale_for_output(scale, axes), None
            flat = merged.reshape(self._int4_rows, self._int4_columns)
            if self._int4_block_size is not None:
                values, scale, zero = quantizers.abs_max_quantize_grouped_with_zero_point(
                    flat, block_size=self._int4_block_size, to_numpy=True)
            else:
                values, scale = quantizers.abs_max_quantize(flat, axis=0, value_range=(-8, 7), to_numpy=True)
                scale, zero = scale.squeeze(0), None
            return quantizers.pack_int4(values, axis=-1)[0], scale, zero

    def _keras_saved_variables(self):
        if not self.built or (self.quantization_mode is None and not self.lora_enabled):
            return None
        kernel, scale, zero = self._kernel_for_saving()
        values = {"kernel": kernel, "kernel_scale": scale, "kernel_zero": zero}
        out = []
        for name in SERIALIZATION_SPEC[self.quantization_mode]:
            value = values[name] if name in values and (name != "kernel_scale" or scale is not None) \
                else variable(self, name)
            if value is not None:
                out.append(value)
        return out

    def _keras_loaded_variables(self):
        if not self.built or (self.quantization_mode is None and not self.lora_enabled):
            return None
        return [v for v in (variable(self, n) for n in SERIALIZATION_SPEC[self.quantization_mode]) if v is not None]

    def _after_keras_load(self):
        if self.lora_enabled:
            with torch.no_grad():
                self.lora_kernel_a.zero_()
                self.lora_kernel_b.zero_()

