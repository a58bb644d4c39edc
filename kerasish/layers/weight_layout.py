"""Keras-shaped weights stored in torch's memory order.

A weight keeps Keras's shape (a Conv2D kernel is `(kh, kw, in, filters)`), so
`get_weights()`, saved files, `state_dict()` keys and shapes and Keras parity
are unchanged, but its storage can be laid out in another order of its
dimensions: the one in which the view the layer hands torch
(`kernel.permute(...)`) is contiguous. torch's conv then reads the weight as
it is, with no copy per call, and autograd's layout contract makes the
gradient (and `zeros_like` optimizer slots) follow the same strides.

A layer lists such weights in `layer.__dict__["_memory_orders"]`, name ->
order (the weight's dimensions, outermost first in memory), when it builds
them. The order is a speed hint, never needed for correctness: every op on a
weight takes any strides. It is put back after torch replaces a weight's data
with another layout (`.to(memory_format=torch.channels_last)` lays a 4-D
Keras kernel out as if its first axis were a batch; `load_state_dict(...,
assign=True)` takes the file's tensor as it is). `copy_`-based writes
(`assign`, `set_weights`, `load_state_dict`) keep it by themselves.

torch tools that refuse non-contiguous parameters (FSDP2's `fully_shard`,
`safetensors.torch.save_file`, `parameters_to_vector`, `torch.optim.LBFGS`)
need `kerasish.utils.contiguous_weights(model)` first, which lays such
weights back in Keras's contiguous order and drops the hint (see
`keras_storage`).
"""

from __future__ import annotations

import torch


def inverse(order):
    out = [0] * len(order)
    for i, d in enumerate(order):
        out[d] = i
    return tuple(out)


def in_memory_order(t: torch.Tensor, order) -> torch.Tensor:
    """`t`'s values and shape with its storage laid out in `order` (a copy
    unless it already is)."""
    stored = t.permute(order)
    if stored.is_contiguous():
        return t
    return stored.contiguous().permute(inverse(order))


def _plain(p) -> bool:
    """A real, dense tensor on a device with storage (not a placeholder, a
    DTensor shard or a quantized/sparse tensor)."""
    if p is None or isinstance(p, torch.nn.parameter.UninitializedParameter):
        return False
    data = torch.Tensor.detach(p)
    return type(data) is torch.Tensor and data.layout is torch.strided and not data.is_meta


def store_in_order(layer, name: str, order) -> None:
    """Lays `layer`'s weight `name` out in `order`, in place (the same object:
    an optimizer or hook holding it keeps working), and remembers the order
    (see `restore_orders`). Does nothing when the layer was asked to keep
    Keras's storage (`keras_storage`)."""
    d = layer.__dict__
    if d.get("_keras_storage"):
        return
    orders = d.get("_memory_orders")
    if orders is None:
        orders = d["_memory_orders"] = {}
    orders[name] = tuple(order)
    _relayout(layer._parameters.get(name), orders[name])


def _relayout(p, order) -> None:
    if _plain(p) and p.dim() == len(order) and not p.permute(order).is_contiguous():
        with torch.no_grad():
            p.data = in_memory_order(torch.Tensor.detach(p), order)


def restore_orders(layer) -> None:
    """Puts the layer's weights back in their memory orders after torch gave
    them another layout (`.to(memory_format=...)`, `load_state_dict(assign=True)`)."""
    orders = layer.__dict__.get("_memory_orders")
    if orders:
        params = layer._parameters
        for name, order in orders.items():
            _relayout(params.get(name), order)


def keras_storage(layer) -> None:
    """Lays the layer's memory-ordered weights back in Keras's contiguous
    order, now and for a build still to come."""
    d = layer.__dict__
    d["_keras_storage"] = True
    orders = d.pop("_memory_orders", None) or {}
    for name in orders:
        p = layer._parameters.get(name)
        if _plain(p) and not p.is_contiguous():
            with torch.no_grad():
                p.data = torch.Tensor.detach(p).contiguous()


def contiguous_weights(module):
    """Lays every kernel in `module` that kerasish stores in another memory
    order back into Keras's contiguous storage, in place, and returns `module`.

    Convolution kernels (`Conv*`, their `Transpose`s, `DepthwiseConv*`,
    `SeparableConv*`), stored in torch's memory order (this module's doc), and
    the kernels of recurrent cells (LSTM's torch-layout `(G * units, in)`
    storage; any other non-contiguous kernel, e.g. the orthogonal
    initializer's transposed square `recurrent_kernel`) become contiguous in
    Keras's shape; layers built later keep Keras's order too. Values, shapes,
    names and `state_dict` are unchanged. Costs: a large-kernel conv on small
    inputs pays a kernel copy per call; LSTM's CPU training ~3% (a transposed
    copy of each kernel per call and strided gradient adds).

    For torch tools that refuse non-contiguous parameters: FSDP2's
    `fully_shard` ("FSDP does not support non-contiguous parameters"),
    `safetensors.torch.save_file`, `parameters_to_vector`,
    `torch.optim.LBFGS`, `torch.nn.utils.prune`. Also reachable as
    `kerasish.utils.contiguous_weights` and, under its first name,
    `kerasish.layers.rnn.contiguous_kernels`.

    Example:
        >>> model = keras.Sequential([keras.Input((10, 8)), keras.layers.LSTM(16)])
        >>> fully_shard(keras.utils.contiguous_weights(model))  # doctest: +SKIP
    """
    from kerasish.layers import lazy_weights
    from kerasish.layers.layer import Layer
    from kerasish.layers.rnn.base_rnn_cell import BaseRNNCell

    for cell in module.modules():
        if isinstance(cell, Layer):
            keras_storage(cell)  # convolution kernels stored in torch's order
        if not isinstance(cell, BaseRNNCell):
            continue
        cell.__dict__["_torch_layout_kernels"] = False
        for name in ("kernel", "recurrent_kernel"):
            var = getattr(cell, name, None)
            if isinstance(var, torch.Tensor) and not lazy_weights.is_lazy(var) and not var.is_contiguous():
                with torch.no_grad():
                    var.data = var.data.contiguous()
    return module
