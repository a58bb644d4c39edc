"""`ReversibleEmbedding.quantize("int8" | "int4")`, as in Keras 3.15.

On top of `Embedding`'s quantized table, an untied layer quantizes its
`reverse_embeddings` `(output_dim, input_dim)` per *column* (one scale per
vocabulary entry): int8 as is, int4 packed along axis 0 to
`(ceil(output_dim / 2), input_dim)`, with `(n_groups, input_dim)` scales and
(float, as Keras) zero points for sub-channel. The reverse call quantizes its
inputs with `AbsMaxQuantizer(axis=-1)` unless the config says otherwise.
"""

from __future__ import annotations

import torch

from kerasish import quantizers
from kerasish.layers.core.embedding_quantization import SERIALIZATION_SPEC
from kerasish.quantizers import quantized_ops
from kerasish.quantizers.quantization_config import QuantizationConfig
from kerasish.quantizers.quantization_config import get_block_size_for_layer
from kerasish.quantizers.quantizers import dequantize_with_sz_map


class ReversibleEmbeddingQuantization:
    """Quantization of `ReversibleEmbedding` (mixed in before `Embedding`)."""

    def _int8_call(self, inputs, reverse=False):
        """Keras's hook (a user subclass overriding it calls `super()`): the quantized lookup or logits."""
        if reverse:
            return self._quantized_reverse(inputs)
        return super()._int8_call(inputs)

    _int4_call = _int8_call

    def _quantizable_class(self):
        from kerasish.layers.core.reversible_embedding import ReversibleEmbedding

        return ReversibleEmbedding

    def _serialization_spec(self):
        spec = list(SERIALIZATION_SPEC[self.quantization_mode])
        if not self.tie_weights:
            spec.append("reverse_embeddings")
            if self.quantization_mode in ("int8", "int4"):
                spec.append("reverse_embeddings_scale")
            if self.quantization_mode == "int4":
                spec.append("reverse_embeddings_zero")
        return spec

    def _quantized_build(self, shape, mode, config=None):
        super()._quantized_build(shape, mode, None if mode == "int8" else config)
        self.inputs_quantizer = QuantizationConfig.activation_quantizer_or_default(
            config, quantizers.AbsMaxQuantizer(axis=-1))
        if self.tie_weights:
            return
        if mode == "int8":
            self.reverse_embeddings = self.add_weight(name="reverse_embeddings", shape=(self.output_dim, self.input_dim),
                                                      initializer="zeros", dtype="int8", trainable=False)
            self.reverse_embeddings_scale = self.add_weight(name="reverse_embeddings_scale", shape=(self.input_dim,),
                                                            initializer="ones", trainable=False)
        else:
            self.reverse_embeddings = self.add_weight(
                name="reverse_embeddings", shape=((self.output_dim + 1) // 2, self.input_dim), initializer="zeros",
                dtype="int8", trainable=False)
            block = get_block_size_for_layer(self, config)
            grouped = block is not None and block != -1
            scale_shape = (-(-self.output_dim // block), self.input_dim) if grouped else (self.input_dim,)
            self.reverse_embeddings_scale = self.add_weight(name="reverse_embeddings_scale", shape=scale_shape,
                                                            initializer="ones", trainable=False)
            if grouped:  # (a float variable in Keras too)
                self.reverse_embeddings_zero = self.add_weight(name="reverse_embeddings_zero", shape=scale_shape,
                                                               initializer="zeros", trainable=False)

    def _quantize_variables(self, mode, config):
        from kerasish.quantizers.quantization_config import Int4QuantizationConfig

        reverse = None
        if not self.tie_weights:
            table = self.reverse_embeddings.detach()
            zero = None
            block = config.block_size if isinstance(config, Int4QuantizationConfig) else None
            if mode == "int8":
                quantizer = QuantizationConfig.weight_quantizer_or_default(config, quantizers.AbsMaxQuantizer(axis=0))
                values, scale = quantizer(table, to_numpy=True)
                scale = scale.squeeze(0)
            elif block is None or block == -1:
                quantizer = QuantizationConfig.weight_quantizer_or_default(
                    config, quantizers.AbsMaxQuantizer(axis=0, value_range=(-8, 7), output_dtype="int8"))
                values, scale = quantizer(table, to_numpy=True)
                scale = scale.squeeze(0)
            else:
                values, scale, zero = quantizers.abs_max_quantize_grouped_with_zero_point(
                    table, block_size=block, value_range=(-8, 7), dtype="int8", to_numpy=True)
            if mode == "int4":
                values = quantizers.pack_int4(values, axis=0)[0]
            reverse = (values, scale, zero)
            del self.reverse_embeddings
        super()._quantize_variables(mode, config)
        if reverse is not None:
            with torch.no_grad():
                self.reverse_embeddings.copy_(reverse[0])
                self.reverse_embeddings_scale.copy_(reverse[1])
                if reverse[2] is not None:
                    self.reverse_embeddings_zero.copy_(reverse[2])

    def _quantized_reverse(self, inputs):
        """The logits of a quantized layer called with `reverse=True`."""
        compute = self._compute_torch_dtype
        block = self._int4_block_size if self.quantization_mode == "int4" else None
        if self.tie_weights:
            kernel, scale = self._embeddings.t(), self.embeddings_scale  # (the stored, packed table)
        else:
            kernel, scale = self.reverse_embeddings, self.reverse_embeddings_scale
        scale = scale.to(compute)  # autocast, as Keras
        if self.quantization_mode == "int4":
            kernel = quantizers.unpack_int4(kernel, self.output_dim, axis=0)
        if self.inputs_quantizer:
            inputs, inputs_scale = self.inputs_quantizer(inputs)
        else:
            inputs_scale = torch.ones((1,), dtype=compute, device=inputs.device)
        if block is None or block == -1:
            logits = quantized_ops.int_matmul(inputs, kernel).to(compute)
            logits = logits / (inputs_scale * scale)
        else:
            if self.tie_weights:
                scale, zero = scale.t(), self.embeddings_zero.t()
            else:
                zero = self.reverse_embeddings_zero
            float_kernel = dequantize_with_sz_map(kernel.to(compute), scale, zero, self.g_idx, group_axis=0)
            logits = quantized_ops.int_matmul(inputs, float_kernel) / inputs_scale
        if self.logit_soft_cap is not None:
            logits = torch.tanh(logits / self.logit_soft_cap) * self.logit_soft_cap
        return logits
