"""`Embedding`: turns integer indices into dense vectors, on `F.embedding`."""

from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F

from kerasish import constraints
from kerasish.backend.keras_tensor import KerasTensor
from kerasish import initializers
from kerasish import regularizers
from kerasish.layers.core.dense import deserialize_quantization_config
from kerasish.layers.core.embedding_quantization import EmbeddingQuantization
from kerasish.layers.layer import Layer
from kerasish.saving.serialization_lib import serialize_keras_object
from kerasish.utils.argument_validation import as_int
from kerasish.layers.lazy_weights import is_lazy


def _check_positive_int(name: str, value) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        raise ValueError(
            f"`{name}` must be a positive integer. Received: {name}={value} (of type {type(value).__name__})."
        )


class Embedding(EmbeddingQuantization, Layer):
    """Turns non-negative integers (indices) into dense vectors of fixed size.

    Args:
        input_dim: Size of the vocabulary (maximum index + 1).
        output_dim: Dimension of the dense embedding.
        embeddings_initializer: Defaults to `"uniform"` (uniform in
            [-0.05, 0.05], as Keras).
        embeddings_regularizer: Defaults to `None`.
        embeddings_constraint: Defaults to `None`.
        mask_zero: Whether index 0 is padding to be masked out: the output
            then carries the mask `inputs != 0`. Defaults to `False`.
        weights: Optional initial embedding matrix (array of shape
            `(input_dim, output_dim)`, or a one-element list of it); the
            layer is then built at construction.
        lora_rank: If set, the layer is built with LoRA enabled at this rank
            (`enable_lora`). Defaults to `None`.
        lora_alpha: LoRA scale numerator. Defaults to `lora_rank`.
        quantization_config: The `QuantizationConfig` of a quantized layer
            (set by `quantize("int8" | "int4")`). Defaults to `None`.
        input_length: Keras 2 argument: the length of input sequences (an
            int, None, or a tuple). As in Keras 2 it becomes the layer's
            `input_shape`, so a `Sequential` starting with this layer is
            built with input shape `(None, input_length)`. (Keras 3 ignores
            it with a deprecation warning.)

    Input shape: `(batch_size, ...)` integer indices (other dtypes are cast),
        each in `[0, input_dim)`: others raise `IndexError` (negative ids too,
        as TensorFlow Keras does; Keras 3 on torch would wrap `-1` to the
        last row).
    Output shape: `(batch_size, ..., output_dim)`, in the compute dtype.

    Inputs are never autocast (float indices are not rounded through
    float16), as in Keras.

    Example:
        >>> layer = keras.layers.Embedding(1000, 64, mask_zero=True)
        >>> y = layer(torch.tensor([[4, 2, 0]]))
        >>> y.shape, y._keras_mask
        (torch.Size([1, 3, 64]), tensor([[ True,  True, False]]))
    """

    def __init__(
        self,
        input_dim,
        output_dim,
        embeddings_initializer="uniform",
        embeddings_regularizer=None,
        embeddings_constraint=None,
        mask_zero=False,
        weights=None,
        lora_rank=None,
        lora_alpha=None,
        quantization_config=None,
        **kwargs,
    ):
        input_dim, output_dim = as_int(input_dim), as_int(output_dim)
        _check_positive_int("input_dim", input_dim)
        _check_positive_int("output_dim", output_dim)
        input_length = kwargs.pop("input_length", None)
        if input_length is not None:
            warnings.warn(
                "Argument `input_length` is deprecated (Keras 3 ignores it). kerasish follows Keras 2 and "
                f"uses it as the layer's input shape (None, {input_length}); pass `keras.Input(shape=...)` "
                "to the model instead.",
                DeprecationWarning,
                stacklevel=2,
            )
        if input_length is not None and kwargs.get("input_shape") is None and kwargs.get("batch_input_shape") is None:
            # Keras 2: the sequence length is this layer's input shape, so a
            # Sequential starting with it knows its input (Keras 3 dropped it)
            length = tuple(input_length) if isinstance(input_length, (list, tuple)) else (input_length,)
            kwargs["input_shape"] = length
        kwargs.pop("autocast", None)
        super().__init__(autocast=False, **kwargs)
        self.input_dim = input_dim
        self.output_dim = output_dim
        self.embeddings_initializer = initializers.get(embeddings_initializer)
        self.embeddings_regularizer = regularizers.get(embeddings_regularizer)
        self.embeddings_constraint = constraints.get(embeddings_constraint)
        self.mask_zero = bool(mask_zero)
        self.supports_masking = self.mask_zero
        self.lora_rank = lora_rank
        self.lora_alpha = lora_alpha if lora_alpha is not None else lora_rank
        self.lora_enabled = False
        self.quantization_config = quantization_config
        self.__dict__["_is_quantized"] = False
        if weights is not None:
            self.build()
            if not (isinstance(weights, list) and len(weights) == 1):
                weights = [weights]
            self.set_weights(weights)

    def _lazy_trainable_weights(self):
        """Trainable weights `build` creates (uninitialized parameters until then)."""
        return () if self.quantization_mode in ("int8", "int4") else ("embeddings",)

    def build(self, input_shape=None):
        if self._is_quantized or (
            self._parameters.get("embeddings") is not None and not is_lazy(self._parameters["embeddings"])
        ):
            return
        mode = self.quantization_mode
        if mode:  # a quantized layer being loaded
            self._quantized_build((self.input_dim, self.output_dim), mode, self.quantization_config)
        else:
            self._build_float_table()
        if self.lora_rank:
            self.built = True
            self.enable_lora(self.lora_rank)  # (as Keras: lora_alpha becomes the rank)

    def _build_float_table(self):
        self._embeddings = self.add_weight(
            shape=(self.input_dim, self.output_dim),
            initializer=self.embeddings_initializer,
            name="embeddings",
            regularizer=self.embeddings_regularizer,
            constraint=self.embeddings_constraint,
            trainable=True,
        )

    def _infer_build_shape(self, weight_shapes):
        return (None,) if "embeddings" in weight_shapes else None

    def call(self, inputs):
        if inputs.dtype is not torch.int64 and inputs.dtype is not torch.int32:
            inputs = inputs.to(torch.int32)
        # Ids outside [0, input_dim) raise IndexError (F.embedding's own
        # bounds check, so no extra work per call). Keras's backends disagree
        # on negative ids (TensorFlow rejects them, torch wraps -1 to the last
        # row, JAX clamps); kerasish rejects them like TensorFlow.
        if torch.compiler.is_compiling():
            # compiled kernels do not bounds-check gracefully (an out-of-range id
            # aborts the process on CPU): check here, in the graph, no break
            torch._assert_async(
                ((inputs >= 0) & (inputs < self.input_dim)).all(),
                f"Layer '{self.name}': Embedding ids must be in the range 0 <= id < input_dim with "
                f"input_dim={self.input_dim}",
            )
        try:
            if self._is_quantized or self.lora_enabled:
                out = self._quantized_call(inputs) if self._is_quantized else F.embedding(inputs, self._merged_table())
            else:
                # the stored table read straight from the registry (the hot path: no property, no
                # helper global to guard when compiled); `_embeddings` when it computes (mixed)
                d = self.__dict__
                table = d["_parameters"].get("embeddings")
                if table is None or d["_mixed"]:
                    table = self._embeddings
                out = F.embedding(inputs, table)
        except IndexError:
            raise IndexError(
                f"Layer '{self.name}': Embedding ids must be in the range 0 <= id < input_dim with "
                f"input_dim={self.input_dim}. Received: ids from {int(inputs.min())} to {int(inputs.max())} "
                f"in inputs of shape {tuple(inputs.shape)}"
            ) from None
        if out.dtype is not self._compute_torch_dtype:
            out = out.to(self._compute_torch_dtype)
        return out

    def _hot_mask_mode(self):
        # the hot path computes `compute_mask` (mask_zero) or sets no mask, as the full path
        if type(self).compute_mask is not Embedding.compute_mask:
            return None
        return 3 if self.mask_zero else 0

    def compute_mask(self, inputs, mask=None):
        if not self.mask_zero:
            return None
        if isinstance(inputs, KerasTensor):  # a graph node, as Keras's `ops.not_equal`
            from kerasish import ops

            return ops.not_equal(inputs, 0)
        return inputs != 0

    def compute_output_shape(self, input_shape):
        return (*tuple(input_shape), self.output_dim)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "input_dim": self.input_dim,
                "output_dim": self.output_dim,
                "embeddings_initializer": initializers.serialize(self.embeddings_initializer),
                "embeddings_regularizer": regularizers.serialize(self.embeddings_regularizer),
                "activity_regularizer": regularizers.serialize(self.activity_regularizer),
                "embeddings_constraint": constraints.serialize(self.embeddings_constraint),
                "mask_zero": self.mask_zero,
                "quantization_config": serialize_keras_object(self.quantization_config),
            }
        )
        if self.lora_rank:
            config["lora_rank"] = self.lora_rank
            config["lora_alpha"] = self.lora_alpha
        return config

    @classmethod
    def from_config(cls, config):
        return super().from_config(deserialize_quantization_config(config))
