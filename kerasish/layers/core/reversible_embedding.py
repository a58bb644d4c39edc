"""`ReversibleEmbedding`: an `Embedding` that can also project hidden states
back onto the vocabulary (tied or separate weights), for language models."""

from __future__ import annotations

import torch

from kerasish.backend import dtypes
from kerasish.layers.core.embedding import Embedding
from kerasish.layers.core.reversible_embedding_quantization import ReversibleEmbeddingQuantization
from kerasish.layers.lazy_weights import is_lazy


class ReversibleEmbedding(ReversibleEmbeddingQuantization, Embedding):
    """An embedding layer which can also project back to the input dim.

    Called normally it is an `Embedding`. Called with `reverse=True` it maps
    `(..., output_dim)` hidden states to `(..., input_dim)` logits through
    the transposed `embeddings` (tied weights, the default) or through its
    own `reverse_embeddings` of shape `(output_dim, input_dim)`. No bias.

    Args:
        input_dim: Size of the vocabulary (maximum index + 1).
        output_dim: Dimension of the dense embedding.
        tie_weights: Whether the reverse projection uses the transposed
            `embeddings`. Defaults to `True`.
        embeddings_initializer, embeddings_regularizer,
        embeddings_constraint, mask_zero: As for `Embedding`; the
            initializer also initializes `reverse_embeddings`.
        reverse_dtype: Dtype of the reverse projection's matmul. Defaults
            to `None` (the layer's compute dtype).
        logit_soft_cap: If set, reverse logits become
            `tanh(logits / logit_soft_cap) * logit_soft_cap`. Defaults to
            `None`.

    Call arguments:
        inputs: Integer ids, or hidden states when `reverse=True`.
        reverse: Whether to project back to the vocabulary. Defaults to
            `False`.

    Example:
        >>> layer = keras.layers.ReversibleEmbedding(100, 32)
        >>> h = layer(torch.randint(0, 100, (2, 5)))   # (2, 5, 32)
        >>> layer(h, reverse=True).shape
        torch.Size([2, 5, 100])
    """

    def __init__(
        self,
        input_dim,
        output_dim,
        tie_weights=True,
        embeddings_initializer="uniform",
        embeddings_regularizer=None,
        embeddings_constraint=None,
        mask_zero=False,
        reverse_dtype=None,
        logit_soft_cap=None,
        **kwargs,
    ):
        if reverse_dtype is not None:
            reverse_dtype = dtypes.standardize_dtype(reverse_dtype)
        if logit_soft_cap is not None and (
            isinstance(logit_soft_cap, bool) or not isinstance(logit_soft_cap, (int, float)) or logit_soft_cap <= 0
        ):
            raise ValueError(
                "`logit_soft_cap` must be a positive number or None. "
                f"Received: logit_soft_cap={logit_soft_cap!r}"
            )
        self.tie_weights = bool(tie_weights)
        super().__init__(
            input_dim,
            output_dim,
            embeddings_initializer=embeddings_initializer,
            embeddings_regularizer=embeddings_regularizer,
            embeddings_constraint=embeddings_constraint,
            mask_zero=mask_zero,
            **kwargs,
        )
        self.reverse_dtype = reverse_dtype
        self.logit_soft_cap = logit_soft_cap

    def _lazy_trainable_weights(self):
        if self.quantization_mode in ("int8", "int4"):
            return ()
        return ("embeddings",) if self.tie_weights else ("embeddings", "reverse_embeddings")

    def build(self, input_shape=None):
        if self._is_quantized:
            return
        reverse = self._parameters.get("reverse_embeddings")
        if (self.tie_weights or (reverse is not None and not is_lazy(reverse))) and (
            self._parameters.get("embeddings") is not None and not is_lazy(self._parameters["embeddings"])
        ):
            return
        Embedding.build(self, input_shape)
        if not self.tie_weights and not self._is_quantized:  # (a quantized build made its own)
            self.reverse_embeddings = self.add_weight(
                shape=(self.output_dim, self.input_dim),
                initializer=self.embeddings_initializer,
                name="reverse_embeddings",
                trainable=True,
            )

    def call(self, inputs, reverse=False):
        if not reverse:
            out = super().call(inputs)
            if self.mask_zero:
                out._keras_mask = inputs != 0
            return out
        if inputs.shape[-1] != self.output_dim:
            raise ValueError(
                f"Layer '{self.name}': with `reverse=True` the inputs' last dimension must equal "
                f"output_dim={self.output_dim}. Received: inputs.shape={tuple(inputs.shape)}"
            )
        if self._is_quantized:
            return self._quantized_reverse(inputs)  # (reverse_dtype does not apply, as in Keras)
        # tied: Keras's `embeddings` (with the LoRA update when LoRA is on)
        kernel = self._merged_table().t() if self.tie_weights else self.reverse_embeddings
        dtype = dtypes.to_torch_dtype(self.reverse_dtype) if self.reverse_dtype else self._compute_torch_dtype
        logits = torch.matmul(inputs.to(dtype), kernel.to(dtype))
        if self.logit_soft_cap is not None:
            logits = torch.tanh(logits / self.logit_soft_cap) * self.logit_soft_cap
        return logits

    def compute_mask(self, inputs, mask=None):
        # the mask is attached by `call` in the forward direction only (Keras
        # computes it there too, so `reverse=True` outputs carry none)
        return None

    def compute_output_shape(self, input_shape, reverse=False):
        shape = list(input_shape)
        if reverse:
            shape[-1] = self.input_dim
        else:
            shape.append(self.output_dim)
        return tuple(shape)

    def get_config(self):
        config = super().get_config()
        config.update(
            {"tie_weights": self.tie_weights, "reverse_dtype": self.reverse_dtype, "logit_soft_cap": self.logit_soft_cap}
        )
        return config
