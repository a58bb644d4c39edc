"""`CategoryEncoding`."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from kerasish.layers.layer import Layer


class CategoryEncoding(Layer):
    """Encodes integer features as one-hot, multi-hot or count vectors
    (`keras.layers.CategoryEncoding`).

    Args:
        num_tokens: Number of tokens; inputs must be in `[0, num_tokens)`
            (negative values give zero rows, as in Keras's torch backend;
            values `>= num_tokens` raise).
        output_mode: "one_hot" (a trailing axis of size 1 is replaced by
            the encoding; otherwise one is added), "multi_hot" or "count"
            (summarised over axis 1 of a batch, or axis 0 of a rank-1 input,
            as Keras does). "binary" is accepted as Keras 2's spelling of
            "multi_hot". Defaults to "multi_hot".
        sparse: Only False (torch tensors are dense here; Keras's torch
            backend also rejects True). Defaults to False.

    Call arguments:
        inputs: Integer tensor (float inputs are truncated to integers).
        count_weights: Optional weights, same shape as `inputs`, for
            "count" mode: the output sums them instead of counting.

    Output: the layer's variable dtype (float32 by default, also under a
    mixed policy, as Keras), or `count_weights`' dtype.

    Example:
        >>> keras.layers.CategoryEncoding(4, output_mode="count")(torch.tensor([[0, 1, 1], [3, 3, 2]]))
        tensor([[1., 2., 0., 0.], [0., 0., 1., 2.]])
    """

    def __init__(self, num_tokens=None, output_mode="multi_hot", sparse=False, **kwargs):
        super().__init__(**kwargs)
        if output_mode == "binary":
            output_mode = "multi_hot"
        if output_mode not in ("count", "one_hot", "multi_hot"):
            raise ValueError(f"Unknown arg for output_mode: {output_mode}")
        if num_tokens is None:
            raise ValueError(
                "num_tokens must be set to use this layer. If the number of tokens is not known beforehand, "
                "use the IntegerLookup layer instead."
            )
        if num_tokens < 1:
            raise ValueError(f"`num_tokens` must be >= 1. Received: num_tokens={num_tokens}.")
        if sparse:
            raise ValueError("Unsupported value `sparse=True` with torch backend")
        self.num_tokens = num_tokens
        self.output_mode = output_mode
        self.sparse = sparse
        self.built = True

    def _one_hot(self, inputs, dtype):
        x = inputs.long()
        try:
            # negative values give an all-zero row, as in Keras
            out = F.one_hot(x.clamp(min=0), self.num_tokens)
        except RuntimeError:
            # out-of-range ids are IndexError in kerasish, as for Embedding
            raise IndexError(
                f"Layer '{self.name}': CategoryEncoding input values must be in the range "
                f"0 <= values < num_tokens with num_tokens={self.num_tokens}. "
                f"Received: values from {int(x.min())} to {int(x.max())} in inputs of shape {tuple(inputs.shape)}"
            ) from None
        return (out * (x >= 0).unsqueeze(-1)).to(dtype)

    def call(self, inputs, count_weights=None):
        if count_weights is not None and self.output_mode != "count":
            raise ValueError(
                "`count_weights` is not used when `output_mode` is not `'count'`. "
                f"Received `count_weights={count_weights}`."
            )
        dtype = self._dtype_policy.variable_torch_dtype
        if inputs.ndim == 0:
            inputs = inputs.reshape(1)
        if self.output_mode == "one_hot":
            if inputs.ndim > 1 and inputs.shape[-1] == 1:
                inputs = inputs.squeeze(-1)
            return self._one_hot(inputs, dtype)
        axis = 1 if inputs.ndim > 1 else 0
        if self.output_mode == "multi_hot":
            return torch.amax(self._one_hot(inputs, dtype), dim=axis)
        if count_weights is not None:
            count_weights = torch.as_tensor(count_weights, device=inputs.device).to(self._compute_torch_dtype)
            encoded = self._one_hot(inputs, count_weights.dtype) * count_weights.unsqueeze(-1)
        else:
            encoded = self._one_hot(inputs, dtype)
        return encoded.sum(dim=axis)

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        if len(input_shape) == 0:
            # a scalar is read as one id: one_hot gives (1, num_tokens) (as Keras's call does)
            return (1, self.num_tokens) if self.output_mode == "one_hot" else (self.num_tokens,)
        if self.output_mode == "one_hot" and (input_shape[-1] != 1 or len(input_shape) == 1):
            return input_shape + (self.num_tokens,)
        return input_shape[:-1] + (self.num_tokens,)

    def get_config(self):
        config = super().get_config()
        config.update({"num_tokens": self.num_tokens, "output_mode": self.output_mode})
        return config
