"""Layers whose inputs may live on the Python side (strings).

`StringLookup`, `IntegerLookup`, `Hashing`, `HashedCrossing` and
`TextVectorization` take Python strings, lists of them, NumPy string arrays
or integer tensors. Strings cannot become torch tensors, so these layers skip
the tensor-conversion part of the Keras call pipeline: a non-tensor first
argument goes straight to `call` (the numeric results are torch tensors).
Symbolic (functional-API) inputs still take the normal path, except that the
output spec comes from `compute_output_shape` and `_symbolic_output_dtype`
instead of a probe run: a "string" input (`keras.Input(dtype="string")`) has
no tensor to probe with.
"""

from __future__ import annotations

import numpy as np
import torch

from kerasish.backend.keras_tensor import KerasTensor
from kerasish.layers.layer import Layer
from kerasish.utils import tree


def to_host_array(inputs, encoding: str = "utf-8") -> np.ndarray:
    """`inputs` as a NumPy array; strings become an object array of `str`
    (bytes decoded with `encoding`), numbers keep their dtype."""
    if isinstance(inputs, torch.Tensor):
        return inputs.detach().cpu().numpy()
    if isinstance(inputs, (str, bytes)):
        inputs = [inputs]
        arr = np.empty((), dtype=object)
        arr[()] = inputs[0]
    else:
        try:
            arr = np.asarray(inputs)
        except ValueError as e:  # ragged nested lists
            raise ValueError(
                f"Expected a rectangular array of values (ragged inputs are not supported). Received: {inputs!r}"
            ) from e
    if arr.dtype.kind in "USO":
        flat = [v.decode(encoding) if isinstance(v, bytes) else v for v in arr.reshape(-1).tolist()]
        out = np.empty(len(flat), dtype=object)
        out[:] = flat
        arr = out.reshape(arr.shape)
    return arr


def is_string_array(arr: np.ndarray) -> bool:
    return arr.dtype == object and (arr.size == 0 or isinstance(arr.reshape(-1)[0], str))


class HostInputLayer(Layer):
    """A layer that accepts Python / NumPy (string) inputs (see module doc)."""

    def forward(self, *args, **kwargs):
        if args and not isinstance(args[0], torch.Tensor) and not tree.any_symbolic(args[0]):
            kwargs.pop("training", None)
            kwargs.pop("mask", None)
            if not self.built:
                self.built = True
            return self.call(*args, **kwargs)
        return super().forward(*args, **kwargs)

    def _output_device(self, inputs):
        """Where the numeric results go: the input tensor's device, else (for
        strings and NumPy data) the device the layer was moved to, so a model
        moved to CUDA gets its lookups' indices there."""
        if isinstance(inputs, torch.Tensor):
            return inputs.device
        if isinstance(inputs, (list, tuple)):
            found = next((x.device for x in inputs if isinstance(x, torch.Tensor)), None)
            if found is not None:
                return found
        return self.__dict__.get("_device_hint")

    def compute_output_spec(self, *args, **kwargs):
        # never a probe run: string inputs have no tensor to probe with, and a
        # lookup rebuilt from a config has no vocabulary until its assets load
        inputs = args[0] if args else next(iter(kwargs.values()), None)
        shapes = tree.map_structure(lambda t: tuple(t.shape), inputs)
        return KerasTensor(self.compute_output_shape(shapes), dtype=self._symbolic_output_dtype())

    def _symbolic_output_dtype(self) -> str:
        """The dtype of the symbolic output: the compute dtype (Hashing and
        HashedCrossing compute in "int64" in "int" mode); lookups and
        TextVectorization override it."""
        return self.compute_dtype

