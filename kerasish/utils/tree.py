"""Nested structures of tensors (lists, tuples, dicts) and the small per-call
conversions the layer pipeline needs. The single-tensor case is always the
first branch: it is the hot path."""

from __future__ import annotations

import numpy as np
import torch

from kerasish.backend.keras_tensor import KerasTensor


def flatten(x) -> list:
    if isinstance(x, (list, tuple)):
        out = []
        for item in x:
            out.extend(flatten(item))
        return out
    if isinstance(x, dict):
        out = []
        for key in x:
            out.extend(flatten(x[key]))
        return out
    return [x]


def map_structure(fn, x):
    if isinstance(x, list):
        return [map_structure(fn, v) for v in x]
    if isinstance(x, tuple) and not isinstance(x, torch.Size):
        return tuple(map_structure(fn, v) for v in x)
    if isinstance(x, dict):
        return {k: map_structure(fn, v) for k, v in x.items()}
    return fn(x)


def any_symbolic(x) -> bool:
    if isinstance(x, KerasTensor):
        return True
    if isinstance(x, (list, tuple)):
        return any(any_symbolic(v) for v in x)
    if isinstance(x, dict):
        return any(any_symbolic(v) for v in x.values())
    return False


def any_symbolic_args(args, kwargs) -> bool:
    return any(any_symbolic(a) for a in args[1:]) or any(any_symbolic(v) for v in kwargs.values())


def _convert_one(x):
    if isinstance(x, torch.Tensor) or x is None:
        return x
    if isinstance(x, np.ndarray):
        if x.dtype.kind in "USO":
            return x  # strings stay on the Python side (torch has no string tensors)
        # (np.ascontiguousarray would turn a 0-d array into shape (1,))
        t = torch.from_numpy(x if x.flags.c_contiguous else np.ascontiguousarray(x))
        # Keras converts float64 NumPy data to floatx on input
        return t
    if isinstance(x, (bool, int, float, np.generic)):
        return torch.as_tensor(x)
    return x


def convert_inputs(x, device=None):
    """NumPy arrays and Python scalars in `x` become tensors (on `device`
    when given: the device a layer was moved to)."""
    convert = _convert_one
    if device is not None:
        def convert(v):
            out = _convert_one(v)
            return out.to(device) if out is not v and isinstance(out, torch.Tensor) else out
    if isinstance(x, (list, tuple, dict)):
        return map_structure(convert, x)
    return convert(x)


def cast_floating(x, dtype: torch.dtype):
    """Casts the floating tensors of `x` to `dtype`; returns `x` itself when
    nothing needed a cast."""
    if isinstance(x, torch.Tensor):
        if x.dtype is not dtype and x.is_floating_point():
            return x.to(dtype)
        return x
    if isinstance(x, (list, tuple, dict)):
        changed = [False]

        def one(t):
            if isinstance(t, torch.Tensor) and t.dtype is not dtype and t.is_floating_point():
                changed[0] = True
                mask = getattr(t, "_keras_mask", None)
                t = t.to(dtype)
                if mask is not None:
                    t._keras_mask = mask
            return t

        out = map_structure(one, x)
        return out if changed[0] else x
    return x


def map_shapes(x):
    return map_structure(lambda t: tuple(t.shape) if hasattr(t, "shape") else t, x)


def to_shape_tuples(shape):
    """`torch.Size`, lists of ints and TensorShape-likes become tuples (None kept)."""
    if isinstance(shape, torch.Size):
        return tuple(shape)
    if isinstance(shape, (list, tuple)):
        if all(s is None or isinstance(s, (int, np.integer)) for s in shape):
            return tuple(None if s is None else int(s) for s in shape)
        return type(shape)(to_shape_tuples(s) for s in shape) if isinstance(shape, list) else tuple(to_shape_tuples(s) for s in shape)
    if isinstance(shape, dict):
        return {k: to_shape_tuples(v) for k, v in shape.items()}
    if hasattr(shape, "as_list"):
        return tuple(shape.as_list())
    return shape


def first_device(x):
    if isinstance(x, torch.Tensor):
        return x.device
    for t in flatten(x):
        if isinstance(t, torch.Tensor):
            return t.device
    return None


def get_mask(x):
    if isinstance(x, torch.Tensor):
        if torch.compiler.is_compiling():  # dynamo cannot trace `Tensor.__dict__`
            return getattr(x, "_keras_mask", None)
        return x.__dict__.get("_keras_mask") if x.__dict__ else None
    if isinstance(x, (list, tuple)):
        masks = [get_mask(v) for v in x]
        return None if all(m is None for m in masks) else masks
    if isinstance(x, dict):
        masks = {k: get_mask(v) for k, v in x.items()}
        return None if all(m is None for m in masks.values()) else masks
    return None


def set_missing_mask(outputs, mask):
    """`set_mask` on the outputs that carry no mask yet (Keras's
    `_set_mask_metadata`: a mask the layer's `call` put on an output stays)."""
    set_mask(outputs, mask, keep=True)


def all_masked(outputs) -> bool:
    """Whether every output tensor already carries a Keras mask (Keras then
    skips `compute_mask`)."""
    if isinstance(outputs, torch.Tensor):
        return getattr(outputs, "_keras_mask", None) is not None
    flat = flatten(outputs)
    return bool(flat) and all(isinstance(t, torch.Tensor) and getattr(t, "_keras_mask", None) is not None for t in flat)


def set_mask(outputs, mask, keep=False):
    """Attaches `mask` (structure matching `outputs`, or one mask for all) as
    `_keras_mask` on each output tensor (`keep`: not on those that have one)."""
    if mask is None:
        return
    if isinstance(outputs, torch.Tensor):
        if keep and getattr(outputs, "_keras_mask", None) is not None:
            return
        if isinstance(mask, (list, tuple, dict)):
            # Keras zips the flat outputs with the flat masks: one output
            # takes the first mask (a layer called on `[x, y]` that supports
            # masking passes `x`'s mask on)
            flat = flatten(mask)
            mask = flat[0] if flat else None
        if mask is not None:
            outputs._keras_mask = mask
        return
    flat_out = flatten(outputs)
    flat_mask = flatten(mask) if isinstance(mask, (list, tuple, dict)) else [mask] * len(flat_out)
    if len(flat_mask) != len(flat_out):
        flat_mask = [flat_mask[0]] * len(flat_out)
    for out, m in zip(flat_out, flat_mask):
        if isinstance(out, torch.Tensor) and m is not None and not (keep and getattr(out, "_keras_mask", None) is not None):
            out._keras_mask = m
