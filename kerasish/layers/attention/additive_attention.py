"""`AdditiveAttention`: Bahdanau-style attention."""

from __future__ import annotations

import torch

from kerasish.layers.attention.attention import Attention


class AdditiveAttention(Attention):
    """Additive attention layer, a.k.a. Bahdanau-style attention.

    `scores = sum(scale * tanh(query[:, :, None] + key[:, None]), axis=-1)`,
    `output = softmax(scores) @ value` (explicit softmax: SDPA has no
    additive score).

    Args:
        use_scale: If True, a `scale` weight of shape `(dim,)` (glorot uniform)
            scales the scores. Defaults to True.
        dropout: Dropout rate on the attention weights. Defaults to 0.0.

    Call arguments: as `Attention`.

    Output shape: `(B, Tq, dim)`.

    Example:
        >>> q, v = torch.randn(2, 3, 4), torch.randn(2, 5, 4)
        >>> y = keras.layers.AdditiveAttention()([q, v])
    """

    def __init__(self, use_scale=True, dropout=0.0, **kwargs):
        kwargs.pop("score_mode", None)
        super().__init__(use_scale=use_scale, dropout=dropout, **kwargs)
        self.score_mode = "additive"

    def _lazy_trainable_weights(self):
        """Trainable weights `build` creates (uninitialized parameters until then)."""
        return ("scale",) if self.use_scale else ()

    def build(self, input_shape):
        self._validate_inputs(input_shape)
        self._check_shapes(input_shape)
        self.scale = None
        self.concat_score_weight = None
        if self.use_scale:
            self.scale = self.add_weight(
                name="scale", shape=(input_shape[0][-1],), initializer="glorot_uniform", trainable=True
            )

    def _infer_build_shape(self, weight_shapes):
        scale = weight_shapes.get("scale")
        return None if scale is None else [(None, None, scale[0]), (None, None, scale[0])]

    def _calculate_scores(self, query, key):
        t = torch.tanh(query.unsqueeze(-2) + key.unsqueeze(-3))
        if self.scale is not None:
            t = t * self.scale
        return t.sum(-1)

    def get_config(self):
        config = super().get_config()
        del config["score_mode"]
        return config
