"""`Attention`: dot-product (Luong-style) attention."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from kerasish.layers.layer import Layer

# Keras's `Attention._apply_scores`: masked scores are lowered by this much
# (65504 in float16) before the softmax, so a fully-masked row attends uniformly.
_MASK_PENALTY = {torch.float16: 65504.0}
_MASK_PENALTY_DEFAULT = 1.0e9


class Attention(Layer):
    """Dot-product attention layer, a.k.a. Luong-style attention.

    `scores = query @ key^T` (times `scale` when `use_scale`), or for
    `score_mode="concat"` `concat_score_weight * sum(tanh(scale * (q + k)))`;
    `output = softmax(scores) @ value`. Without a learned scale, returned
    scores or active dropout, dot mode runs on
    `F.scaled_dot_product_attention` (the same numbers as Keras's matmul,
    softmax, matmul; a learned scale folded into the query would round
    differently, so `use_scale=True` runs Keras's explicit formula; so do
    bfloat16 inputs on the CPU, where it is faster and equals Keras).

    Args:
        use_scale: If True, a scalar `scale` weight scales the scores.
            Defaults to False.
        score_mode: "dot" or "concat". Defaults to "dot".
        dropout: Dropout rate on the attention weights. Defaults to 0.0.
        seed: Seed for dropout (kept in the config; torch's RNG is used).

    Call arguments:
        inputs: List `[query, value]` or `[query, value, key]`, shapes
            `(B, Tq, dim)`, `(B, Tv, dim)`, `(B, Tv, dim)`.
        mask: Optional list `[query_mask, value_mask]` of boolean `(B, Tq)`,
            `(B, Tv)` masks; defaults to the inputs' `_keras_mask`.
        training: Whether dropout is active.
        return_attention_scores: Also return the `(B, Tq, Tv)` weights.
        use_causal_mask: Apply a causal mask.

    Output shape: `(B, Tq, dim)`.

    Example:
        >>> q, v = torch.randn(2, 3, 4), torch.randn(2, 5, 4)
        >>> y = keras.layers.Attention()([q, v])
    """

    _no_mode_watch = "dropout"  # (`no_mode_warning`: watched while `dropout` > 0)

    def __init__(self, use_scale=False, score_mode="dot", dropout=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.use_scale = use_scale
        self.score_mode = score_mode
        self.dropout = dropout
        self.seed = seed
        if self.score_mode not in ["dot", "concat"]:
            raise ValueError(
                "Invalid value for argument score_mode. Expected one of {'dot', 'concat'}. "
                f"Received: score_mode={score_mode}"
            )
        self.supports_masking = True

    def _lazy_trainable_weights(self):
        """Trainable weights `build` creates (uninitialized parameters until then)."""
        names = ("scale",) if self.use_scale else ()
        return names + ("concat_score_weight",) if self.score_mode == "concat" else names

    def build(self, input_shape):
        self._validate_inputs(input_shape)
        self._check_shapes(input_shape)
        self.scale = None
        self.concat_score_weight = None
        if self.use_scale:
            self.scale = self.add_weight(name="scale", shape=(), initializer="ones", trainable=True)
        if self.score_mode == "concat":
            self.concat_score_weight = self.add_weight(
                name="concat_score_weight", shape=(), initializer="ones", trainable=True
            )

    def _infer_build_shape(self, weight_shapes):
        # the weights are scalars: any [query, value] shapes build them
        return [(None, None, None), (None, None, None)]

    def _validate_inputs(self, inputs, mask=None):
        name = type(self).__name__
        if not isinstance(inputs, (list, tuple)) or (inputs and isinstance(inputs[0], (int, type(None)))):
            received = tuple(inputs.shape) if hasattr(inputs, "shape") else inputs
            raise ValueError(
                f"{name} layer must be called on a list of inputs, namely [query, value] or "
                f"[query, value, key]. Received: inputs={received}."
            )
        if len(inputs) < 2 or len(inputs) > 3:
            raise ValueError(
                f"{name} layer accepts inputs list of length 2 or 3, namely [query, value] or "
                f"[query, value, key]. Received length: {len(inputs)}."
            )
        if mask is not None:
            if not isinstance(mask, (list, tuple)):
                raise ValueError(
                    f"{name} layer mask must be a list, namely [query_mask, value_mask]. Received: mask={mask}."
                )
            if len(mask) < 2 or len(mask) > 3:
                raise ValueError(f"{name} layer accepts mask list of length 2 or 3. Received: mask={mask}.")

    def _check_masks(self, q, v, q_mask, v_mask):
        """Masks as tensors (Keras converts arrays), of shape `(batch, Tq)`
        and `(batch, Tv)`; ValueError naming the layer otherwise."""
        out = []
        for label, m, x in (("query_mask", q_mask, q), ("value_mask", v_mask, v)):
            if m is not None:
                if not isinstance(m, torch.Tensor):
                    m = torch.as_tensor(np.asarray(m), device=x.device)
                if tuple(m.shape) != tuple(x.shape[:-1]):
                    raise ValueError(
                        f"Layer '{self.name}' ({type(self).__name__}): `mask` must be [query_mask, value_mask] "
                        f"with {label} of shape {tuple(x.shape[:-1])} (the input's shape without its last axis). "
                        f"Received: {label}.shape={tuple(m.shape)}"
                    )
            out.append(m)
        return out

    def _check_shapes(self, input_shape):
        """Build-time check that query, value and key fit together."""
        query, value = tuple(input_shape[0]), tuple(input_shape[1])
        key = tuple(input_shape[2]) if len(input_shape) > 2 else value
        received = f"Received: query.shape={query}, value.shape={value}, key.shape={key}"

        def differ(a, b):
            return a is not None and b is not None and a != b

        if differ(query[0], value[0]) or differ(value[0], key[0]):
            raise ValueError(f"Layer '{self.name}': query, value and key must have the same batch size. {received}")
        if len(query) != len(value) or len(value) != len(key) or len(query) < 3:
            raise ValueError(
                f"Layer '{self.name}': query, value and key must have the same rank, at least 3 "
                f"(batch, ..., steps, features). {received}"
            )
        if any(differ(a, b) or differ(b, c) for a, b, c in zip(query[1:-2], value[1:-2], key[1:-2])):
            raise ValueError(
                f"Layer '{self.name}': query, value and key must agree on every axis before the sequence "
                f"axis. {received}"
            )
        if len(value) > 1 and len(key) > 1 and differ(value[-2], key[-2]):
            raise ValueError(
                f"Layer '{self.name}': value and key must have the same sequence length (axis -2). {received}"
            )
        if differ(query[-1], key[-1]):
            raise ValueError(
                f"Layer '{self.name}': query and key must have the same last dimension to be scored "
                f"against each other. {received}"
            )

    def _calculate_scores(self, query, key):
        if self.score_mode == "dot":
            scores = torch.matmul(query, key.transpose(-2, -1))
            if self.scale is not None:
                scores = scores * self.scale
            return scores
        summed = query.unsqueeze(-2) + key.unsqueeze(-3)
        if self.scale is not None:
            summed = self.scale * summed
        return self.concat_score_weight * torch.tanh(summed).sum(-1)

    def _score_mask(self, tq, tv, v_mask, use_causal_mask, device):
        if use_causal_mask:
            causal = torch.ones(1, tq, tv, dtype=torch.bool, device=device).tril()
            if v_mask is not None:
                return v_mask.unsqueeze(-2) & causal
            return causal
        return v_mask

    def call(self, inputs, mask=None, training=False, return_attention_scores=False, use_causal_mask=False):
        self._validate_inputs(inputs, mask)
        q, v = inputs[0], inputs[1]
        k = inputs[2] if len(inputs) > 2 else v
        if not (q.is_floating_point() and v.is_floating_point() and k.is_floating_point()):
            # integer/bool inputs: cast to the compute dtype, as single-input layers do
            dtype = self._compute_torch_dtype
            q, v, k = (t if t.is_floating_point() else t.to(dtype) for t in (q, v, k))
        q_mask = mask[0] if mask else None
        v_mask = mask[1] if mask else None
        if q_mask is not None or v_mask is not None:
            q_mask, v_mask = self._check_masks(q, v, q_mask, v_mask)
        if v_mask is not None:
            v_mask = v_mask.to(torch.bool)
        score_mask = self._score_mask(q.shape[-2], k.shape[-2], v_mask, use_causal_mask, q.device)
        dropout_active = bool(training) and self.dropout > 0
        try:
            # a learned `scale` multiplies the scores, as Keras does: folded into the query for SDPA
            # it rounds differently (up to ~30 ulp), so that case takes the explicit path
            # bfloat16 on the CPU: Keras's explicit formula, bit for bit with Keras and 1.3-3.3x faster
            # there than SDPA's CPU kernel (1 thread, (32..8, 16..512, 32..64)); float16 keeps SDPA
            # (torch's CPU float16 matmul is ~7x slower), ~1 ulp from Keras's float16 maths
            if (self.score_mode == "dot" and self.scale is None and not return_attention_scores and not dropout_active
                    and not (q.dtype == torch.bfloat16 and q.device.type == "cpu")):
                out = self._sdpa(q, k, v, score_mask)
                weights = None
            else:
                scores = self._calculate_scores(q, k)
                if score_mask is not None:
                    if score_mask.ndim == 2:
                        score_mask = score_mask.unsqueeze(-2)
                    penalty = _MASK_PENALTY.get(scores.dtype, _MASK_PENALTY_DEFAULT)
                    scores = torch.where(score_mask, scores, scores - penalty)
                weights = torch.softmax(scores, dim=-1)
                dropped = F.dropout(weights, self.dropout, training=True) if dropout_active else weights
                out = torch.matmul(dropped, v)
        except RuntimeError:
            # a built layer called on shapes that do not fit: say so, naming the layer
            self._check_shapes([tuple(q.shape), tuple(v.shape), tuple(k.shape)])
            raise
        if q_mask is not None:
            out = torch.where(q_mask.to(torch.bool).unsqueeze(-1), out, 0.0)
        if return_attention_scores:
            return out, weights
        return out

    def _sdpa(self, q, k, v, score_mask):
        attn_mask = None
        if score_mask is not None:
            if score_mask.ndim == 2:
                score_mask = score_mask.unsqueeze(-2)
            # Keras subtracts the penalty from masked scores; adding it as an
            # additive mask is the same computation
            penalty = _MASK_PENALTY.get(q.dtype, _MASK_PENALTY_DEFAULT)
            attn_mask = torch.where(score_mask, 0.0, -penalty).to(q.dtype)
        return F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, scale=1.0)

    def compute_mask(self, inputs, mask=None):
        self._validate_inputs(inputs, mask)
        if mask is None or mask[0] is None:
            return None
        return mask[0]

    def compute_output_shape(self, input_shape):
        return (*tuple(input_shape[0])[:-1], tuple(input_shape[1])[-1])

    def get_config(self):
        config = super().get_config()
        config.update(
            {"use_scale": self.use_scale, "score_mode": self.score_mode, "dropout": self.dropout, "seed": self.seed}
        )
        return config
