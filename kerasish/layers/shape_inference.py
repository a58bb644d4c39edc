"""Output shapes and dtypes of a layer without real compute.

The layer runs on the meta device (`torch.func.functional_call` with meta
copies of its weights): torch computes shapes and dtypes only. Unknown
dimensions (None) are tried at two different sizes; an output dimension that
differs between the two runs is unknown (None) too. If an op has no meta
kernel, the same is done with small real zero tensors on the CPU.

Two sizes can map to one output size (a stride or pool of 10 takes 83 and 89
to 8), so where a layer has its own `compute_output_shape` (every built-in
convolution, pooling, cropping, padding and spectrogram layer, and a user's)
that shape marks which output dimensions are unknown, as Keras 3 takes a
layer's shapes from its `compute_output_shape`.
"""

from __future__ import annotations

import threading

import numpy as np
import torch

from kerasish.backend import dtypes
from kerasish.backend.keras_tensor import KerasTensor
from kerasish.backend.tensor_spec import TensorSpec
from kerasish.layers import call_context as ctx
from kerasish.layers import weight_substitution
from kerasish.utils import tree

_PROBE_SIZES = (83, 89)  # unrelated primes, as Keras's torch backend uses
# real zeros on the CPU: small, but far enough apart that strides and pooling
# (up to 16) still map them to different output sizes; then tiny sizes for
# layers that cannot take those (a positional embedding of 8 positions)
_FALLBACK_SIZES = ((13, 29), (3, 5))


def _is_shape(x) -> bool:
    return isinstance(x, (tuple, list, torch.Size)) and all(d is None or isinstance(d, int) for d in x)


def _shapes_to_keras_tensors(shape, dtype):
    if _is_shape(shape):
        return KerasTensor(tuple(shape), dtype=dtype)
    if isinstance(shape, dict):
        return {k: _shapes_to_keras_tensors(v, dtype) for k, v in shape.items()}
    if isinstance(shape, (list, tuple)):
        return [_shapes_to_keras_tensors(s, dtype) for s in shape]
    raise ValueError(f"Invalid input shape: {shape!r}. Expected a shape tuple or a list of shape tuples.")


def _materialize(x, size, device):
    if isinstance(x, KerasTensor):
        shape = tuple(size if d is None else d for d in x.shape)
        if dtypes.standardize_dtype(x.dtype) == dtypes.STRING:
            # strings stay NumPy object arrays (torch has none): a custom layer whose call starts with a
            # StringLookup / Hashing sees empty strings (out of vocabulary)
            return np.full(shape, "", dtype=object)
        return torch.zeros(shape, dtype=dtypes.to_torch_dtype(x.dtype), device=device)
    return x


def _run(layer, args, kwargs, size, device):
    margs = tree.map_structure(lambda x: _materialize(x, size, device), list(args))
    mkwargs = {k: tree.map_structure(lambda x: _materialize(x, size, device), v) for k, v in kwargs.items()}
    state = {}
    for name, t in list(layer.named_parameters(remove_duplicate=False)) + list(layer.named_buffers(remove_duplicate=False)):
        if t.device != torch.device(device):
            state[name] = torch.zeros_like(t, device=device) if device == "meta" else t.detach().to(device)
    previous_symbolic = ctx.state().symbolic
    ctx.state().symbolic = True
    try:
        if state:
            try:
                return torch.func.functional_call(layer, state, tuple(margs), mkwargs, strict=False, tie_weights=True)
            finally:
                weight_substitution.anchor_again_after(layer)
        return layer(*margs, **mkwargs)
    finally:
        ctx.state().symbolic = previous_symbolic


def _merge(a, b):
    if isinstance(a, torch.Tensor):
        shape = tuple(x if x == y else None for x, y in zip(a.shape, b.shape))
        return KerasTensor(shape, dtype=a.dtype)
    if isinstance(a, (list, tuple)):
        return type(a)(_merge(x, y) for x, y in zip(a, b))
    if isinstance(a, dict):
        return {k: _merge(a[k], b[k]) for k in a}
    return a


def _needs_build(layer, args):
    return not layer.built


