"""Dtype names as Keras spells them ("float32") <-> torch dtypes.

Keras identifies dtypes by string; torch by `torch.dtype`. Everything public in
kerasish accepts both and reports Keras strings where Keras does (configs,
`Layer.dtype`); tensors and weights keep their torch dtype.
"""

from __future__ import annotations

import numpy as np
import torch

_STR_TO_TORCH = {
    "float16": torch.float16,
    "bfloat16": torch.bfloat16,
    "float32": torch.float32,
    "float64": torch.float64,
    "uint8": torch.uint8,
    "uint16": torch.uint16,
    "uint32": torch.uint32,
    "uint64": torch.uint64,
    "int8": torch.int8,
    "int16": torch.int16,
    "int32": torch.int32,
    "int64": torch.int64,
    "bool": torch.bool,
    "complex64": torch.complex64,
    "complex128": torch.complex128,
}
_TORCH_TO_STR = {v: k for k, v in _STR_TO_TORCH.items()}
_ALIASES = {"float": "float32", "double": "float64", "half": "float16", "int": "int64"}
_FLOAT = {"float16", "bfloat16", "float32", "float64"}
# Keras's "string" dtype: torch has no string tensors, so only symbolic
# tensors (`keras.Input(dtype="string")`) carry it; their values stay on the
# Python side (NumPy object/str arrays, lists of str) and only the layers
# that take strings (lookup, hashing, TextVectorization) consume them.
STRING = "string"

_floatx = "float32"


def floatx() -> str:
    """The default float dtype name, as in `keras.backend.floatx()`."""
    return _floatx


def set_floatx(value) -> None:
    global _floatx
    value = standardize_dtype(value)
    if value not in _FLOAT:
        raise ValueError(
            f"Unknown `floatx` value: {value}. Expected one of {sorted(_FLOAT)}"
        )
    _floatx = value


def standardize_dtype(dtype) -> str:
    """Returns the Keras name ("float32", ...) of a dtype given in any spelling.

    Accepts Keras strings, torch dtypes, NumPy dtypes/types and `None` (which
    means `floatx()`). Raises `ValueError` for anything else.
    """
    if dtype is None:
        return _floatx
    if isinstance(dtype, torch.dtype):
        name = _TORCH_TO_STR.get(dtype)
        if name is None:
            raise ValueError(f"Invalid dtype: {dtype}")
        return name
    if hasattr(dtype, "name") and not isinstance(dtype, str):
        # Keras policies and NumPy dtypes both expose `.name`
        inner = getattr(dtype, "variable_dtype", None)
        dtype = inner if isinstance(inner, str) else dtype.name
    elif isinstance(dtype, type) and issubclass(dtype, np.generic):
        dtype = np.dtype(dtype).name
    if isinstance(dtype, str):
        if dtype.startswith("torch."):
            dtype = dtype[len("torch.") :]
        dtype = _ALIASES.get(dtype, dtype)
        if dtype in _STR_TO_TORCH:
            return dtype
        if dtype == STRING:  # only this spelling, as Keras (not "str", not NumPy's "<U5"/object)
            return STRING
    raise ValueError(f"Invalid dtype: {dtype!r}")


def to_torch_dtype(dtype) -> torch.dtype:
    """Returns the torch dtype for a dtype given in any spelling."""
    if isinstance(dtype, torch.dtype):
        return dtype
    name = standardize_dtype(dtype)
    if name == STRING:
        raise ValueError(
            "Invalid dtype: 'string' has no torch equivalent (torch has no string tensors); string values "
            "stay on the Python side as NumPy object/str arrays or lists of str."
        )
    return _STR_TO_TORCH[name]


def is_float_dtype(dtype) -> bool:
    return standardize_dtype(dtype) in _FLOAT


# NumPy has no bfloat16; Keras hands out and accepts `ml_dtypes.bfloat16`
# arrays (its `get_weights()`, `predict`, `convert_to_numpy` on bfloat16).
# kerasish does the same when ml_dtypes is installed (it comes with Keras;
# imported lazily, not a dependency) and gives float32 arrays otherwise.


def tensor_to_numpy(t: torch.Tensor) -> np.ndarray:
    """`t` (detached) as a NumPy array; bfloat16 as `ml_dtypes.bfloat16`
    (bit-exact) like Keras, or as float32 without ml_dtypes."""
    t = t.detach().cpu()
    if t.dtype == torch.bfloat16:
        try:
            import ml_dtypes
        except ImportError:
            return t.float().numpy()
        return t.contiguous().view(torch.uint16).numpy().view(ml_dtypes.bfloat16)
    return t.numpy()


def is_bfloat16_array(x) -> bool:
    """Whether `x` is a NumPy array of `ml_dtypes.bfloat16`."""
    return isinstance(x, np.ndarray) and x.dtype.kind == "V" and x.dtype.name == "bfloat16"


def bfloat16_array_to_tensor(x: np.ndarray) -> torch.Tensor:
    """An `ml_dtypes.bfloat16` array as a bfloat16 tensor (same bits, a copy)."""
    return torch.from_numpy(np.ascontiguousarray(x).view(np.uint16).copy()).view(torch.bfloat16)
