"""How a layer follows `.to()`, `.half()`, `.cuda()`, `.double()`: its
weights keep their Keras class (also where torch makes new parameters:
leaving the meta device with `to_empty`), its uninitialized parameters keep their
identity, its dtype policy follows the real dtype of its weights, and an
unbuilt layer remembers the device it was moved to. Constants a layer keeps
in non-persistent buffers (not in its state_dict) are refilled when they
leave the meta device (`model.to_empty(device=...)` after building on the
meta device), since no `load_state_dict` brings them back; and by
`load_state_dict(sd, assign=True)` into a layer built on the meta device,
which puts them next to the loaded tensors."""

from __future__ import annotations

import threading

import torch

from kerasish import dtype_policies
from kerasish.layers import lazy_weights
from kerasish.layers.layer_weights import rewrap_buffers
from kerasish.layers.layer_weights import rewrap_parameters
from kerasish.layers.tracking import own_weights
from kerasish.layers.weight_layout import restore_orders
from kerasish.variables import Variable


# Bumped by every `.to()` / `.half()` / `.double()` / `.cuda()` of a kerasish layer: a Keras optimizer
# compares it with the number it last saw and, when it moved, converts its slots to the dtype and device
# of their weights (Keras makes slots in their variable's dtype; torch's optimizers fail on the
# mismatch, and their `load_state_dict` casts state to the parameter's dtype).
_MOVES = [0]


def moves_version() -> int:
    return _MOVES[0]


def apply(layer, fn, recurse, super_apply):
    """`.to()`, `.half()`, `.cuda()`...: buffers keep their Keras class, a
    float dtype change of the weights (`.half()`, `.to(torch.bfloat16)`)
    becomes the layer's dtype policy so inputs are cast to match them, and
    the device is remembered so that an unbuilt layer builds there.

    The new dtype and device are read from the layer's own weights; a
    layer without any (unbuilt, or a container) converts an empty probe
    tensor of its variable dtype (and, for the device, a meta one). So a pure device
    move (`.to("cpu")`, `.cuda()`) never touches the policy, whatever the
    weights' dtype."""
    d = layer.__dict__
    _MOVES[0] += 1  # optimizers bound to these weights bring their slots along (see `moves_version`)
    quantized_target = _quantized_policy_after(d["_dtype_policy"], fn)  # (checked before anything is cast)
    old_buffers = dict(layer._buffers)
    old_params = dict(layer._parameters)
    # under `torch.__future__.set_swap_module_params_on_conversion(True)` torch keeps each parameter object
    # but swaps its class and `__dict__` with the converted tensor's (`torch.utils.swap_tensors`): the
    # weight came back a plain Parameter without its Keras metadata (`path`, `assign`, regularizer...)
    swapped = swap_snapshot(old_params)
    meta_constants = [k for k in layer._non_persistent_buffers_set
                      if old_buffers.get(k) is not None and old_buffers[k].is_meta]
    before = _float_dtypes(layer)
    lazy = {k: p for k, p in layer._parameters.items() if lazy_weights.is_lazy(p)}
    if lazy:
        # placeholders have no data to convert: give them the converted
        # empty tensor, keeping each object (an optimizer may hold it)
        order = list(layer._parameters)
        for key in lazy:
            del layer._parameters[key]
        try:
            super_apply(fn, recurse)
        finally:
            converted = dict(layer._parameters)
            layer._parameters.clear()
            layer._parameters.update((k, lazy[k] if k in lazy else converted[k]) for k in order)
        for p in lazy.values():
            lazy_weights.convert_placeholder(p, fn)
    else:
        super_apply(fn, recurse)
    if swapped:
        restore_swapped(layer, old_params, swapped)
    rewrap_buffers(layer, old_buffers)
    rewrap_parameters(layer, old_params)
    if "_memory_orders" in d:
        # (`.to(memory_format=torch.channels_last)` lays a Keras-shaped 4-D kernel out as if its
        # first axis were a batch: back to the order torch's conv reads without a copy)
        restore_orders(layer)
    if meta_constants:
        _refill_constants(layer, meta_constants)
    weights = own_weights(layer)
    policy = d["_dtype_policy"]
    changed = {dtype for key, dtype in _float_dtypes(layer).items() if before.get(key, dtype) != dtype}
    if not changed and not before:
        probe = fn(torch.empty(0, dtype=policy.variable_torch_dtype))
        if probe.dtype != policy.variable_torch_dtype and probe.dtype.is_floating_point:
            changed = {probe.dtype}
        if probe.device.type != "cpu":
            d["_device_hint"] = probe.device
        elif d["_device_hint"] is not None and _moves_to_cpu(fn):
            d["_device_hint"] = probe.device
    if weights:
        d["_device_hint"] = weights[0].device
    if len(changed) == 1:
        _adopt_weight_dtype(layer, next(iter(changed)), quantized_target)
    return layer


def _adopt_weight_dtype(layer, dtype, quantized_target) -> None:
    """The layer's weights are now `dtype` (a cast or an assignment): that becomes its dtype policy,
    so inputs are cast to match them; a quantized layer keeps its mode ("int8_from_float32" ->
    "int8_from_bfloat16", `quantized_target`)."""
    d = layer.__dict__
    policy = d["_dtype_policy"]
    if dtype == policy.variable_torch_dtype and dtype == policy.compute_torch_dtype:
        return
    if policy.quantization_mode is not None:
        if quantized_target is not None:
            d["_dtype_policy"] = quantized_target
            layer._set_dtype_fast_path()
    else:
        layer.dtype_policy = dtype_policies.DTypePolicy(dtype)


