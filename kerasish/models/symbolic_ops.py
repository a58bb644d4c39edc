"""Layer calls and torch ops on KerasTensors: they build the functional graph.

`Layer.forward` sends a call whose inputs hold a KerasTensor to
`symbolic_layer_call`; `KerasTensor.__torch_function__` sends torch functions
and operators to `torch_function_call`; `Layer.add_loss` / `add_metric` with a
KerasTensor land in `add_symbolic_loss` / `add_symbolic_metric`.
"""

from __future__ import annotations

import contextlib
import threading

import torch

from kerasish.backend.keras_tensor import KerasTensor
from kerasish.layers.input_spec import assert_input_compatibility
from kerasish.models.node import Node
from kerasish.utils import naming
from kerasish.utils import tree


def _fresh_outputs(outputs, inputs):
    """New KerasTensors where a layer returned one of its inputs (a node must
    own its outputs), named like Keras 3 names them."""
    input_ids = {id(x) for x in tree.flatten(inputs)}

    def one(t):
        if isinstance(t, KerasTensor):
            if id(t) in input_ids or t._keras_history is not None:
                t = KerasTensor(t.shape, dtype=t.dtype, sparse=t.sparse)
            if t.name is None:
                t.name = naming.auto_name("keras_tensor")
        return t

    return tree.map_structure(one, outputs)


def symbolic_layer_call(layer, args, kwargs, first_kwarg=None):
    """`layer(*args, **kwargs)` on KerasTensors: builds the layer if needed,
    checks its `input_spec`, infers the outputs and records a `Node`.
    `first_kwarg`: the name the first argument `args[0]` was passed by, which
    the node records as a keyword argument, as Keras does (the order of its
    input tensors, hence the graph order, follows the sorted keywords)."""
    inputs = args[0] if args else None
    if not layer.built:
        layer._build_once(inputs, (args, kwargs))
    spec = layer.input_spec
    if spec is not None and inputs is not None:
        assert_input_compatibility(spec, inputs, layer.name)
    input_masks = _masks_of(inputs)
    if (
        layer._call_has_mask
        and getattr(layer, "_symbolic_mask_kwarg", True)
        and kwargs.get("mask") is None
        and _any_mask(input_masks)
        and getattr(_REPLAY, "no_mask", None) is not layer
    ):
        # as Keras: the input's mask becomes the `mask=` argument of the
        # recorded call, a graph value computed at every run
        kwargs = {**kwargs, "mask": input_masks}
    outputs = layer.compute_output_spec(*args, **kwargs)
    outputs = _fresh_outputs(outputs, [list(args), kwargs])
    if not tree.flatten(outputs) or not all(isinstance(t, KerasTensor) for t in tree.flatten(outputs)):
        return outputs
    if first_kwarg is None:
        Node(layer, args, kwargs, outputs)
    else:
        Node(layer, args[1:], {first_kwarg: args[0], **kwargs}, outputs)
    previous = kwargs.get("mask") if kwargs.get("mask") is not None else input_masks
    _attach_output_masks(layer, inputs, outputs, previous)
    return outputs


_REPLAY = threading.local()


@contextlib.contextmanager
def recorded_without_mask(layer):
    """Replays a node of a saved functional config that recorded `"mask": null`:
    `layer`'s symbolic call records no mask (Keras 3 keeps the recorded
    arguments in the node), so the run uses the mask its input carries then."""
    previous = getattr(_REPLAY, "no_mask", None)
    _REPLAY.no_mask = layer
    try:
        yield
    finally:
        _REPLAY.no_mask = previous


def _masks_of(inputs):
    return tree.map_structure(lambda t: t.__dict__.get("_keras_mask") if isinstance(t, KerasTensor) else None, inputs)


def _any_mask(masks) -> bool:
    return any(isinstance(m, KerasTensor) for m in tree.flatten(masks))


def _attach_output_masks(layer, inputs, outputs, previous):
    """`x._keras_mask` on the output KerasTensors, as Keras 3 sets it: the
    layer's `compute_mask` run on the KerasTensors (its ops become graph
    nodes, e.g. Embedding's `NotEqual`), or the input mask passed through by
    a layer that supports masking. Masks that cannot be expressed in the
    graph (a compute_mask that does not run symbolically) are left out; the
    eager call still computes them."""
    d = layer.__dict__
    if not (d.get("supports_masking") or layer._has_compute_mask):
        return
    if layer._has_compute_mask:
        try:
            masks = layer.compute_mask(inputs, previous if _any_mask(previous) else None)
        except (TypeError, ValueError, RuntimeError, AttributeError, NotImplementedError, IndexError):
            return  # a mask rule written for real tensors only
    else:
        masks = previous
    if masks is None:
        return
    flat_out = tree.flatten(outputs)
    if isinstance(masks, (list, tuple)):
        flat_masks = tree.flatten(masks)
        if len(flat_masks) != len(flat_out):
            flat_masks = [flat_masks[0]] * len(flat_out) if len(flat_masks) == 1 else []
    else:
        flat_masks = [masks] * len(flat_out)
    for out, mask in zip(flat_out, flat_masks):
        if isinstance(mask, KerasTensor) and mask._keras_history is not None:
            out._keras_mask = mask


