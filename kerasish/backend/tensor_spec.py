"""`TensorSpec`: a shape (None for unknown dims) and a dtype, as in
`tf.TensorSpec`; what `Layer.compute_output_signature` takes and returns."""

from __future__ import annotations

from kerasish.backend import dtypes


class TensorSpec:
    """Describes a tensor: `TensorSpec(shape, dtype="float32", name=None)`."""

    def __init__(self, shape, dtype="float32", name=None):
        self.shape = tuple(None if d is None else int(d) for d in shape)
        self.dtype = dtypes.standardize_dtype(dtype)
        self.name = name

    def __eq__(self, other):
        if not isinstance(other, TensorSpec):
            return NotImplemented
        return self.shape == other.shape and self.dtype == other.dtype

    def __hash__(self):
        return hash((self.shape, self.dtype))

    def __repr__(self):
        return f"TensorSpec(shape={self.shape}, dtype={self.dtype}, name={self.name})"