def follow_assigned_dtype(layer, before: dict) -> None:
    """After `load_state_dict(sd, assign=True)`: torch put the state dict's tensors in place, in their
    dtype. When the floating weights it changed all took one dtype and the layer's weights now share it
    (a float64 state dict assigned into a float32 layer), that dtype becomes the layer's policy, as
    `.double()` makes it, so `dtype`, `compute_dtype`, `get_config()` and saved files say what the layer
    computes in. Mixed results and quantized layers are left as they are."""
    if layer.__dict__.get("_dtype_policy") is None:
        return
    now = _float_dtypes(layer)
    changed = {dtype for key, dtype in now.items() if before.get(key, dtype) != dtype}
    if len(changed) == 1 and len(set(now.values())) == 1:
        _adopt_weight_dtype(layer, next(iter(changed)), None)


def swap_snapshot(params: dict):
    """The Keras class and metadata of `params` when torch swaps parameters in place (`.to()`,
    `load_state_dict`: `torch.__future__.set_swap_module_params_on_conversion(True)`), else None."""
    if not torch.__future__.get_swap_module_params_on_conversion():
        return None
    return {k: (type(p), dict(p.__dict__)) for k, p in params.items() if isinstance(p, Variable)}


def restore_swapped(layer, old_params: dict, swapped: dict) -> None:
    """Gives the parameters torch swapped in place their Keras class and metadata back."""
    for key, p in layer._parameters.items():
        if p is not None and p is old_params.get(key) and key in swapped:
            cls, meta = swapped[key]
            if type(p) is not cls:
                p.__class__ = cls
            p.__dict__.clear()  # (the swapped-in tensor's: a `detach()` view's marks)
            p.__dict__.update(meta)


_LOAD = threading.local()  # `device`: where the tensors of this thread's latest state_dict load are


def note_load_device(state_dict) -> None:
    """Remembers the device of the tensors a layer is loading (torch loads a parent before its
    children, and a child without weights of its own, like Rescaling, gets an empty dict)."""
    for v in state_dict.values():
        if isinstance(v, torch.Tensor) and not v.is_meta:
            _LOAD.device = v.device
            return


def place_meta_constants(layer) -> None:
    """After `load_state_dict` into a layer whose constant buffers are still on the meta device: the
    buffers, computed again, on the device of the loaded tensors (assign=True leaves them on meta)."""
    names = [k for k in layer._non_persistent_buffers_set
             if layer._buffers.get(k) is not None and layer._buffers[k].is_meta]
    device = getattr(_LOAD, "device", None)
    if not names or device is None:
        return
    old_buffers = {key: layer._buffers[key] for key in names}
    for key, old in old_buffers.items():
        layer._buffers[key] = torch.empty(old.shape, dtype=old.dtype, device=device)
    rewrap_buffers(layer, old_buffers)
    _refill_constants(layer, names)


@torch.no_grad()
def _refill_constants(layer, names) -> None:
    """Non-persistent buffers that left the meta device hold uninitialized memory (torch's `to_empty`):
    each gets the value the layer computes from its config (`_constant_buffer_value`)."""
    for key in names:
        buffer = layer._buffers.get(key)
        if buffer is None or buffer.is_meta:
            continue
        value = layer._constant_buffer_value(key)
        if value is None:
            continue
        value = torch.as_tensor(value, dtype=buffer.dtype, device=buffer.device)
        buffer.copy_(value.expand_as(buffer) if value.ndim == 0 else value.reshape(buffer.shape))


def _quantized_policy_after(policy, fn):
    """The quantized policy a cast leads to (`None` for other policies or a
    pure device move); a cast Keras refuses (int8 with float16) raises
    before any tensor changes."""
    if policy.quantization_mode is None or isinstance(policy, dtype_policies.DTypePolicyMap):
        return None
    try:
        probe = fn(torch.empty(0, dtype=policy.variable_torch_dtype, device="meta"))
    except (NotImplementedError, RuntimeError):
        probe = fn(torch.empty(0, dtype=policy.variable_torch_dtype))
    if not probe.dtype.is_floating_point or probe.dtype == policy.variable_torch_dtype:
        return None
    from kerasish.backend import dtypes

    mode = policy.name.split("_from_")[0]
    config = dict(policy.get_config(), source_name=dtypes.standardize_dtype(probe.dtype))
    if "/" in mode:
        config["mode"] = mode
    return type(policy).from_config(config)


def dtype_after(fn, dtype: torch.dtype) -> torch.dtype:
    """The dtype a `_apply` function gives a tensor of `dtype` (probed on an
    empty tensor; `dtype` itself when the function cannot be probed)."""
    for device in ("meta", "cpu"):
        try:
            return fn(torch.empty(0, dtype=dtype, device=device)).dtype
        except (NotImplementedError, RuntimeError):
            continue
    return dtype


def _moves_to_cpu(fn) -> bool:
    """Whether a `_apply` function that keeps CPU tensors on the CPU is a
    move to the CPU (`.to("cpu")`, `.cpu()`) rather than a cast alone: a
    cast leaves a meta tensor on the meta device, a move cannot copy it."""
    try:
        return fn(torch.empty(0, device="meta")).device.type != "meta"
    except (NotImplementedError, RuntimeError):
        return True


def same_device(a: torch.device, b: torch.device) -> bool:
    """`cuda` and `cuda:0` name the same device (an absent index means the current one)."""
    return a.type == b.type and (a.index is None or b.index is None or a.index == b.index)


def _float_dtypes(layer) -> dict:
    """(registry, key) -> dtype of the layer's own floating weights."""
    out = {
        ("p", k): v.dtype
        for k, v in layer._parameters.items()
        if v is not None and not lazy_weights.is_lazy(v) and v.is_floating_point()
    }
    for k, v in layer._buffers.items():
        if v is not None and v.is_floating_point():
            out[("b", k)] = v.dtype
    return out