def torch_function_call(func, args, kwargs):
    """A torch function or operator on KerasTensors: recorded as a
    `TorchOpLambda` node (constants computed on the spot are returned as is)."""
    from kerasish.models.torch_op_layer import TorchOpLambda
    from kerasish.models.torch_op_layer import op_output_spec

    _refuse_captured_parameters(func, args, kwargs)
    operator = _keras_operator(func, args, kwargs)
    if operator is not None:
        return operator()
    outputs = op_output_spec(func, args, kwargs)
    flat = tree.flatten(outputs)
    if not any(isinstance(t, KerasTensor) for t in flat):
        return outputs  # e.g. `x.dim()`: a constant
    if not all(isinstance(t, KerasTensor) for t in flat):
        raise TypeError(
            f"The torch function {getattr(func, '__name__', func)} returned a mix of tensors and Python "
            "values on a KerasTensor; a functional graph can only record tensor outputs."
        )
    layer = TorchOpLambda(func)
    outputs = _fresh_outputs(outputs, [list(args), kwargs])
    Node(layer, args, kwargs, outputs)
    return outputs


# `torch_tensor + keras_tensor` reaches `__torch_function__` as torch's
# `Tensor.add(torch_tensor, keras_tensor)` (`Tensor.lt` for `<`, ...). In
# Keras 3 torch's operator gives up and Python calls the KerasTensor's
# reflected operator (`__radd__`, `__gt__` for `<`); the same op is recorded
# here. torch method -> the KerasTensor operator Python would call.
_REFLECTED_NAMES = {
    ("add", "__add__"): "__radd__", ("sub", "__sub__"): "__rsub__", ("mul", "__mul__"): "__rmul__",
    ("div", "__truediv__"): "__rtruediv__", ("__floordiv__",): "__rfloordiv__", ("remainder", "__mod__"): "__rmod__",
    ("__pow__",): "__rpow__", ("matmul", "__matmul__"): "__rmatmul__", ("lt", "__lt__"): "__gt__",
    ("le", "__le__"): "__ge__", ("gt", "__gt__"): "__lt__", ("ge", "__ge__"): "__le__", ("ne", "__ne__"): "__ne__",
    ("__and__",): "__rand__", ("__or__",): "__ror__", ("__xor__",): "__rxor__",
}
_REFLECTED: dict = {}


def _keras_operator(func, args, kwargs):
    """A zero-argument callable recording the KerasTensor operator that the
    torch call stands for, or None (an ordinary torch function)."""
    from kerasish.backend.keras_tensor import OPERATOR_OPS
    from kerasish.backend.keras_tensor import UNARY_OPERATOR_OPS

    if kwargs:
        return None
    if not _REFLECTED:
        for names, reflected in _REFLECTED_NAMES.items():
            for n in names:
                _REFLECTED[getattr(torch.Tensor, n)] = reflected
    name = getattr(func, "__name__", None)
    if args and isinstance(args[0], KerasTensor):
        # `torch.Tensor.__add__(keras_tensor, y)` spelled out: the operator itself
        if getattr(torch.Tensor, name or "_", None) is not func:
            return None
        if (name in OPERATOR_OPS and len(args) == 2) or (name in UNARY_OPERATOR_OPS and len(args) == 1):
            return lambda: getattr(KerasTensor, name)(*args)
        return None
    if len(args) == 2 and isinstance(args[1], KerasTensor) and isinstance(args[0], torch.Tensor):
        reflected = _REFLECTED.get(func)
        if reflected is not None:
            return lambda: getattr(KerasTensor, reflected)(args[1], args[0])
    return None


def _refuse_captured_parameters(func, args, kwargs):
    """A trainable torch tensor next to a KerasTensor (`nn.Linear(4, 2)(keras_tensor)`: the module's
    weight goes to `F.linear`) would be recorded as a constant of the graph: no model weight, never
    trained by `fit`, silently. Keras's torch backend refuses the call with a TypeError too."""
    from kerasish.variables import Variable

    for t in tree.flatten([list(args), kwargs]):
        if isinstance(t, torch.Tensor) and t.requires_grad and not isinstance(t, Variable):
            raise TypeError(
                f"The torch function {getattr(func, '__name__', func)} got a trainable torch tensor (shape "
                f"{tuple(t.shape)}, e.g. a torch module's parameter) with a KerasTensor: a functional model "
                "would record it as a constant, never among its weights, so `fit` would never train it. "
                "Wrap the torch module in `keras.layers.TorchModuleWrapper(module)` and call that on the "
                "KerasTensor (its parameters become the layer's weights), or pass a tensor that does not "
                "require grad for a constant."
            )


def add_symbolic_loss(layer, tensor):
    """`layer.add_loss(<KerasTensor>)`: on a functional model the loss joins
    the graph (computed at every call and added to `model.losses`); on any
    other layer it is kept and picked up by the functional models built
    afterwards whose inputs it can be traced back to."""
    from kerasish.models.functional import Functional

    if isinstance(layer, Functional):
        layer._add_symbolic_aux("loss", tensor, None)
        return
    layer.__dict__.setdefault("_symbolic_losses", []).append(tensor)


def add_symbolic_metric(layer, tensor, name=None, **kwargs):
    """`layer.add_metric(<KerasTensor>, name=...)`: creates a `Mean` metric
    called `name` (listed in `layer.metrics` right away) that tracks the
    value at every call of a functional model holding the tensor's graph."""
    from kerasish.metrics import Mean
    from kerasish.models.functional import Functional

    if name is None:
        raise ValueError(
            "Please provide a name for your metric like `self.add_metric(tf.reduce_sum(inputs), "
            f"name='mean_activation')`. Received: name={name}"
        )
    metric = None
    for existing in layer.__dict__["_metrics"]:
        if existing.name == name:
            metric = existing
    if metric is None:
        metric = Mean(name=name)
        layer.__dict__["_metrics"].append(metric)
    if isinstance(layer, Functional):
        layer._add_symbolic_aux("metric", tensor, metric)
    else:
        layer.__dict__.setdefault("_symbolic_metrics", []).append((tensor, metric))
    return None
