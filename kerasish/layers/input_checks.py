"""Checks on what a user passes to a layer, outside the hot path.

`Layer.__call__` runs these only on its slow path (inputs that are not one
tensor of the compute dtype), so a built layer called on the right tensor
pays nothing for them. Each error names the layer, the argument, what was
expected and what was received, with the exception type Keras raises.
"""

from __future__ import annotations

import numpy as np
import torch

# NumPy kinds torch cannot hold: bytes, str, object, void
_NON_NUMERIC_KINDS = frozenset("SUOV")


def _describe(x) -> str:
    if isinstance(x, (np.ndarray, torch.Tensor)):
        return f"an array of dtype {x.dtype} and shape {tuple(x.shape)}"
    return f"{x!r} (of type {type(x).__name__})"


def _walk(x):
    if isinstance(x, (list, tuple)):
        for v in x:
            yield from _walk(v)
    elif isinstance(x, dict):
        for v in x.values():
            yield from _walk(v)
    else:
        yield x


def check_raw_inputs(layer, inputs) -> None:
    """Inputs that are not one tensor: None, strings/objects, nested Python
    numbers, complex values. A list of real tensors (merge layers) costs one
    pass over the list.

    Raises:
        ValueError: `inputs` is None (built-in layers; a user's layer may
            accept None), holds strings or Python objects, or Python numbers
            inside a list (Keras: "Inputs to a layer should be tensors" /
            "Invalid dtype" / "Only input tensors may be passed").
        TypeError: a complex tensor or array reached a built-in layer.
    """
    if type(inputs) in (list, tuple) and all(type(x) is torch.Tensor and not x.dtype.is_complex for x in inputs):
        return
    builtin = type(layer).__module__.startswith("kerasish.")
    if inputs is None and builtin:
        raise ValueError(
            f"Inputs to a layer should be tensors. Got 'None' (of type {type(None)}) "
            f"as input for layer '{layer.name}'."
        )
    nested = isinstance(inputs, (list, tuple, dict))
    # string-taking layers set it on the class; a functional model with a
    # `dtype="string"` input on the instance
    strings_ok = layer.__dict__.get("_string_inputs", getattr(type(layer), "_string_inputs", False))
    for x in _walk(inputs):
        if builtin and (
            (isinstance(x, torch.Tensor) and x.dtype.is_complex) or (isinstance(x, np.ndarray) and x.dtype.kind == "c")
        ):
            raise _complex_error(layer, x)
        if strings_ok:
            continue
        if not builtin and (isinstance(x, str) or (isinstance(x, np.ndarray) and x.dtype.kind in "OUS")):
            continue  # a user's layer may take strings (e.g. a StringLookup inside its call), as in Keras
        if nested and isinstance(x, (bool, int, float, complex)):
            raise ValueError(
                f"Only input tensors may be passed as positional arguments. Layer '{layer.name}' "
                f"({type(layer).__name__}) received a nested Python list of numbers; convert it first "
                f"(`np.asarray(...)` or `torch.tensor(...)`). Received: a value {x!r} (of type {type(x).__name__}) "
                "inside the inputs."
            )
        if isinstance(x, np.ndarray) and x.dtype.kind in _NON_NUMERIC_KINDS:
            raise ValueError(
                f"Layer '{layer.name}' ({type(layer).__name__}) expects numeric inputs (float, int or bool "
                f"arrays/tensors). Received: inputs with {_describe(x)}."
            )
        if isinstance(x, str):
            raise ValueError(
                f"Layer '{layer.name}' ({type(layer).__name__}) expects numeric inputs (float, int or bool "
                f"arrays/tensors). Received: inputs={x!r}."
            )


def check_complex(layer, inputs) -> None:
    """Built-in layers compute in real dtypes; a complex input would lose its
    imaginary part in the cast, silently. User subclasses may do complex maths
    and are left alone.

    Raises:
        TypeError: a complex tensor reached a built-in kerasish layer.
    """
    if not type(layer).__module__.startswith("kerasish."):
        return
    for x in _walk(inputs):
        if isinstance(x, torch.Tensor) and x.is_complex():
            raise _complex_error(layer, x)


def _complex_error(layer, x) -> TypeError:
    return TypeError(
        f"Layer '{layer.name}' ({type(layer).__name__}) does not support complex inputs: it computes in "
        f"{layer.compute_dtype} and casting would drop the imaginary part. Received: inputs with "
        f"{_describe(x)}. Pass `x.real`, `x.abs()` or `torch.view_as_real(x)` explicitly."
    )
