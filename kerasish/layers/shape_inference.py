"""Output shapes and dtypes of a layer without real compute.

The layer runs on the meta device (`torch.func.functional_call` with meta
copies of its weights): torch computes shapes and dtypes only. Unknown
dimensions (None) are tried at two different sizes; an output dimension that
differs between the two runs is unknown (None) too. If an op has no meta
kernel, the same is done with small real zero tensors on the CPU.
"""

from __future__ import annotations

import numpy as np
import torch

from kerasish.backend import dtypes
from kerasish.backend.keras_tensor import KerasTensor
from kerasish.backend.tensor_spec import TensorSpec
from kerasish.layers import call_context as ctx
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
            return torch.func.functional_call(layer, state, tuple(margs), mkwargs, strict=False, tie_weights=True)
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
        raise errors[-1]
    return _merge(outputs[0], outputs[1])


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