def compute_output_spec(layer, *args, **kwargs):
    """KerasTensor(s) describing `layer(*args, **kwargs)` for KerasTensor args."""
    if not layer.built:
        shapes = tree.map_structure(lambda t: t.shape if isinstance(t, KerasTensor) else tuple(t.shape), args[0])
        with torch.device("cpu"):
            layer.build(shapes)
    outputs = []
    errors = []
    attempts = [("meta", _PROBE_SIZES)] + [("cpu", sizes) for sizes in _FALLBACK_SIZES]
    for device, sizes in attempts:
        try:
            with torch.no_grad():
                outputs = [_run(layer, args, kwargs, size, device) for size in sizes]
            break
        except Exception as e:  # no meta kernel, or data-dependent shapes
            errors.append(e)
            outputs = []
            if not _has_unknown(args) and device == "cpu":
                break  # (the sizes played no part)
    if not outputs:
        # A call that cannot run on placeholder tensors (fixed row counts, data-dependent shapes):
        # Keras 3 never runs `call` for a layer that overrides `compute_output_shape`, so its shape
        # (in the compute dtype) is the answer here too.
        own = _own_output_shape(layer, args, kwargs)
        if own is not None:
            return _shapes_to_keras_tensors(own, layer.compute_dtype)
        raise _could_not_infer(layer, errors[-1])
    spec = _merge(outputs[0], outputs[1])
    own = _own_output_shape(layer, args, kwargs) if _has_unknown(args) else None
    return spec if own is None else _unknown_where_declared(spec, own)


def _could_not_infer(layer, error):
    """Keras's error when a layer's `call` cannot run symbolically (its `Operation.compute_output_spec`):
    the original exception's type, a message naming the layer and the way out."""
    name = type(layer).__name__
    message = (
        f"Could not automatically infer the output shape / dtype of '{layer.name}' (of type {name}). Either the "
        f"`{name}.call()` method is incorrect, or you need to implement the `{name}.compute_output_spec() / "
        f"compute_output_shape()` method. Error encountered:\n\n{error}"
    )
    try:
        wrapped = type(error)(message)
    except Exception:  # an exception type that takes other arguments: keep it as it is
        return error
    wrapped.__cause__ = error
    return wrapped.with_traceback(error.__traceback__)


_in_own_shape = threading.local()


def _own_output_shape(layer, args, kwargs):
    """`layer.compute_output_shape` of the (single) tensor argument's shape,
    when the layer overrides it; None otherwise, when the call has other tensor
    arguments, or when it raises (the probe's shapes are kept then)."""
    from kerasish.layers.layer_graph import LayerGraphMixin

    method = type(layer).compute_output_shape
    if method is LayerGraphMixin.compute_output_shape or len(args) != 1:
        return None
    if any(isinstance(t, KerasTensor) for key, value in kwargs.items() if key != "mask"
           for t in tree.flatten(value)):
        return None
    active = _in_own_shape.__dict__.setdefault("layers", set())
    if id(layer) in active:  # its compute_output_shape probes (a Lambda without `output_shape`)
        return None
    active.add(id(layer))
    try:
        shapes = tree.map_structure(lambda t: tuple(t.shape) if isinstance(t, KerasTensor) else t, args[0])
        own = layer.compute_output_shape(shapes)
    except Exception:
        return None
    finally:
        active.discard(id(layer))
    return tree.to_shape_tuples(own) if own is not None else None


def _unknown_where_declared(spec, own):
    """`spec` with None wherever the layer's own output shape says None, where
    the structures and ranks agree; the probe's sizes are kept everywhere else."""
    if isinstance(spec, KerasTensor):
        if not _is_shape(own) or len(own) != len(spec.shape) or None not in own:
            return spec
        shape = tuple(None if o is None else d for d, o in zip(spec.shape, own))
        return spec if shape == spec.shape else KerasTensor(shape, dtype=spec.dtype, sparse=spec.sparse)
    if isinstance(spec, (list, tuple)) and isinstance(own, (list, tuple)) and not _is_shape(own):
        if len(spec) != len(own):
            return spec
        return type(spec)(_unknown_where_declared(s, o) for s, o in zip(spec, own))
    if isinstance(spec, dict) and isinstance(own, dict) and set(spec) == set(own):
        return {k: _unknown_where_declared(v, own[k]) for k, v in spec.items()}
    return spec


def _has_unknown(args) -> bool:
    return any(isinstance(t, KerasTensor) and None in t.shape for t in tree.flatten(list(args)))


def compute_output_shape(layer, input_shape):
    dtype = layer.compute_dtype
    inputs = _shapes_to_keras_tensors(tree.to_shape_tuples(input_shape), dtype)
    spec = compute_output_spec(layer, inputs)
    return tree.map_structure(lambda t: t.shape if isinstance(t, KerasTensor) else t, spec)


def compute_output_signature(layer, input_signature):
    for spec in tree.flatten(input_signature):
        if not isinstance(spec, (TensorSpec, KerasTensor)):
            raise TypeError(f"Only TensorSpec signature types are supported. Received: {spec!r}")
    inputs = tree.map_structure(lambda s: KerasTensor(s.shape, dtype=s.dtype), input_signature)
    out = compute_output_spec(layer, inputs)
    return tree.map_structure(lambda t: TensorSpec(t.shape, t.dtype) if isinstance(t, KerasTensor) else t, out)
