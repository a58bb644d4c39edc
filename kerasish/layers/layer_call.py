"""Helpers of the layer call pipeline (`Layer.forward`): per-class copies of
`forward`, input casts, the input-spec shortcut and the untraced call of
`dynamic=True` layers."""

from __future__ import annotations

import threading
import types

import torch

from kerasish.utils import tree


def forward_for(cls, base):
    """`base` (`Layer.forward`) with a code object of the class's own.

    torch.compile keys its caches and its automatic-dynamic-shape memory by
    code object. Sharing `Layer.forward`'s code across every layer class would
    make the compiled code of one model count against another's recompile
    limit and mark dimensions dynamic because *another* model saw other
    shapes; hand-written torch modules each have their own `forward`, and so
    does every kerasish layer class.
    """
    # unique per class object (classes defined in a function share a qualname)
    name = f"{cls.__qualname__}.forward@{id(cls):x}"
    code = base.__code__.replace(co_name=name, co_qualname=name)
    fn = types.FunctionType(code, base.__globals__, "forward", base.__defaults__, base.__closure__)
    fn.__doc__ = base.__doc__
    fn.__qualname__ = f"{cls.__qualname__}.forward"
    fn.__kwdefaults__ = base.__kwdefaults__
    return fn


# First-call builds run one at a time (re-entrant: a model's build builds its
# sublayers). Two threads making the first call of the same unbuilt model
# otherwise both build it: duplicate Input layers, weights created twice and
# one thread's weights on the meta device of the other's shape inference.
# Built layers never take it (only `not built` reaches it).
BUILD_LOCK = threading.RLock()


def cast_int_input(x, dtype):
    """An integer/bool tensor as `dtype`, keeping its Keras mask."""
    mask = getattr(x, "_keras_mask", None)
    x = x.to(dtype)
    if mask is not None:
        x._keras_mask = mask
    return x


def torch_autocast_on(inputs) -> bool:
    """Whether the user's `torch.autocast` is on for the inputs' device."""
    device = inputs.device if type(inputs) is torch.Tensor else tree.first_device(inputs)
    # meta tensors (shape inference) have no autocast state: torch raises
    return device is not None and device.type != "meta" and torch.is_autocast_enabled(device.type)


def eager_call(layer, args, kwargs):
    return layer.call(*args, **kwargs)


# `dynamic=True`: the layer's call is never traced by torch.compile.
try:
    eager_call = torch._dynamo.disable(eager_call, recursive=True)  # noqa: F811
except Exception:  # pragma: no cover - dynamo missing on exotic builds
    pass
