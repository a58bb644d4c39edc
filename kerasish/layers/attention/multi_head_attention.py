"""`MultiHeadAttention`, on `F.scaled_dot_product_attention`."""

from __future__ import annotations

import math
import warnings

import torch
import torch.nn.functional as F
from torch.nn.attention import sdpa_kernel

from kerasish import constraints
from kerasish import initializers
from kerasish import regularizers
from kerasish.backend import config as backend_config
from kerasish.backend.keras_tensor import KerasTensor
from kerasish.layers.attention.base_attention import EinsumProjection
from kerasish.layers.attention.base_attention import additive_mask
from kerasish.layers.attention.base_attention import attention_equations
from kerasish.layers.attention.base_attention import common_sublayer_args
from kerasish.layers.attention.base_attention import masked_softmax
from kerasish.layers.input_spec import InputSpec
from kerasish.layers.layer import Layer
from kerasish.layers.regularization.base_random import attach_seed_generator
from kerasish.layers.regularization.base_random import keras_seeded_dropout
from kerasish.layers.regularization.base_random import seeded_generator_for
from kerasish.utils import naming
from kerasish.utils import tree


def _positive_int(name, value, allow_none=False):
    if allow_none and value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        extra = " or `None`" if allow_none else ""
        raise ValueError(
            f"Received an invalid value for argument `{name}`, expected a positive integer{extra}. "
            f"Received: {name}={value}"
        )



def _sublayer(key, attr):
    """A read-only accessor of the projection sublayer `key`; AttributeError (never KeyError) when the
    layer has none (`_gate_dense` without `use_gate`), as Keras, so `hasattr` and torch's module walks
    (`torch.jit.trace` probes `hasattr`) work."""

    def get(self):
        sub = self._modules.get(key)
        if sub is None:
            raise AttributeError(f"'{type(self).__name__}' object has no attribute '{attr}'")
        return sub

    return property(get)

