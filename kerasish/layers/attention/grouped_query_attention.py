"""`GroupQueryAttention` (Keras's `GroupedQueryAttention` class)."""

from __future__ import annotations

from kerasish.layers.attention.multi_head_attention import MultiHeadAttention
from kerasish.layers.attention.multi_head_attention import _positive_int

# MultiHeadAttention config keys that GroupQueryAttention names differently or lacks
_MHA_ONLY_KEYS = ("num_heads", "key_dim", "value_dim", "output_shape", "attention_axes")


class GroupedQueryAttention(MultiHeadAttention):
    """Grouped-query attention (`keras.layers.GroupQueryAttention`).

    `num_query_heads` query heads share `num_key_value_heads` key/value heads:
    query head `i` attends with key/value head `i // (num_query_heads //
    num_key_value_heads)` (Keras's `ops.repeat` on the head axis). With
    `num_key_value_heads == num_query_heads` this is multi-head attention, with
    1 it is multi-query attention. The projections are Keras's `EinsumDense`
    weights (`query` kernel `(dim, num_query_heads, head_dim)`, `key`/`value`
    `(dim, num_key_value_heads, head_dim)`, `attention_output`
    `(num_query_heads, head_dim, dim)`), so weights move to and from Keras
    unchanged; the attention runs on `F.scaled_dot_product_attention`.

    Args:
        head_dim: Size of each attention head.
        num_query_heads: Number of query heads.
        num_key_value_heads: Number of key and value heads; must divide
            `num_query_heads`.
        dropout: Dropout rate on the attention weights. Defaults to 0.
        use_bias: Whether the projections have biases. Defaults to True.
        sliding_window: None or a positive int: each query attends only to
            keys less than this many positions away. Defaults to None.
        flash_attention: The SDPA kernel choice, as in `MultiHeadAttention`
            (`None`: torch decides, or off the flash kernel after
            `keras.config.disable_flash_attention()`). Defaults to None.
        kernel_initializer, bias_initializer, kernel_regularizer,
        bias_regularizer, activity_regularizer, kernel_constraint,
        bias_constraint: As in `Dense`, for every projection.
        use_gate: Whether to gate the attention output with a sigmoid
            projection of the query. Defaults to False.
        seed: Seed for the attention dropout. Defaults to None.

    Call arguments: `query` `(B, T, dim)`, `value` `(B, S, dim)`, optional
    `key` (defaults to `value`), `query_mask`, `value_mask`, `key_mask`,
    `attention_mask` `(B, T, S)`, `return_attention_scores`, `training`,
    `use_causal_mask` — as `MultiHeadAttention`.

    Output: `(B, T, dim)`, and the scores `(B, num_query_heads, T, S)` when
    `return_attention_scores=True`.

    Example:
        >>> gqa = keras.layers.GroupQueryAttention(head_dim=8, num_query_heads=4, num_key_value_heads=2)
        >>> gqa(torch.rand(2, 5, 16), torch.rand(2, 7, 16)).shape
        torch.Size([2, 5, 16])
    """

    _explicit_query_mask = True  # Keras's GroupedQueryAttention honours `query_mask=`

    def __init__(self, head_dim, num_query_heads, num_key_value_heads, dropout=0.0, use_bias=True,
                 sliding_window=None, flash_attention=None, kernel_initializer="glorot_uniform",
                 bias_initializer="zeros", kernel_regularizer=None, bias_regularizer=None, activity_regularizer=None,
                 kernel_constraint=None, bias_constraint=None, use_gate=False, seed=None, **kwargs):
        _positive_int("num_query_heads", num_query_heads)
        _positive_int("num_key_value_heads", num_key_value_heads)
        _positive_int("head_dim", head_dim)
        if num_query_heads % num_key_value_heads != 0:
            raise ValueError(
                "`num_query_heads` must be divisible by `num_key_value_heads`. Received: "
                f"num_query_heads={num_query_heads}, num_key_value_heads={num_key_value_heads}"
            )
        super().__init__(
            num_heads=num_query_heads, key_dim=head_dim, dropout=dropout, use_bias=use_bias,
            sliding_window=sliding_window, flash_attention=flash_attention, kernel_initializer=kernel_initializer,
            bias_initializer=bias_initializer, kernel_regularizer=kernel_regularizer,
            bias_regularizer=bias_regularizer, activity_regularizer=activity_regularizer,
            kernel_constraint=kernel_constraint, bias_constraint=bias_constraint, use_gate=use_gate, seed=seed,
            **kwargs,
        )
        self.head_dim = head_dim
        self.num_query_heads = num_query_heads
        self.num_key_value_heads = num_key_value_heads
        self.num_repeats = num_query_heads // num_key_value_heads
        self.sliding_window = sliding_window

    def build(self, query_shape, value_shape=None, key_shape=None):
        if len(query_shape) != 3:
            raise ValueError(
                f"Layer '{self.name}' expects a rank-3 `query` (batch, seq, features). "
                f"Received: query_shape={tuple(query_shape)}"
            )
        if value_shape is None and "_inferred_shapes" in self.__dict__:  # from a state_dict
            value_shape, key_shape = self.__dict__.pop("_inferred_shapes")
        if value_shape is not None and query_shape[-1] != value_shape[-1]:
            raise ValueError(
                "The last dimension of `query_shape` and `value_shape` must be equal, but are "
                f"{query_shape[-1]}, {value_shape[-1]}. Received: query_shape={tuple(query_shape)}, "
                f"value_shape={tuple(value_shape)}"
            )
        super().build(query_shape, value_shape, key_shape)

    def _projection_heads(self, name) -> int:
        # key / value with fewer heads (module order, hence weight order,
        # stays Keras's: query, key, gate, value, output)
        return self.num_key_value_heads if name in ("key", "value") else self.num_query_heads

    def _project(self, dense, x):
        y = super()._project(dense, x)
        if self.num_repeats > 1 and dense.name in ("key", "value"):
            y = y.repeat_interleave(self.num_repeats, dim=2)  # Keras's ops.repeat(axis=2)
        return y

    def compute_output_shape(self, query_shape, value_shape=None, key_shape=None):
        value_shape = tuple(query_shape) if value_shape is None else tuple(value_shape)
        if query_shape[-1] != value_shape[-1]:
            raise ValueError(
                "The last dimension of `query_shape` and `value_shape` must be equal, but are "
                f"{query_shape[-1]}, {value_shape[-1]}. Received: query_shape={tuple(query_shape)}, "
                f"value_shape={value_shape}"
            )
        return super().compute_output_shape(query_shape, value_shape, key_shape)

    def get_config(self):
        config = super().get_config()
        for key in _MHA_ONLY_KEYS:
            config.pop(key)
        config.update({"head_dim": self.head_dim, "num_query_heads": self.num_query_heads,
                       "num_key_value_heads": self.num_key_value_heads})
        return config


GroupQueryAttention = GroupedQueryAttention
