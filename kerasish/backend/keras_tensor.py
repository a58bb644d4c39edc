"""`KerasTensor`: a symbolic tensor (shape with None for unknown dims, dtype,
name) that layers can be called on without real compute. The functional API
(`keras.Input`, `keras.Model(inputs, outputs)`) is built from these."""

from __future__ import annotations

import torch

from kerasish.backend import dtypes


class KerasTensor:
    """A symbolic tensor: `shape` (tuple, None for unknown), `dtype` (Keras
    name), `name`, `sparse`, and `_keras_history` (layer, node index, tensor
    index) once produced by a layer."""

    def __init__(self, shape, dtype="float32", sparse=False, name=None, record_history=None):
        self._shape = tuple(None if d is None else int(d) for d in shape)
        self._dtype = dtypes.standardize_dtype(dtype)
        self.sparse = bool(sparse)
        self.name = name
        self._keras_history = record_history
        self._keras_mask = None

    @property
    def shape(self) -> tuple:
        return self._shape

    @property
    def dtype(self) -> str:
        return self._dtype

    @property
    def ndim(self) -> int:
        return len(self._shape)

    def reshape(self, *shape):
        return torch.reshape(self, shape[0] if len(shape) == 1 else shape)

    def __repr__(self):
        return f"<KerasTensor shape={self._shape}, dtype={self._dtype}, sparse={self.sparse}, name={self.name}>"

    def __len__(self):
        raise TypeError("A KerasTensor has no length: it is symbolic. Use `.shape`.")

    def __bool__(self):
        raise TypeError("A symbolic KerasTensor cannot be used as a Python boolean.")

    def __iter__(self):
        raise TypeError("A symbolic KerasTensor cannot be iterated.")

    def numpy(self):
        raise ValueError(
            "A KerasTensor is symbolic: it's a placeholder for a shape and a dtype. It doesn't "
            "have any actual numerical value. You cannot convert it to a NumPy array."
        )

    # torch functions and Python operators on a KerasTensor are recorded as
    # layers of the functional graph by kerasish.models (see `symbolic_ops`).
    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        from kerasish.models import symbolic_ops

        return symbolic_ops.torch_function_call(func, args, kwargs or {})


def _binary(name, reflected=False):
    op = getattr(torch.Tensor, name)

    def method(self, other):
        return KerasTensor.__torch_function__(op, (KerasTensor,), (self, other))

    method.__name__ = name
    return method


for _name in [
    "__add__", "__radd__", "__sub__", "__rsub__", "__mul__", "__rmul__", "__truediv__",
    "__rtruediv__", "__floordiv__", "__rfloordiv__", "__pow__", "__rpow__", "__matmul__",
    "__rmatmul__", "__mod__", "__lt__", "__le__", "__gt__", "__ge__", "__and__", "__or__",
    "__xor__", "__getitem__",
]:
    setattr(KerasTensor, _name, _binary(_name))


def _unary(name):
    op = getattr(torch.Tensor, name)

    def method(self):
        return KerasTensor.__torch_function__(op, (KerasTensor,), (self,))

    method.__name__ = name
    return method


for _name in ["__neg__", "__abs__", "__invert__", "__pos__"]:
    setattr(KerasTensor, _name, _unary(_name))


def is_keras_tensor(x) -> bool:
    return isinstance(x, KerasTensor)
