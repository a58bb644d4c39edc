"""`keras.remat` and `keras.RematScope`: rematerialization (gradient
checkpointing) on `torch.utils.checkpoint`."""

from __future__ import annotations

import functools
import math

import torch
from torch.utils.checkpoint import checkpoint

from kerasish.layers import call_context as ctx
from kerasish.utils import naming

_MODES = ("full", "activations", "larger_than", "list_of_layers", None)


def _any_symbolic(args, kwargs) -> bool:
    from kerasish.utils import tree

    return tree.any_symbolic(list(args)) or tree.any_symbolic(dict(kwargs))


def remat(f):
    """Wraps `f` so that its intermediate activations are not kept for the
    backward pass but recomputed then (`torch.utils.checkpoint.checkpoint`,
    non-reentrant, RNG state preserved so dropout recomputes the same mask).

    Gradients equal those of `f` itself; memory falls, compute rises by one
    forward of `f`. On KerasTensors (building a functional model) `f` is
    simply called.

    >>> y = keras.remat(expensive_fn)(x)
    """
    if not callable(f):
        raise TypeError(f"`remat` expects a callable. Received: f={f!r}")

    @functools.wraps(f)
    def wrapped(*args, **kwargs):
        if _any_symbolic(args, kwargs) or not torch.is_grad_enabled():
            return f(*args, **kwargs)
        return checkpoint(f, *args, use_reentrant=False, **kwargs)

    return wrapped


class RematScope:
    """Layers created inside rematerialize their calls (Keras 3).

    Args:
        mode: "full" (every layer created inside), "activations" (only the
            `activation` of layers that have one), "larger_than" (layers
            whose output has more than `output_size_threshold` elements),
            "list_of_layers" (layers named in `layer_names`), or None (no
            rematerialization, e.g. to switch it off in a nested scope).
            Defaults to "full".
        output_size_threshold: Element count for "larger_than". Defaults to
            1024.
        layer_names: Layer names for "list_of_layers". Defaults to [].

    A layer reads the innermost scope when it is created, and its eager
    calls then run under `torch.utils.checkpoint` (see `keras.remat`).
    """

    def __init__(self, mode="full", output_size_threshold=1024, layer_names=None):
        if mode not in _MODES:
            raise ValueError(
                f"Invalid mode '{mode}'. Supported modes are: 'full', 'activations', 'larger_than', "
                "'list_of_layers', or  None."
            )
        self.mode = mode
        self.output_size_threshold = output_size_threshold
        self.layer_names = layer_names or []
        self._pushed = False

    def __enter__(self):
        ctx.state().remat.append(self)
        self._pushed = True
        return self

    def __exit__(self, *exc):
        if self._pushed:
            self._pushed = False
            ctx.state().remat.pop()
        return False

    def __repr__(self):
        return (f"RematScope(mode={self.mode!r}, output_size_threshold={self.output_size_threshold}, "
                f"layer_names={self.layer_names})")


def get_current_remat_mode():
    """The innermost open `RematScope` (None when none is open or its mode is
    None)."""
    stack = ctx.state().remat
    if not stack or stack[-1].mode is None:
        return None
    return stack[-1]


def _output_size(layer, args, kwargs) -> int:
    from kerasish.backend.keras_tensor import KerasTensor
    from kerasish.utils import tree

    def spec_of(x):
        return KerasTensor(tuple(x.shape), dtype=x.dtype) if isinstance(x, torch.Tensor) else x

    spec = layer.compute_output_spec(*tree.map_structure(spec_of, list(args)),
                                     **{k: spec_of(v) for k, v in kwargs.items()})
    return sum(math.prod(d or 1 for d in t.shape) for t in tree.flatten(spec) if isinstance(t, KerasTensor))


def layer_call(layer, call, args, kwargs, training, cast_dtype):
    """`call(*args, **kwargs)` of `layer` under its remat mode. The
    recomputation in the backward pass runs outside the layer's call, so the
    closure restores what the call relies on: the training mode sublayers
    inherit, the layer's name scope and its mixed-precision weight cast."""
    mode = layer.__dict__["_remat_mode"]
    if ctx.state().symbolic or not torch.is_grad_enabled():
        return call(*args, **kwargs)  # shape inference or no backward: nothing to save
    if mode.mode == "list_of_layers" and layer.name not in mode.layer_names:
        return call(*args, **kwargs)
    if mode.mode == "activations":
        names = [n for n in ("activation", "_act") if layer.__dict__.get(n) is not None]
        if not names:
            return call(*args, **kwargs)
        saved = {n: layer.__dict__[n] for n in names}
        try:
            for n in names:
                layer.__dict__[n] = remat(saved[n])
            return call(*args, **kwargs)
        finally:
            layer.__dict__.update(saved)
    if mode.mode == "larger_than":
        # the output size per input shapes, inferred once (Keras infers it every call)
        from kerasish.utils import tree

        key = tuple(tuple(t.shape) for t in tree.flatten(list(args)) if isinstance(t, torch.Tensor))
        sizes = layer.__dict__.setdefault("_remat_output_sizes", {})
        if key not in sizes:
            sizes[key] = _output_size(layer, args, kwargs)
        if sizes[key] <= mode.output_size_threshold:
            return call(*args, **kwargs)
    key = id(layer)

    def run(*a, **k):
        state = ctx.state()
        state.stack.append(training)
        entry = layer.__dict__.get("_call_scope")
        state.scope.append(entry if entry is not None and entry.name is layer.name else naming.call_scope(layer))
        previous = state.casts.get(key)
        if cast_dtype is not None:
            state.casts[key] = cast_dtype
        try:
            return call(*a, **k)
        finally:
            state.stack.pop()
            state.scope.pop()
            if cast_dtype is not None:
                if previous is None:
                    state.casts.pop(key, None)
                else:
                    state.casts[key] = previous

    return remat(run)(*args, **kwargs)
