"""Keras masks across the user's torch forward hooks.

A Keras mask rides on its tensor (`tensor._keras_mask`). A torch forward
hook that returns a new output (`lambda m, args, out: out * 2`), or a
pre-hook that returns new inputs, hands the next layer a tensor without
it: an LSTM after a `mask_zero=True` Embedding would then run over the
padding, silently. When a user registers such a hook on a kerasish layer,
two hooks of kerasish's own bracket the user's: the first notes the mask of
the tensor the layer produced (or received), the last puts it back on the
tensor the user's hooks returned, when that one has none and its leading
dimensions still fit the mask. They go away with the user's last hook (its
handle's `remove()`, or the next call finding no other hook), so a layer
without user hooks keeps torch's hook-free fast path.
"""

from __future__ import annotations

import threading

import torch
from torch.utils.hooks import RemovableHandle

_NOTED = threading.local()  # `masks`: id(layer) -> (the tensor, its mask), within one hooked call


def _table() -> dict:
    table = getattr(_NOTED, "masks", None)
    if table is None:
        table = _NOTED.masks = {}
    return table


def _fits(tensor, mask) -> bool:
    return isinstance(tensor, torch.Tensor) and tensor.shape[: mask.ndim] == mask.shape


def _restore(noted, tensor) -> None:
    if noted is None or not isinstance(tensor, torch.Tensor) or tensor is noted[0]:
        return
    if getattr(tensor, "_keras_mask", None) is None and _fits(tensor, noted[1]):
        tensor._keras_mask = noted[1]


def _drop_if_alone(hooks) -> bool:
    """When only kerasish's own hooks are left in the hook registry `hooks`, removes them; says whether
    it did."""
    ours = (_output_first, _output_last, _input_first, _input_last)
    if any(h not in ours for h in hooks.values()):
        return False
    for key in [k for k, h in hooks.items() if h in ours]:
        del hooks[key]
    return True


def _alone(layer, registry) -> bool:
    return _drop_if_alone(getattr(layer, "_" + registry + "s"))


class MaskKeepingHandle(RemovableHandle):
    """The handle `Layer.register_forward_hook` returns: removing the user's hook also removes
    kerasish's bracketing hooks when no other hook is left (`_forward_hooks` is empty again)."""

    def remove(self) -> None:
        super().remove()
        hooks = self.hooks_dict_ref()
        if hooks is not None:
            _drop_if_alone(hooks)


def _output_first(layer, args, output):
    if torch.compiler.is_compiling() or _alone(layer, "forward_hook"):
        return
    mask = getattr(output, "_keras_mask", None) if isinstance(output, torch.Tensor) else None
    _table()[id(layer)] = None if mask is None else (output, mask)


def _output_last(layer, args, output):
    if not torch.compiler.is_compiling():
        _restore(_table().pop(id(layer), None), output)


def _input_first(layer, args):
    if torch.compiler.is_compiling() or _alone(layer, "forward_pre_hook"):
        return
    x = args[0] if args else None
    mask = getattr(x, "_keras_mask", None) if isinstance(x, torch.Tensor) else None
    _table()[("in", id(layer))] = None if mask is None else (x, mask)


def _input_last(layer, args):
    if not torch.compiler.is_compiling():
        _restore(_table().pop(("in", id(layer)), None), args[0] if args else None)


_KINDS = {"forward_hook": (_output_first, _output_last), "forward_pre_hook": (_input_first, _input_last)}


def bracket(layer, registry: str, handle) -> RemovableHandle:
    """After the user registered a hook in `registry` ("forward_hook" or
    "forward_pre_hook") of `layer`: kerasish's hooks first and last. Returns
    the user's `handle`, now a `MaskKeepingHandle`."""
    handle.__class__ = MaskKeepingHandle
    hooks = getattr(layer, "_" + registry + "s")
    first, last = _KINDS[registry]
    keys = {h: k for k, h in hooks.items() if h is first or h is last}
    register = getattr(torch.nn.Module, "register_" + registry)
    if first not in keys:
        keys[first] = register(layer, first, prepend=True).id
    if last not in keys:
        keys[last] = register(layer, last).id
    hooks.move_to_end(keys[first], last=False)
    hooks.move_to_end(keys[last])
    return handle
