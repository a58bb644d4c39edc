"""`Embedding.quantize("int8" | "int4")` and LoRA, as in Keras 3.15.

Keras's variables: int8 `embeddings` `(input_dim, output_dim)` with one
`embeddings_scale` per row `(input_dim,)`; int4 packs two values per byte
along the output axis, `(input_dim, ceil(output_dim / 2))`, with per-row
scales or, for sub-channel (`block_size`), `(input_dim, ceil(output_dim /
block_size))` scales and int8 `embeddings_zero` plus a float32 `g_idx`
`(output_dim,)`. Embeddings have no float8 mode (Keras raises too).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from kerasish import quantizers
from kerasish.layers.core.dense_quantization import add_lora
from kerasish.layers.core.dense_quantization import check_lora_allowed
from kerasish.layers.core.stored_weights import computed_variable
from kerasish.layers.core.stored_weights import lora_merged
from kerasish.layers.core.stored_weights import plain_attribute
from kerasish.layers.core.stored_weights import stored_property
from kerasish.layers.core.stored_weights import stored_weight
from kerasish.layers.core.stored_weights import variable
from kerasish.quantizers.quantization_config import QuantizationConfig
from kerasish.quantizers.quantization_config import get_block_size_for_layer
from kerasish.quantizers.quantizers import dequantize_with_sz_map

SERIALIZATION_SPEC = {
    None: ("embeddings",),
    "int8": ("embeddings", "embeddings_scale"),
    "int4": ("embeddings", "embeddings_scale", "embeddings_zero", "g_idx"),
}


class EmbeddingQuantization:
    """Quantization and LoRA for `Embedding` (mixed into the layer)."""

    _quantizes_in_call = True  # `call` branches on the quantization mode itself (see LayerQuantizationMixin)

    # Keras's per-mode hooks, for a user subclass that overrides one and calls `super()`
    def _int8_call(self, inputs, training=None):
        out = self._quantized_call(inputs)
        return out if out.dtype is self._compute_torch_dtype else out.to(self._compute_torch_dtype)

    _int4_call = _int8_call

    # --------------------------------------------- the computed `embeddings`
    _computed_weights = frozenset({"embeddings"})
    _embeddings = stored_property("embeddings")

    def _get_embeddings(self):
        d = self.__dict__
        if not (d.get("lora_enabled") or d.get("_is_quantized")):
            return computed_variable(self, "embeddings")  # the variable itself
        table = stored_weight(self, "embeddings")
        if self.quantization_mode == "int4":  # unpacked (not dequantized)
            table = quantizers.unpack_int4(table, self._orig_output_dim, axis=-1)
        return lora_merged(self, table, "lora_embeddings")

    embeddings = property(_get_embeddings, *plain_attribute("embeddings"))
    embeddings.__doc__ = """The table `(input_dim, output_dim)`, as Keras 3 reads it.

        The stored variable itself when the layer is neither LoRA-enabled nor
        quantized (and for int8 without LoRA); an int4 layer's unpacked int8
        values; plus the LoRA update `(lora_alpha / lora_rank) *
        lora_embeddings_a @ lora_embeddings_b` in the compute dtype when LoRA
        is enabled. The stored variable is `layer._embeddings` (state_dict key
        `embeddings`). Assigning it stores the variable (see `stored_weights`)."""

    def _serialization_spec(self):
        """Keras's save order of this mode's variables."""
        return SERIALIZATION_SPEC[self.quantization_mode]

    def _quantization_mode_error(self, mode):
        return NotImplementedError(
            f"Invalid quantization mode. Expected one of ('int8', 'int4'). Received: quantization_mode={mode}"
        )

    def _quantized_build(self, shape, mode, config=None):
        input_dim, output_dim = shape
        if mode == "int8":
            self._embeddings = self.add_weight(name="embeddings", shape=shape, initializer="zeros", dtype="int8",
                                               trainable=False)
            self.embeddings_scale = self.add_weight(name="embeddings_scale", shape=(input_dim,), initializer="ones",
                                                    trainable=False)
        elif mode == "int4":
            self._embeddings = self.add_weight(name="embeddings", shape=(input_dim, (output_dim + 1) // 2),
                                               initializer="zeros", dtype="int8", trainable=False)
            block = get_block_size_for_layer(self, config)
            self.__dict__["_int4_block_size"] = block
            sub_channel = block is not None and block > 0
            scale_shape = (input_dim, math.ceil(output_dim / block)) if sub_channel else (input_dim,)
            self.embeddings_scale = self.add_weight(name="embeddings_scale", shape=scale_shape, initializer="ones",
                                                    trainable=False)
            if sub_channel:
                self.embeddings_zero = self.add_weight(name="embeddings_zero", shape=scale_shape,
                                                       initializer="zeros", dtype="int8", trainable=False)
                self.g_idx = self.add_weight(
                    name="g_idx", shape=(output_dim,), dtype="float32", trainable=False,
                    initializer=lambda s, dtype=None: torch.div(
                        torch.arange(output_dim, dtype=torch.float32), block, rounding_mode="floor"),
                )
            self.__dict__["_orig_output_dim"] = output_dim
        else:
            raise self._quantization_mode_error(mode)
        self.__dict__["_is_quantized"] = True

    def _quantizable_class(self):
        from kerasish.layers.core.embedding import Embedding

        return Embedding  # subclasses are refused unless `type_check=False`, as in Keras

    def quantize(self, mode=None, config=None, type_check=True):
        """Quantizes the built layer's embeddings in place ("int8" or
        "int4") and switches its dtype policy, as Keras does."""
        from kerasish import dtype_policies
        from kerasish.quantizers.quantization_config import validate_and_resolve_config

        config = validate_and_resolve_config(mode, config)
        mode = config.mode
        self._check_quantize_args(mode, self.compute_dtype)
        if type_check and type(self) is not self._quantizable_class():
            raise self._not_implemented_error(self.quantize)
        if mode not in ("int8", "int4"):
            raise self._quantization_mode_error(mode)
        self.quantization_config = config
        self._quantize_variables(mode, config)
        if self.dtype_policy.quantization_mode is None:
            name = mode
            if mode == "int4":
                block = get_block_size_for_layer(self, config)
                name = f"int4/{-1 if block is None else block}"
            self.__dict__["_dtype_policy"] = dtype_policies.get(f"{name}_from_{self.dtype_policy.name}")
            self._set_dtype_fast_path()
        self.__dict__["_plain"] = None

    def _quantize_variables(self, mode, config):
        table = self._embeddings.detach()  # the stored float table (without the LoRA update, as Keras)
        shape = tuple(table.shape)
        values, scale, zero = self._quantize_table(table, mode, config)
        del self._embeddings
        self._quantized_build(shape, mode, config)
        with torch.no_grad():
            self._embeddings.copy_(values)
            self.embeddings_scale.copy_(scale)
            if zero is not None:
                self.embeddings_zero.copy_(zero)

    @staticmethod
    def _quantize_table(table, mode, config):
        """`(values, scale, zero)` of an `(input_dim, output_dim)` table: one
        scale per row (int8, int4 per-channel) or per row and group of
        `block_size` columns (int4 sub-channel); int4 values packed along
        the columns."""
        from kerasish.quantizers.quantization_config import Int4QuantizationConfig

        zero = None
        if mode == "int8":
            quantizer = QuantizationConfig.weight_quantizer_or_default(config, quantizers.AbsMaxQuantizer(axis=-1))
            values, scale = quantizer(table, to_numpy=True)
            return values, scale.squeeze(-1), None
        block = config.block_size if isinstance(config, Int4QuantizationConfig) else None
        if block is None or block == -1:
            quantizer = QuantizationConfig.weight_quantizer_or_default(
                config, quantizers.AbsMaxQuantizer(axis=-1, value_range=(-8, 7), output_dtype="int8"))
            values, scale = quantizer(table, to_numpy=True)
            scale = scale.squeeze(-1)
        else:
            values, scale, zero = _grouped_rows(table, block)
        return quantizers.pack_int4(values, axis=-1)[0], scale, zero

    def _dequantized_rows(self, ids):
        """The float embedding rows of `ids` (int32/int64)."""
        compute = self._compute_torch_dtype
        table_scale = self.embeddings_scale.to(compute)  # autocast, as Keras
        if self.quantization_mode == "int8":
            out = F.embedding(ids, self._embeddings).to(compute)
            return out / F.embedding(ids, table_scale[:, None])
        unpacked = quantizers.unpack_int4(self._embeddings, self._orig_output_dim, axis=-1)
        out = F.embedding(ids, unpacked)
        scale = F.embedding(ids, table_scale.reshape(self.input_dim, -1))
        block = self._int4_block_size
        if block is None or block == -1:
            return out.to(compute) / scale
        zero = F.embedding(ids, self.embeddings_zero.reshape(self.input_dim, -1))
        return dequantize_with_sz_map(out.to(compute), scale, zero, self.g_idx, group_axis=-1)

    def _quantized_call(self, ids):
        out = self._dequantized_rows(ids)
        if self.lora_enabled:
            out = out + (self.lora_alpha / self.lora_rank) * torch.matmul(
                F.embedding(ids, self.lora_embeddings_a), self.lora_embeddings_b)
            out = out.to(self._compute_torch_dtype)
        return out

    # ------------------------------------------------------------------ LoRA
    def enable_lora(self, rank, lora_alpha=None, a_initializer="he_uniform", b_initializer="zeros"):
        """Freezes the embeddings and adds the trainable low-rank update
        `(lora_alpha / rank) * lora_embeddings_a @ lora_embeddings_b`."""
        check_lora_allowed(self, self.embeddings_constraint, "embedding")
        add_lora(self, "embeddings", "lora_embeddings", (self.input_dim, rank), (rank, self.output_dim), rank,
                 lora_alpha, a_initializer, b_initializer, self.embeddings_regularizer)

    def _merged_table(self):
        return lora_merged(self, self._embeddings, "lora_embeddings")

    def _table_for_saving(self):
        mode = self.quantization_mode
        if mode is None:
            return self._merged_table().detach(), None, None
        zero = getattr(self, "embeddings_zero", None)
        if not self.lora_enabled:
            return self._embeddings, self.embeddings_scale, zero
        with torch.no_grad():
            ids = torch.arange(self.input_dim, device=self._embeddings.device)
            merged = self._dequantized_rows(ids) + (self.lora_alpha / self.lora_rank) * torch.matmul(
                self.lora_embeddings_a, self.lora_embeddings_b)
            block = getattr(self, "_int4_block_size", None)
            if mode == "int4" and block is not None and block != -1:
                values, scale, zero = _grouped_rows(merged, block)
            else:
                value_range = (-8, 7) if mode == "int4" else (-127, 127)
                values, scale = quantizers.abs_max_quantize(merged, axis=-1, value_range=value_range, to_numpy=True)
                scale, zero = scale.squeeze(-1), None
            if mode == "int4":
                values = quantizers.pack_int4(values, axis=-1)[0]
        return values, scale, zero

    def _keras_saved_variables(self):
        if not self.built or (self.quantization_mode is None and not self.lora_enabled):
            return None
        table, scale, zero = self._table_for_saving()
        values = {"embeddings": table, "embeddings_scale": scale, "embeddings_zero": zero}
        out = []
        for name in self._serialization_spec():
            value = values[name] if name in values else variable(self, name)
            if value is not None:
                out.append(value)
        return out

    def _keras_loaded_variables(self):
        if not self.built or (self.quantization_mode is None and not self.lora_enabled):
            return None
        return [v for v in (variable(self, n) for n in self._serialization_spec()) if v is not None]

    def _after_keras_load(self):
        if self.lora_enabled:
            with torch.no_grad():
                self.lora_embeddings_a.zero_()
                self.lora_embeddings_b.zero_()


def _grouped_rows(table, block):
    """Keras's sub-channel int4 of an embedding table: groups of `block`
    values along each row (the grouped quantizer on the transpose)."""
    values_t, scale_t, zero_t = quantizers.abs_max_quantize_grouped_with_zero_point(
        table.T, block_size=block, value_range=(-8, 7), dtype="int8", to_numpy=True)
    return values_t.T, scale_t.T, zero_t.T
