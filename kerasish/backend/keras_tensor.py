"""`KerasTensor`: a symbolic tensor (shape with None for unknown dims, dtype,
name) that layers can be called on without real compute. The functional API
(`keras.Input`, `keras.Model(inputs, outputs)`) is built from these."""

from __future__ import annotations

import functools

import torch

from kerasish.backend import dtypes


class KerasTensor:
    """A symbolic tensor: `shape` (tuple, None for unknown), `dtype` (Keras
    name), `name`, `sparse`, and `_keras_history` (layer, node index, tensor
    index) once produced by a layer.

    Torch functions (`torch.abs(x)`, `F.relu(x)`), Python operators (`x + 1`,
    `x[:, 0]`) and tensor methods (`x.sum(dim=1)`) applied to a KerasTensor
    are recorded as steps of the functional graph.

    Args:
        shape: Shape tuple, None for unknown dimensions.
        dtype: Dtype name or torch dtype. Defaults to "float32".
        sparse: Whether the tensor is sparse. Defaults to False.
        name: Optional name.
        record_history: Whether layers called on this tensor record graph
            nodes (Keras 3 argument). Defaults to True.
    """

    def __init__(self, shape, dtype="float32", sparse=False, name=None, record_history=True):
        self._shape = tuple(None if d is None else int(d) for d in shape)
        self._dtype = dtypes.standardize_dtype(dtype)
        self.sparse = bool(sparse)
        self.name = name
        self.record_history = bool(record_history) if record_history is not None else True
        self._keras_history = None
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

    def __getattr__(self, name):
        # Tensor methods (`x.sum(dim=1)`, `x.view(-1, 4)`) become graph ops.
        if name.startswith("_"):
            raise AttributeError(f"'KerasTensor' object has no attribute '{name}'")
        method = getattr(torch.Tensor, name, None)
        if method is None or not callable(method) or isinstance(method, type):
            raise AttributeError(f"'KerasTensor' object has no attribute '{name}'")
        return functools.partial(_tensor_method, method, self)

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


def _tensor_method(method, self, *args, **kwargs):
    return KerasTensor.__torch_function__(method, (KerasTensor,), (self, *args), kwargs)


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
