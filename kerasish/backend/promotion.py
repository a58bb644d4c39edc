"""Keras 3 dtype promotion and tensor conversion, on torch.

`result_type` reproduces `keras.backend.result_type`: a JAX-style promotion
lattice in which Python `int`/`float` are *weak* types (they adopt the other
operand's precision), and where, on every backend but TensorFlow, a 64-bit
result is narrowed to 32 bits (int64 -> int32, float64 -> float32).

`to_tensor` is `keras.ops.convert_to_tensor` as the Keras torch backend does
it: Python ints become int32, Python floats float32 (`floatx()`), NumPy arrays
keep their dtype, tensors pass through untouched.
"""

from __future__ import annotations

import functools

import numpy as np
import torch

from kerasish.backend import dtypes as _dtypes

_INTS = ("uint8", "uint16", "uint32", "uint64", "int8", "int16", "int32", "int64")
_FLOATS = ("bfloat16", "float16", "float32", "float64")

# each type -> the types immediately above it (weak "int"/"float" are the
# Python scalar types); the least upper bound of a set is the promotion
_LATTICE = {
    "bool": ["int"],
    "uint8": ["int16", "uint16"],
    "uint16": ["int32", "uint32"],
    "uint32": ["int64", "uint64"],
    "uint64": ["float"],
    "int": ["uint8", "int8", "complex64"],
    "int8": ["int16"],
    "int16": ["int32"],
    "int32": ["int64"],
    "int64": ["float"],
    "float": ["bfloat16", "float16"],
    "bfloat16": ["float32"],
    "float16": ["float32"],
    "float32": ["float64", "complex64"],
    "float64": ["complex128"],
    "complex64": ["complex128"],
    "complex128": [],
}
# 64-bit results are narrowed on the torch backend (Keras aligns with JAX)
_NARROW = {"int64": "int32", "uint64": "uint32", "float64": "float32", "complex128": "complex64"}


def _upper_bounds():
    out = {}
    for node in _LATTICE:
        seen, todo = {node}, [node]
        while todo:
            for up in _LATTICE[todo.pop()]:
                if up not in seen:
                    seen.add(up)
                    todo.append(up)
        out[node] = seen
    return out


_UPPER = _upper_bounds()


@functools.lru_cache(maxsize=512)
def _least_upper_bound(nodes: frozenset) -> str:
    common = set.intersection(*(_UPPER[n] for n in nodes))
    lub = (common & nodes) or {c for c in common if common <= _UPPER[c]}
    if len(lub) != 1:
        raise ValueError(
            f"Input dtypes {tuple(sorted(nodes))} have no available implicit dtype promotion path. "
            "Try explicitly casting inputs to the desired output type."
        )
    return lub.pop()


def _dtype_and_weak(value):
    if value is int:
        return "int32", True
    if value is float:
        return "float32", True
    if value is bool:
        return "bool", False
    return _dtypes.standardize_dtype(value), False


def _weak_name(dtype):
    if dtype == "bool":
        return dtype
    if "float" in dtype:
        return "float"
    if "complex" in dtype:
        return "complex64"
    return "int"


@functools.lru_cache(maxsize=1024)
def _result_type(precision, *args) -> str:
    pairs = [_dtype_and_weak(a) for a in args]
    names = [p[0] for p in pairs]
    weak = [p[1] for p in pairs]
    if len(names) == 1:
        out, out_weak = names[0], weak[0]
    elif len(set(names)) == 1 and not all(weak):
        out, out_weak = names[0], False
    elif all(weak):
        out, out_weak = _least_upper_bound(frozenset(names)), True
    else:
        out = _least_upper_bound(frozenset(_weak_name(n) if w else n for n, w in zip(names, weak)))
        out_weak = out in ("int", "float")
    if out_weak and out != "bool":
        kind = "f" if out == "bfloat16" else out[0]
        out = {"i": f"int{precision}", "u": f"uint{precision}"}.get(kind, f"float{precision}")
    return _NARROW.get(out, out)


