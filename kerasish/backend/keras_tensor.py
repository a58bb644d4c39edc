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
        """Records Keras 3's `Reshape` op; `x.reshape((2, -1))` and torch's
        `x.reshape(2, -1)` both work."""
        return keras_op("reshape")(self, shape[0] if len(shape) == 1 else shape)

    def squeeze(self, axis=None, *, dim=None):
        """Records Keras 3's `Squeeze` op (`dim=` is torch's name for `axis`);
        as in Keras, squeezing an axis whose size is not 1 raises."""
        return keras_op("squeeze")(self, axis=dim if axis is None else axis)

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

    # NumPy on the left (`np_array - x`) defers to the KerasTensor's reflected
    # operator instead of making an object array of KerasTensors
    __array_ufunc__ = None

    def __array__(self, dtype=None, copy=None):
        raise ValueError(
            "A KerasTensor is symbolic: it's a placeholder for a shape an a dtype. It doesn't have any actual "
            "numerical value. You cannot convert it to a NumPy array."
        )

    def __int__(self):
        raise ValueError(
            "A KerasTensor is symbolic: it's a placeholder for a shape an a dtype. It doesn't have any actual "
            "numerical value. You cannot convert it to an int."
        )

    def __float__(self):
        raise ValueError(
            "A KerasTensor is symbolic: it's a placeholder for a shape an a dtype. It doesn't have any actual "
            "numerical value. You cannot convert it to a float."
        )

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


# Python operators on a KerasTensor record the `keras.ops` operation Keras 3's
# KerasTensor records (keras/src/backend/common/keras_tensor.py): `x * 2` is a
# `Multiply` op named "multiply", `x / y` a `TrueDivide`, `x != y` a `NotEqual`
# (Keras defines `__ne__` but not `__eq__`: `==` stays identity and a
# KerasTensor stays hashable), `x & y` a `LogicalAnd` (logical, not bitwise,
# as in Keras), `x[key]` a `GetItem`. Reflected forms (`2 * x`) record the same
# op with the operands in written order. dunder -> (op name, reflected)
OPERATOR_OPS = {
    "__add__": ("add", False), "__radd__": ("add", True),
    "__sub__": ("subtract", False), "__rsub__": ("subtract", True),
    "__mul__": ("multiply", False), "__rmul__": ("multiply", True),
    "__matmul__": ("matmul", False), "__rmatmul__": ("matmul", True),
    "__div__": ("divide", False), "__rdiv__": ("divide", True),
    "__truediv__": ("true_divide", False), "__rtruediv__": ("true_divide", True),
    "__floordiv__": ("floor_divide", False), "__rfloordiv__": ("floor_divide", True),
    "__mod__": ("mod", False), "__rmod__": ("mod", True),
    "__pow__": ("power", False), "__rpow__": ("power", True),
    "__lt__": ("less", False), "__le__": ("less_equal", False),
    "__gt__": ("greater", False), "__ge__": ("greater_equal", False),
    "__ne__": ("not_equal", False),
    "__and__": ("logical_and", False), "__rand__": ("logical_and", True),
    "__or__": ("logical_or", False), "__ror__": ("logical_or", True),
    "__xor__": ("logical_xor", False), "__rxor__": ("logical_xor", True),
    "__getitem__": ("get_item", False),
}
UNARY_OPERATOR_OPS = {"__neg__": "negative", "__abs__": "absolute", "__invert__": "logical_not"}


def keras_op(name):
    """The public `kerasish.ops` function `name` (imported on first use)."""
    from kerasish.ops.operation import PUBLIC

    if name not in PUBLIC:
        import kerasish.ops  # noqa: F401  (registers every op)
    return PUBLIC[name]


def _binary(dunder, op_name, reflected):
    def method(self, other):
        op = keras_op(op_name)
        return op(other, self) if reflected else op(self, other)

    method.__name__ = dunder
    return method


for _dunder, (_op, _reflected) in OPERATOR_OPS.items():
    setattr(KerasTensor, _dunder, _binary(_dunder, _op, _reflected))


def _unary(dunder, op_name):
    def method(self):
        return keras_op(op_name)(self)

    method.__name__ = dunder
    return method


for _dunder, _op in UNARY_OPERATOR_OPS.items():
    setattr(KerasTensor, _dunder, _unary(_dunder, _op))


def _round(self, ndigits=None):
    # Keras 3: `round(x)` / `round(x, n)` record `Round(decimals=n or 0)`
    return keras_op("round")(self, decimals=ndigits or 0)


def _pos(self):
    # not a Keras 3 operator (Keras raises TypeError); kept as torch's `+x`
    return KerasTensor.__torch_function__(torch.Tensor.__pos__, (KerasTensor,), (self,))


KerasTensor.__round__ = _round
KerasTensor.__pos__ = _pos


def is_keras_tensor(x) -> bool:
    return isinstance(x, KerasTensor)