class MultiHeadAttention(Layer):
    """Multi-head attention (Vaswani et al., 2017), Keras 3's layer.

    `query`, `key` and `value` are projected by per-head `EinsumDense`-style
    weights (sublayers `query`, `key`, `value`, `attention_output`, with
    Keras's shapes so `get_weights()` matches Keras 1:1), attended with scale
    `1 / sqrt(key_dim)`, and projected back.

    The attention runs on `F.scaled_dot_product_attention` whenever no scores
    are requested and dropout is inactive (masks become an additive mask, as in
    Keras's torch backend: a fully-masked query row attends uniformly); other
    cases use an explicit softmax (masked weights are 0).

    Args:
        num_heads: Number of attention heads.
        key_dim: Size of each head for query and key.
        value_dim: Size of each head for value. Defaults to `key_dim`.
        dropout: Dropout rate on the attention weights. Defaults to 0.0.
        use_bias: Whether the projections have biases. Defaults to True.
        output_shape: Int or tuple, the output's trailing shape. Defaults to
            the query's last dimension.
        attention_axes: Axes over which attention is applied (not batch, not
            features). Defaults to all axes between batch and features.
        sliding_window: Optional int: only keys with `|i - j| < sliding_window`
            are attended. Defaults to None.
        flash_attention: `None` lets torch's `F.scaled_dot_product_attention`
            pick its kernel; `False` keeps it off the flash kernel
            (`sdpa_kernel` with the other backends: math on CPU); `True`
            allows only the flash kernel (torch raises when it cannot run).
            As in Keras, `None` takes `keras.config.disable_flash_attention()`
            into account when the layer is created (an explicit `False` is
            honoured even while the global setting is enabled, where Keras
            3.15 lets torch decide). Defaults to None.
        kernel_initializer, bias_initializer: Defaults to "glorot_uniform",
            "zeros".
        kernel_regularizer, bias_regularizer, activity_regularizer,
            kernel_constraint, bias_constraint: Optional. Defaults to None.
        use_gate: Whether to gate the attention output with
            `sigmoid(gate(query))` (sublayer `gate`). Defaults to False.
        seed: Seed for dropout (kept in the config; torch's RNG is used).

    Call arguments:
        query: `(B, T, dim)`; value: `(B, S, dim)`; key: optional `(B, S, dim)`
            (defaults to `value`).
        query_mask, value_mask, key_mask: Optional boolean `(B, T)` / `(B, S)`
            masks; default to the inputs' `_keras_mask`. As in Keras 3, the
            query mask is always the query's own `_keras_mask`: an explicit
            `query_mask` is ignored (with a warning, once per layer; Keras
            ignores it silently). Use `attention_mask` to mask query rows.
        attention_mask: Optional boolean `(B, T, S)`, True = attend.
        return_attention_scores: Also return `(B, heads, T, S)` scores.
        training: Whether dropout is active.
        use_causal_mask: Apply a causal mask.

    Output shape: `(B, T, dim)` (or `(B, T, *output_shape)`).

    Example:
        >>> mha = keras.layers.MultiHeadAttention(num_heads=2, key_dim=4)
        >>> x = torch.randn(3, 5, 8)
        >>> y = mha(x, x)  # (3, 5, 8)
    """

    _no_mode_watch = "_dropout"  # (`no_mode_warning`: watched while `_dropout` > 0)

    _float_inputs = True  # an integer/bool query is cast to the compute dtype (value/key follow it)

    def __init__(
        self,
        num_heads,
        key_dim,
        value_dim=None,
        dropout=0.0,
        use_bias=True,
        output_shape=None,
        attention_axes=None,
        sliding_window=None,
        flash_attention=None,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        bias_regularizer=None,
        activity_regularizer=None,
        kernel_constraint=None,
        bias_constraint=None,
        use_gate=False,
        seed=None,
        **kwargs,
    ):
        _positive_int("num_heads", num_heads)
        _positive_int("key_dim", key_dim)
        _positive_int("value_dim", value_dim, allow_none=True)
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(
                f"Invalid value received for argument `dropout`, expected a float in [0, 1). Received: dropout={dropout}"
            )
        super().__init__(**kwargs)
        self.supports_masking = True
        self._num_heads = num_heads
        self._key_dim = key_dim
        self._value_dim = value_dim if value_dim else key_dim
        self._dropout = dropout
        self._use_bias = use_bias
        self._use_gate = use_gate
        if output_shape:
            if isinstance(output_shape, int):
                output_shape = (output_shape,)
            try:
                output_shape = tuple(output_shape)
            except TypeError:
                raise ValueError(
                    f"Invalid `output_shape`: {output_shape}. When specified, the `output_shape` should be "
                    "of type tuple, list, or int."
                ) from None
            if not all(isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in output_shape):
                raise ValueError(
                    f"Invalid `output_shape`: expected positive integers. Received: output_shape={output_shape}"
                )
        self._output_shape = output_shape
        if flash_attention and dropout > 0.0:
            raise ValueError(
                "Dropout is not supported when flash attention is enabled. Please set dropout to 0.0 to use "
                "flash attention."
            )
        # read once, as Keras does; unlike Keras's `flash_attention or
        # is_flash_attention_enabled()`, an explicit False is honoured
        if flash_attention is None:
            flash_attention = backend_config.is_flash_attention_enabled()
        self._flash_attention = flash_attention
        if isinstance(attention_axes, int):
            attention_axes = (attention_axes,)
        elif attention_axes and not isinstance(attention_axes, (list, tuple)):
            raise ValueError(
                f"`attention_axes` must be an int, list, or tuple.Received: attention_axes={attention_axes}"
            )
        if attention_axes is not None and not all(
            isinstance(a, int) and not isinstance(a, bool) for a in attention_axes
        ):
            raise TypeError(
                f"`attention_axes` must hold integers (axes of the query). Received: attention_axes={attention_axes}"
            )
        self._attention_axes = attention_axes
        if sliding_window is not None and (not isinstance(sliding_window, int) or sliding_window <= 0):
            raise ValueError(
                f"`sliding_window` must be `None` or a positive integer. Received: sliding_window={sliding_window}"
            )
        self._sliding_window = sliding_window
        self.seed = seed
        self._common = common_sublayer_args(
            kernel_initializer,
            bias_initializer,
            kernel_regularizer,
            bias_regularizer,
            kernel_constraint,
            bias_constraint,
        )
        self._activity_regularizer = regularizers.get(activity_regularizer)
        self._inverse_sqrt_key_dim = 1.0 / math.sqrt(float(self._key_dim))
        self._projections_built = False
        self._make_projections()

    def _make_projections(self):
        """The projection sublayers, unbuilt: registered under Keras's names
        in Keras's creation order (state_dict keys read `query.kernel`,
        `attention_output.bias`, ...), their weights uninitialized parameters
        until `build`, so an optimizer made before the first call holds them."""
        names = ("query", "key", "gate", "value") if self._use_gate else ("query", "key", "value")
        for name in names:
            setattr(self, name, EinsumProjection(1, self._common, self._use_bias, name=name, dtype=self.dtype_policy))
        self.attention_output = EinsumProjection(
            2, self._common, self._use_bias, name="attention_output", dtype=self.dtype_policy
        )

    def _projection_heads(self, name) -> int:
        """Heads of projection `name` (GroupedQueryAttention: fewer for key/value)."""
        return self._num_heads

    # Keras's accessors for the projection sublayers
    query_dense = _query_dense = _sublayer("query", "_query_dense")
    key_dense = _key_dense = _sublayer("key", "_key_dense")
    value_dense = _value_dense = _sublayer("value", "_value_dense")
    output_dense = _output_dense = _sublayer("attention_output", "_output_dense")
    _gate_dense = _sublayer("gate", "_gate_dense")
    num_heads = property(lambda self: self._num_heads)
    key_dim = property(lambda self: self._key_dim)
    value_dim = property(lambda self: self._value_dim)
    dropout = property(lambda self: self._dropout)
    use_bias = property(lambda self: self._use_bias)
    attention_axes = property(lambda self: self._attention_axes)

    # ----------------------------------------------------------------- build
    def build(self, query_shape, value_shape=None, key_shape=None):
        if value_shape is None and "_inferred_shapes" in self.__dict__:
            value_shape, key_shape = self.__dict__.pop("_inferred_shapes")
        if value_shape is None:
            # automatic build from the query alone: the projections are
            # created on the first call, which sees value and key too
            return
        key_shape = value_shape if key_shape is None else key_shape
        batches = {s[0] for s in (query_shape, value_shape, key_shape) if s and s[0] is not None}
        if len(batches) > 1:
            raise ValueError(
                f"Layer '{self.name}': `query`, `value` and `key` must have the same batch size. Received: "
                f"query_shape={tuple(query_shape)}, value_shape={tuple(value_shape)}, key_shape={tuple(key_shape)}"
            )
        if tuple(value_shape[1:-1]) != tuple(key_shape[1:-1]):
            raise ValueError(
                "All dimensions of `value` and `key`, except the last one, must be equal. "
                f"Received: value_shape={tuple(value_shape)} and key_shape={tuple(key_shape)}"
            )
        h, kd, vd = self._num_heads, self._key_dim, self._value_dim
        # the projections exist since `__init__` (see `_make_projections`):
        # built here in Keras's creation order, so `weights` / `get_weights()` line up
        for name, shape, size in (("query", query_shape, kd), ("key", key_shape, kd), ("gate", query_shape, vd),
                                  ("value", value_shape, vd)):
            proj = self._modules.get(name)
            if proj is not None:
                proj.configure((shape[-1], self._projection_heads(name), size), len(shape))
                proj.build(shape)
        if self._dropout > 0:
            # Keras builds its Dropout(seed=self.seed) here, between the value and
            # output projections: its SeedGenerator takes a default seed now
            attach_seed_generator(self, self.seed)
            self.__dict__["_seed_state_after"] = "value"  # (Keras's `variables` order)
        out = tuple(self._output_shape) if self._output_shape else (query_shape[-1],)
        self._modules["attention_output"].configure((h, vd, *out), len(query_shape) + 1)
        self._modules["attention_output"].build(None)
        rank = len(query_shape) + 1  # projected rank: (..., heads, size)
        if self._attention_axes is None:
            self._attention_axes = tuple(range(1, rank - 2))
        else:
            axes = tuple(a if a >= 0 else (rank - 1) + a for a in self._attention_axes)
            if not axes or any(not 1 <= a <= rank - 3 for a in axes) or len(set(axes)) != len(axes):
                raise ValueError(
                    f"Layer '{self.name}': `attention_axes` must be distinct axes of the query other than the "
                    f"batch axis and the feature axis, i.e. in [1, {rank - 3}] (or [{2 - rank}, -2]) for a query "
                    f"of shape {tuple(query_shape)}. Received: attention_axes={self._attention_axes}"
                )
            self._attention_axes = axes
        # axes that are neither batch, attended nor features pair query with value one to one
        inner = [i for i in range(1, len(query_shape) - 1) if i not in self._attention_axes]
        for other, label in ((value_shape, "value"), (key_shape, "key")):
            if other is None:
                continue
            if len(other) != len(query_shape) or any(
                query_shape[i] is not None and other[i] is not None and query_shape[i] != other[i] for i in inner
            ):
                raise ValueError(
                    f"Layer '{self.name}': query and {label} must have the same rank and the same size on every "
                    f"axis that is not attended over (attention_axes={self._attention_axes}). Received: "
                    f"query_shape={tuple(query_shape)}, {label}_shape={tuple(other)}"
                )
        self._dot_eq, self._combine_eq, scores_rank = attention_equations(rank, self._attention_axes)
        n = len(self._attention_axes)
        self._norm_axes = tuple(range(scores_rank - n, scores_rank))
        self._mask_axis = -2 * n - 1
        self._standard = rank == 4 and self._attention_axes == (1,)
        self._projections_built = True
        # the query projection fixes the query's rank and feature size (checked on every call)
        self.input_spec = InputSpec(ndim=len(query_shape), axes={-1: query_shape[-1]})

    def _infer_build_shape(self, weight_shapes):
        """Shapes from a state_dict's `query.kernel`, `key.kernel`,
        `value.kernel` (rank-3 inputs, unless `attention_axes` says otherwise)."""
        dims = [weight_shapes.get(f"{n}.kernel") for n in ("query", "value", "key")]
        if any(d is None for d in dims) or self._attention_axes is not None:
            return None
        query_shape, value_shape, key_shape = ((None, None, d[0]) for d in dims)
        self.__dict__["_inferred_shapes"] = (value_shape, key_shape)
        return query_shape

    def _build_from_call(self, query, value, key):
        # inside `call` the layer's name scope is already open: build unwrapped
        self._build_from_shapes(query.shape, value.shape, None if key is None else key.shape, query.device)

    def _build_from_shapes(self, query_shape, value_shape, key_shape, device):
        from kerasish.layers import call_context as ctx

        d = self.__dict__
        query_shape, value_shape = tuple(query_shape), tuple(value_shape)
        key_shape = None if key_shape is None else tuple(key_shape)
        previous = ctx.state().build_device
        ctx.state().build_device = device
        d["_in_build"] = True
        try:
            self.build(query_shape, value_shape, key_shape)
        finally:
            ctx.state().build_device = previous
            d["_in_build"] = False
        # Keras 3's build config for this layer (what `build_from_config` replays)
        shapes = {"query_shape": query_shape, "value_shape": value_shape}
        if key_shape is not None:
            shapes["key_shape"] = key_shape
        d["_build_shapes_dict"] = shapes

    def compute_output_spec(self, query, value, key=None, *args, **kwargs):
        # A symbolic (functional) call builds from the KerasTensors' shapes,
        # so unknown dimensions stay None in the build config, as in Keras.
        if not self._projections_built and isinstance(value, KerasTensor):
            with naming.name_scope(self.name):
                # (no device of its own: a `torch.device(...)` / `keras.device(...)` scope decides, as for
                # every other layer built symbolically; meta included)
                self._build_from_shapes(
                    query.shape, value.shape, key.shape if isinstance(key, KerasTensor) else None, None
                )
        return super().compute_output_spec(query, value, key, *args, **kwargs)

    _explicit_query_mask = False  # see `call`

    # ------------------------------------------------------------------ call
    def call(
        self,
        query,
        value,
        key=None,
        query_mask=None,
        value_mask=None,
        key_mask=None,
        attention_mask=None,
        return_attention_scores=False,
        training=None,
        use_causal_mask=False,
    ):
        if not isinstance(value, torch.Tensor):  # Keras converts array arguments too
            value = torch.as_tensor(value, device=query.device)
        if key is not None and not isinstance(key, torch.Tensor):
            key = torch.as_tensor(key, device=query.device)
        if not self._projections_built:
            if torch.compiler.is_compiling():
                _build_outside_the_trace(self, query, value, key)
            else:
                self._build_from_call(query, value, key)
        if key is None:
            key = value
        if value.dtype != query.dtype:  # only the first argument is autocast
            value = value.to(query.dtype)
        if key.dtype != query.dtype:
            key = key.to(query.dtype)
        # Keras 3's MultiHeadAttention.call reads the query's mask from the
        # query tensor only (`query._keras_mask`): an explicit `query_mask=`
        # is overwritten, so a query without a Keras mask attends with no
        # query mask (keras.io's Transformer decoder passes one on plain
        # tensors; matching numbers need the same rule)
        # (GroupedQueryAttention honours it, as Keras's does)
        if not self._explicit_query_mask:
            if query_mask is not None and not self.__dict__.get("_warned_query_mask"):
                self.__dict__["_warned_query_mask"] = True
                warnings.warn(
                    f"Layer '{self.name}': `query_mask` is ignored, as in Keras 3; the query mask comes from the "
                    "query tensor's Keras mask (`query._keras_mask`). Pass `attention_mask` to mask query rows.",
                    stacklevel=2,
                )
            query_mask = None
        if query_mask is None:
            query_mask = tree.get_mask(query)
        if value_mask is None:
            value_mask = tree.get_mask(value)
        if key_mask is None:
            key_mask = tree.get_mask(key)
        own_mask = None
        if not self._explicit_query_mask:
            # Keras 3's MultiHeadAttention.call takes the Keras masks off its
            # input tensors (`set_keras_mask(x, None)` on query, value, key)
            # and puts the query's on its output: a layer after it that reads
            # the same query tensor (a residual `Add()([x, attention(x, x)])`)
            # sees no mask on it. Functional graphs from Keras 3.0-3.3 (with
            # `"mask": null` recorded) take their numbers from this rule.
            own_mask = query_mask
            for t in (query, value, key):
                if tree.get_mask(t) is not None:
                    t._keras_mask = None
        causal_only = (
            use_causal_mask
            and query_mask is None
            and value_mask is None
            and key_mask is None
            and attention_mask is None
            and self._sliding_window is None
            # (as Keras: a subclass's own `_compute_attention` gets the causal mask made)
            and not type(self)._custom_compute_attention
        )
        if causal_only:
            mask = None
        else:
            if type(self)._custom_attention_mask:
                mask = self._compute_attention_mask(query, value, query_mask=query_mask, value_mask=value_mask,
                                                    key_mask=key_mask, attention_mask=attention_mask,
                                                    use_causal_mask=use_causal_mask)
            else:
                mask = self._attention_mask(query, value, query_mask, value_mask, key_mask, attention_mask,
                                            use_causal_mask)
        if self._use_gate:
            gate = torch.sigmoid(self._project(self._modules["gate"], query))
        m = self._modules
        q = self._project(m["query"], query)
        k = self._project(m["key"], key)
        v = self._project(m["value"], value)
        if type(self)._custom_compute_attention:
            # a subclass's own `_compute_attention` (Keras's override point) gets the projected q, k, v
            # positional, as Keras calls it (overrides written with older signatures keep working)
            out, scores = self._compute_attention(q, k, v, mask, training, return_attention_scores)
        else:
            dropout_active = bool(training) and self._dropout > 0.0
            if self._standard and not return_attention_scores and not dropout_active:
                out, scores = self._sdpa(q, k, v, mask, causal_only), None
            else:
                out, scores = self._explicit(q, k, v, mask, causal_only, dropout_active)
        if self._use_gate:
            out = out * gate
        out = self._project(m["attention_output"], out)
        if own_mask is not None:
            out._keras_mask = own_mask
        if return_attention_scores:
            return out, scores
        return out

    # Keras's override points, each True on a subclass (and its subclasses) defining its own
    _custom_compute_attention = False
    _custom_attention_mask = False
    _custom_masked_softmax = False

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "_compute_attention" in cls.__dict__:
            cls._custom_compute_attention = True
        if "_compute_attention_mask" in cls.__dict__:
            cls._custom_attention_mask = True
        if "_masked_softmax" in cls.__dict__:
            cls._custom_masked_softmax = True

    def _compute_attention_mask(self, query, value, query_mask=None, value_mask=None, key_mask=None,
                                attention_mask=None, use_causal_mask=False):
        """Keras's combined boolean `(B, T, S)` attention mask from the Keras
        masks, `attention_mask` and the causal mask (an override point: a
        subclass's own is what `call` uses)."""
        return self._attention_mask(query, value, query_mask, value_mask, key_mask, attention_mask, use_causal_mask)

    def _masked_softmax(self, attention_scores, attention_mask=None):
        """Keras's softmax over the attention axes with masked keys left out
        (an override point: a subclass's own runs where Keras runs it, on the
        explicit path: attention scores returned or attention dropout)."""
        if attention_mask is not None:
            while attention_mask.ndim < attention_scores.ndim:
                attention_mask = attention_mask.unsqueeze(self._mask_axis)
        return masked_softmax(attention_scores, attention_mask, self._norm_axes)

    def _compute_attention(
        self, query, key, value, attention_mask=None, training=None, return_attention_scores=False,
        use_causal_mask=False,
    ):
        """Keras's attention over projected heads, the override point of its
        subclasses (KerasHub's CachedMultiHeadAttention calls it from its own
        `call`; a subclass's own `_compute_attention` is what `call` runs).

        Args:
            query: projected query, `(B, T, num_heads, key_dim)`.
            key: projected key, `(B, S, num_heads, key_dim)`.
            value: projected value, `(B, S, num_heads, value_dim)`.
            attention_mask: boolean, broadcastable to `(B, T, S)`; True attends.
            training: dropout on the attention weights when True.
            return_attention_scores: compute the scores (explicit softmax path).
            use_causal_mask: a lower-triangular mask too (combined with `attention_mask`).

        Returns:
            `(attention_output (B, T, num_heads, value_dim), attention_scores or None)`.
        """
        mask = None if attention_mask is None else self._check_attention_mask(attention_mask, query, value)
        causal_only = use_causal_mask and mask is None
        if use_causal_mask and mask is not None:
            t, s = query.shape[1], key.shape[1]
            mask = mask & torch.ones(t, s, dtype=torch.bool, device=query.device).tril()
        dropout_active = bool(training) and self._dropout > 0.0
        if self._standard and not return_attention_scores and not dropout_active:
            return self._sdpa(query, key, value, mask, causal_only), None
        return self._explicit(query, key, value, mask, causal_only, dropout_active)

    def _project(self, dense, x):
        y = dense.project(x)
        if self._activity_regularizer is not None:
            self.add_loss(self._activity_regularizer(y) / y.shape[0])
        return y

    def _attention_mask(self, query, value, query_mask, value_mask, key_mask, attention_mask, use_causal_mask):
        """Keras's combined (B, T, S) boolean mask, or None."""
        auto = None

        def _and(a, b):
            return b if a is None else a & b

        if query_mask is not None:
            auto = query_mask.to(torch.bool).unsqueeze(-1)
        if value_mask is not None:
            auto = _and(auto, value_mask.to(torch.bool).unsqueeze(-2))
        if key_mask is not None:
            auto = _and(auto, key_mask.to(torch.bool).unsqueeze(-2))
        t, s = query.shape[1], value.shape[1]
        if use_causal_mask:
            auto = _and(auto, torch.ones(t, s, dtype=torch.bool, device=query.device).tril().unsqueeze(0))
        if self._sliding_window is not None:
            rows = torch.arange(t, device=query.device).view(1, t, 1)
            cols = torch.arange(s, device=query.device).view(1, 1, s)
            auto = _and(auto, (rows - cols).abs() < self._sliding_window)
        if attention_mask is not None:
            attention_mask = self._check_attention_mask(attention_mask, query, value)
            return attention_mask if auto is None else attention_mask & auto
        return auto

    def _check_attention_mask(self, mask, query, value):
        """`attention_mask` as a bool tensor (Keras converts arrays) that
        broadcasts to `(B, T, S)`; ValueError naming the layer otherwise."""
        if not isinstance(mask, torch.Tensor):
            mask = torch.as_tensor(mask, device=query.device)
        if self._standard:
            target = (query.shape[0], query.shape[1], value.shape[1])
            shape = tuple(mask.shape)
            if len(shape) > 3 or any(m != 1 and m != t for m, t in zip(reversed(shape), reversed(target))):
                raise ValueError(
                    f"Layer '{self.name}': `attention_mask` must broadcast to (batch, target length, source length) "
                    f"= {target}. Received: attention_mask.shape={shape}"
                )
        return mask.to(torch.bool)

    def _sdpa(self, q, k, v, mask, causal_only):
        # (B, T, H, D) -> (B, H, T, D): views, last dim stays contiguous
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        attn_mask = None
        if mask is not None:
            while mask.ndim < 4:
                mask = mask.unsqueeze(self._mask_axis)
            attn_mask = additive_mask(mask, q.dtype)
        if self._flash_attention is None:
            out = F.scaled_dot_product_attention(
                q, k, v, attn_mask=attn_mask, is_causal=causal_only, scale=self._inverse_sqrt_key_dim
            )
        else:
            with sdpa_kernel(backend_config.sdpa_backends(self._flash_attention)):
                out = F.scaled_dot_product_attention(
                    q, k, v, attn_mask=attn_mask, is_causal=causal_only, scale=self._inverse_sqrt_key_dim
                )
        out = out.transpose(1, 2)
        if mask is not None and self._dropout > 0.0:
            # Keras runs this case through its masked softmax: rows with no
            # attended key give 0, not the uniform average SDPA gives
            out = out * mask.any(-1, keepdim=True).transpose(1, 2).to(out.dtype)
        return out

    def _attention_dropout(self, scores):
        """Keras's `Dropout(rate, seed=self.seed)` on the attention weights:
        unseeded, the fused F.dropout on the global RNG (as Keras's torch
        backend); seeded, Keras's draw from the layer's SeedGenerator."""
        gen = None
        if self.seed is not None and not torch.compiler.is_compiling():
            gen = seeded_generator_for(self, scores.device)
        if gen is None:
            return F.dropout(scores, self._dropout, training=True)
        return keras_seeded_dropout(scores, self._dropout, gen)

    def _explicit(self, q, k, v, mask, causal_only, dropout_active):
        if causal_only:
            t, s = q.shape[1], k.shape[1]
            mask = torch.ones(t, s, dtype=torch.bool, device=q.device).tril().unsqueeze(0)
        q = q * self._inverse_sqrt_key_dim
        if self._standard:
            scores = torch.matmul(q.transpose(1, 2), k.permute(0, 2, 3, 1))
        else:
            scores = torch.einsum(self._dot_eq, k, q)
        if mask is not None:
            while mask.ndim < scores.ndim:
                mask = mask.unsqueeze(self._mask_axis)
        if type(self)._custom_masked_softmax:
            scores = self._masked_softmax(scores, mask)  # a subclass's own (Keras's explicit path calls it)
        else:
            scores = masked_softmax(scores, mask, self._norm_axes)
        weights = self._attention_dropout(scores) if dropout_active else scores
        if self._standard:
            out = torch.matmul(weights, v.transpose(1, 2)).transpose(1, 2)
        else:
            out = torch.einsum(self._combine_eq, weights, v)
        return out, scores

    # ---------------------------------------------------------------- shapes
    def compute_output_shape(self, query_shape, value_shape=None, key_shape=None):
        query_shape = tuple(query_shape)
        value_shape = query_shape if value_shape is None else tuple(value_shape)
        key_shape = value_shape if key_shape is None else tuple(key_shape)
        if value_shape[1:-1] != key_shape[1:-1]:
            raise ValueError(
                "All dimensions of `value` and `key`, except the last one, must be equal. "
                f"Received: value_shape={value_shape} and key_shape={key_shape}"
            )
        if self._output_shape:
            return query_shape[:-1] + tuple(self._output_shape)
        return query_shape

    def quantize(self, mode=None, config=None, type_check=True):
        """Keras quantizes the projections (`model.quantize(...)`, or
        `layer.query_dense.quantize(...)`), not the attention layer itself:
        after Keras's argument checks (an unbuilt layer, an unknown mode:
        ValueError) this raises Keras's NotImplementedError."""
        from kerasish.quantizers.quantization_config import validate_and_resolve_config

        self._check_quantize_args(validate_and_resolve_config(mode, config).mode, self.compute_dtype)
        raise self._not_implemented_error(self.quantize)

    def get_config(self):
        config = super().get_config()
        c = self._common
        config.update(
            {
                "num_heads": self._num_heads,
                "key_dim": self._key_dim,
                "value_dim": self._value_dim,
                "dropout": self._dropout,
                "use_bias": self._use_bias,
                "use_gate": self._use_gate,
                "output_shape": self._output_shape,
                "attention_axes": self._attention_axes,
                "sliding_window": self._sliding_window,
                "kernel_initializer": initializers.serialize(c["kernel_initializer"]),
                "bias_initializer": initializers.serialize(c["bias_initializer"]),
                "kernel_regularizer": regularizers.serialize(c["kernel_regularizer"]),
                "bias_regularizer": regularizers.serialize(c["bias_regularizer"]),
                "activity_regularizer": regularizers.serialize(self._activity_regularizer),
                "kernel_constraint": constraints.serialize(c["kernel_constraint"]),
                "bias_constraint": constraints.serialize(c["bias_constraint"]),
                "seed": self.seed,
            }
        )
        return config


def _build_outside_the_trace(layer, query, value, key) -> None:
    """The projections' build in a first call under `torch.compile` (a model compiled before its first
    call, torch's habit): run eagerly at a graph break, as dynamo initializes torch's own lazy modules.
    Traced, it failed inside dynamo (fake tensors cannot draw the initializers' random kernels). Under
    `fullgraph=True` the graph break is refused with the way out in its message."""
    if not layer._projections_built:
        layer._build_from_call(query, value, key)


_FULLGRAPH_BUILD = (
    "MultiHeadAttention builds its projections on its first call, outside the graph: under "
    "torch.compile(fullgraph=True) call it once (or `layer.build(query_shape, value_shape)`) before compiling"
)
try:  # (torch >= 2.7 shows a reason in the graph-break message)
    _build_outside_the_trace = torch.compiler.disable(_build_outside_the_trace, reason=_FULLGRAPH_BUILD)
except TypeError:  # pragma: no cover - older torch
    _build_outside_the_trace = torch.compiler.disable(_build_outside_the_trace)