def result_type(*dtypes) -> str:
    """The dtype Keras 3 gives an op mixing `dtypes` (see module docstring).

    Args:
        *dtypes: Dtypes in any spelling, or the Python types `int`/`float`
            for Python scalars. `None` means `floatx()`.

    Returns:
        The Keras dtype name ("float32").
    """
    if not dtypes:
        return _dtypes.floatx()
    floatx = _dtypes.floatx()
    return _result_type(floatx[-2:], *(floatx if d is None else d for d in dtypes))


def dtype_of(x) -> str:
    """The Keras dtype name of a tensor, array or Python scalar (scalars
    give the Python type, a weak type for `result_type`)."""
    if isinstance(x, torch.Tensor):
        return _dtypes.standardize_dtype(x.dtype)
    if isinstance(x, bool):
        return "bool"
    if isinstance(x, int):
        return int
    if isinstance(x, float):
        return float
    if hasattr(x, "dtype"):
        return _dtypes.standardize_dtype(x.dtype)
    return _dtypes.standardize_dtype(to_tensor(x).dtype)


def to_tensor(x, dtype=None) -> torch.Tensor:
    """`keras.ops.convert_to_tensor` on torch (see module docstring)."""
    if dtype is not None:
        dtype = _dtypes.to_torch_dtype(dtype)
    if isinstance(x, torch.Tensor):
        return x if dtype is None or x.dtype == dtype else x.to(dtype)
    if hasattr(x, "value") and isinstance(getattr(x, "value", None), torch.Tensor):
        return to_tensor(x.value, dtype)  # a Keras-style variable
    if dtype is None:
        if isinstance(x, bool):
            dtype = torch.bool
        elif isinstance(x, int):
            dtype = torch.int32
        elif isinstance(x, float):
            dtype = _dtypes.to_torch_dtype(_dtypes.floatx())
        elif isinstance(x, (list, tuple)):
            flat = _flatten_scalars(x)
            if flat is not None:
                if any(isinstance(v, torch.Tensor) for v in flat):
                    return torch.stack([to_tensor(v) for v in x])
                if any(isinstance(v, float) for v in flat):
                    dtype = _dtypes.to_torch_dtype(_dtypes.floatx())
                elif flat and all(isinstance(v, bool) for v in flat):
                    dtype = torch.bool
                elif any(isinstance(v, int) for v in flat):
                    dtype = torch.int32
                elif not flat:
                    dtype = _dtypes.to_torch_dtype(_dtypes.floatx())
    if _dtypes.is_bfloat16_array(x):
        x = _dtypes.bfloat16_array_to_tensor(x)
        return x if dtype is None else x.to(dtype)
    if isinstance(x, np.ndarray) and not x.flags.writeable:
        x = x.copy()
    return torch.as_tensor(x, dtype=dtype)


def as_tensor(x) -> torch.Tensor:
    """`torch.as_tensor(x)`, except that a list or tuple holding tensors is
    stacked (each item converted the same way), as Keras's torch
    `convert_to_tensor` does: `metric.update_state([loss])` or
    `mse([t1, t2], ...)` then work on tensors of any size, keep their device,
    and never go through Python scalars (torch.as_tensor raised "only one
    element tensors can be converted" for them and warned for one that
    requires grad). Dtypes otherwise stay torch's, unlike `to_tensor`."""
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, (list, tuple)) and any(isinstance(v, torch.Tensor) for v in x):
        return torch.stack([as_tensor(v) for v in x])
    return torch.as_tensor(x)


def _flatten_scalars(x):
    out = []
    for v in x:
        if isinstance(v, (list, tuple)):
            inner = _flatten_scalars(v)
            if inner is None:
                return None
            out.extend(inner)
        elif isinstance(v, (bool, int, float, torch.Tensor)):
            out.append(v)
        else:
            return None
    return out


def cast(x, dtype) -> torch.Tensor:
    """`x` converted to a tensor of `dtype` (any spelling)."""
    return to_tensor(x).to(_dtypes.to_torch_dtype(dtype))
