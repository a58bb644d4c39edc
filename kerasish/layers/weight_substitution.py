"""A layer called with weights of another floating dtype put in its place
(`torch.func.functional_call(layer, {k: v.double() ...})`,
`torch.nn.utils.stateless`, `torch.func.stack_module_state` copies cast by
the user) computes in that dtype, as torch's own modules do and as the layer
would after `.to(dtype)`: its floating inputs are cast to the weights' dtype
(Keras's input autocast, to the dtype the call computes in) and the layer's
explicit casts (`out.to(compute dtype)`, a mixed policy's weight cast) follow.

Before, a float32 layer given float64 weights either raised torch's dtype
mismatch (Dense, Conv*, BatchNormalization...), or silently computed in
float32 and returned float32 (LSTM, Embedding, LayerNormalization,
MultiHeadAttention...: Keras's autocast of weights to the compute dtype), or
computed in float64 (PReLU), depending on the layer.

The layer notices through one weight, its *anchor* (the first floating
weight of the layer's variable dtype, for a model the first one of its
layers): the hot path checks that it is still the object in its place (an
identity check: reading a Variable's `.dtype` costs far more), the full path
reads the dtype of a tensor found there instead. A `functional_call` with
weights of the layer's own dtype computes as before, through the full path.
The dtype of the call is set on the layer for the call's duration only (the
weights themselves are swapped on the module for that long by torch); its
dtype policy, config and saved files never change.
"""

from __future__ import annotations

import torch

from kerasish.layers import call_context as ctx
from kerasish.layers import lazy_weights
from kerasish.variables import Variable


def anchor(layer, d):
    """(registry, key, weight, variable dtype) of the weight that tells a
    substitution, or None: the first floating weight of the layer's variable
    dtype (a model: of its layers), or a tensor put in a weight's place (the
    plan may be derived during a `functional_call`; the place gets the
    layer's weight back after it, and the next call derives the plan again)."""
    dtype = d["_dtype_policy"].variable_torch_dtype
    if not dtype.is_floating_point:
        return None
    modules = [layer] if not d["_modules"] else layer.modules()
    for module in modules:
        for registry in (module._parameters, module._buffers):
            for key, value in registry.items():
                if value is None or not value.is_floating_point() or lazy_weights.is_lazy(value):
                    continue
                if not isinstance(value, Variable):
                    if registry is module._buffers:
                        # a layer's own constant: an anchor in the variable dtype (Rescaling's scale, as a
                        # Variable would be); one of another dtype is no weight (Discretization's float64
                        # bin boundaries: a substitution must not be read from it)
                        if value.dtype is dtype:
                            return registry, key, value, dtype
                        continue
                    return registry, key, None, dtype  # (put in by a `functional_call` in progress)
                if value.dtype is dtype:
                    return registry, key, value, dtype
    return None


def substituted_dtype(layer, d):
    """The dtype the call computes in when weights of another floating dtype
    than the layer's variable dtype were put in its place, else None (then a
    weight replaced for good, by `load_state_dict(assign=True)`, a
    parametrization..., gets the layer's plan derived again). A layer without
    weights called inside such a call of a model computes in the model's
    dtype, as `.to(dtype)` of the model would have made it."""
    anchor = d.get("_weight_anchor")
    if anchor is None:
        outer = ctx.state().substituted
        if outer and outer[-1][0] is d["_compute_torch_dtype"]:
            return outer[-1][1]
        return None
    registry, key, original, variable_dtype = anchor
    value = registry.get(key)
    if value is original:
        return None
    dtype = torch.Tensor.dtype.__get__(value) if isinstance(value, torch.Tensor) else None
    if isinstance(value, Variable) and dtype is variable_dtype or value is None or not value.is_floating_point():
        _anchor_again(layer, d)  # replaced for good
        return None
    if dtype is variable_dtype or dtype is d["_compute_torch_dtype"]:
        return None  # (the same dtype: the values only)
    return dtype


def _anchor_again(layer, d) -> None:
    """A new anchor after the weight was replaced for good (`load_state_dict(assign=True)`, a
    parametrization, an RNN's first-call weight layout), in the hot path's plan too. The plan is
    not reset: a layer whose plan is derived only by its own calls (an RNN cell, which its layer
    runs directly) would keep None, and torch.compile would see the plan change once more."""
    new = d["_weight_anchor"] = anchor(layer, d)
    plan = d["_plain"]
    if plan:
        d["_plain"] = (*plan[:4], plan_spot(d, new))


def plan_spot(d, anchor):
    """The hot path's constants for `anchor`: None without one; for a leaf layer
    (registry name, key, variable dtype), which a compiled call reads (only constants in the
    plan: the anchor itself, a dict and a Variable, would cost ~10 dynamo guards per call);
    `()` for a model, whose anchor eager calls check (`_weight_anchor`)."""
    if anchor is None:
        return None
    if not d["_modules"]:
        for registry in ("_parameters", "_buffers"):
            if d[registry] is anchor[0]:
                return (registry, anchor[1], anchor[3])
    return ()


def anchor_again_after(module) -> None:
    """After a `functional_call` of kerasish's own (shape inference on the meta device): the
    layers whose plan was derived during it anchor their own weights again, so that their next
    call takes the same path as the ones after it (`torch.jit.trace` compares two calls)."""
    for m in module.modules():
        d = m.__dict__
        a = d.get("_weight_anchor")
        if a is not None and a[2] is None:
            _anchor_again(m, d)


def call(layer, d, dtype, args, kwargs):
    """The layer's call computing in `dtype` (its full path: inputs cast to
    `dtype`, no weight cast), everything restored afterwards."""
    saved = {k: d[k] for k in ("_compute_torch_dtype", "_mixed", "_plain", "_weight_anchor")}
    d["_compute_torch_dtype"] = dtype
    d["_mixed"] = False
    d["_plain"] = False  # (the full path, and no plan derived from the dtype of this call)
    d["_weight_anchor"] = None  # (no second look from a nested call of this layer)
    d["_substituted_dtype"] = dtype
    outer = ctx.state().substituted
    outer.append((saved["_compute_torch_dtype"], dtype))
    try:
        return layer.forward(*args, **kwargs)
    finally:
        outer.pop()
        d.pop("_substituted_dtype", None)
        replanned = d["_plain"] is None  # an attribute the plan depends on was set during the call
        d.update(saved)
        if replanned:
            d["_plain"] = None


def input_dtype(d, dtype: torch.dtype) -> torch.dtype:
    """The dtype a model casts a floating input of declared `dtype` to."""
    sub = d.get("_substituted_dtype")
    return sub if sub is not None and dtype.is_floating_point else dtype


def call_dtype(layer) -> torch.dtype:
    """The dtype `layer` computes in now (its compute dtype, or the dtype of
    weights put in its place): for a container that prepares a sublayer's
    tensors outside the sublayer's call (RNN's zero states for its cell)."""
    d = layer.__dict__
    dtype = substituted_dtype(layer, d)
    return d["_compute_torch_dtype"] if dtype is None else dtype
