"""Keras attention layers."""

from kerasish.layers.attention.additive_attention import AdditiveAttention
from kerasish.layers.attention.attention import Attention
from kerasish.layers.attention.multi_head_attention import MultiHeadAttention
from kerasish.layers.attention.grouped_query_attention import GroupQueryAttention
from kerasish.layers.attention.grouped_query_attention import GroupedQueryAttention

__all__: list[str] = ["AdditiveAttention", "Attention", "MultiHeadAttention", "GroupQueryAttention", "GroupedQueryAttention"]
